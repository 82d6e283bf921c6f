// The studio room: the green room first, then the studio (stage, participants strip, layout toolbar, control
// bar, sidebar). This module holds the connection's lifecycle (join, publish, rejoin after a dropped socket)
// and the user's actions; the room's state is room-state.js's plain data, folded from the protocol client's
// events, and each part of the screen is its own view module that renders from it. The DOM is updated in
// place so playing videos never restart.

import { api } from './api.js';
import { ChatPanel } from './chat.js';
import { CanvasBar, ControlBar, LayoutBar } from './controls.js';
import { BrandSection } from './brand.js';
import { BroadcastPanel } from './destinations.js';
import { SourcesPanel } from './sources.js';
import { h, icon, mount, toast } from './dom.js';
import { ICONS } from './icons.js';
import { LocalRecorder, LocalRecordingsSection, ownRecordingText } from './local-recording.js';
import { describeMediaError, LevelMeter, LocalMedia } from './media.js';
import { OverlaysPanel } from './overlays.js';
import { greenRoom } from './prejoin.js';
import { StudioConnection } from './protocol.js';
import { RemoteAudio } from './remote-audio.js';
import { closeDialogs, inviteDialog, settingsDialog, shortcutsDialog } from './room-dialogs.js';
import { shortcutFor } from './shortcuts.js';
import { SlateSection } from './slate.js';
import { ClipsSection } from './clips.js';
import {
  apply,
  canvasTabs,
  healthWarnings,
  initialState,
  isModerator,
  layoutChoices,
  MAIN_CANVAS,
  patchParticipant,
  patchScene,
  setSelfSpeaking,
  shownSlate,
  sourceOf,
  stageTiles,
  withVerticalCanvas,
} from './room-state.js';
import { StageView } from './stage.js';
import { ParticipantStrip } from './strip.js';
import { TopBar } from './topbar.js';
import { TrackSizeReporter } from './track-sizes.js';

/** Canvases the program may compose beside its main one. */
const MAX_EXTRA_CANVASES = 2;

/** Server events that change the room's state (room-state.js's `apply`). */
const STATE_EVENTS = [
  'room-state',
  'participant-joined',
  'participant-left',
  'participant-status-updated',
  'chat-message',
  'broadcast-started',
  'broadcast-ended',
  'moderated',
  'scene-updated',
  'stage-layout',
  'canvas-layout',
  'destination-status',
  'program-status',
  'connection-quality',
  'local-recording',
  'error',
];

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
    /** The room as plain data (room-state.js); replaced, never changed in place. */
    this.state = initialState();
    /** Remote pictures and sound by stream id: `<participantId>` (camera + mic) or `<participantId>:screen`. */
    this.streams = new Map();
    /** Our own mic level, so our tile rings when we speak without waiting for the server's speaker detection. */
    this.meter = media.meter ?? new LevelMeter();
    this.selfSpeakingTimer = 0;
    /** Our own screen share as a stream for the preview tiles, or null. */
    this.selfScreenStream = null;
    /** Remote sources (stream ids) whose video the server paused because our connection cannot carry it. */
    this.pausedVideo = new Set();
    /** Tells the server how large each remote video is shown, so it sends no more than that. */
    this.trackSizes = new TrackSizeReporter({
      send: (sizes) => Boolean(this.conn?.offered) && this.conn.send('track-sizes', { sizes }),
      streams: () => this.streams,
    });
    this.left = false;
  }

  get isModerator() {
    return isModerator(this.state);
  }

  async enter() {
    await this.connect();
    this.build();
    this.media.on('change', ({ slot, track }) => {
      this.conn.setTrack(slot, track);
      this.controls.paint(this.media);
    });
    this.media.on('screen-ended', () => this.setScreenShare(false));
    await this.conn.publish({ audio: this.media.audio, camera: this.media.camera, screen: null });
    this.render();
    this.localRecorder = new LocalRecorder({ broadcastId: this.broadcastId, onStatus: (s) => this.renderOwnRecording(s) });
    // What a page before this one recorded and did not finish uploading.
    this.localRecorder.resume();
    this.syncLocalRecording();
    if (this.isModerator) {
      this.broadcastPanel.load();
      this.sourcesPanel.load();
      // The program may have started before we came in; otherwise its first `program-status` starts the preview.
      if (this.state.program) this.broadcastPanel.startPreview();
    }
    window.addEventListener('beforeunload', this.unload);
    if (!this.meter.analyser) this.meter.attach(this.media.audio);
    this.selfSpeakingTimer = setInterval(() => this.updateSelfSpeaking(), 200);
  }

  updateSelfSpeaking() {
    const next = setSelfSpeaking(this.state, this.media.audioEnabled && this.meter.level() > 0.12);
    if (next !== this.state) {
      this.state = next;
      this.render();
    }
  }

  /** Opens a connection, joins, and takes the room's state from `joined`. Listeners are bound before joining. */
  async connect() {
    const c = new StudioConnection();
    this.conn = c;
    this.bind(c);
    await c.open();
    // Reconnecting: the seat we had (kept by the node that holds it, or taken over by another).
    const joined = await c.join({
      broadcastId: this.broadcastId,
      audioEnabled: this.media.audioEnabled,
      videoEnabled: this.media.videoEnabled,
      participantId: this.state.selfId ?? undefined,
    });
    this.state = apply(this.state, { event: 'joined', data: joined }, { self: { audioEnabled: this.media.audioEnabled, videoEnabled: this.media.videoEnabled } });
    // The old peer connection is gone: its tracks come again on the new one.
    this.streams.clear();
    this.pausedVideo.clear();
    this.trackSizes.reset();
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
    this.topBar.reconnecting();
    for (const delay of [500, 1000, 2000, 4000, 8000, 8000]) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.left) return;
      try {
        const old = this.conn;
        old.closing = true;
        old.close();
        await this.connect();
        this.chat.selfId = this.state.selfId;
        this.chat.add(this.state.chat);
        await this.conn.publish({ audio: this.media.audio, camera: this.media.camera, screen: this.media.screen });
        if (this.media.screen) this.conn.sendStatus({ screenSharing: true });
        this.reconnecting = false;
        this.root.querySelector('.studio')?.classList.remove('reconnecting');
        this.renderTopBar();
        this.overlaysPanel?.setChoices(this.state.overlayChoices);
        this.overlaysPanel?.set(this.shownOverlays());
        this.render();
        toast('Reconnected.', 'success');
        return;
      } catch (e) {
        reason = e.message;
        // The server refused us (removed, session revoked, broadcast gone): retrying will not help.
        if (e.code && !['closed', 'unreachable', 'timeout'].includes(e.code)) break;
      }
    }
    this.reconnecting = false;
    this.showEnd('disconnected', reason);
  }

  unload = () => this.conn?.close();

  /** Wires one connection's events to the room; events of a replaced connection are ignored. */
  bind(c) {
    const on = (event, fn) =>
      c.on(event, (data) => {
        if (c === this.conn) fn(data);
      });
    on('ingest-status', (data) => this.sourcesPanel?.setStatus(data));
    for (const event of STATE_EVENTS) {
      on(event, (data) => {
        const before = this.state;
        this.state = apply(before, { event, data });
        this.after(event, data, before);
      });
    }
    on('track', ({ participantId, kind, stream }) => {
      if (kind === 'program') {
        // Hosts preview it; a guest backstage watches it as the return feed.
        this.programStream = stream;
        this.broadcastPanel?.useLiveProgram(stream);
        this.render();
        return;
      }
      this.streams.set(sourceOf(participantId, kind), stream);
      this.render();
    });
    on('track-removed', ({ participantId, kind, stream }) => {
      if (kind === 'program') {
        if (!stream.getTracks().length) {
          this.broadcastPanel?.liveProgramEnded(stream);
          if (this.programStream === stream) this.programStream = null;
          this.render();
        }
        return;
      }
      const source = sourceOf(participantId, kind);
      if (kind === 'screen' && this.streams.get(source) === stream && !stream.getTracks().length) this.streams.delete(source);
      this.render();
    });
    on('video-paused', ({ participantId, source, paused }) => {
      const key = sourceOf(participantId, source);
      if (paused) this.pausedVideo.add(key);
      else this.pausedVideo.delete(key);
      this.render();
    });
    on('error', (e) => toast(e.message ?? e.code, 'error'));
    on('connection-state', ({ state }) => {
      if (!this.topBar) return;
      this.topBar.setConnState(state);
      if (state === 'failed') toast('Lost the media connection to the studio server.', 'error');
    });
    on('close', ({ intended, reason }) => {
      if (!intended && !this.left) this.reconnect(reason);
    });
  }

  /** What else happens after a server event changed the state (`before` is the state it replaced). */
  after(event, data, before) {
    if (!this.stageView) return;
    switch (event) {
      case 'participant-left': {
        const id = data.participantId;
        this.streams.delete(sourceOf(id, 'camera'));
        this.streams.delete(sourceOf(id, 'screen'));
        if (id === this.state.selfId) return;
        const who = before.participants[id]?.name;
        if (who) toast(data.reason === 'removed' ? `${who} was removed` : `${who} left the studio`);
        break;
      }
      case 'participant-status-updated':
        if (data.participant?.id === this.state.selfId) this.syncSelf();
        break;
      case 'chat-message':
        this.chat.add([data]);
        if (this.activeTab !== 'chat') this.tabs.chat.classList.add('unread');
        return;
      case 'broadcast-started':
        this.renderTopBar();
        this.localRecordingsSection?.setOn(this.state.broadcast?.localRecording);
        this.syncLocalRecording();
        return;
      case 'broadcast-ended':
        this.broadcastPanel?.stopPreview();
        this.renderTopBar();
        this.syncLocalRecording();
        return;
      case 'connection-quality':
        this.renderHealth();
        break;
      case 'local-recording':
        this.localRecordingsSection?.render(this.state.localRecordings);
        return;
      case 'moderated':
        this.onModerated(data.action);
        return;
      case 'scene-updated':
        this.overlaysPanel?.set(this.shownOverlays());
        this.brandSection?.set(this.state.scene.brand);
        this.slateSection?.set(this.state.scene.slate, this.state.scene.slateImage);
        this.clipsSection?.set(this.state.scene.clip, this.state.scene.slateAudio);
        break;
      case 'destination-status':
        this.broadcastPanel?.setOutputs(this.state.outputs);
        this.renderHealth();
        return;
      case 'program-status':
        this.broadcastPanel?.setProgramStatus(this.state.program);
        // Polling the program's frame before it exists would only fetch 404s; an ended show has none.
        if (this.state.broadcast?.status !== 'ended') this.broadcastPanel?.startPreview();
        this.renderHealth();
        return;
      default:
        break;
    }
    this.render();
  }

  /**
   * The server sent our own status. For our microphone and camera our devices are the truth: the update may be
   * the echo of an older toggle (mute then unmute quickly, and the first echo arrives after the second toggle),
   * and a host's mute reaches us as `moderated`, which switches the device off itself.
   */
  syncSelf() {
    this.state = patchParticipant(this.state, this.state.selfId, {
      audioEnabled: this.media.audioEnabled,
      videoEnabled: this.media.videoEnabled,
    });
    this.controls.paint(this.media);
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
    } else if (action === 'admit') {
      toast('A host brought you into the show.', 'success');
    } else if (action === 'send-backstage') {
      toast('A host sent you backstage. You still see the show.');
    }
    this.controls.paint(this.media);
    this.render();
  }

  // ---------------------------------------------------------------- layout

  build() {
    const moderator = this.isModerator;
    this.stageEl = h('div.stage', { dataset: { role: 'stage' } });
    this.stageWrap = h('div.stage-wrap', this.stageEl);
    // A guest backstage sees the program (the return feed) instead of the stage, until a host admits them.
    this.returnFeed = h('video.return-feed', { autoplay: true, playsInline: true, muted: true, dataset: { role: 'return-feed' } });
    this.backstageEl = h(
      'section.backstage-view',
      { dataset: { role: 'backstage' }, hidden: true, 'aria-label': 'Backstage' },
      h('div.backstage-note', h('strong', 'You are backstage.'), ' You see what viewers see; the studio hears you, viewers do not. A host will bring you into the show.'),
      h('div.return-feed-box', this.returnFeed, h('div.return-feed-waiting', 'Waiting for the program…')),
    );
    // Where the host looks: what is wrong with the show right now (program short of CPU, a destination dropping).
    this.healthEl = h('div.health-banner', { role: 'status', dataset: { role: 'health' }, hidden: true });
    this.relayEl = h('p.relay-banner', { role: 'status', dataset: { role: 'relay' }, hidden: true });
    // This participant's own local recording and its upload, while there is one.
    this.ownRecordingEl = h('p.own-recording', { role: 'status', dataset: { role: 'own-recording' }, hidden: true });
    this.stageView = new StageView(this.stageEl);
    this.strip = new ParticipantStrip({
      moderator,
      onToggleStage: (pid) => this.toggleStage(pid),
      onModerate: (pid, action) => this.moderate(pid, action),
    });
    this.layoutBar = moderator ? new LayoutBar({ onPick: (layout) => this.pickLayout(layout) }) : null;
    /** The canvas the stage shows (hosts pick it among the program's canvases). */
    this.activeCanvas = MAIN_CANVAS;
    this.canvasBar = moderator
      ? new CanvasBar({
          onPick: (id) => {
            this.activeCanvas = id;
            this.overlaysPanel?.set(this.shownOverlays());
            this.render();
          },
          onAdd: () => this.pushScene({ canvases: withVerticalCanvas(this.state) }),
          onRemove: (id) => this.pushScene({ canvases: this.state.scene.canvases.filter((c) => c.id !== id) }),
        })
      : null;
    this.topBar = new TopBar({ moderator, onGoLive: () => this.goLive(), onEnd: () => this.endBroadcast() });
    this.controls = new ControlBar({
      moderator,
      onToggleMic: () => this.toggleMic(),
      onToggleCamera: () => this.toggleCamera(),
      onToggleScreen: () => this.setScreenShare(!this.media.screen),
      onSettings: () => this.openSettings(),
      onInvite: () =>
        inviteDialog({
          broadcastId: this.broadcastId,
          canInviteCohost: this.state.role === 'host',
          // Only the owner may change the broadcast's settings: a co-host's dialog has no backstage switch.
          backstage: this.state.role === 'host' ? Boolean(this.state.broadcast?.backstage) : null,
          onBackstage: (on) => {
            this.state = { ...this.state, broadcast: { ...this.state.broadcast, backstage: on } };
          },
        }),
      onLeave: () => this.leave(),
    });
    this.remoteAudio = new RemoteAudio();

    this.chat = new ChatPanel({
      send: (text) => this.conn.sendChat(text),
      selfId: this.state.selfId,
      onFeature: moderator ? (m) => this.featureComment(m) : null,
    });
    this.chat.add(this.state.chat);
    const panels = { chat: { label: 'Chat', icon: ICONS.chat, el: this.chat.el } };
    if (moderator) {
      this.broadcastPanel = new BroadcastPanel({ broadcastId: this.broadcastId, canChangeViewers: this.state.role === 'host' });
      // Only the owner may change the broadcast's settings.
      this.localRecordingsSection = new LocalRecordingsSection({ broadcastId: this.broadcastId, canChange: this.state.role === 'host' });
      this.localRecordingsSection.setOn(this.state.broadcast?.localRecording);
      this.localRecordingsSection.onChange = (on) => {
        this.state = { ...this.state, broadcast: { ...this.state.broadcast, localRecording: on } };
      };
      this.broadcastPanel.el.append(this.localRecordingsSection.el);
      this.overlaysPanel = new OverlaysPanel({ onchange: (overlays) => this.pushOverlays(overlays) });
      this.overlaysPanel.set(this.shownOverlays());
      this.overlaysPanel.setChoices(this.state.overlayChoices);
      this.brandSection = new BrandSection({ onapply: (brand, logoUrl) => this.applyBrand(brand, logoUrl) });
      this.brandSection.set(this.state.scene.brand);
      this.overlaysPanel.el.prepend(this.brandSection.el);
      this.slateSection = new SlateSection({
        onchange: (slate) => this.pushScene({ slate }),
        onimage: (slateImage) => this.pushScene({ slateImage }),
      });
      this.slateSection.set(this.state.scene.slate, this.state.scene.slateImage);
      this.overlaysPanel.el.prepend(this.slateSection.el);
      // On another canvas's tab: whether it shows the main canvas's overlays or its own.
      this.ownOverlays = h('input', { type: 'checkbox', dataset: { action: 'own-overlays' }, onchange: (e) => this.setOwnOverlays(e.target.checked) });
      this.ownOverlaysText = h('span');
      this.ownOverlaysRow = h('label.own-overlays', { hidden: true }, this.ownOverlays, this.ownOverlaysText);
      this.overlaysPanel.el.prepend(this.ownOverlaysRow);
      this.clipsSection = new ClipsSection({
        onchange: (clip) => this.pushScene({ clip }),
        onslateaudio: (slateAudio) => {
          this.pushScene({ slateAudio });
          this.clipsSection.set(this.state.scene.clip, this.state.scene.slateAudio);
        },
      });
      this.clipsSection.set(this.state.scene.clip, this.state.scene.slateAudio);
      this.slateSection.el.after(this.clipsSection.el);
      this.clipsSection.load();
      this.brandSection.load();
      panels.broadcast = { label: 'Broadcast', icon: ICONS.broadcast, el: this.broadcastPanel.el };
      panels.overlays = { label: 'Overlays', icon: ICONS.brush, el: this.overlaysPanel.el };
      this.sourcesPanel = new SourcesPanel({
        broadcastId: this.broadcastId,
        canManage: this.state.role === 'host',
        onLive: (key) => this.renderRelay(key),
      });
      panels.sources = { label: 'Sources', icon: ICONS.cam, el: this.sourcesPanel.el };
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
        { dataset: { role: this.state.role } },
        this.topBar.el,
        h(
          'div.studio-main',
          h('main.stage-area', this.relayEl, this.healthEl, this.ownRecordingEl, this.canvasBar?.el, this.stageWrap, this.backstageEl, this.layoutBar?.el, this.strip.el, this.controls.el),
          h('aside.sidebar', tabBar, panelHost),
        ),
        this.remoteAudio.el,
      ),
    );
    this.showTab('chat');
    this.onKey = (e) => {
      const s = shortcutFor(e, { moderator });
      if (!s) return;
      e.preventDefault();
      this.runShortcut(s);
    };
    document.addEventListener('keydown', this.onKey);
    this.layoutBar?.render(layoutChoices(this.state));
    this.renderTopBar();
    this.controls.paint(this.media);
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

  /**
   * Records this participant on their own device while the show is live and the host asked for it (the
   * broadcast's `localRecording`), and stops when it ends.
   */
  syncLocalRecording() {
    const r = this.localRecorder;
    if (!r) return;
    const b = this.state.broadcast;
    const wanted = b?.status === 'live' && Boolean(b.localRecording);
    if (wanted && !r.recording) r.start([this.media.camera, this.media.audio]);
    else if (!wanted && r.recording) r.stop();
  }

  /** The line under the health banner about our own local recording and its upload. */
  renderOwnRecording(status) {
    const text = ownRecordingText(status);
    this.ownRecordingEl.hidden = !text;
    this.ownRecordingEl.textContent = text;
    this.ownRecordingEl.dataset.state = status?.state ?? '';
    // How long the recording is, once uploaded (what the host's copy should last).
    if (Number.isFinite(status?.seconds)) this.ownRecordingEl.dataset.seconds = status.seconds.toFixed(2);
  }

  /** The health banner above the stage: one line per warning, hidden when all is well. */
  renderHealth() {
    if (!this.healthEl) return;
    const names = {};
    for (const [id, { dest }] of this.broadcastPanel?.items ?? []) names[id] = dest.name;
    const warnings = healthWarnings(this.state, names);
    const key = warnings.map((w) => `${w.id}\n${w.text}`).join('\n');
    if (key === this.healthKey) return;
    this.healthKey = key;
    this.healthEl.hidden = !warnings.length;
    mount(
      this.healthEl,
      warnings.map((w) => h('p.health-warning', { dataset: { health: w.id } }, icon(ICONS.warning), h('span', w.text))),
    );
  }

  /** While an encoder is on air through the RTMP ingest, its stream (not the stage) is what goes out: say so. */
  renderRelay(key) {
    if (!this.relayEl) return;
    this.relayEl.hidden = !key;
    this.broadcastPanel?.setRelay(key);
    if (this.relaying !== Boolean(key)) {
      this.relaying = Boolean(key);
      this.render();
    }
    if (!key) return;
    mount(this.relayEl, [
      icon(ICONS.broadcast),
      h('span', `On air from the encoder “${key.label}” (${key.status.stream}). Its stream goes to your destinations as it is; the stage below is not sent.`),
    ]);
  }

  renderTopBar() {
    this.topBar.render(this.state.broadcast, this.state.role);
  }

  // ---------------------------------------------------------------- rendering

  /** The stream to show for a stream id: ours from the local devices, everyone else's as the server sends it. */
  streamOf(source) {
    const selfId = this.state.selfId;
    if (source === sourceOf(selfId, 'camera')) return this.media.preview;
    if (source === sourceOf(selfId, 'screen')) return this.selfScreenStream;
    return this.streams.get(source) ?? null;
  }

  hasScreen(participantId) {
    return Boolean(this.streamOf(sourceOf(participantId, 'screen')));
  }

  render() {
    if (!this.stageView) return;
    const backstage = Boolean(this.state.participants[this.state.selfId]?.backstage);
    this.stageWrap.hidden = backstage;
    this.backstageEl.hidden = !backstage;
    const feed = backstage ? (this.programStream ?? null) : null;
    if (this.returnFeed.srcObject !== feed) this.returnFeed.srcObject = feed;
    this.backstageEl.classList.toggle('has-video', Boolean(feed));
    const streamOf = (source) => this.streamOf(source);
    // A canvas taken away (here or by another host): the stage shows the main one again.
    if (!this.otherCanvas()) this.activeCanvas = MAIN_CANVAS;
    this.stageEl.dataset.canvasId = this.activeCanvas;
    const live = this.state.broadcast?.status === 'live';
    this.canvasBar?.render(canvasTabs(this.state), this.activeCanvas, this.state.scene.canvases.length < MAX_EXTRA_CANVASES, !live);
    this.broadcastPanel?.setCanvases(this.state.scene.canvases);
    if (this.ownOverlaysRow) {
      const other = this.otherCanvas();
      this.ownOverlaysRow.hidden = !other;
      this.ownOverlays.checked = Boolean(other?.overlays);
      this.ownOverlaysText.textContent = other ? `Overlays of its own on the ${other.id} canvas (unchecked: the main canvas’s)` : '';
    }
    this.stageView.render({
      view: this.canvasView(),
      streamOf,
      overlays: this.shownOverlays(),
      brand: this.state.scene.brand,
      slate: shownSlate(this.state, { programOnAir: this.state.broadcast?.status === 'live' && !this.relaying }),
      clip: this.state.scene.clip,
      emptyHint: this.isModerator ? 'Add people to the stage from the strip below.' : 'The host will bring people on stage.',
    });
    this.strip.render(this.state, { streamOf, hasScreen: (pid) => this.hasScreen(pid) });
    const voices = new Map();
    for (const id of Object.keys(this.state.participants)) {
      const s = id !== this.state.selfId && this.streams.get(sourceOf(id, 'camera'));
      if (s) voices.set(id, s);
    }
    this.remoteAudio.render(voices);
    this.layoutBar?.render(layoutChoices(this.state, this.activeCanvas));
    this.markPausedVideo();
    this.trackSizes.refresh();
  }

  /** What the stage shows for the canvas picked: its tiles, or (before its director placed anyone) its shape. */
  canvasView() {
    const view = stageTiles(this.state, this.activeCanvas);
    const own = this.otherCanvas();
    if (own && !this.state.canvasLayouts[own.id]) return { ...view, canvas: { width: own.width, height: own.height } };
    return view;
  }

  /** The canvas the stage shows, if it is one of the scene's others (null for the main one). */
  otherCanvas() {
    return this.state.scene.canvases.find((c) => c.id === this.activeCanvas) ?? null;
  }

  /** The overlays of the canvas the stage shows: its own, or the main canvas's. */
  shownOverlays() {
    return this.otherCanvas()?.overlays ?? this.state.scene.overlays;
  }

  /** Changes the scene's canvas `id` to what `change(canvas)` makes of it. */
  patchCanvas(id, change) {
    this.pushScene({ canvases: this.state.scene.canvases.map((c) => (c.id === id ? change(c) : c)) });
  }

  /** Overlays changed in the panel (or by a shortcut): the shown canvas's own, or the main canvas's. */
  pushOverlays(overlays) {
    const own = this.otherCanvas();
    if (!own?.overlays) return this.pushScene({ overlays });
    this.patchCanvas(own.id, (c) => ({ ...c, overlays }));
  }

  /** Gives the shown canvas overlays of its own (starting from the main canvas's), or back the main canvas's. */
  setOwnOverlays(own) {
    const shown = this.otherCanvas();
    if (!shown) return;
    this.patchCanvas(shown.id, ({ overlays: _, ...rest }) => (own ? { ...rest, overlays: structuredClone(this.state.scene.overlays) } : rest));
    this.overlaysPanel?.set(this.shownOverlays());
  }

  /** A layout picked in the toolbar: for the canvas the stage shows. */
  pickLayout(layout) {
    if (this.activeCanvas === MAIN_CANVAS) return this.pushScene({ layout });
    this.patchCanvas(this.activeCanvas, (c) => ({ ...c, layout }));
  }

  /** Tiles and cards whose video the server paused for our connection say so. */
  markPausedVideo() {
    for (const el of this.root.querySelectorAll('.stage-tile[data-source], .participant-card[data-participant-id]')) {
      const key = el.dataset.source ?? sourceOf(el.dataset.participantId, el.dataset.kind);
      const paused = this.pausedVideo.has(key);
      if ((el.dataset.videoPaused === 'true') !== paused) el.dataset.videoPaused = String(paused);
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
    this.state = patchParticipant(this.state, this.state.selfId, patch);
    this.controls.paint(this.media);
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

  /** Carries out a keyboard shortcut (`shortcuts.js`). */
  runShortcut({ action, index }) {
    const overlays = this.shownOverlays();
    const toggleOverlay = (key, what) => {
      const o = overlays[key];
      if (!o.visible && !o.text) {
        toast(`Type the ${what} text in the Overlays panel first.`);
        return;
      }
      this.pushOverlays({ ...overlays, [key]: { ...o, visible: !o.visible } });
      this.overlaysPanel?.set(this.shownOverlays());
    };
    switch (action) {
      case 'toggle-mic':
        this.toggleMic();
        break;
      case 'toggle-camera':
        this.toggleCamera();
        break;
      case 'layout': {
        const choice = layoutChoices(this.state, this.activeCanvas)[index];
        if (choice) this.pickLayout(choice.id);
        break;
      }
      case 'stage': {
        const card = this.strip.el.querySelectorAll('.participant-card[data-kind=camera]')[index];
        if (card?.dataset.participantId) this.toggleStage(card.dataset.participantId);
        break;
      }
      case 'toggle-banner':
        toggleOverlay('banner', 'banner');
        break;
      case 'toggle-ticker':
        toggleOverlay('ticker', 'ticker');
        break;
      case 'help':
        shortcutsDialog({ moderator: this.isModerator });
        break;
      default:
        break;
    }
  }

  toggleStage(pid) {
    const current = this.state.scene.stage;
    const stage = current.includes(pid) ? current.filter((id) => id !== pid) : [...current, pid];
    this.pushScene({ stage });
  }

  /** Shows a chat message on stage, or takes it off if it is the one showing. */
  featureComment(m) {
    const overlays = this.shownOverlays();
    const current = overlays.comment;
    const showing = current.visible && current.messageId === m.id;
    const comment = showing ? { ...current, visible: false } : { messageId: m.id, name: m.name, text: m.text, visible: true };
    this.pushOverlays({ ...overlays, comment });
    this.overlaysPanel?.set(this.shownOverlays());
  }

  /** Applies a scene change locally at once and sends it; the server's `scene-updated` confirms or corrects it. */
  pushScene(patch) {
    this.state = patchScene(this.state, patch);
    // The whole scene as room-state.js normalised it (exactly the fields a scene has): a field added to the
    // scene is sent without a list here to forget it in.
    this.conn.updateScene(this.state.scene);
    this.render();
  }

  /** A saved brand applied to this broadcast (`null`: none); a brand with a logo shows it. */
  applyBrand(brand, logoUrl) {
    const patch = { brand };
    if (logoUrl) patch.overlays = { ...this.state.scene.overlays, logo: { ...this.state.scene.overlays.logo, url: logoUrl, visible: true } };
    this.pushScene(patch);
    this.brandSection?.set(this.state.scene.brand);
    this.overlaysPanel?.set(this.state.scene.overlays);
  }

  moderate(pid, action) {
    const name = this.state.participants[pid]?.name;
    if (action === 'remove' && !confirm(`Remove ${name ?? 'this participant'} from the studio? Their invite link stops working.`)) return;
    this.conn.moderate(pid, action);
  }

  openSettings() {
    settingsDialog({
      media: this.media,
      sinkId: this.remoteAudio.sinkId,
      onCamera: () => this.render(),
      onSpeakers: (id) => this.remoteAudio.setSink(id),
      onShortcuts: () => shortcutsDialog({ moderator: this.isModerator }),
    });
  }

  async goLive() {
    this.topBar.starting();
    try {
      this.state = { ...this.state, broadcast: { ...this.state.broadcast, ...(await api.startBroadcast(this.broadcastId)) } };
      toast('You are live.', 'success');
    } catch (e) {
      toast(`Could not go live: ${e.message}`, 'error');
    }
    this.renderTopBar();
  }

  async endBroadcast() {
    if (!confirm('End the broadcast for everyone watching? The recording is finalised.')) return;
    try {
      this.state = { ...this.state, broadcast: { ...this.state.broadcast, ...(await api.endBroadcast(this.broadcastId)) } };
      toast('The broadcast has ended.');
    } catch (e) {
      toast(`Could not end the broadcast: ${e.message}`, 'error');
    }
    this.renderTopBar();
  }

  leave() {
    if (this.isModerator && this.state.broadcast?.status === 'live' && !confirm('You are live. Leave the studio? The broadcast keeps going until a host ends it.')) return;
    this.left = true;
    this.teardown();
    this.onExit?.('left');
  }

  teardown() {
    // The recording stops with the devices; its upload carries on while the page is open (and after a reload).
    this.localRecorder?.stop();
    if (this.onKey) document.removeEventListener('keydown', this.onKey);
    this.topBar?.stop();
    clearInterval(this.selfSpeakingTimer);
    this.trackSizes.stop();
    this.broadcastPanel?.stopPreview();
    window.removeEventListener('beforeunload', this.unload);
    this.conn?.close();
    this.media.stop();
    closeDialogs();
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
