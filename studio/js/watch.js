// The public watch page at /watch/<broadcast id>: plays the show's HLS stream (hls.js, served by Backyard) and
// says how far behind live the picture is. No account needed; the host decides who may watch (the broadcast's
// `settings.watch`). Before and after the show it says so and checks again every few seconds.

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
    this.playing = false;
    this.hls = null;
    this.source = null;
    mount(
      root,
      h(
        'main.watch',
        h('div.watch-player', this.video, this.message),
        h('div.watch-meta', h('div.watch-heading', this.live, this.title), h('div.watch-row', this.latency, this.unmute), this.description, this.links),
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
    if (info.hls) {
      this.play(info.hls);
    } else {
      this.stop();
      this.say(info.status === 'ended' ? 'The show has ended. Thanks for watching!' : 'The show has not started yet. This page starts playing when it does.');
    }
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
    if (this.source && !Hls.isSupported()) {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.source = null;
    this.playing = false;
    this.latency.textContent = '';
    this.showControls();
  }

  showLatency() {
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
