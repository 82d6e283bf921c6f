// The studio's protocol client: one WebSocket to `GET /ws` carrying the signaling events of docs/protocol.md, and
// one RTCPeerConnection to the server's SFU. Nothing in here touches the DOM; the UI listens to its events.
//
// Negotiation rule (docs/protocol.md): the client makes exactly one offer, the first, which publishes three send-only
// slots in a fixed order: microphone (audio), camera (video) and screen (video, empty until the user shares).
// Camera/mic share one MediaStream and the screen slot has its own, so the server can tell them apart by msid.
// After the server's answer, only the server offers (when others' tracks come and go) and the client answers,
// so the two sides never glare. Changing devices or sharing the screen swaps tracks with `replaceTrack`, which
// needs no renegotiation.
//
// Every forwarded track's MediaStream id is the publisher's participant id (camera/mic), `<id>:screen` for a
// screen share, or `program` for the host's program preview; `track` events carry that mapping already decoded.

/** Events the server may send; anything else is reported as a protocol error and ignored. */
const SERVER_EVENTS = new Set([
  'joined', 'room-state', 'participant-joined', 'participant-left', 'participant-status-updated',
  'webrtc-offer', 'webrtc-answer', 'ice-candidate', 'chat-message',
  'broadcast-started', 'broadcast-ended', 'moderated',
  'scene-updated', 'stage-layout', 'canvas-layout', 'destination-status', 'program-status', 'connection-quality', 'video-paused', 'ingest-status', 'local-recording', 'error',
]);

/** The order of the publisher's m-lines in its first offer; the server relies on it. */
export const PUBLISH_SLOTS = ['audio', 'camera', 'screen'];

/**
 * The camera goes out in three simulcast layers, lowest first (the server reads the order): a quarter, half and
 * the full size. Each viewer gets the one its tile and connection need; the browser drops the upper ones when our
 * uplink cannot carry them.
 */
export const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_700_000 },
];

/** A screen share keeps its detail: full resolution, at most 15 frames a second. */
export const SCREEN_ENCODING = { maxBitrate: 2_500_000, maxFramerate: 15 };

/** How long the server may take to answer `join-broadcast` (it answers in well under a second). */
export const JOIN_TIMEOUT_MS = 30000;

/** An error the server reported with an `error` event (or a failure to reach it). */
export class SignalingError extends Error {
  constructor({ code, message, field, event }) {
    super(message || code);
    this.name = 'SignalingError';
    this.code = code;
    this.field = field;
    this.event = event;
  }
}

/** Where the studio's WebSocket lives, relative to the page's origin. */
export function defaultSocketUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * "relay" when the page URL has `?relay=1` (media only through the TURN servers from `joined`: how to check a
 * TURN set-up, and how the TURN e2e test proves the relay path), else "all".
 */
export function defaultIceTransportPolicy(loc = window.location) {
  return new URLSearchParams(loc.search).get('relay') === '1' ? 'relay' : 'all';
}

/** Splits a forwarded stream id into who published it and what it is. */
export function describeStreamId(streamId) {
  if (streamId === 'program') return { participantId: null, kind: 'program' };
  if (streamId.endsWith(':screen')) {
    return { participantId: streamId.slice(0, -':screen'.length), kind: 'screen' };
  }
  return { participantId: streamId, kind: 'camera' };
}

/**
 * A connection to one broadcast's room. Usage:
 *   const c = new StudioConnection();
 *   c.on('participant-joined', ({participant}) => ...);
 *   await c.open();
 *   const joined = await c.join({broadcastId, audioEnabled, videoEnabled});
 *   await c.publish({audio: micTrack, camera: camTrack});
 */
export class StudioConnection {
  constructor({ url = defaultSocketUrl(), iceTransportPolicy = defaultIceTransportPolicy() } = {}) {
    /** WebSocket address of the signaling endpoint. */
    this.url = url;
    /** "all" or "relay" (TURN only), for the peer connection. */
    this.iceTransportPolicy = iceTransportPolicy;
    /** The open socket, or null before `open()` / after close. */
    this.socket = null;
    /** The peer connection to the SFU; created by `publish()` after `joined` delivered the ICE servers. */
    this.pc = null;
    /** Our participant id in the room, from `joined`. */
    this.participantId = null;
    /** Our role in the room ("host" | "cohost" | "guest"), from `joined`. */
    this.role = null;
    /** ICE servers from `joined`. */
    this.iceServers = [];
    /** Senders for the three publish slots, by slot name. */
    this.senders = {};
    /** Listeners by event name. */
    this.listeners = new Map();
    /** Remote ICE candidates that arrived before a remote description could take them. */
    this.pendingCandidates = [];
    /** Our ICE candidates gathered before the offer went out. */
    this.localCandidates = [];
    /** Serialises SDP work so a server offer never interleaves with our own offer/answer handling. */
    this.negotiation = Promise.resolve();
    /** True once our first (and only) offer has been sent. */
    this.offered = false;
    /** Resolvers of the pending `join()` call. */
    this.pendingJoin = null;
    /** True when we closed on purpose, so `close` listeners can tell a drop from a leave. */
    this.closing = false;
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  emit(event, data) {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(data);
      } catch (e) {
        console.error(`listener for ${event} failed`, e);
      }
    }
  }

  /** Opens the WebSocket; resolves when it is open. Auth rides on the page's cookies. */
  open() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.onopen = () => {
        opened = true;
        resolve();
      };
      socket.onmessage = (e) => this.receive(e.data);
      socket.onerror = () => {
        if (!opened) reject(new SignalingError({ code: 'unreachable', message: 'Could not reach the studio server.' }));
      };
      socket.onclose = (e) => {
        this.socket = null;
        if (this.pendingJoin) {
          this.pendingJoin.reject(new SignalingError({ code: 'closed', message: e.reason || 'The studio server closed the connection.' }));
          this.pendingJoin = null;
        }
        if (opened) this.emit('close', { code: e.code, reason: e.reason, intended: this.closing });
      };
    });
  }

  /** Sends one event; false when the socket is not open. */
  send(event, data = {}) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ event, data }));
    return true;
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      console.warn('signaling: frame is not JSON', text);
      return;
    }
    const { event, data = {} } = msg ?? {};
    if (!SERVER_EVENTS.has(event)) {
      console.warn('signaling: unknown event', event);
      return;
    }
    switch (event) {
      case 'joined':
        this.participantId = data.participantId;
        this.role = data.role;
        this.iceServers = data.iceServers ?? [];
        this.pendingJoin?.resolve(data);
        this.pendingJoin = null;
        break;
      case 'webrtc-offer':
        this.enqueue(() => this.answerServerOffer(data.sdp));
        return;
      case 'webrtc-answer':
        this.enqueue(() => this.applyServerAnswer(data.sdp));
        return;
      case 'ice-candidate':
        this.addRemoteCandidate(data);
        return;
      case 'error': {
        const err = new SignalingError(data);
        if (this.pendingJoin && (data.event === 'join-broadcast' || !this.participantId)) {
          this.pendingJoin.reject(err);
          this.pendingJoin = null;
        }
        break;
      }
      default:
        break;
    }
    this.emit(event, data);
  }

  /**
   * Joins a broadcast's room; resolves with the `joined` payload or rejects with the server's error. On a
   * reconnect, `participantId` is the seat we had: a server that is not the one holding it takes it over.
   */
  join({ broadcastId, audioEnabled, videoEnabled, participantId }) {
    return new Promise((resolve, reject) => {
      // A server that never answers must not leave the user at a dead button (or "Reconnecting…" for ever):
      // the join fails, the socket is closed (a late `joined` seats nobody), and the user may try again.
      const timer = setTimeout(() => {
        if (this.pendingJoin !== pending) return;
        this.pendingJoin = null;
        this.close();
        reject(new SignalingError({ code: 'timeout', message: 'The studio server did not answer in time. Try again.' }));
      }, JOIN_TIMEOUT_MS);
      const pending = {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.pendingJoin = pending;
      const data = { broadcastId, audioEnabled, videoEnabled };
      if (participantId) data.participantId = participantId;
      if (!this.send('join-broadcast', data)) {
        this.pendingJoin = null;
        pending.reject(new SignalingError({ code: 'closed', message: 'Not connected to the studio server.' }));
      }
    });
  }

  /**
   * Creates the peer connection and makes the first (only) client offer, publishing the three slots.
   * `tracks` = {audio, camera, screen}; any may be null (the slot is still negotiated, so a device can be
   * turned on later with `setTrack` and no renegotiation).
   */
  async publish(tracks = {}) {
    if (this.pc) throw new Error('already publishing');
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.pc = pc;
    const cameraStream = new MediaStream();
    const screenStream = new MediaStream();
    const slotKinds = { audio: 'audio', camera: 'video', screen: 'video' };
    for (const slot of PUBLISH_SLOTS) {
      const track = tracks[slot] ?? null;
      const init = { direction: 'sendonly', streams: [slot === 'screen' ? screenStream : cameraStream] };
      if (slot === 'camera') init.sendEncodings = CAMERA_LAYERS.map((l) => ({ ...l }));
      if (slot === 'screen') init.sendEncodings = [{ ...SCREEN_ENCODING }];
      const transceiver = pc.addTransceiver(track ?? slotKinds[slot], init);
      this.senders[slot] = transceiver.sender;
    }
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      const c = { candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex };
      // The server learns about our peer connection from the offer, so nothing may reach it before that.
      if (this.offered) this.send('ice-candidate', c);
      else this.localCandidates.push(c);
    };
    pc.ontrack = (e) => this.onRemoteTrack(e);
    pc.onconnectionstatechange = () => this.emit('connection-state', { state: pc.connectionState });
    await this.enqueue(async () => {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.offered = true;
      this.send('webrtc-offer', { sdp: pc.localDescription.sdp });
      for (const c of this.localCandidates.splice(0)) this.send('ice-candidate', c);
    });
  }

  onRemoteTrack(e) {
    const stream = e.streams[0];
    if (!stream) {
      console.warn('signaling: remote track without a stream id; cannot map it to a participant');
      return;
    }
    const { participantId, kind } = describeStreamId(stream.id);
    const info = { participantId, kind, track: e.track, stream, mid: e.transceiver?.mid };
    stream.addEventListener('removetrack', (ev) => {
      if (ev.track === e.track) this.emit('track-removed', info);
    });
    this.emit('track', info);
  }

  /** Puts a track (or null for nothing) into one publish slot, without renegotiating. */
  async setTrack(slot, track) {
    const sender = this.senders[slot];
    if (!sender) return;
    await sender.replaceTrack(track ?? null);
  }

  enqueue(work) {
    const next = this.negotiation.then(work).catch((e) => {
      console.error('signaling: negotiation failed', e);
      this.emit('negotiation-error', { error: e });
    });
    this.negotiation = next;
    return next;
  }

  async applyServerAnswer(sdp) {
    if (!this.pc || this.pc.signalingState !== 'have-local-offer') {
      console.warn('signaling: unexpected answer in state', this.pc?.signalingState);
      return;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.flushCandidates();
  }

  async answerServerOffer(sdp) {
    if (!this.pc) {
      console.warn('signaling: server offer before we published; ignored');
      return;
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.flushCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.send('webrtc-answer', { sdp: this.pc.localDescription.sdp });
  }

  addRemoteCandidate({ candidate, sdpMid, sdpMLineIndex }) {
    const init = { candidate, sdpMid, sdpMLineIndex };
    if (this.pc?.remoteDescription) {
      this.pc.addIceCandidate(init).catch((e) => console.warn('signaling: bad ICE candidate', e));
    } else {
      this.pendingCandidates.push(init);
    }
  }

  async flushCandidates() {
    const list = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of list) await this.pc.addIceCandidate(c).catch((e) => console.warn('signaling: bad ICE candidate', e));
  }

  /** Our own mic/camera/screen/name state as others should see it. */
  sendStatus(status) {
    return this.send('participant-status', status);
  }

  sendChat(text) {
    return this.send('chat-message', { text });
  }

  /** Host/co-host only: "mute-audio" | "mute-video" | "remove". */
  moderate(participantId, action) {
    return this.send('moderate', { participantId, action });
  }

  /** Host/co-host only: the stage, layout and overlays. */
  updateScene(scene) {
    return this.send('scene-update', scene);
  }

  /** Collects inbound RTP stats per forwarded stream id (for the connection-quality badge and tests). */
  async inboundStats() {
    if (!this.pc) return [];
    const report = await this.pc.getStats();
    const out = [];
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') out.push(s);
    });
    return out;
  }

  /** Leaves the room and closes everything. Safe to call twice. */
  close() {
    this.closing = true;
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.send('leave-broadcast', {});
      this.socket.close(1000, 'left');
    }
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }
}
