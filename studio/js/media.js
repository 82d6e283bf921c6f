// The local side of the studio: camera, microphone, screen share, device lists and a mic level meter.
// Knows nothing about the network; the room wires its tracks into the protocol client's publish slots.

const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

const PREFS_KEY = 'backyard.devices';

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY)) ?? {};
  } catch {
    return {};
  }
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // Private mode: the choice just isn't remembered.
  }
}

/** Explains a getUserMedia failure in words a guest understands. */
export function describeMediaError(err, what) {
  switch (err?.name) {
    case 'NotAllowedError':
      return `Your browser blocked the ${what}. Allow it in the address bar and try again.`;
    case 'NotFoundError':
      return `No ${what} was found.`;
    case 'NotReadableError':
      return `The ${what} is in use by another application.`;
    case 'OverconstrainedError':
      return `The selected ${what} is not available any more.`;
    default:
      return `Could not start the ${what}: ${err?.message ?? err}`;
  }
}

export class LocalMedia {
  constructor() {
    /** Current microphone track, or null. */
    this.audio = null;
    /** Current camera track, or null. */
    this.camera = null;
    /** Current screen-share track, or null. */
    this.screen = null;
    /** Whether the user wants their mic / camera on (a muted device keeps its track, disabled). */
    this.audioEnabled = true;
    this.videoEnabled = true;
    /** Remembered device choices. */
    this.prefs = loadPrefs();
    /** Stream shown in the self-preview (camera only). */
    this.preview = new MediaStream();
    /** Listeners for 'change' (tracks swapped) and 'screen-ended'. */
    this.listeners = new Map();
    this.meter = null;
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
  }

  emit(event, data) {
    for (const fn of this.listeners.get(event) ?? []) fn(data);
  }

  /** Opens mic and camera (remembered devices first). Returns the errors, by device kind, for the UI to show. */
  async start() {
    const errors = {};
    try {
      await this.useMicrophone(this.prefs.audioinput);
    } catch (e) {
      errors.audio = describeMediaError(e, 'microphone');
    }
    try {
      await this.useCamera(this.prefs.videoinput);
    } catch (e) {
      errors.video = describeMediaError(e, 'camera');
    }
    return errors;
  }

  async useCamera(deviceId) {
    const video = { ...CAMERA_CONSTRAINTS, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video });
    } catch (e) {
      if (!deviceId || e.name !== 'OverconstrainedError') throw e;
      stream = await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS });
    }
    const track = stream.getVideoTracks()[0];
    track.enabled = this.videoEnabled;
    const old = this.camera;
    this.camera = track;
    if (old) {
      this.preview.removeTrack(old);
      old.stop();
    }
    this.preview.addTrack(track);
    this.remember('videoinput', track.getSettings().deviceId);
    this.emit('change', { slot: 'camera', track });
    return track;
  }

  async useMicrophone(deviceId) {
    const audio = { ...MIC_CONSTRAINTS, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio });
    } catch (e) {
      if (!deviceId || e.name !== 'OverconstrainedError') throw e;
      stream = await navigator.mediaDevices.getUserMedia({ audio: MIC_CONSTRAINTS });
    }
    const track = stream.getAudioTracks()[0];
    track.enabled = this.audioEnabled;
    const old = this.audio;
    this.audio = track;
    old?.stop();
    this.remember('audioinput', track.getSettings().deviceId);
    this.meter?.attach(track);
    this.emit('change', { slot: 'audio', track });
    return track;
  }

  remember(kind, deviceId) {
    if (!deviceId) return;
    this.prefs[kind] = deviceId;
    savePrefs(this.prefs);
  }

  setAudioEnabled(on) {
    this.audioEnabled = on;
    if (this.audio) this.audio.enabled = on;
  }

  setVideoEnabled(on) {
    this.videoEnabled = on;
    if (this.camera) this.camera.enabled = on;
  }

  /** Asks the user for a screen (must run from a click). Resolves with the track, or null if they cancelled. */
  async startScreenShare() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 30 } }, audio: false });
    } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'AbortError') return null;
      throw e;
    }
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    // The browser's own "Stop sharing" bar ends the track without going through our button.
    track.addEventListener('ended', () => {
      if (this.screen === track) {
        this.screen = null;
        this.emit('screen-ended', {});
      }
    });
    this.screen = track;
    return track;
  }

  stopScreenShare() {
    this.screen?.stop();
    this.screen = null;
  }

  /** Lists cameras / mics / speakers; labels are only present once permission was granted. */
  async devices() {
    const list = await navigator.mediaDevices.enumerateDevices();
    const pick = (kind) => list.filter((d) => d.kind === kind && d.deviceId);
    return { videoinput: pick('videoinput'), audioinput: pick('audioinput'), audiooutput: pick('audiooutput') };
  }

  stop() {
    for (const t of [this.audio, this.camera, this.screen]) t?.stop();
    this.meter?.close();
    this.audio = this.camera = this.screen = null;
  }
}

/** A microphone level meter (0..1) driven by an AnalyserNode, for the settings panel and the self tile. */
export class LevelMeter {
  constructor() {
    this.ctx = null;
    this.source = null;
    this.analyser = null;
    this.data = null;
  }

  attach(track) {
    if (!track) return;
    this.ctx ??= new AudioContext();
    this.source?.disconnect();
    this.analyser ??= this.ctx.createAnalyser();
    this.analyser.fftSize = 512;
    this.data = new Float32Array(this.analyser.fftSize);
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(this.analyser);
  }

  /** RMS level of the last ~10 ms, scaled so normal speech reaches about 0.5. */
  level() {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.data);
    let sum = 0;
    for (const v of this.data) sum += v * v;
    return Math.min(1, Math.sqrt(sum / this.data.length) * 4);
  }

  close() {
    this.source?.disconnect();
    this.ctx?.close();
    this.ctx = null;
    this.analyser = null;
  }
}
