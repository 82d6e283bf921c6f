// The studio's buttons: the control bar under the strip (mic, camera, screen share, settings, invite, leave)
// and, for hosts and co-hosts, the layout toolbar above it, built from the layouts the server offers.

import { h, icon, mount } from './dom.js';
import { ICONS, layoutIcon } from './icons.js';

export class ControlBar {
  /**
   * `moderator` adds the Invite button. Handlers: `onToggleMic`, `onToggleCamera`, `onToggleScreen`,
   * `onSettings`, `onInvite`, `onLeave`.
   */
  constructor({ moderator, onToggleMic, onToggleCamera, onToggleScreen, onSettings, onInvite, onLeave }) {
    const button = (action, onclick, cls = '') => h(`button.ctrl${cls}`, { type: 'button', dataset: { action }, onclick });
    this.mic = button('toggle-mic', onToggleMic);
    this.cam = button('toggle-camera', onToggleCamera);
    this.screen = button('share-screen', onToggleScreen);
    const settings = button('settings', onSettings);
    const invite = moderator ? button('invite', onInvite) : null;
    const leave = button('leave', onLeave, '.danger');
    mount(settings, icon(ICONS.settings), h('span', 'Settings'));
    if (invite) mount(invite, icon(ICONS.invite), h('span', 'Invite'));
    mount(leave, icon(ICONS.leave), h('span', 'Leave'));
    this.el = h('div.control-bar', this.mic, this.cam, this.screen, settings, invite, leave);
  }

  /** Shows the local devices' state (a LocalMedia). */
  paint(m) {
    const { mic, cam, screen } = this;
    mount(mic, icon(m.audioEnabled ? ICONS.mic : ICONS.micOff), h('span', m.audioEnabled ? 'Mute' : 'Unmute'));
    mic.classList.toggle('off', !m.audioEnabled);
    mic.disabled = !m.audio;
    mic.setAttribute('aria-pressed', String(!m.audioEnabled));
    mount(cam, icon(m.videoEnabled ? ICONS.cam : ICONS.camOff), h('span', m.videoEnabled ? 'Stop cam' : 'Start cam'));
    cam.classList.toggle('off', !m.videoEnabled);
    cam.disabled = !m.camera;
    mount(screen, icon(ICONS.screen), h('span', m.screen ? 'Stop share' : 'Share screen'));
    screen.classList.toggle('on', Boolean(m.screen));
  }
}

export class LayoutBar {
  /** `onPick(layoutId)` when a layout button is pressed. */
  constructor({ onPick }) {
    this.onPick = onPick;
    this.el = h('div.layout-bar', { role: 'toolbar', 'aria-label': 'Layout' });
    this.shown = null;
  }

  /** `choices` is `layoutChoices(state)`: the server's layouts in order, `active` on the scene's. */
  render(choices) {
    const key = JSON.stringify(choices);
    if (key === this.shown) return;
    this.shown = key;
    mount(
      this.el,
      choices.map((l) =>
        h(
          `button.layout-btn${l.active ? '.active' : ''}`,
          {
            type: 'button',
            title: l.description || l.name,
            'aria-pressed': String(l.active),
            dataset: { layout: l.id, plugin: l.plugin || null },
            onclick: () => this.onPick(l.id),
          },
          icon(layoutIcon(l.id)),
          h('span', l.name),
        ),
      ),
    );
  }
}

/**
 * The program's canvases as a row of buttons above the stage, for hosts and co-hosts: the main one, then the scene's others
 * (a 9:16 picture of the same show, say), each shown on the stage when picked, with its own layout; a button adds
 * a vertical canvas and each other canvas has one to take it away.
 */
export class CanvasBar {
  /** `onPick(canvasId)`, `onAdd()`, `onRemove(canvasId)`. */
  constructor({ onPick, onAdd, onRemove }) {
    Object.assign(this, { onPick, onAdd, onRemove });
    this.el = h('div.canvas-bar', { role: 'toolbar', 'aria-label': 'Canvases', dataset: { role: 'canvases' } });
    this.shown = null;
  }

  /**
   * `tabs` is `canvasTabs(state)`; `active` the canvas shown; `canAdd` whether another canvas may be added;
   * `canRemove` whether one may be taken away (not while live: destinations stream them).
   */
  render(tabs, active, canAdd, canRemove) {
    const key = JSON.stringify([tabs, active, canAdd, canRemove]);
    if (key === this.shown) return;
    this.shown = key;
    const tab = (t) => {
      const selected = t.id === active;
      const pick = h(
        `button.canvas-tab${selected ? '.active' : ''}`,
        { type: 'button', 'aria-pressed': String(selected), title: `Show the ${t.id} canvas on the stage`, dataset: { canvas: t.id }, onclick: () => this.onPick(t.id) },
        h('span.canvas-shape', { style: { aspectRatio: `${t.width} / ${t.height}` } }),
        h('span', t.label),
      );
      if (t.id === 'main' || !canRemove) return pick;
      const remove = h(
        'button.canvas-remove',
        { type: 'button', title: `Remove the ${t.id} canvas`, 'aria-label': `Remove the ${t.id} canvas`, dataset: { removeCanvas: t.id }, onclick: () => this.onRemove(t.id) },
        icon(ICONS.close),
      );
      return h('span.canvas-tab-group', pick, remove);
    };
    const add = canAdd
      ? h('button.canvas-add', { type: 'button', dataset: { action: 'add-canvas' }, title: 'Compose the show in 9:16 too, for Shorts, TikTok and Reels', onclick: () => this.onAdd() }, icon(ICONS.plus), h('span', 'Vertical canvas'))
      : null;
    mount(this.el, ...tabs.map(tab), add);
  }
}
