// The public watch page at /watch/<broadcast id>: plays the show's HLS stream (hls.js, served by Backyard), or,
// for a show from the studio, the program over WebRTC (WHEP: "Low latency"), and says how far behind live the
// picture is. No account needed; the host decides who may watch (the broadcast's `settings.watch`). Before and
// after the show it says so and checks again every few seconds.

import Hls from '/vendor/hls.js/hls.light.min.mjs';
import { h, mount } from './dom.js';

const root = document.getElementById('app');
const [page, id] = location.pathname.split('/').filter(Boolean);
/** How often the page asks whether the show started (or came back). */
const POLL_MS = 4000;

/** "4.2 s behind live", from the wall-clock time of the frame on screen (the playlist's program date-time). */
export function latencyText(playingDate, now = Date.now()) {
  if (!(playingDate instanceof Date) || Number.isNaN(playingDate.getTime())) return '';
  const secs = Math.max(0, (now - playingDate.getTime()) / 1000);
  return `${secs.toFixed(1)} s behind live`;
}

/**
 * Plays a WHEP endpoint in `video`: offers to receive video and audio, with every candidate (the server takes
 * no trickle), and shows what arrives. `stop()` ends the session (`DELETE` on its resource).
 */
class WhepPlayer {
  constructor(url, video, onFail) {
    this.url = url;
    this.video = video;
    this.onFail = onFail;
    this.pc = new RTCPeerConnection();
    this.resource = null;
    this.stopped = false;
  }

  async start() {
    const pc = this.pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (['failed', 'closed'].includes(pc.connectionState) && !this.stopped) this.onFail();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    });
    const res = await fetch(this.url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp, credentials: 'omit' });
    if (res.status !== 201) throw new Error(`HTTP ${res.status}`);
    this.resource = new URL(res.headers.get('Location'), location.origin).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  }

  /**
   * About how far behind the server the picture plays: the jitter buffer's delay over the last reading plus half
   * the round trip (what the server spends composing and encoding, about two frames, is not in it).
   */
  async latency() {
    const stats = [...(await this.pc.getStats()).values()];
    const video = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
    const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    if (!video?.jitterBufferEmittedCount) return null;
    const last = this.lastBuffer ?? { delay: 0, count: 0 };
    this.lastBuffer = { delay: video.jitterBufferDelay, count: video.jitterBufferEmittedCount };
    const frames = video.jitterBufferEmittedCount - last.count;
    if (frames <= 0) return null;
    const buffer = (video.jitterBufferDelay - last.delay) / frames;
    return new Date(Date.now() - 1000 * (buffer + (pair?.currentRoundTripTime ?? 0) / 2));
  }

  stop() {
    this.stopped = true;
    this.pc.close();
    if (this.resource) fetch(this.resource, { method: 'DELETE', credentials: 'omit' }).catch(() => {});
    this.video.srcObject = null;
  }
}

class WatchPage {
  constructor() {
    this.video = h('video.watch-video', { muted: true, autoplay: true, playsInline: true, dataset: { role: 'watch-video' } });
    this.title = h('h1.watch-title', { dataset: { role: 'watch-title' } }, 'Loading…');
    this.description = h('p.muted.watch-description');
    this.live = h('span.watch-live', { hidden: true }, 'LIVE');
    this.latency = h('span.watch-latency', { dataset: { role: 'watch-latency' }, 'aria-live': 'off' });
    this.message = h('div.watch-message', { dataset: { role: 'watch-message' }, role: 'status' });
    this.links = h('p.muted.watch-links', { hidden: true });
    this.unmute = h('button.secondary.watch-unmute', { type: 'button', hidden: true, onclick: () => this.setMuted(false) }, 'Unmute');
    this.mode = h(
      'select.watch-mode',
      { dataset: { role: 'watch-mode' }, 'aria-label': 'Playback', hidden: true, onchange: () => this.refresh() },
      h('option', { value: 'hls' }, 'Standard (HLS)'),
      h('option', { value: 'webrtc' }, 'Low latency (WebRTC)'),
    );
    if (new URLSearchParams(location.search).get('mode') === 'webrtc') this.mode.value = 'webrtc';
    this.playing = false;
    this.hls = null;
    this.whep = null;
    this.source = null;
    mount(
      root,
      h(
        'main.watch',
        h('div.watch-player', this.video, this.message),
        h('div.watch-meta', h('div.watch-heading', this.live, this.title), h('div.watch-row', this.latency, this.mode, this.unmute), this.description, this.links),
      ),
    );
    this.video.addEventListener('volumechange', () => this.showControls());
    this.video.addEventListener('playing', () => {
      this.playing = true;
      this.say('');
      this.showControls();
    });
    setInterval(() => this.showLatency(), 1000);
  }

  /** The player's controls and the Unmute button only while the show plays. */
  showControls() {
    this.video.controls = this.playing;
    this.unmute.hidden = !this.playing || !this.video.muted;
  }

  setMuted(muted) {
    this.video.muted = muted;
    if (!muted) this.video.play().catch(() => {});
  }

  say(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  async refresh() {
    let info;
    try {
      const res = await fetch(`/api/watch/${encodeURIComponent(id)}`, { credentials: 'omit' });
      if (res.status === 404) {
        this.stop();
        this.title.textContent = 'This show is not available';
        this.say('The link may be wrong, or the host has not opened this show to viewers.');
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      info = await res.json();
    } catch {
      this.say('Cannot reach the server. Trying again…');
      return;
    }
    this.title.textContent = info.title;
    document.title = `${info.title} · Backyard`;
    this.description.textContent = info.description ?? '';
    this.description.hidden = !info.description;
    this.live.hidden = !info.hls;
    this.links.hidden = !info.hls;
    if (info.hls && this.links.dataset.for !== info.hls) {
      this.links.dataset.for = info.hls;
      const link = (href, text) => h('a', { href: new URL(href, location.origin).href, dataset: { role: `watch-${text.toLowerCase()}` } }, text);
      mount(this.links, ['In another player (VLC, ffplay): ', link(info.hls, 'HLS'), ' · ', link(info.flv, 'FLV')]);
    }
    this.mode.hidden = !info.whep;
    if (info.whep && this.mode.value === 'webrtc') {
      this.playWebRtc(info.whep);
    } else if (info.hls) {
      this.play(info.hls);
    } else {
      this.stop();
      this.say(info.status === 'ended' ? 'The show has ended. Thanks for watching!' : 'The show has not started yet. This page starts playing when it does.');
    }
  }

  playWebRtc(url) {
    if (this.source === url && this.whep) return;
    this.stop();
    this.source = url;
    this.say('Starting…');
    const player = new WhepPlayer(url, this.video, () => {
      if (this.whep !== player) return;
      this.stop();
      this.say('The stream stopped. Reconnecting…');
    });
    this.whep = player;
    player.start().catch(() => {
      if (this.whep !== player) return;
      this.stop();
      this.say('The stream stopped. Reconnecting…');
    });
  }

  play(url) {
    if (this.source === url && this.hls) return;
    this.stop();
    this.source = url;
    this.say('Starting…');
    if (!Hls.isSupported()) {
      // Safari plays HLS itself.
      this.video.src = url;
      return;
    }
    // No worker: the page's policy allows scripts from this server only (a worker would be a blob: URL).
    const hls = new Hls({ enableWorker: false, liveSyncDurationCount: 2, liveMaxLatencyDurationCount: 5 });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      this.stop();
      this.say('The stream stopped. Reconnecting…');
    });
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  stop() {
    this.hls?.destroy();
    this.hls = null;
    this.whep?.stop();
    this.whep = null;
    if (this.source && !Hls.isSupported()) {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.source = null;
    this.playing = false;
    this.latency.textContent = '';
    this.showControls();
  }

  async showLatency() {
    if (this.whep) {
      const at = await this.whep.latency().catch(() => null);
      this.latency.textContent = at ? latencyText(at) : '';
      return;
    }
    this.latency.textContent = this.hls ? latencyText(this.hls.playingDate) : '';
  }
}

if (page === 'watch' && id) {
  const watch = new WatchPage();
  watch.refresh();
  setInterval(() => watch.refresh(), POLL_MS);
} else {
  mount(root, h('div.center-screen', h('div.card.narrow', h('h1', 'This watch link is incomplete'), h('p.muted', 'Ask the host for the full link.'))));
}
