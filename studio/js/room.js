// The studio room: stage canvas in the centre, the participants strip below it, the control bar, and the right
// sidebar (chat, and for hosts the broadcast/destinations and overlay panels). State comes from the protocol
// client's events; the DOM is updated in place so playing videos never restart.

import { api } from './api.js';
import { BroadcastPanel } from './destinations.js';
import { ChatPanel } from './chat.js';
import { h, icon, mount, toast, initials, hueOf } from './dom.js';
import { ICONS } from './icons.js';
import { describeMediaError, LevelMeter, LocalMedia } from './media.js';
import { emptyOverlays, normaliseOverlays, OverlaysPanel } from './overlays.js';
import { greenRoom, deviceSelect } from './prejoin.js';
import { StudioConnection } from './protocol.js';
import { LAYOUTS, StageView } from './stage.js';

const MODERATOR_ROLES = new Set(['host', 'cohost']);
const ROLE_LABEL = { host: 'Host', cohost: 'Co-host', guest: 'Guest' };

/**
 * Shows the green room, then the studio for `broadcastId`.
 * `who` = {name, kind: "user"|"guest"}; `onExit(reason)` is called after leaving.
 * For guests, `beforeJoin(name)` runs after the green room (redeems the invite) and returns {broadcastId}.
 */
export async function openStudio(root, { broadcastId, title, who, askName, beforeJoin, onExit }) {
  const media = new LocalMedia();
  let choice = await greenRoom(root, {
    title: title ?? 'Get ready',
    subtitle: askName ? 'Check your camera and microphone, then join the studio.' : 'Check your camera and microphone before you enter the studio.',
    askName,
    defaultName: who?.name ?? '',
    button: askName ? 'Join studio' : 'Enter studio',
    media,
  });
  for (;;) {
    let room = null;
    try {
      if (beforeJoin) broadcastId = (await beforeJoin(choice.name)).broadcastId;
      room = new Room(root, { broadcastId, media, onExit });
      await room.enter();
      return room;
    } catch (e) {
      const form = root.querySelector('.greenroom-form');
      if (!form) {
        // Failed after the studio was already on screen (e.g. the media connection could not be set up).
        room?.teardown();
        mount(
          root,
          h(
            'div.center-screen',
            h(
              'div.card.narrow',
              { dataset: { role: 'room-ended', reason: 'error' } },
              h('h1', 'Could not enter the studio'),
              h('p.muted', e.message),
              h('button.primary', { type: 'button', onclick: () => location.reload() }, 'Try again'),
            ),
          ),
        );
        return null;
      }
      room?.conn?.close();
      choice.setError(e.message);
      choice = await new Promise((resolve) => {
        form.addEventListener('submit', () => resolve({ name: form.querySelector('input[name=name]')?.value.trim(), setError: choice.setError }), {
          once: true,
        });
      });
    }
  }
}

class Room {
  constructor(root, { broadcastId, media, onExit }) {
    this.root = root;
    this.broadcastId = broadcastId;
    this.media = media;
    this.onExit = onExit;
    /** The current connection; replaced on reconnect. */
    this.conn = null;
    /** True while trying to rejoin after the socket dropped. */
    this.reconnecting = false;
    /** Everyone in the room including us, by participant id: {p: Participant, stream, screenStream}. */
    this.people = new Map();
    /** Streams that arrived before their participant did, by participant id and kind. */
    this.orphanStreams = new Map();
    /** Strip cards by item id (`<id>` or `<id>:screen`). */
    this.cards = new Map();
    this.scene = { stage: [], layout: 'grid', overlays: emptyOverlays() };
    this.broadcast = null;
    this.selfId = null;
    this.role = 'guest';
    /** Our own mic level, so our tile rings when we speak without waiting for the server's speaker detection. */
    this.meter = media.meter ?? new LevelMeter();
    this.selfSpeakingTimer = 0;
    this.liveTimer = 0;
    /** Our own screen share as a stream for the preview tiles, or null. */
    this.selfScreenStream = null;
    this.left = false;
  }

  get isModerator() {
    return MODERATOR_ROLES.has(this.role);
  }

  async enter() {
    const joined = await this.connect();
    this.build();
    this.chat.add(joined.chat ?? []);
    this.media.on('change', ({ slot, track }) => {
      this.conn.setTrack(slot, track);
      this.paintControls();
    });
    this.media.on('screen-ended', () => this.setScreenShare(false));
    await this.conn.publish({ audio: this.media.audio, camera: this.media.camera, screen: null });
    this.render();
    if (this.isModerator) {
      this.broadcastPanel.load();
      this.broadcastPanel.startPreview();
    }
    window.addEventListener('beforeunload', this.unload);
    if (!this.meter.analyser) this.meter.attach(this.media.audio);
    this.selfSpeakingTimer = setInterval(() => this.updateSelfSpeaking(), 200);
  }

  updateSelfSpeaking() {
    const self = this.people.get(this.selfId);
    if (!self) return;
    const speaking = this.media.audioEnabled && this.meter.level() > 0.12;
    if (speaking !== Boolean(self.localSpeaking)) {
      self.localSpeaking = speaking;
      this.render();
    }
  }

  /** Opens a connection, joins, and takes the room's state from `joined`. Listeners are bound before joining. */
  async connect() {
    const c = new StudioConnection();
    this.conn = c;
    this.bind(c);
    await c.open();
    const joined = await c.join({ broadcastId: this.broadcastId, audioEnabled: this.media.audioEnabled, videoEnabled: this.media.videoEnabled });
    this.selfId = joined.participantId;
    this.role = joined.role;
    this.broadcast = joined.broadcast;
    if (joined.scene) this.scene = normaliseScene(joined.scene);
    this.people.clear();
    this.orphanStreams.clear();
    for (const p of joined.participants ?? []) this.upsert(p);
    if (!this.people.has(this.selfId)) {
      this.upsert({ id: this.selfId, name: 'You', role: this.role, audioEnabled: this.media.audioEnabled, videoEnabled: this.media.videoEnabled, screenSharing: false, speaking: false });
    }
    this.people.get(this.selfId).stream = this.media.preview;
    return joined;
  }

  /**
   * The socket dropped without us leaving: rejoin (the server keeps a dropped participant for a grace period,
   * so others barely notice), republish the current tracks, and give up after a few tries.
   */
  async reconnect(reason) {
    if (this.reconnecting || this.left) return;
    this.reconnecting = true;
    this.root.querySelector('.studio')?.classList.add('reconnecting');
    this.statusPill.textContent = 'Reconnecting…';
    for (const delay of [500, 1000, 2000, 4000, 8000, 8000]) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.left) return;
      try {
        const old = this.conn;
        old.closing = true;
        old.close();
        const joined = await this.connect();
        this.chat.selfId = this.selfId;
        this.chat.add(joined.chat ?? []);
        await this.conn.publish({ audio: this.media.audio, camera: this.media.camera, screen: this.media.screen });
        if (this.media.screen) this.conn.sendStatus({ screenSharing: true });
        this.reconnecting = false;
        this.root.querySelector('.studio')?.classList.remove('reconnecting');
        this.renderTopbar();
        this.render();
        toast('Reconnected.', 'success');
        return;
      } catch (e) {
        reason = e.message;
        // The server refused us (removed, session revoked, broadcast gone): retrying will not help.
        if (e.code && !['closed', 'unreachable'].includes(e.code)) break;
      }
    }
    this.reconnecting = false;
    this.showEnd('disconnected', reason);
  }

  unload = () => this.conn?.close();

  upsert(p) {
    const entry = this.people.get(p.id) ?? { p: null, stream: null, screenStream: null };
    entry.p = { ...entry.p, ...p };
    this.people.set(p.id, entry);
    const orphan = this.orphanStreams.get(p.id);
    if (orphan) {
      entry.stream ??= orphan.camera ?? null;
      entry.screenStream ??= orphan.screen ?? null;
      this.orphanStreams.delete(p.id);
    }
    return entry;
  }

  /** Wires one connection's events to the room; events of a replaced connection are ignored. */
  bind(c) {
    const live = (fn) => (data) => {
      if (c === this.conn) fn(data);
    };
    const on = (event, fn) => c.on(event, live(fn));
    on('participant-joined', ({ participant }) => {
      this.upsert(participant);
      this.render();
    });
    on('participant-left', ({ participantId, reason }) => {
      const who = this.people.get(participantId)?.p?.name;
      this.people.delete(participantId);
      if (participantId === this.selfId) return;
      if (who) toast(reason === 'removed' ? `${who} was removed` : `${who} left the studio`);
      this.render();
    });
    on('participant-status-updated', ({ participant }) => {
      this.upsert(participant);
      if (participant.id === this.selfId) this.syncSelf(participant);
      this.render();
    });
    on('track', ({ participantId, kind, stream }) => {
      if (kind === 'program') {
        this.broadcastPanel?.useLiveProgram(stream);
        return;
      }
      const entry = this.people.get(participantId);
      if (!entry) {
        const o = this.orphanStreams.get(participantId) ?? {};
        o[kind] = stream;
        this.orphanStreams.set(participantId, o);
        return;
      }
      if (kind === 'screen') entry.screenStream = stream;
      else entry.stream = stream;
      this.render();
    });
    on('track-removed', ({ participantId, kind, stream }) => {
      if (kind === 'program') {
        if (!stream.getTracks().length) this.broadcastPanel?.liveProgramEnded(stream);
        return;
      }
      const entry = this.people.get(participantId);
      if (kind === 'screen' && entry && entry.screenStream === stream && !stream.getTracks().length) entry.screenStream = null;
      this.render();
    });
    on('chat-message', (m) => {
      this.chat.add([m]);
      if (this.activeTab !== 'chat') this.tabs.chat.classList.add('unread');
    });
    on('broadcast-started', ({ startTime }) => {
      this.broadcast = { ...this.broadcast, status: 'live', startTime };
      this.renderTopbar();
    });
    on('broadcast-ended', ({ endTime }) => {
      this.broadcast = { ...this.broadcast, status: 'ended', endTime };
      this.renderTopbar();
    });
    on('moderated', ({ action }) => this.onModerated(action));
    on('scene-updated', ({ scene }) => {
      this.scene = normaliseScene(scene);
      this.overlaysPanel?.set(this.scene.overlays);
      this.render();
    });
    on('destination-status', (s) => this.broadcastPanel?.setStatus(s));
    on('program-status', (s) => this.broadcastPanel?.setProgramStatus(s));
    on('error', (e) => toast(e.message ?? e.code, 'error'));
    on('connection-state', ({ state }) => {
      if (!this.connState) return;
      this.connState.dataset.state = state;
      this.connState.title = `Media connection: ${state}`;
      if (state === 'failed') toast('Lost the media connection to the studio server.', 'error');
    });
    on('close', ({ intended, reason }) => {
      if (!intended && !this.left) this.reconnect(reason);
    });
  }

  /** Our own state changed on the server (e.g. a host muted us): reflect it in the local tracks and buttons. */
  syncSelf(p) {
    if (p.audioEnabled === false && this.media.audioEnabled) this.media.setAudioEnabled(false);
    if (p.videoEnabled === false && this.media.videoEnabled) this.media.setVideoEnabled(false);
    this.paintControls();
  }

  onModerated(action) {
    if (action === 'mute-audio') {
      this.media.setAudioEnabled(false);
      toast('A host muted your microphone. You can unmute yourself.');
    } else if (action === 'mute-video') {
      this.media.setVideoEnabled(false);
      toast('A host turned off your camera.');
    } else if (action === 'remove') {
      this.left = true;
      this.showEnd('removed');
      return;
    }
    const self = this.people.get(this.selfId);
    if (self) self.p = { ...self.p, audioEnabled: this.media.audioEnabled, videoEnabled: this.media.videoEnabled };
    this.paintControls();
    this.render();
  }

  // ---------------------------------------------------------------- layout

  build() {
    this.stageEl = h('div.stage', { dataset: { role: 'stage' } });
    this.stageView = new StageView(this.stageEl);
    this.strip = h('div.strip', { dataset: { role: 'participants' } });
    this.layoutBar = h('div.layout-bar', { role: 'toolbar', 'aria-label': 'Layout' });
    this.connState = h('span.conn-state', { dataset: { state: 'new' } });
    this.titleEl = h('div.room-title');
    this.statusPill = h('span.status-pill');
    this.topActions = h('div.top-actions');

    this.controls = {
      mic: h('button.ctrl', { type: 'button', dataset: { action: 'toggle-mic' }, onclick: () => this.toggleMic() }),
      cam: h('button.ctrl', { type: 'button', dataset: { action: 'toggle-camera' }, onclick: () => this.toggleCamera() }),
      screen: h('button.ctrl', { type: 'button', dataset: { action: 'share-screen' }, onclick: () => this.setScreenShare(!this.media.screen) }),
      settings: h('button.ctrl', { type: 'button', dataset: { action: 'settings' }, onclick: () => this.openSettings() }),
      invite: this.isModerator ? h('button.ctrl', { type: 'button', dataset: { action: 'invite' }, onclick: () => this.invite() }) : null,
      leave: h('button.ctrl.danger', { type: 'button', dataset: { action: 'leave' }, onclick: () => this.leave() }),
    };
    mount(this.controls.settings, icon(ICONS.settings), h('span', 'Settings'));
    if (this.controls.invite) mount(this.controls.invite, icon(ICONS.invite), h('span', 'Invite'));
    mount(this.controls.leave, icon(ICONS.leave), h('span', 'Leave'));

    this.chat = new ChatPanel({
      send: (text) => this.conn.sendChat(text),
      selfId: this.selfId,
      onFeature: this.isModerator ? (m) => this.featureComment(m) : null,
    });
    const panels = { chat: { label: 'Chat', icon: ICONS.chat, el: this.chat.el } };
    if (this.isModerator) {
      this.broadcastPanel = new BroadcastPanel({ broadcastId: this.broadcastId });
      this.overlaysPanel = new OverlaysPanel({ onchange: (overlays) => this.pushScene({ overlays }) });
      this.overlaysPanel.set(this.scene.overlays);
      panels.broadcast = { label: 'Broadcast', icon: ICONS.broadcast, el: this.broadcastPanel.el };
      panels.overlays = { label: 'Overlays', icon: ICONS.brush, el: this.overlaysPanel.el };
    }
    this.panels = panels;
    this.tabs = {};
    const tabBar = h('div.tabs', { role: 'tablist' });
    const panelHost = h('div.panel-host');
    for (const [id, p] of Object.entries(panels)) {
      this.tabs[id] = h('button.tab', { type: 'button', role: 'tab', dataset: { tab: id }, onclick: () => this.showTab(id) }, icon(p.icon), h('span', p.label));
      tabBar.append(this.tabs[id]);
      panelHost.append(p.el);
    }

    mount(
      this.root,
      h(
        'div.studio',
        { dataset: { role: this.role } },
        h(
          'header.topbar',
          h('div.brand', h('span.brand-dot'), 'Backyard'),
          h('div.topbar-center', this.titleEl, this.statusPill, this.connState),
          this.topActions,
        ),
        h(
          'div.studio-main',
          h(
            'main.stage-area',
            h('div.stage-wrap', this.stageEl),
            this.isModerator ? this.layoutBar : null,
            this.strip,
            h('div.control-bar', Object.values(this.controls).filter(Boolean)),
          ),
          h('aside.sidebar', tabBar, panelHost),
        ),
        h('div.remote-audio', { hidden: true, dataset: { role: 'remote-audio' } }),
      ),
    );
    this.audioHost = this.root.querySelector('.remote-audio');
    this.showTab('chat');
    this.renderLayoutBar();
    this.renderTopbar();
    this.paintControls();
  }

  showTab(id) {
    this.activeTab = id;
    for (const [tid, tab] of Object.entries(this.tabs)) {
      tab.classList.toggle('active', tid === id);
      tab.setAttribute('aria-selected', String(tid === id));
      this.panels[tid].el.hidden = tid !== id;
    }
    this.tabs[id].classList.remove('unread');
  }

  renderTopbar() {
    const b = this.broadcast ?? {};
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
    if (!this.isModerator) {
      mount(this.topActions, h('span.role-badge', ROLE_LABEL[this.role] ?? this.role));
      return;
    }
    const goLive = live
      ? h('button.danger', { type: 'button', dataset: { action: 'end-broadcast' }, onclick: () => this.endBroadcast() }, 'End broadcast')
      : h('button.golive', { type: 'button', dataset: { action: 'go-live' }, disabled: b.status === 'ended', onclick: () => this.goLive() }, icon(ICONS.broadcast), 'Go live');
    mount(this.topActions, h('span.role-badge', ROLE_LABEL[this.role] ?? this.role), goLive);
  }

  renderLayoutBar() {
    if (!this.isModerator) return;
    mount(
      this.layoutBar,
      LAYOUTS.map((l) =>
        h(
          `button.layout-btn${this.scene.layout === l.id ? '.active' : ''}`,
          { type: 'button', title: l.label, 'aria-pressed': String(this.scene.layout === l.id), dataset: { layout: l.id }, onclick: () => this.pushScene({ layout: l.id }) },
          icon(ICONS[l.icon]),
          h('span', l.label),
        ),
      ),
    );
  }

  paintControls() {
    const { mic, cam, screen } = this.controls;
    const m = this.media;
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

  // ---------------------------------------------------------------- rendering

  /** The items on stage, in stage order: people on stage, plus the screen share of any who is sharing. */
  stageItems() {
    const items = [];
    for (const id of this.scene.stage) {
      const e = this.people.get(id);
      if (!e) continue;
      if (id === this.selfId ? this.selfScreenStream : e.p.screenSharing && e.screenStream) items.push({ id: `${id}:screen`, screen: true });
      items.push({ id });
    }
    return items;
  }

  sourceFor(itemId) {
    const screen = itemId.endsWith(':screen');
    const pid = screen ? itemId.slice(0, -7) : itemId;
    const e = this.people.get(pid);
    if (!e) return null;
    const self = pid === this.selfId;
    if (screen) {
      const stream = self ? this.selfScreenStream : e.screenStream;
      return { name: this.displayName(e), stream, screen: true, videoEnabled: true };
    }
    // The stage shows what viewers will see, so our own picture is not mirrored there (only in the strip).
    return { name: this.displayName(e), stream: e.stream, mirrored: false, videoEnabled: e.p.videoEnabled, speaking: self ? e.localSpeaking : e.p.speaking };
  }

  displayName(e) {
    return e.p.id === this.selfId ? `${e.p.name} (you)` : e.p.name;
  }

  render() {
    if (!this.stageView) return;
    this.stageView.render({
      layout: this.scene.layout,
      items: this.stageItems(),
      overlays: this.scene.overlays,
      source: (id) => this.sourceFor(id),
      emptyHint: this.isModerator ? 'Add people to the stage from the strip below.' : 'The host will bring people on stage.',
    });
    this.renderStrip();
    this.renderAudio();
    this.renderLayoutBar();
  }

  renderStrip() {
    const order = [this.selfId, ...[...this.people.keys()].filter((id) => id !== this.selfId)];
    const wanted = [];
    for (const id of order) {
      const e = this.people.get(id);
      if (!e) continue;
      wanted.push({ key: id, e, kind: 'camera' });
      const sharing = id === this.selfId ? Boolean(this.selfScreenStream) : e.p.screenSharing && e.screenStream;
      if (sharing) wanted.push({ key: `${id}:screen`, e, kind: 'screen' });
    }
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
        card = this.makeCard(w.e.p.id, w.kind);
        this.cards.set(w.key, card);
      }
      this.updateCard(card, w.e, w.kind);
      const want = prev ? prev.nextSibling : this.strip.firstChild;
      if (want !== card.el) this.strip.insertBefore(card.el, want);
      prev = card.el;
    }
  }

  makeCard(pid, kind) {
    const self = pid === this.selfId;
    const video = h('video', { autoplay: true, playsInline: true, muted: true });
    const avatar = h('div.avatar');
    const name = h('span.card-name');
    const mic = h('span.card-mic');
    const stageBtn = this.isModerator ? h('button.stage-btn', { type: 'button', dataset: { action: 'toggle-stage' } }) : null;
    const menuBtn =
      this.isModerator && !self && kind === 'camera'
        ? h('button.card-menu-btn', { type: 'button', title: 'More', 'aria-haspopup': 'menu', dataset: { action: 'participant-menu' } }, icon(ICONS.more))
        : null;
    const el = h(
      'div.participant-card',
      { dataset: { participantId: pid, kind, self: self ? 'true' : null } },
      h('div.card-media', video, avatar, stageBtn),
      h('div.card-footer', mic, name, menuBtn),
    );
    if (menuBtn) menuBtn.onclick = (ev) => this.openMenu(ev, pid, menuBtn);
    if (stageBtn) stageBtn.onclick = () => this.toggleStage(pid);
    return { el, video, avatar, name, mic, stageBtn, stream: null };
  }

  updateCard(card, e, kind) {
    const p = e.p;
    const self = p.id === this.selfId;
    const stream = kind === 'screen' ? (self ? this.selfScreenStream : e.screenStream) : e.stream;
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
    const onStage = this.scene.stage.includes(p.id);
    card.el.classList.toggle('on-stage', onStage);
    card.el.dataset.onStage = String(onStage);
    card.el.dataset.audioEnabled = String(p.audioEnabled !== false);
    card.el.dataset.videoEnabled = String(p.videoEnabled !== false);
    const speaking = (self ? Boolean(e.localSpeaking) : Boolean(p.speaking)) && p.audioEnabled !== false && kind === 'camera';
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
    if (card.stageBtn) {
      card.stageBtn.hidden = kind === 'screen';
      card.stageBtn.textContent = onStage ? 'Remove from stage' : 'Add to stage';
      card.stageBtn.classList.toggle('remove', onStage);
    }
  }

  /** One <audio> per remote participant; audio of ourselves is never played back. */
  renderAudio() {
    const want = new Map();
    for (const [id, e] of this.people) if (id !== this.selfId && e.stream) want.set(id, e.stream);
    for (const el of [...this.audioHost.children]) {
      const s = want.get(el.dataset.participantId);
      if (!s) el.remove();
      else {
        if (el.srcObject !== s) el.srcObject = s;
        want.delete(el.dataset.participantId);
      }
    }
    for (const [id, s] of want) {
      const el = h('audio', { autoplay: true, dataset: { participantId: id } });
      el.srcObject = s;
      this.audioHost.append(el);
      el.play().catch(() => toast('Click anywhere to hear the other participants.'));
    }
  }

  // ---------------------------------------------------------------- actions

  toggleMic() {
    const on = !this.media.audioEnabled;
    this.media.setAudioEnabled(on);
    this.conn.sendStatus({ audioEnabled: on });
    this.patchSelf({ audioEnabled: on });
  }

  toggleCamera() {
    const on = !this.media.videoEnabled;
    this.media.setVideoEnabled(on);
    this.conn.sendStatus({ videoEnabled: on });
    this.patchSelf({ videoEnabled: on });
  }

  patchSelf(patch) {
    const self = this.people.get(this.selfId);
    if (self) self.p = { ...self.p, ...patch };
    this.paintControls();
    this.render();
  }

  async setScreenShare(on) {
    if (on) {
      let track;
      try {
        track = await this.media.startScreenShare();
      } catch (e) {
        toast(describeMediaError(e, 'screen share'), 'error');
        return;
      }
      if (!track) return;
      this.selfScreenStream = new MediaStream([track]);
      await this.conn.setTrack('screen', track);
    } else {
      this.media.stopScreenShare();
      this.selfScreenStream = null;
      await this.conn.setTrack('screen', null);
    }
    this.conn.sendStatus({ screenSharing: on });
    this.patchSelf({ screenSharing: on });
  }

  toggleStage(pid) {
    const stage = this.scene.stage.includes(pid) ? this.scene.stage.filter((id) => id !== pid) : [...this.scene.stage, pid];
    this.pushScene({ stage });
  }

  /** Shows a chat message on stage, or takes it off if it is the one showing. */
  featureComment(m) {
    const current = this.scene.overlays.comment;
    const showing = current.visible && current.messageId === m.id;
    const comment = showing ? { ...current, visible: false } : { messageId: m.id, name: m.name, text: m.text, visible: true };
    this.pushScene({ overlays: { ...this.scene.overlays, comment } });
    this.overlaysPanel?.set(this.scene.overlays);
  }

  /** Applies a scene change locally at once and sends it; the server's `scene-updated` confirms or corrects it. */
  pushScene(patch) {
    this.scene = { ...this.scene, ...patch };
    this.conn.updateScene({ stage: this.scene.stage, layout: this.scene.layout, overlays: this.scene.overlays });
    this.render();
  }

  openMenu(ev, pid, anchor) {
    ev.stopPropagation();
    document.querySelector('.menu')?.remove();
    const e = this.people.get(pid);
    if (!e) return;
    const item = (action, label, cls = '') =>
      h(`button.menu-item${cls}`, { type: 'button', role: 'menuitem', dataset: { action }, onclick: () => this.moderate(pid, action) }, label);
    const menu = h(
      'div.menu',
      { role: 'menu', dataset: { participantId: pid } },
      h('div.menu-title', e.p.name),
      item('mute-audio', 'Mute microphone'),
      item('mute-video', 'Turn off camera'),
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

  moderate(pid, action) {
    document.querySelector('.menu')?.remove();
    const e = this.people.get(pid);
    if (action === 'remove' && !confirm(`Remove ${e?.p.name ?? 'this participant'} from the studio? Their invite link stops working.`)) return;
    this.conn.moderate(pid, action);
  }

  /** Creates an invite link (guest by default, co-host on request), copies it and shows it. */
  async invite(role = 'guest') {
    let invite;
    try {
      invite = await api.createInvite(this.broadcastId, role);
    } catch (e) {
      toast(`Could not create an invite: ${e.message}`, 'error');
      return;
    }
    const url = invite.url ?? `${location.origin}/join/${invite.token}`;
    let copied = false;
    try {
      await navigator.clipboard.writeText(url);
      copied = true;
    } catch {
      copied = false;
    }
    const roleTab = (r, label) =>
      h(`button.seg${r === role ? '.active' : ''}`, { type: 'button', dataset: { inviteRole: r }, onclick: () => r !== role && this.invite(r) }, label);
    this.showDialog(
      role === 'cohost' ? 'Invite a co-host' : 'Invite a guest',
      // Only the owner may hand out co-host rights.
      this.role === 'host' ? h('div.segmented', roleTab('guest', 'Guest'), roleTab('cohost', 'Co-host')) : null,
      h(
        'p.muted',
        role === 'cohost'
          ? 'A co-host can bring people on stage, change the layout and overlays, and mute or remove guests.'
          : 'Anyone with this link can join the studio as a guest, without an account.',
      ),
      h(
        'div.copy-row',
        h('input', { type: 'text', readOnly: true, value: url, dataset: { inviteUrl: url, role }, onfocus: (e) => e.target.select() }),
        h(
          'button.secondary',
          {
            type: 'button',
            onclick: async (ev) => {
              try {
                await navigator.clipboard.writeText(url);
                ev.target.textContent = 'Copied';
              } catch {
                ev.target.textContent = 'Select and copy';
              }
            },
          },
          copied ? 'Copied' : 'Copy',
        ),
      ),
      h('p.field-hint', `Expires ${invite.expiresAt ? new Date(invite.expiresAt).toLocaleString() : 'when the broadcast ends'}.`),
    );
    if (copied) toast('Invite link copied to the clipboard.', 'success');
  }

  openSettings() {
    const body = h('div.settings-body', 'Loading devices…');
    this.showDialog('Camera and microphone', body);
    this.media.devices().then((list) => {
      const meterBar = h('div.meter-bar');
      const meter = new LevelMeter();
      meter.attach(this.media.audio);
      const tick = () => {
        if (!body.isConnected) {
          meter.close();
          return;
        }
        meterBar.style.width = `${Math.round(meter.level() * 100)}%`;
        requestAnimationFrame(tick);
      };
      mount(
        body,
        h(
          'div.field',
          h('label', 'Camera'),
          deviceSelect(list.videoinput, this.media.camera?.getSettings().deviceId, 'Camera', (id) =>
            this.media.useCamera(id).then(() => this.render()).catch((e) => toast(describeMediaError(e, 'camera'), 'error')),
          ),
        ),
        h(
          'div.field',
          h('label', 'Microphone'),
          deviceSelect(list.audioinput, this.media.audio?.getSettings().deviceId, 'Microphone', (id) =>
            this.media.useMicrophone(id).then((t) => meter.attach(t)).catch((e) => toast(describeMediaError(e, 'microphone'), 'error')),
          ),
          h('div.meter', meterBar),
        ),
        list.audiooutput.length && typeof HTMLMediaElement.prototype.setSinkId === 'function'
          ? h(
              'div.field',
              h('label', 'Speakers'),
              deviceSelect(list.audiooutput, this.sinkId, 'Speakers', (id) => {
                this.sinkId = id;
                for (const a of this.audioHost.children) a.setSinkId(id).catch(() => {});
              }),
            )
          : null,
      );
      requestAnimationFrame(tick);
    });
  }

  showDialog(title, ...content) {
    document.querySelector('dialog.modal')?.remove();
    const dlg = h(
      'dialog.modal',
      h('div.modal-head', h('h2', title), h('button.icon-btn', { type: 'button', title: 'Close', onclick: () => dlg.close() }, icon(ICONS.close))),
      ...content,
    );
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    return dlg;
  }

  async goLive() {
    const btn = this.topActions.querySelector('[data-action=go-live]');
    btn.disabled = true;
    btn.textContent = 'Starting…';
    try {
      this.broadcast = { ...this.broadcast, ...(await api.startBroadcast(this.broadcastId)) };
      toast('You are live.', 'success');
    } catch (e) {
      toast(`Could not go live: ${e.message}`, 'error');
    }
    this.renderTopbar();
  }

  async endBroadcast() {
    if (!confirm('End the broadcast for everyone watching? The recording is finalised.')) return;
    try {
      this.broadcast = { ...this.broadcast, ...(await api.endBroadcast(this.broadcastId)) };
      toast('The broadcast has ended.');
    } catch (e) {
      toast(`Could not end the broadcast: ${e.message}`, 'error');
    }
    this.renderTopbar();
  }

  leave() {
    if (this.isModerator && this.broadcast?.status === 'live' && !confirm('You are live. Leave the studio? The broadcast keeps going until a host ends it.')) return;
    this.left = true;
    this.teardown();
    this.onExit?.('left');
  }

  teardown() {
    clearInterval(this.liveTimer);
    clearInterval(this.selfSpeakingTimer);
    this.broadcastPanel?.stopPreview();
    window.removeEventListener('beforeunload', this.unload);
    this.conn?.close();
    this.media.stop();
    document.querySelector('dialog.modal')?.remove();
  }

  showEnd(reason, detail) {
    this.teardown();
    const text = {
      removed: ['You were removed from the studio', 'A host removed you from this broadcast.'],
      disconnected: ['Disconnected', detail || 'The connection to the studio server was lost.'],
    }[reason];
    mount(
      this.root,
      h(
        'div.center-screen',
        h(
          'div.card.narrow',
          { dataset: { role: 'room-ended', reason } },
          h('h1', text[0]),
          h('p.muted', text[1]),
          reason === 'disconnected' ? h('button.primary', { type: 'button', onclick: () => location.reload() }, 'Rejoin') : null,
        ),
      ),
    );
  }
}

/** Fills a scene from the server with defaults so the UI never has to check for missing parts. */
function normaliseScene(scene = {}) {
  return {
    stage: Array.isArray(scene.stage) ? scene.stage : [],
    layout: scene.layout || 'grid',
    overlays: normaliseOverlays(scene.overlays),
  };
}
