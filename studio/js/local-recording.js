// Local recordings: with the host's consent (the broadcast's `settings.localRecording`), this browser records its
// own camera and microphone at full quality while the show is live (MediaRecorder, WebM), keeps every second of it
// in IndexedDB, and uploads it to the server with the tus resumable-upload protocol (tus-js-client, loaded by the
// page as `window.tus`) during the show and after it. A dropped connection is retried from the offset the server
// holds; a reloaded page finds its unfinished recordings in IndexedDB and uploads the rest.
//
// Also the host's view of everyone's uploads (the room's `local-recording` events) and the consent switch.

import { api } from './api.js';
import { h, labelFor, mount, toast } from './dom.js';

const DB_NAME = 'backyard-local-recordings';
/** One part of an upload (the server takes up to 32 MiB): about 1 to 10 s of a camera's recording. */
const PART_BYTES = 512 * 1024;
/** How long the uploader waits between tries once tus-js-client's own retries are spent. */
const RETRY_LATER_MS = 10000;
/** tus-js-client's waits between tries after a failed part (reset whenever a part gets through). */
const RETRY_DELAYS = [0, 1000, 2000, 3000, 5000, 5000, 5000, 10000, 10000, 10000];

function requestOf(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * The recordings kept in this browser until the server has them: `recordings` {key, broadcastId, mimeType,
 * startedAt, stoppedAt, done, uploadUrl} and their data, a blob a second, in `chunks` keyed [key, seq].
 */
class Shelf {
  constructor() {
    this.db = null;
  }

  open() {
    if (!this.db) {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        req.result.createObjectStore('recordings', { keyPath: 'key' });
        req.result.createObjectStore('chunks', { keyPath: ['key', 'seq'] });
      };
      this.db = requestOf(req);
    }
    return this.db;
  }

  async run(store, mode, fn) {
    const db = await this.open();
    const tx = db.transaction(store, mode);
    const result = await requestOf(fn(tx.objectStore(store)));
    if (mode === 'readwrite') {
      await new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
    }
    return result;
  }

  all() {
    return this.run('recordings', 'readonly', (s) => s.getAll());
  }

  get(key) {
    return this.run('recordings', 'readonly', (s) => s.get(key));
  }

  put(rec) {
    return this.run('recordings', 'readwrite', (s) => s.put(rec));
  }

  async patch(key, changes) {
    const rec = await this.get(key);
    if (rec) await this.put({ ...rec, ...changes });
  }

  chunk(key, seq) {
    return this.run('chunks', 'readonly', (s) => s.get([key, seq]));
  }

  putChunk(key, seq, blob) {
    return this.run('chunks', 'readwrite', (s) => s.put({ key, seq, blob }));
  }

  async remove(key) {
    await this.run('chunks', 'readwrite', (s) => s.delete(IDBKeyRange.bound([key, 0], [key, Infinity])));
    await this.run('recordings', 'readwrite', (s) => s.delete(key));
  }
}

function mib(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** The message in a refusal from the server (the REST API's JSON error), or the error's own. */
function refusalOf(err) {
  const res = err?.originalResponse;
  if (!res) return { status: 0, message: err?.message ?? String(err) };
  let message = '';
  try {
    message = JSON.parse(res.getBody())?.error?.message ?? '';
  } catch {
    message = res.getBody() ?? '';
  }
  return { status: res.getStatus(), message: message || `the server answered ${res.getStatus()}` };
}

/**
 * This participant's local recording and its uploads. `onStatus({state, bytes, seconds?, message?})` after each
 * change: `state` is `recording` (uploading as it goes), `uploading` (stopped, the rest on its way), `uploaded`,
 * `refused` (the server's message) or `retrying` (the connection dropped; it carries on by itself).
 */
export class LocalRecorder {
  constructor({ broadcastId, onStatus = () => {} }) {
    this.broadcastId = broadcastId;
    this.onStatus = onStatus;
    this.shelf = new Shelf();
    /** The recording now: {rec, key, startedAt}. */
    this.current = null;
    /** Uploads running, by recording key. */
    this.uploads = new Map();
    /** Who waits for more data of a recording, by key. */
    this.waiters = new Map();
    this.status = null;
    /** Settles once what an earlier page left is on its way (`resume`): a new recording starts after it. */
    this.resumed = Promise.resolve();
  }

  static supported() {
    return typeof MediaRecorder !== 'undefined' && typeof indexedDB !== 'undefined' && Boolean(window.tus?.Upload);
  }

  report(status) {
    // What the recording now in progress holds so far, beside what the server has.
    this.status = { ...status, recorded: this.current?.recorded ?? null };
    this.onStatus(this.status);
  }

  /** Records `tracks` (camera and microphone) until `stop()`, uploading as it goes. */
  async start(tracks) {
    if (this.current || this.starting || !LocalRecorder.supported()) return;
    this.starting = true;
    try {
      await this.resumed;
      await this.begin(tracks);
    } finally {
      this.starting = false;
    }
  }

  async begin(tracks) {
    if (this.stopAsked) {
      this.stopAsked = false;
      return;
    }
    const live = tracks.filter((t) => t && t.readyState === 'live');
    if (!live.length) return;
    const mimeType = ['video/webm;codecs=vp8,opus', 'video/webm;codecs=vp9,opus', 'video/webm'].find((t) => MediaRecorder.isTypeSupported(t));
    if (!mimeType) return;
    const key = crypto.randomUUID();
    const startedAt = Date.now();
    await this.shelf.put({ key, broadcastId: this.broadcastId, mimeType, startedAt, stoppedAt: null, done: false, uploadUrl: null });
    const rec = new MediaRecorder(new MediaStream(live), { mimeType, videoBitsPerSecond: 5_000_000, audioBitsPerSecond: 128_000 });
    let seq = 0;
    let writes = Promise.resolve();
    rec.ondataavailable = (e) => {
      if (!e.data?.size) return;
      if (this.current?.key === key) {
        this.current.recorded += e.data.size;
        if (this.status?.state === 'recording') this.report({ state: 'recording', bytes: this.status.bytes });
      }
      const n = seq++;
      writes = writes.then(() => this.shelf.putChunk(key, n, e.data)).then(() => this.wake(key), () => {});
    };
    rec.onstop = () => {
      writes = writes.then(() => this.shelf.patch(key, { done: true, stoppedAt: Date.now() })).then(() => this.wake(key), () => {});
    };
    this.current = { rec, key, startedAt, recorded: 0 };
    rec.start(1000);
    this.report({ state: 'recording', bytes: 0 });
    this.upload(key);
  }

  /** Stops recording; the upload finishes by itself. */
  stop() {
    const c = this.current;
    // Asked to stop while it was still starting: it does not start.
    if (!c) {
      if (this.starting) this.stopAsked = true;
      return;
    }
    this.current = null;
    if (c.rec.state !== 'inactive') c.rec.stop();
    this.lastSeconds = (Date.now() - c.startedAt) / 1000;
  }

  get recording() {
    return Boolean(this.current);
  }

  /** Uploads recordings this browser still holds (a page reloaded mid-show or mid-upload). */
  resume() {
    this.resumed = this.uploadLeftOver();
    return this.resumed;
  }

  async uploadLeftOver() {
    if (!LocalRecorder.supported()) return;
    let left = [];
    try {
      left = await this.shelf.all();
    } catch {
      return;
    }
    for (const rec of left) {
      if (this.uploads.has(rec.key) || rec.key === this.current?.key) continue;
      // Recorded by a page that is gone: what it kept is all there is.
      if (!rec.done) await this.shelf.patch(rec.key, { done: true, stoppedAt: rec.stoppedAt ?? Date.now() });
      this.upload(rec.key);
    }
  }

  wake(key) {
    const w = this.waiters.get(key);
    this.waiters.delete(key);
    w?.();
  }

  /** Resolves when the recording `key` has more data (or after a while, to look again). */
  more(key) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.waiters.set(key, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The recording's bytes in order, as they are kept, ending once it stopped and all is read. */
  bytes(key) {
    let seq = 0;
    return new ReadableStream({
      pull: async (controller) => {
        for (;;) {
          const chunk = await this.shelf.chunk(key, seq);
          if (chunk) {
            seq += 1;
            controller.enqueue(new Uint8Array(await chunk.blob.arrayBuffer()));
            return;
          }
          const rec = await this.shelf.get(key);
          if (!rec || rec.done) {
            if (await this.shelf.chunk(key, seq)) continue;
            controller.close();
            return;
          }
          await this.more(key);
        }
      },
    });
  }

  async upload(key) {
    const rec = await this.shelf.get(key);
    if (!rec || this.uploads.has(key)) return;
    const upload = new window.tus.Upload(this.bytes(key).getReader(), {
      endpoint: '/api/local-recordings',
      uploadUrl: rec.uploadUrl ?? undefined,
      uploadLengthDeferred: true,
      chunkSize: PART_BYTES,
      retryDelays: RETRY_DELAYS,
      storeFingerprintForResuming: false,
      metadata: { broadcast: rec.broadcastId, filetype: rec.mimeType.split(';')[0] },
      onUploadUrlAvailable: () => this.shelf.patch(key, { uploadUrl: upload.url }),
      onProgress: (sent) => {
        const state = key === this.current?.key ? 'recording' : 'uploading';
        this.report({ state, bytes: sent });
      },
      onShouldRetry: (err, attempt, options) => {
        const status = err?.originalResponse?.getStatus() ?? 0;
        if (status >= 400 && status < 500 && ![409, 423, 408, 429].includes(status)) return false;
        if (this.status?.state !== 'retrying') this.report({ state: 'retrying', bytes: this.status?.bytes ?? 0 });
        return attempt < options.retryDelays.length;
      },
      onSuccess: async () => {
        this.uploads.delete(key);
        await this.shelf.remove(key).catch(() => {});
        this.report({ state: 'uploaded', bytes: upload._offset ?? this.status?.bytes ?? 0, seconds: ((rec.stoppedAt ?? Date.now()) - rec.startedAt) / 1000 });
      },
      onError: (err) => {
        this.uploads.delete(key);
        const { status, message } = refusalOf(err);
        if (status === 413 || status === 403 || status === 404) {
          this.report({ state: 'refused', bytes: this.status?.bytes ?? 0, message });
          return;
        }
        // Offline for longer than tus-js-client's tries: carry on later from where the server is.
        this.report({ state: 'retrying', bytes: this.status?.bytes ?? 0 });
        setTimeout(() => this.upload(key), RETRY_LATER_MS);
      },
    });
    this.uploads.set(key, upload);
    upload.start();
  }
}

/** One line for this participant's own recording, under the stage. */
export function ownRecordingText(s) {
  if (!s) return '';
  switch (s.state) {
    case 'recording':
      return `Recording your camera and microphone on this device for the host · ${mib(s.recorded ?? 0)} recorded, ${mib(s.bytes)} uploaded`;
    case 'uploading':
      return `Uploading your local recording · ${mib(s.bytes)} sent. Keep this page open until it is done.`;
    case 'retrying':
      return `Your local recording: the connection to the server dropped; the upload carries on when it is back (${mib(s.bytes)} uploaded so far).`;
    case 'uploaded':
      return `Your local recording${Number.isFinite(s.seconds) ? ` (${Math.round(s.seconds)} s)` : ''} is uploaded (${mib(s.bytes)}).`;
    case 'refused':
      return `Your local recording could not be uploaded: ${s.message}`;
    default:
      return '';
  }
}

const HOST_STATE = { uploading: 'Uploading', kept: 'Uploaded', failed: 'Not playable', refused: 'Refused' };

/**
 * The host's Local recordings section: the consent switch (the owner only) and each participant's upload as the
 * room reports it (`local-recording`).
 */
export class LocalRecordingsSection {
  constructor({ broadcastId, canChange }) {
    this.broadcastId = broadcastId;
    this.list = h('ul.local-rec-list', { dataset: { role: 'local-recordings' } });
    this.box = h('input', { type: 'checkbox', name: 'localRecording', disabled: !canChange });
    this.box.onchange = async () => {
      const on = this.box.checked;
      try {
        await api.updateSettings(broadcastId, { localRecording: on });
        this.onChange?.(on);
      } catch (e) {
        this.box.checked = !on;
        toast(`Could not change that: ${e.message}`, 'error');
      }
    };
    this.el = h(
      'section.panel-section.local-recordings',
      h('h3', 'Local recordings'),
      h('div.check-row', this.box, labelFor(this.box, 'Record everyone on their own device')),
      h('p.field-hint', 'While live, each person’s browser records their camera and microphone at full quality and uploads it; the files appear under the show’s recordings.'),
      this.list,
    );
    this.render({});
  }

  /** The broadcast's `localRecording` setting as the studio knows it. */
  setOn(on) {
    this.box.checked = Boolean(on);
  }

  /** `uploads`: room-state.js's `localRecordings`, by participant id. */
  render(uploads) {
    const rows = Object.entries(uploads);
    if (!rows.length) {
      mount(this.list, h('li.muted', 'No uploads yet.'));
      return;
    }
    mount(
      this.list,
      rows.map(([id, u]) =>
        h(
          'li.local-rec-row',
          { dataset: { participant: id, state: u.state } },
          h('span.local-rec-name', u.name),
          h('span.local-rec-state', [HOST_STATE[u.state] ?? u.state, mib(u.bytes ?? 0), u.state === 'kept' && Number.isFinite(u.duration) ? `${Math.round(u.duration)} s` : null, u.message].filter(Boolean).join(' · ')),
        ),
      ),
    );
  }
}
