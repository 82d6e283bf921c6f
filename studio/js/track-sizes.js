// Adaptive video: tells the server the size at which each remote video is shown (`track-sizes`), so it sends each
// the smallest simulcast layer that looks the same, and nothing for a video nobody on this page can see.

/** Sizes are rounded up to this many device pixels, so a tile resizing by a pixel does not send a message. */
const STEP = 16;
/** Changes are sent at most this often. */
const DEBOUNCE_MS = 250;

/**
 * The size (device pixels) each remote source is shown at: the largest of the visible `<video>` elements that play
 * its stream, or 0 × 0 when none does. `streams` maps a source key (`<participantId>` or `<participantId>:screen`)
 * to its MediaStream; `videos` is every video element on the page.
 */
export function shownSizes(streams, videos, dpr = 1) {
  const sizes = new Map();
  for (const [key, stream] of streams) {
    let width = 0;
    let height = 0;
    for (const v of videos) {
      if (v.srcObject !== stream || v.hidden || !v.isConnected) continue;
      const w = v.clientWidth;
      const h = v.clientHeight;
      if (!w || !h) continue;
      width = Math.max(width, w);
      height = Math.max(height, h);
    }
    const up = (n) => Math.min(65535, Math.ceil((n * dpr) / STEP) * STEP);
    sizes.set(key, { width: up(width), height: up(height) });
  }
  return sizes;
}

/** The `track-sizes` entries for a size map (keys as `shownSizes` makes them). */
export function trackSizeEntries(sizes) {
  return [...sizes].map(([key, { width, height }]) => {
    const screen = key.endsWith(':screen');
    const participantId = screen ? key.slice(0, -':screen'.length) : key;
    return { participantId, source: screen ? 'screen' : 'camera', width, height };
  });
}

/** Watches the page's remote videos and reports their sizes when they change. */
export class TrackSizeReporter {
  /** `send(sizes)` sends a `track-sizes` message; `streams()` returns the map of remote source → MediaStream. */
  constructor({ send, streams, root = document }) {
    this.send = send;
    this.streams = streams;
    this.root = root;
    this.last = '';
    this.timer = null;
    this.watched = new WeakSet();
    this.observer = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.schedule()) : null;
  }

  /** Call after the page's tiles changed: new videos are watched for resizing and the sizes are checked soon. */
  refresh() {
    for (const v of this.root.querySelectorAll('video')) {
      if (this.observer && !this.watched.has(v)) {
        this.watched.add(v);
        this.observer.observe(v);
      }
    }
    this.schedule();
  }

  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.report();
    }, DEBOUNCE_MS);
  }

  report() {
    const sizes = shownSizes(this.streams(), [...this.root.querySelectorAll('video')], window.devicePixelRatio || 1);
    const entries = trackSizeEntries(sizes);
    const key = JSON.stringify(entries);
    if (key === this.last || !entries.length) return;
    if (this.send(entries)) this.last = key;
  }

  /** Forget what was sent (a new connection must hear it all again). */
  reset() {
    this.last = '';
    this.schedule();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.observer?.disconnect();
  }
}
