// The studio's top bar: the broadcast's title, its status pill (a running LIVE clock while on air), the media
// connection's state, the role badge, and for hosts and co-hosts Go live / End broadcast.

import { h, icon, mount } from './dom.js';
import { ICONS } from './icons.js';
import { ROLE_LABEL } from './room-state.js';

export class TopBar {
  /** `moderator` shows Go live / End broadcast, which call `onGoLive()` / `onEnd()`. */
  constructor({ moderator, onGoLive, onEnd }) {
    this.moderator = moderator;
    this.onGoLive = onGoLive;
    this.onEnd = onEnd;
    this.titleEl = h('div.room-title');
    this.statusPill = h('span.status-pill');
    this.connState = h('span.conn-state', { dataset: { state: 'new' } });
    this.actions = h('div.top-actions');
    this.liveTimer = 0;
    this.el = h(
      'header.topbar',
      h('div.brand', h('span.brand-dot'), 'Backyard'),
      h('div.topbar-center', this.titleEl, this.statusPill, this.connState),
      this.actions,
    );
  }

  /** `broadcast` = {title, status, startTime?}; `role` our role in the room. */
  render(broadcast, role) {
    const b = broadcast ?? {};
    this.titleEl.textContent = b.title ?? 'Studio';
    const live = b.status === 'live';
    this.statusPill.className = `status-pill ${live ? 'live' : b.status === 'ended' ? 'ended' : ''}`;
    this.statusPill.dataset.status = b.status ?? 'scheduled';
    clearInterval(this.liveTimer);
    const paintPill = () => {
      if (!live) {
        this.statusPill.textContent = b.status === 'ended' ? 'Ended' : 'Not live';
        return;
      }
      const since = b.startTime ? Date.parse(b.startTime) : Date.now();
      const s = Math.max(0, Math.floor((Date.now() - since) / 1000));
      const hh = String(Math.floor(s / 3600)).padStart(2, '0');
      const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
      const ss = String(s % 60).padStart(2, '0');
      this.statusPill.textContent = `LIVE ${hh}:${mm}:${ss}`;
    };
    paintPill();
    if (live) this.liveTimer = setInterval(paintPill, 1000);
    const badge = h('span.role-badge', ROLE_LABEL[role] ?? role);
    if (!this.moderator) {
      mount(this.actions, badge);
      return;
    }
    const button = live
      ? h('button.danger', { type: 'button', dataset: { action: 'end-broadcast' }, onclick: () => this.onEnd() }, 'End broadcast')
      : h('button.golive', { type: 'button', dataset: { action: 'go-live' }, disabled: b.status === 'ended', onclick: () => this.onGoLive() }, icon(ICONS.broadcast), 'Go live');
    mount(this.actions, badge, button);
  }

  /** Go live was pressed: the button waits for the server. */
  starting() {
    const btn = this.actions.querySelector('[data-action=go-live]');
    if (!btn) return;
    btn.disabled = true;
    btn.textContent = 'Starting…';
  }

  /** The socket dropped and the studio is trying to rejoin. */
  reconnecting() {
    this.statusPill.textContent = 'Reconnecting…';
  }

  /** The media connection's state (`RTCPeerConnection.connectionState`). */
  setConnState(state) {
    this.connState.dataset.state = state;
    this.connState.title = `Media connection: ${state}`;
  }

  stop() {
    clearInterval(this.liveTimer);
  }
}
