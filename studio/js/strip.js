// The participants strip under the stage: everyone in the room (ourselves first), each camera as a card and a
// screen share as a card of its own. Hosts and co-hosts get "Add to stage" on each card and a moderation menu
// on everyone else's. Cards are reused between renders so playing videos never restart.

import { h, icon, mount, initials, hueOf } from './dom.js';
import { ICONS } from './icons.js';
import { qualityText, ROLE_LABEL, stripItems } from './room-state.js';

export class ParticipantStrip {
  /**
   * `moderator`: show the stage buttons and menus. `onToggleStage(participantId)` and
   * `onModerate(participantId, action)` (action `mute-audio`, `mute-video`, `remove`, `admit` or
   * `send-backstage`) are the host's actions. A guest backstage gets "Admit to the show" instead of the stage button.
   */
  constructor({ moderator, onToggleStage, onModerate }) {
    this.moderator = moderator;
    this.onToggleStage = onToggleStage;
    this.onModerate = onModerate;
    /** Cards by item key (`<id>` or `<id>:screen`). */
    this.cards = new Map();
    this.el = h('div.strip', { dataset: { role: 'participants' } });
  }

  /** `streamOf(source)`: the MediaStream for a card; `hasScreen(participantId)`: a screen picture is there. */
  render(state, { streamOf, hasScreen }) {
    const wanted = stripItems(state, hasScreen);
    const keep = new Set(wanted.map((w) => w.key));
    for (const [key, card] of this.cards) {
      if (!keep.has(key)) {
        card.el.remove();
        this.cards.delete(key);
      }
    }
    let prev = null;
    for (const w of wanted) {
      let card = this.cards.get(w.key);
      if (!card) {
        card = this.makeCard(w.participantId, w.kind, w.participantId === state.selfId);
        this.cards.set(w.key, card);
      }
      this.updateCard(card, state, state.participants[w.participantId], w.kind, streamOf(w.key));
      const want = prev ? prev.nextSibling : this.el.firstChild;
      if (want !== card.el) this.el.insertBefore(card.el, want);
      prev = card.el;
    }
  }

  makeCard(pid, kind, self) {
    const video = h('video', { autoplay: true, playsInline: true, muted: true });
    const avatar = h('div.avatar');
    const name = h('span.card-name');
    const mic = h('span.card-mic');
    // Three bars: how the server sees this participant's connection (`connection-quality`).
    const quality = kind === 'camera' ? h('span.card-quality', { role: 'img', dataset: { quality: 'unknown' } }, h('i'), h('i'), h('i')) : null;
    const stageBtn = this.moderator ? h('button.stage-btn', { type: 'button', dataset: { action: 'toggle-stage' } }) : null;
    const menuBtn =
      this.moderator && !self && kind === 'camera'
        ? h('button.card-menu-btn', { type: 'button', title: 'More', 'aria-haspopup': 'menu', dataset: { action: 'participant-menu' } }, icon(ICONS.more))
        : null;
    const el = h(
      'div.participant-card',
      { dataset: { participantId: pid, kind, self: self ? 'true' : null } },
      h('div.card-media', video, avatar, stageBtn),
      h('div.card-footer', mic, name, quality, menuBtn),
    );
    const card = { el, video, avatar, name, mic, quality, stageBtn, stream: null, participant: null };
    if (menuBtn) menuBtn.onclick = (ev) => this.openMenu(ev, pid, card.participant, menuBtn);
    // Someone backstage is admitted first; everyone else goes on or off the stage.
    if (stageBtn) stageBtn.onclick = () => (stageBtn.dataset.action === 'admit' ? this.onModerate(pid, 'admit') : this.onToggleStage(pid));
    return card;
  }

  updateCard(card, state, p, kind, stream) {
    const self = p.id === state.selfId;
    card.participant = p;
    card.el.dataset.backstage = String(Boolean(p.backstage));
    card.el.classList.toggle('backstage', Boolean(p.backstage));
    stream ??= null;
    if (card.stream !== stream) {
      card.stream = stream;
      card.video.srcObject = stream;
    }
    const videoOn = kind === 'screen' || (p.videoEnabled !== false && Boolean(stream));
    card.video.hidden = !videoOn;
    card.avatar.hidden = videoOn;
    card.avatar.textContent = initials(p.name);
    card.avatar.style.setProperty('--hue', hueOf(p.name));
    card.el.classList.toggle('mirrored', self && kind === 'camera');
    const onStage = state.scene.stage.includes(p.id);
    card.el.classList.toggle('on-stage', onStage);
    card.el.dataset.onStage = String(onStage);
    card.el.dataset.audioEnabled = String(p.audioEnabled !== false);
    card.el.dataset.videoEnabled = String(p.videoEnabled !== false);
    const speaking = (self ? state.selfSpeaking : Boolean(p.speaking)) && p.audioEnabled !== false && kind === 'camera';
    card.el.dataset.speaking = String(speaking);
    card.el.classList.toggle('speaking', speaking);
    card.name.textContent = kind === 'screen' ? `${p.name} · screen` : self ? `${p.name} (you)` : p.name;
    card.name.title = `${p.name} — ${ROLE_LABEL[p.role] ?? p.role}`;
    if (kind === 'camera') {
      mount(card.mic, icon(p.audioEnabled === false ? ICONS.micOff : ICONS.mic));
      card.mic.classList.toggle('off', p.audioEnabled === false);
      card.mic.title = p.audioEnabled === false ? 'Microphone off' : 'Microphone on';
    } else {
      mount(card.mic, icon(ICONS.screen));
    }
    if (card.quality) {
      const q = state.quality?.[p.id];
      const grade = q?.grade ?? 'unknown';
      if (card.quality.dataset.quality !== grade) card.quality.dataset.quality = grade;
      const text = qualityText(q);
      if (card.quality.title !== text) {
        card.quality.title = text;
        card.quality.setAttribute('aria-label', text);
      }
    }
    if (card.stageBtn) {
      card.stageBtn.hidden = kind === 'screen';
      card.stageBtn.dataset.action = p.backstage ? 'admit' : 'toggle-stage';
      card.stageBtn.textContent = p.backstage ? 'Admit to the show' : onStage ? 'Remove from stage' : 'Add to stage';
      card.stageBtn.classList.toggle('remove', onStage && !p.backstage);
    }
  }

  /** The moderation menu for one participant `p`, above their card's "more" button. */
  openMenu(ev, pid, p, anchor) {
    const name = p?.name ?? '';
    ev.stopPropagation();
    document.querySelector('.menu')?.remove();
    const item = (action, label, cls = '') =>
      h(
        `button.menu-item${cls}`,
        {
          type: 'button',
          role: 'menuitem',
          dataset: { action },
          onclick: () => {
            menu.remove();
            this.onModerate(pid, action);
          },
        },
        label,
      );
    const menu = h(
      'div.menu',
      { role: 'menu', dataset: { participantId: pid } },
      h('div.menu-title', name),
      item('mute-audio', 'Mute microphone'),
      item('mute-video', 'Turn off camera'),
      p?.role === 'guest' && !p.backstage ? item('send-backstage', 'Send backstage') : null,
      h('div.menu-sep'),
      item('remove', 'Remove from studio', '.danger'),
    );
    document.body.append(menu);
    const r = anchor.getBoundingClientRect();
    menu.style.left = `${Math.min(r.left, window.innerWidth - menu.offsetWidth - 8)}px`;
    menu.style.top = `${r.top - menu.offsetHeight - 6}px`;
    const close = (evt) => {
      if (!menu.contains(evt.target)) {
        menu.remove();
        document.removeEventListener('click', close, true);
      }
    };
    setTimeout(() => document.addEventListener('click', close, true), 0);
  }
}
