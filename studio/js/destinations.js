// The host's "Broadcast" panel: program preview, program status, and the destinations (add, enable, test,
// remove) with each one's live status, bitrate and dropped frames.

import { api, itemsOf } from './api.js';
import { h, icon, labelFor, mount, toast } from './dom.js';
import { ICONS } from './icons.js';
import { droppingFrames } from './room-state.js';
import { ViewersSection } from './viewers.js';

export const PLATFORMS = {
  youtube: { label: 'YouTube', short: 'YT', keyHint: 'Stream key from YouTube Studio → Go live → Stream' },
  twitch: { label: 'Twitch', short: 'TW', keyHint: 'Primary stream key from Creator Dashboard → Settings → Stream' },
  facebook: { label: 'Facebook', short: 'FB', keyHint: 'Stream key from Live Producer → Streaming software' },
  rtmp: { label: 'Custom RTMP', short: 'RTMP', keyHint: 'Stream key or path your server expects' },
};

const STATUS_LABEL = {
  idle: 'Ready',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  failed: 'Failed',
  stopped: 'Stopped',
  disabled: 'Off',
};

function formatUptime(secs) {
  if (!Number.isFinite(secs) || secs <= 0) return null;
  const h = Math.floor(secs / 3600);
  const m = String(Math.floor((secs % 3600) / 60)).padStart(2, '0');
  const sec = String(Math.floor(secs % 60)).padStart(2, '0');
  return h ? `${h}:${m}:${sec}` : `${m}:${sec}`;
}

/** kb/s as b/s, or undefined. */
function kbps(v) {
  return Number.isFinite(v) ? v * 1000 : undefined;
}

/** Sizes offered for a destination's own encode (the program's canvas is scaled into them), with the video
 * bitrate each is usually streamed at. */
const SIZES = [
  { id: '1080p', width: 1920, height: 1080, kbps: 6000 },
  { id: '720p', width: 1280, height: 720, kbps: 3000 },
  { id: '480p', width: 854, height: 480, kbps: 1200 },
  { id: '360p', width: 640, height: 360, kbps: 700 },
];

/** "1280×720 · 30 fps · 3000 kb/s" for a destination's `encode`. */
export function formatEncode(e) {
  if (!e) return '';
  return [e.width && e.height ? `${e.width}×${e.height}` : null, e.fps ? `${e.fps} fps` : null, e.videoKbps ? `${e.videoKbps} kb/s` : null]
    .filter(Boolean)
    .join(' · ');
}

/**
 * The controls of a destination's own encode: the program canvas it streams (when the scene has more than the main
 * one: `canvases` are the scene's others), resolution, frame rate, video bitrate, each "the program's" when left
 * alone. `read()` gives the profile the API takes (only the fields chosen), or null for the program's;
 * `readCanvas()` the canvas id picked, or null when there is no choice.
 */
export function qualityFields(profile = null, { canvas = 'main', canvases = [] } = {}) {
  const canvasSelect = canvases.length
    ? h(
        'select',
        { name: 'canvas' },
        h('option', { value: 'main' }, 'Main canvas'),
        canvases.map((c) => h('option', { value: c.id }, `${c.id} (${c.width}×${c.height})`)),
      )
    : null;
  if (canvasSelect) canvasSelect.value = canvases.some((c) => c.id === canvas) ? canvas : 'main';
  const size = h(
    'select',
    { name: 'resolution' },
    h('option', { value: '' }, 'Same as its canvas'),
    SIZES.map((s) => h('option', { value: s.id }, `${s.id} (${s.width}×${s.height})`)),
  );
  const fps = h('select', { name: 'fps' }, h('option', { value: '' }, "Program's"), [30, 25, 24, 15].map((f) => h('option', { value: String(f) }, `${f} fps`)));
  const kbps = h('input', { name: 'videoKbps', type: 'number', min: 100, max: 50000, step: 100, placeholder: "Program's", inputMode: 'numeric' });
  const picked = SIZES.find((s) => s.width === profile?.width && s.height === profile?.height);
  size.value = picked?.id ?? '';
  fps.value = profile?.fps ? String(profile.fps) : '';
  kbps.value = profile?.videoKbps ? String(profile.videoKbps) : '';
  // A new size suggests its usual bitrate, unless the host typed one of their own.
  let suggested = picked && profile?.videoKbps === picked.kbps ? kbps.value : '';
  size.onchange = () => {
    const s = SIZES.find((x) => x.id === size.value);
    if (kbps.value === '' || kbps.value === suggested) {
      suggested = s ? String(s.kbps) : '';
      kbps.value = suggested;
    }
  };
  const el = h(
    'fieldset.quality-fields',
    h('legend', 'Quality'),
    canvasSelect ? h('div.field', labelFor(canvasSelect, 'Canvas'), canvasSelect) : null,
    h('div.field', labelFor(size, 'Resolution'), size),
    h('div.quality-row', h('div.field', labelFor(fps, 'Frame rate'), fps), h('div.field', labelFor(kbps, 'Video bitrate (kb/s)'), kbps)),
  );
  const read = () => {
    const out = {};
    const s = SIZES.find((x) => x.id === size.value);
    if (s) Object.assign(out, { width: s.width, height: s.height });
    if (fps.value) out.fps = Number(fps.value);
    if (kbps.value.trim()) out.videoKbps = Number(kbps.value);
    return Object.keys(out).length ? out : null;
  };
  return { el, read, readCanvas: () => canvasSelect?.value ?? null };
}

function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return null;
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
}

export class BroadcastPanel {
  constructor({ broadcastId, canChangeViewers = false }) {
    this.broadcastId = broadcastId;
    this.viewers = new ViewersSection({ broadcastId, canChange: canChangeViewers });
    /** The broadcast's destinations by id, as the REST API lists them. */
    this.items = new Map();
    /** Output statuses while on air (room-state.js's `outputs`): destinations by id, and the recording. */
    this.outputs = { destinations: {}, recording: null, hls: null };
    this.programVideo = h('video.program-video', { autoplay: true, playsInline: true, muted: true, dataset: { role: 'program-preview' } });
    this.programState = h('span.program-state', { dataset: { role: 'program-status' } }, 'Waiting for the program…');
    this.recordingState = h('span.program-state', { dataset: { role: 'recording-status' } });
    this.relayNote = h('div.program-relay', { role: 'status', dataset: { role: 'program-relay' }, hidden: true });
    this.list = h('div.dest-list');
    /** The scene's canvases beside the main one, which a destination may stream instead. */
    this.canvases = [];
    this.form = this.buildForm();
    this.form.hidden = true;
    this.addBtn = h(
      'button.secondary.full',
      { type: 'button', dataset: { action: 'add-destination' }, onclick: () => this.toggleForm(true) },
      icon(ICONS.plus),
      'Add destination',
    );
    this.el = h(
      'div.panel.broadcast-panel',
      h('section.panel-section', h('h3', 'Program output'), h('div.program-monitor', this.programVideo, h('div.program-placeholder', 'The composed program appears here'), this.relayNote), this.programState, this.recordingState),
      h('section.panel-section', h('h3', 'Destinations'), this.list, this.form, this.addBtn),
      this.viewers.el,
    );
  }

  /**
   * While an encoder is on air through the RTMP ingest (`key`, or null when none is), the studio's program is not
   * what goes out: the monitor says so instead of showing it as the output.
   */
  setRelay(key) {
    this.relayNote.hidden = !key;
    this.relayNote.textContent = key ? `On air from the encoder “${key.label}”: its stream goes out as it is, not this studio’s program.` : '';
  }

  async load() {
    this.viewers.load();
    try {
      const json = await api.listDestinations(this.broadcastId);
      for (const d of itemsOf(json)) this.items.set(d.id, { dest: d });
      this.renderList();
    } catch (e) {
      mount(this.list, h('div.form-error', `Could not load destinations: ${e.message}`));
    }
  }

  /**
   * Shows the composed program until its live WebRTC track arrives (`useLiveProgram`): the server's latest frame
   * as a small JPEG, a few times a second, drawn onto a canvas whose stream feeds the preview <video>. Stops
   * when there is no program (a 404); the room starts it again on the next `program-status`.
   */
  startPreview(fps = 5) {
    if (this.previewRun || this.liveProgram) return;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d');
    let stream = null;
    // This polling run, so a tick still in flight after stopPreview (or a later restart) ends quietly.
    const run = {};
    this.previewRun = run;
    const polling = () => this.previewRun === run && !this.liveProgram;
    const tick = async () => {
      let wait = 1000 / fps;
      try {
        const res = await fetch(`/api/broadcasts/${this.broadcastId}/program.jpg`, { credentials: 'same-origin', cache: 'no-store' });
        if (!polling()) return;
        if (res.ok) {
          const bitmap = await createImageBitmap(await res.blob());
          // The live track may have arrived while this still was on its way: it wins.
          if (!polling()) {
            bitmap.close();
            return;
          }
          if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
            canvas.width = bitmap.width;
            canvas.height = bitmap.height;
          }
          ctx.drawImage(bitmap, 0, 0);
          bitmap.close();
          if (!stream) {
            stream = canvas.captureStream(fps);
            this.setProgramStream(stream, 'stills');
          }
        } else if (res.status === 404) {
          // No program here any more: the next `program-status` starts polling again.
          this.stopPreview();
          return;
        } else {
          wait = 1000;
        }
      } catch {
        wait = 2000;
      }
      if (!polling()) return;
      this.previewTimer = setTimeout(tick, wait);
    };
    this.previewTimer = setTimeout(tick, 0);
  }

  stopPreview() {
    clearTimeout(this.previewTimer);
    this.previewTimer = null;
    this.previewRun = null;
  }

  /** The server's live program track (msid `program`) arrived: show it and stop polling stills. */
  useLiveProgram(stream) {
    this.liveProgram = stream;
    this.stopPreview();
    this.setProgramStream(stream, 'webrtc');
  }

  /**
   * The live program track ended (the program stopped): back to stills once the next `program-status` says a
   * program runs again (a stopped program has no frame to poll).
   */
  liveProgramEnded(stream) {
    if (this.liveProgram !== stream) return;
    this.liveProgram = null;
    this.setProgramStream(null);
  }

  setProgramStream(stream, source = null) {
    this.programVideo.srcObject = stream;
    if (source) this.programVideo.dataset.source = source;
    else delete this.programVideo.dataset.source;
    this.el.querySelector('.program-monitor').classList.toggle('has-video', Boolean(stream));
  }

  /** The latest `program-status`: {state, fps, onStage, stats}. */
  setProgramStatus(s) {
    if (!s) return;
    const starved = s.health === 'starved';
    const parts = [s.state ?? 'running'];
    if (Number.isFinite(s.fps)) parts.push(Number.isFinite(s.targetFps) ? `${Math.round(s.fps)} of ${s.targetFps} fps` : `${Math.round(s.fps)} fps`);
    if (starved) parts.push(`short of CPU, ${s.skipped ?? 0} frames skipped in 2 s`);
    const br = formatBitrate(s.bitrate);
    if (br) parts.push(br);
    if (s.error) parts.push(s.error);
    this.programState.textContent = `Program: ${parts.join(' · ')}`;
    this.programState.dataset.health = starved ? 'starved' : 'ok';
    if (starved !== this.programStarved) {
      this.programStarved = starved;
      this.renderList();
    }
  }

  /**
   * The outputs' statuses changed (a `destination-status` arrived). Each status is room-state.js's
   * `normaliseOutputStatus`: {destinationId, kind, state, reason?, retryInMs?, bitrateKbps, droppedFrames,
   * uptimeSecs, ...}. A status for a destination this panel does not know yet reloads the list.
   */
  setOutputs(outputs) {
    this.outputs = outputs;
    this.viewers.setStatus(outputs.hls ?? null);
    const r = outputs.recording;
    if (r) {
      const parts = [STATUS_LABEL[r.state] ?? r.state, formatUptime(r.uptimeSecs), formatBitrate(kbps(r.bitrateKbps)), r.reason].filter(Boolean);
      this.recordingState.textContent = `Recording: ${parts.join(' · ')}`;
      this.recordingState.dataset.status = r.state;
    }
    if (Object.keys(outputs.destinations).some((id) => !this.items.has(id))) this.load();
    else this.renderList();
  }

  renderList() {
    if (!this.items.size) {
      mount(this.list, h('div.dest-empty', 'No destinations yet. Going live with none records only.'));
      return;
    }
    mount(
      this.list,
      [...this.items.values()].map(({ dest }) => [
        this.renderItem(dest, this.outputs.destinations[dest.id] ?? null),
        // The same element while it is open, so a status update does not lose what the host is typing.
        this.editor?.id === dest.id ? this.editor.el : null,
      ]),
    );
  }

  /** Opens (or closes) the quality editor under a destination: its own encode, or the program's. */
  editQuality(dest) {
    if (this.editor?.id === dest.id) {
      this.editor = null;
      this.renderList();
      return;
    }
    const fields = qualityFields(dest.profile ?? null, { canvas: dest.canvas, canvases: this.canvases });
    const error = h('div.form-error', { role: 'alert' });
    const close = () => {
      this.editor = null;
      this.renderList();
    };
    const el = h(
      'form.dest-form.quality-form',
      {
        dataset: { destinationId: dest.id },
        onsubmit: async (e) => {
          e.preventDefault();
          error.textContent = '';
          try {
            const body = { profile: fields.read() };
            const canvas = fields.readCanvas();
            if (canvas) body.canvas = canvas;
            const updated = await api.updateDestination(this.broadcastId, dest.id, body);
            this.items.set(dest.id, { dest: updated });
            close();
            if (this.outputs.destinations[dest.id]?.state === 'live') toast('The new quality applies the next time you go live.');
          } catch (err) {
            error.textContent = err.message;
          }
        },
      },
      h('div.field-hint', `${dest.name || PLATFORMS[dest.platform]?.label || dest.platform}: what this destination is sent. Destinations with the same quality share one encode.`),
      fields.el,
      error,
      h('div.form-row', h('button.ghost', { type: 'button', onclick: close }, 'Cancel'), h('button.primary', { type: 'submit' }, 'Save quality')),
    );
    this.editor = { id: dest.id, el };
    this.renderList();
    el.querySelector('select').focus();
  }

  renderItem(dest, status) {
    const state = dest.enabled === false ? 'disabled' : (status?.state ?? dest.status ?? 'idle');
    const stats = [
      state === 'live' ? formatUptime(status?.uptimeSecs) : null,
      formatBitrate(kbps(status?.bitrateKbps)),
      // While the program skips frames no output gets a clean stream, whatever its own counter says.
      state === 'live' && this.programStarved ? 'choppy: the program is skipping frames' : null,
      status?.droppedFrames != null && !(state === 'live' && this.programStarved) ? `${status.droppedFrames} dropped` : null,
      state === 'reconnecting' && status?.retryInMs ? `retry in ${Math.ceil(status.retryInMs / 1000)} s` : null,
    ].filter(Boolean);
    const toggle = h('input', {
      type: 'checkbox',
      checked: dest.enabled !== false,
      title: 'Send to this destination',
      onchange: async (e) => {
        try {
          const updated = await api.updateDestination(this.broadcastId, dest.id, { enabled: e.target.checked });
          this.items.get(dest.id).dest = updated ?? { ...dest, enabled: e.target.checked };
          this.renderList();
        } catch (err) {
          e.target.checked = !e.target.checked;
          toast(err.message, 'error');
        }
      },
    });
    const degraded = state === 'live' && (this.programStarved || droppingFrames(status));
    return h(
      'div.dest-item',
      { dataset: { destinationId: dest.id, status: state, health: degraded ? 'degraded' : 'ok' } },
      h('div.dest-platform', { dataset: { platform: dest.platform } }, PLATFORMS[dest.platform]?.short ?? dest.platform.slice(0, 4).toUpperCase()),
      h(
        'div.dest-info',
        h('div.dest-name', dest.name || PLATFORMS[dest.platform]?.label || dest.platform),
        h(
          'div.dest-status',
          h(`span.status-dot.${state}`),
          h('span.dest-status-text', STATUS_LABEL[state] ?? state),
        ),
        stats.length ? h('div.dest-stats', stats.join(' · ')) : null,
        h(
          'div.dest-encode',
          { dataset: { role: 'dest-encode' } },
          dest.canvas && dest.canvas !== 'main' ? `${dest.canvas} canvas · ` : '',
          dest.profile ? formatEncode(dest.encode) : `Program's quality · ${formatEncode(dest.encode)}`,
        ),
        status?.reason ? h('div.dest-error', status.reason) : null,
      ),
      h(
        'div.dest-actions',
        h('label.switch', toggle, h('span.slider')),
        h('button.icon-btn', { type: 'button', title: 'Quality', dataset: { action: 'destination-quality' }, onclick: () => this.editQuality(dest) }, icon(ICONS.settings)),
        h('button.icon-btn', { type: 'button', title: 'Test connection', onclick: () => this.test(dest) }, icon(ICONS.broadcast)),
        h('button.icon-btn', { type: 'button', title: 'Remove', onclick: () => this.remove(dest) }, icon(ICONS.trash)),
      ),
    );
  }

  async test(dest) {
    toast(`Testing ${dest.name || dest.platform}…`);
    try {
      // {ok, checks: [{name, ok, message}]}: name the first step that failed (DNS, TCP, TLS, handshake, key).
      const r = await api.testDestination(this.broadcastId, dest.id);
      const failed = r?.checks?.find((c) => !c.ok);
      if (r?.ok === false) toast(`Test failed${failed ? ` at ${failed.name}: ${failed.message}` : ''}`, 'error');
      else toast(`${dest.name || dest.platform}: connected and published a test stream.`, 'success');
    } catch (e) {
      toast(`Test failed: ${e.message}`, 'error');
    }
  }

  async remove(dest) {
    if (!confirm(`Remove ${dest.name || dest.platform}?`)) return;
    try {
      await api.deleteDestination(this.broadcastId, dest.id);
      this.items.delete(dest.id);
      this.renderList();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  /** The scene's canvases beside the main one changed (`scene.canvases`). */
  setCanvases(canvases) {
    const key = JSON.stringify(canvases);
    if (key === this.canvasesKey) return;
    const first = this.canvasesKey === undefined;
    this.canvasesKey = key;
    this.canvases = canvases;
    // The list says which canvas each destination streams and what that makes its encode.
    if (!first) this.load();
  }

  toggleForm(open) {
    this.form.hidden = !open;
    this.addBtn.hidden = open;
    if (open) {
      // The canvases to choose from are the scene's as it is now.
      this.clearForm();
      this.form.querySelector('select').focus();
    }
  }

  buildForm() {
    const platform = h(
      'select',
      { name: 'platform' },
      Object.entries(PLATFORMS).map(([id, p]) => h('option', { value: id }, p.label)),
    );
    const name = h('input', { name: 'name', type: 'text', placeholder: 'Name (e.g. "My channel")', maxLength: 80 });
    const url = h('input', { name: 'rtmpUrl', type: 'text', placeholder: 'rtmp://server/app', autocomplete: 'off' });
    const urlField = h('div.field', labelFor(url, 'Server URL'), url);
    const key = h('input', { name: 'streamKey', type: 'password', placeholder: 'Stream key', autocomplete: 'off' });
    const hint = h('div.field-hint');
    const error = h('div.form-error', { role: 'alert' });
    let quality = qualityFields(null, { canvases: this.canvases });
    const qualityHolder = h('div', quality.el);
    const sync = () => {
      urlField.hidden = platform.value !== 'rtmp';
      hint.textContent = PLATFORMS[platform.value].keyHint;
    };
    platform.onchange = sync;
    sync();
    this.clearForm = () => clear();
    // Back to an empty form (after saving, or cancelling what was typed).
    const clear = () => {
      form.reset();
      error.textContent = '';
      quality = qualityFields(null, { canvases: this.canvases });
      mount(qualityHolder, quality.el);
      sync();
    };
    const form = h(
      'form.dest-form',
      {
        onsubmit: async (e) => {
          e.preventDefault();
          error.textContent = '';
          const body = { platform: platform.value, name: name.value.trim() || PLATFORMS[platform.value].label, streamKey: key.value.trim(), enabled: true };
          if (platform.value === 'rtmp') body.rtmpUrl = url.value.trim();
          const profile = quality.read();
          if (profile) body.profile = profile;
          const canvas = quality.readCanvas();
          if (canvas && canvas !== 'main') body.canvas = canvas;
          try {
            const dest = await api.addDestination(this.broadcastId, body);
            this.items.set(dest.id, { dest });
            this.renderList();
            clear();
            this.toggleForm(false);
          } catch (err) {
            error.textContent = err.message;
          }
        },
      },
      h('div.field', labelFor(platform, 'Platform'), platform),
      h('div.field', labelFor(name, 'Name'), name),
      urlField,
      h('div.field', labelFor(key, 'Stream key'), key, hint),
      qualityHolder,
      error,
      h(
        'div.form-row',
        h(
          'button.ghost',
          {
            type: 'button',
            onclick: () => {
              clear();
              this.toggleForm(false);
            },
          },
          'Cancel',
        ),
        h('button.primary', { type: 'submit' }, 'Save destination'),
      ),
    );
    return form;
  }
}
