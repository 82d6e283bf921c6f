// The studio room's state as plain data: what the server told us (participants, scene, the layouts on offer,
// the program's tile placements, chat, output and program status) plus the few local facts the views need.
// No DOM, no WebSocket, no media: `apply(state, {event, data})` folds one protocol event (docs/protocol.md)
// into a new state and never changes the one it was given; the selectors below turn a state into what the
// views draw. The room keeps the current state and re-renders after each event.

/** Roles that may change the scene and moderate. */
export const MODERATOR_ROLES = new Set(['host', 'cohost']);

/** How each role is named on screen. */
export const ROLE_LABEL = { host: 'Host', cohost: 'Co-host', guest: 'Guest' };

/** Where the canvas stands before the program places anyone: the stage keeps this shape until then. */
export const DEFAULT_CANVAS = Object.freeze({ width: 1280, height: 720 });

/** How many chat messages the state keeps (the server hands late joiners its last 100). */
export const CHAT_LIMIT = 500;

/** Every overlay the studio controls, with nothing shown. */
export function emptyOverlays() {
  return {
    banner: { text: '', visible: false },
    lowerThird: { name: '', title: '', visible: false },
    logo: { url: '', visible: false },
    comment: { messageId: '', name: '', text: '', visible: false },
    ticker: { text: '', visible: false },
    /** An uploaded PNG over the whole canvas (a frame, a border): its transparent parts show the tiles. */
    picture: { url: '', visible: false },
    /** Overlays of installed plugins, by `<plugin>/<overlay>`: `{visible, props: {prop: text}}`. */
    plugins: {},
  };
}

/** A plugin overlay's entry with `visible` a boolean and `props` text only. */
function normalisePluginOverlay(o) {
  const props = {};
  for (const [k, v] of Object.entries(o?.props && typeof o.props === 'object' ? o.props : {})) if (typeof v === 'string') props[k] = v;
  return { visible: o?.visible === true, props };
}

/** Fills every overlay with its defaults, keeping what `overlays` sets. */
export function normaliseOverlays(overlays = {}) {
  const base = emptyOverlays();
  for (const k of Object.keys(base)) if (k !== 'plugins') base[k] = { ...base[k], ...(overlays?.[k] ?? {}) };
  const plugins = overlays?.plugins && typeof overlays.plugins === 'object' ? overlays.plugins : {};
  for (const [id, o] of Object.entries(plugins)) base.plugins[id] = normalisePluginOverlay(o);
  return base;
}

/** The plugins' overlays from `joined.overlays`: `{id, name, description, props, plugin}` each, ids unique. */
export function normaliseOverlayChoices(list) {
  if (!Array.isArray(list)) return [];
  const seen = new Set();
  const out = [];
  for (const o of list) {
    if (!o || typeof o.id !== 'string' || !o.id.includes('/') || seen.has(o.id)) continue;
    seen.add(o.id);
    out.push({
      id: o.id,
      name: typeof o.name === 'string' && o.name ? o.name : o.id,
      description: typeof o.description === 'string' ? o.description : '',
      props: Array.isArray(o.props) ? o.props.filter((p) => typeof p === 'string' && p) : [],
      plugin: typeof o.plugin === 'string' ? o.plugin : '',
    });
  }
  return out;
}

/**
 * Fills a scene from the server with defaults so the views never check for missing parts. A scene stored
 * before layouts came from the server's plugins may still say `screen-share`; that layout is `screen` now.
 */
export function normaliseScene(scene = {}) {
  const layout = typeof scene?.layout === 'string' && scene.layout ? scene.layout : 'grid';
  return {
    stage: Array.isArray(scene?.stage) ? scene.stage.filter((id) => typeof id === 'string') : [],
    layout: layout === 'screen-share' ? 'screen' : layout,
    overlays: normaliseOverlays(scene?.overlays),
    brand: normaliseBrand(scene?.brand),
    slate: normaliseSlate(scene?.slate),
    slateImage: typeof scene?.slateImage === 'string' && scene.slateImage ? scene.slateImage : null,
    clip: normaliseClip(scene?.clip),
    slateAudio: typeof scene?.slateAudio === 'string' && scene.slateAudio ? scene.slateAudio : null,
    canvases: normaliseCanvases(scene?.canvases),
  };
}

/**
 * The canvases the program composes beside the main one, `[{id, width, height, layout, overlays?}]`, as the scene
 * keeps them (`overlays` only for a canvas with overlays of its own).
 */
export function normaliseCanvases(canvases) {
  if (!Array.isArray(canvases)) return [];
  return canvases
    .filter((c) => c && typeof c.id === 'string' && Number.isInteger(c.width) && Number.isInteger(c.height))
    .map((c) => ({
      id: c.id,
      width: c.width,
      height: c.height,
      layout: typeof c.layout === 'string' && c.layout ? c.layout : 'grid',
      ...(c.overlays && typeof c.overlays === 'object' ? { overlays: normaliseOverlays(c.overlays) } : {}),
    }));
}

/** The scene's playing clip `{url, name, mode}` (`mode` `full` or `tile`), or null. */
export function normaliseClip(clip) {
  if (!clip || typeof clip !== 'object' || typeof clip.url !== 'string' || !clip.url) return null;
  return { url: clip.url, name: typeof clip.name === 'string' ? clip.name : '', mode: clip.mode === 'tile' ? 'tile' : 'full' };
}

/** The slates a show has, by `scene.slate.kind`, with the title the program draws. */
export const SLATES = { starting: 'Starting soon', brb: 'Be right back', ending: 'Thanks for watching' };

/** The scene's slate `{kind, text}`, or null when it shows none. */
export function normaliseSlate(slate) {
  if (!slate || typeof slate !== 'object' || !Object.hasOwn(SLATES, slate.kind)) return null;
  return { kind: slate.kind, text: typeof slate.text === 'string' ? slate.text : '' };
}

/**
 * The slate on the program now, as the server's director decides it: the one the hosts chose, else "Be right
 * back" while the program is on air with nobody on stage. `{kind, title, text, image}` (`image`: the picture behind
 * every slate, or null) or null. `programOnAir` is false
 * when the broadcast is live from an encoder (a relay): the program is then not what goes out.
 */
export function shownSlate(state, { programOnAir = state.broadcast?.status === 'live' } = {}) {
  // A clip playing is the program: no slate over it.
  if (state.scene.clip) return null;
  const chosen = state.scene.slate;
  const image = state.scene.slateImage ?? null;
  if (chosen) return { ...chosen, title: SLATES[chosen.kind], image };
  if (programOnAir && stageTiles(state).tiles.length === 0) return { kind: 'brb', title: SLATES.brb, text: '', image };
  return null;
}

const HEX_COLOUR = /^#[0-9a-f]{6}$/i;

/** The scene's brand `{id?, name, color, background?}` (colours `#rrggbb`), or null when it has none usable. */
export function normaliseBrand(brand) {
  if (!brand || typeof brand !== 'object' || !HEX_COLOUR.test(brand.color ?? '')) return null;
  const out = { name: typeof brand.name === 'string' ? brand.name : '', color: brand.color };
  if (typeof brand.id === 'string') out.id = brand.id;
  if (HEX_COLOUR.test(brand.background ?? '')) out.background = brand.background;
  if (typeof brand.backgroundImage === 'string' && brand.backgroundImage.startsWith('/api/uploads/')) out.backgroundImage = brand.backgroundImage;
  if (['sans', 'serif', 'mono'].includes(brand.font)) out.font = brand.font;
  return out;
}

/** The layouts from `joined`: `{id, name, description, plugin}` each, in the server's order, ids unique. */
export function normaliseLayouts(list) {
  if (!Array.isArray(list)) return [];
  const seen = new Set();
  const out = [];
  for (const l of list) {
    if (!l || typeof l.id !== 'string' || !l.id || seen.has(l.id)) continue;
    seen.add(l.id);
    out.push({
      id: l.id,
      name: typeof l.name === 'string' && l.name ? l.name : l.id,
      description: typeof l.description === 'string' ? l.description : '',
      plugin: typeof l.plugin === 'string' ? l.plugin : '',
    });
  }
  return out;
}

const num = (v, fallback = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

/**
 * A `stage-layout` payload (or `joined.stageLayout`) with every field present and of the right type, or null.
 * Tiles keep the server's order and values: rectangles in canvas pixels, `fit` `cover` or `contain`.
 */
export function normaliseStageLayout(data) {
  if (!data || typeof data !== 'object') return null;
  const width = num(data.canvas?.width);
  const height = num(data.canvas?.height);
  const canvas = width > 0 && height > 0 ? { width, height } : { ...DEFAULT_CANVAS };
  const tiles = [];
  for (const t of Array.isArray(data.tiles) ? data.tiles : []) {
    if (!t || typeof t.source !== 'string' || !t.source) continue;
    const screen = typeof t.screen === 'boolean' ? t.screen : t.source.endsWith(':screen');
    tiles.push({
      source: t.source,
      participantId: typeof t.participantId === 'string' && t.participantId ? t.participantId : t.source.replace(/:screen$/, ''),
      screen,
      name: typeof t.name === 'string' ? t.name : '',
      x: num(t.x),
      y: num(t.y),
      width: Math.max(0, num(t.width)),
      height: Math.max(0, num(t.height)),
      z: num(t.z),
      fit: t.fit === 'contain' ? 'contain' : 'cover',
    });
  }
  return { layout: typeof data.layout === 'string' ? data.layout : '', canvas, tiles };
}

/**
 * One output's status from a `destination-status` payload: `{id, destinationId, kind, state, target, reason,
 * attempt, retryInMs, bitrateKbps, droppedFrames, uptimeSecs, connects}` (the recording has kind `recording`,
 * the viewers' HLS stream kind `hls`; neither has a destinationId). Fields the server left out stay undefined.
 */
export function normaliseOutputStatus(data = {}) {
  const kind = data.kind === 'recording' || data.kind === 'hls' ? data.kind : 'destination';
  return {
    id: data.id,
    destinationId: kind === 'destination' ? (data.destinationId ?? data.id) : undefined,
    kind,
    state: typeof data.state === 'string' ? data.state : 'idle',
    target: data.target,
    reason: data.reason,
    attempt: data.attempt,
    retryInMs: data.retryInMs,
    bitrateKbps: data.bitrateKbps,
    droppedFrames: data.droppedFrames,
    uptimeSecs: data.uptimeSecs,
    connects: data.connects,
  };
}

/** The state before `joined`. */
export function initialState() {
  return {
    /** Our participant id and role in the room, from `joined`. */
    selfId: null,
    role: 'guest',
    /** {id, title, status, startTime?, endTime?}. */
    broadcast: null,
    /** Everyone in the room including us, by participant id, in the order they became known. */
    participants: {},
    /** Our own mic level says we are speaking (the server's detection lags; our tile rings at once). */
    selfSpeaking: false,
    scene: normaliseScene(),
    /** The layouts the server's layout plugins offer, in toolbar order. */
    layouts: [],
    /** The overlays installed overlay plugins offer beside the studio's own. */
    overlayChoices: [],
    /** The program's latest placements, or null before it placed anyone. */
    stageLayout: null,
    /** The same for each of the scene's other canvases, by canvas id. */
    canvasLayouts: {},
    chat: [],
    /** Output statuses while on air: destinations by destination id, and the recording. */
    outputs: { destinations: {}, recording: null, hls: null },
    /** The latest `program-status`, or null. */
    program: null,
    /** Each participant's link as the server measured it last (`connection-quality`), by participant id. */
    quality: {},
    /** Participants' local recordings on their way to the server (`local-recording`), by participant id. */
    localRecordings: {},
    /**
     * Our scene updates the server has not answered yet. Each is answered once (`scene-updated` to everyone, or
     * an `error` to us); until the last is answered, the echoes of older ones would undo what we show since.
     */
    pendingScenes: 0,
    /** A host removed us. */
    removed: false,
  };
}

function withParticipant(state, p) {
  if (!p || typeof p.id !== 'string') return state;
  const old = state.participants[p.id];
  return { ...state, participants: { ...state.participants, [p.id]: { ...old, ...p } } };
}

function withoutParticipant(state, id) {
  if (!(id in state.participants)) return state;
  const participants = { ...state.participants };
  delete participants[id];
  const quality = { ...state.quality };
  delete quality[id];
  return { ...state, participants, quality };
}

function withChat(chat, messages) {
  const seen = new Set(chat.map((m) => m.id));
  const added = [];
  for (const m of messages) {
    if (!m || typeof m.id !== 'string' || seen.has(m.id)) continue;
    seen.add(m.id);
    added.push(m);
  }
  if (!added.length) return chat;
  return [...chat, ...added].slice(-CHAT_LIMIT);
}

/**
 * Folds one server event into the state and returns the new state (the same object when nothing changed).
 * `self` (for `joined` only) is our own entry when the server's list leaves us out, e.g.
 * `{audioEnabled, videoEnabled}` from the local devices.
 */
export function apply(state, { event, data = {} } = {}, { self = {} } = {}) {
  data ??= {};
  switch (event) {
    case 'joined': {
      const participants = {};
      for (const p of Array.isArray(data.participants) ? data.participants : []) if (p && typeof p.id === 'string') participants[p.id] = { ...p };
      const selfId = data.participantId ?? null;
      const role = data.role ?? 'guest';
      if (selfId && !participants[selfId]) {
        // `joined.self` is us as the room sees us (our name as the host or the invite set it).
        const me = data.self && data.self.id === selfId ? data.self : {};
        participants[selfId] = {
          id: selfId,
          userId: null,
          name: 'You',
          role,
          ...me,
          audioEnabled: true,
          videoEnabled: true,
          screenSharing: false,
          speaking: false,
          ...self,
        };
      }
      return {
        ...state,
        selfId,
        role,
        broadcast: data.broadcast ?? null,
        participants,
        scene: normaliseScene(data.scene),
        pendingScenes: 0,
        layouts: normaliseLayouts(data.layouts),
        overlayChoices: normaliseOverlayChoices(data.overlays),
        stageLayout: normaliseStageLayout(data.stageLayout),
        canvasLayouts: normaliseCanvasLayouts(data.canvasLayouts),
        chat: withChat(state.chat, Array.isArray(data.chat) ? data.chat : []),
        removed: false,
      };
    }
    case 'room-state': {
      // The socket fell behind a burst: the room as it is now replaces what we had.
      const participants = {};
      for (const p of Array.isArray(data.participants) ? data.participants : []) if (p && typeof p.id === 'string') participants[p.id] = { ...p };
      if (state.selfId && !participants[state.selfId] && state.participants[state.selfId]) participants[state.selfId] = state.participants[state.selfId];
      return {
        ...state,
        participants,
        scene: normaliseScene(data.scene),
        pendingScenes: 0,
        stageLayout: normaliseStageLayout(data.stageLayout),
        canvasLayouts: normaliseCanvasLayouts(data.canvasLayouts),
        chat: withChat(state.chat, Array.isArray(data.chat) ? data.chat : []),
      };
    }
    case 'participant-joined':
    case 'participant-status-updated':
      return withParticipant(state, data.participant);
    case 'participant-left':
      return withoutParticipant(state, data.participantId);
    case 'chat-message': {
      const chat = withChat(state.chat, [data]);
      return chat === state.chat ? state : { ...state, chat };
    }
    case 'broadcast-started':
      return { ...state, broadcast: { ...state.broadcast, status: 'live', startTime: data.startTime, localRecording: Boolean(data.localRecording) } };
    case 'broadcast-ended':
      return { ...state, broadcast: { ...state.broadcast, status: 'ended', endTime: data.endTime } };
    case 'moderated':
      if (data.action === 'mute-audio') return patchParticipant(state, state.selfId, { audioEnabled: false });
      if (data.action === 'mute-video') return patchParticipant(state, state.selfId, { videoEnabled: false });
      if (data.action === 'remove') return { ...state, removed: true };
      return state;
    case 'scene-updated': {
      // The echo of one of our updates while a newer one of ours is on its way: what we show is newer.
      const pending = state.pendingScenes ?? 0;
      if (pending > 1) return { ...state, pendingScenes: pending - 1 };
      return { ...state, scene: normaliseScene(data.scene), pendingScenes: Math.max(0, pending - 1) };
    }
    case 'error':
      // A refused update of ours is answered too: it gets no echo.
      if (data.event === 'scene-update' && state.pendingScenes > 0) return { ...state, pendingScenes: state.pendingScenes - 1 };
      return state;
    case 'stage-layout':
      return { ...state, stageLayout: normaliseStageLayout(data) };
    case 'canvas-layout': {
      if (typeof data.canvasId !== 'string' || !data.canvasId) return state;
      return { ...state, canvasLayouts: { ...state.canvasLayouts, [data.canvasId]: normaliseStageLayout(data.stage) } };
    }
    case 'destination-status': {
      const s = normaliseOutputStatus(data);
      if (s.kind === 'recording' || s.kind === 'hls') return { ...state, outputs: { ...state.outputs, [s.kind]: s } };
      if (typeof s.destinationId !== 'string') return state;
      const before = state.outputs.destinations[s.destinationId];
      const more = Number.isFinite(s.droppedFrames) && s.droppedFrames > (before?.droppedFrames ?? 0);
      // Statuses since its dropped-frame count last grew (null: it never dropped one).
      const since = before?.statusesSinceDrop;
      s.statusesSinceDrop = more ? 0 : since == null ? null : since + 1;
      return { ...state, outputs: { ...state.outputs, destinations: { ...state.outputs.destinations, [s.destinationId]: s } } };
    }
    case 'program-status':
      return { ...state, program: { ...data } };
    case 'local-recording': {
      if (typeof data.participantId !== 'string' || typeof data.state !== 'string') return state;
      const { participantId, ...u } = data;
      return { ...state, localRecordings: { ...state.localRecordings, [participantId]: u } };
    }
    case 'connection-quality': {
      if (typeof data.participantId !== 'string' || !['good', 'fair', 'poor'].includes(data.grade)) return state;
      const { participantId, ...q } = data;
      // Seconds in a row graded poor, so one bad second does not make a warning blink.
      q.poorFor = q.grade === 'poor' ? (state.quality[participantId]?.poorFor ?? 0) + 1 : 0;
      return { ...state, quality: { ...state.quality, [participantId]: q } };
    }
    default:
      return state;
  }
}

// ------------------------------------------------------------------ health

/**
 * How many of a destination's statuses (one a second while live) after its last dropped frame still count as
 * "dropping frames", so an output that drops now and then does not make a warning blink.
 */
export const DROP_WARNING_STATUSES = 3;

/** A destination's output dropped frames in its last few statuses. */
export function droppingFrames(status) {
  return status?.statusesSinceDrop != null && status.statusesSinceDrop < DROP_WARNING_STATUSES;
}

/** How many reports in a row (one a second) a participant's link must be graded poor before the hosts are warned. */
export const POOR_WARNING_REPORTS = 3;

/** The program cannot keep its frame rate (its latest `program-status` says `starved`). */
export function programStarved(state) {
  return state.program?.health === 'starved';
}

/**
 * What the host must know about the show's health right now, most serious first: `[{id, text}]` (empty when
 * all is well). `names` maps destination ids to the names the host gave them. Only the hosts see these.
 */
export function healthWarnings(state, names = {}) {
  if (!MODERATOR_ROLES.has(state.role)) return [];
  const warnings = [];
  const p = state.program;
  if (programStarved(state)) {
    const fps = Number.isFinite(p.fps) ? Math.round(p.fps) : '?';
    const target = Number.isFinite(p.targetFps) ? p.targetFps : 30;
    warnings.push({
      id: 'program',
      text: `The server is short of CPU: the program runs at ${fps} of ${target} fps, so viewers and the recording get a choppy picture. Take people off stage or stop other work on the server.`,
    });
  }
  for (const [id, s] of Object.entries(state.outputs.destinations)) {
    if (s.state !== 'live' || !droppingFrames(s)) continue;
    const name = names[id] || 'A destination';
    warnings.push({
      id: `destination:${id}`,
      text: `${name} is dropping frames (${s.droppedFrames} so far): the connection to it is slower than the stream's bitrate.`,
    });
  }
  for (const [id, q] of Object.entries(state.quality ?? {})) {
    const p = state.participants[id];
    if (!p || (q.poorFor ?? 0) < POOR_WARNING_REPORTS) continue;
    const self = id === state.selfId;
    warnings.push({
      id: `connection:${id}`,
      // No figures here (they change every second); the card's indicator has them.
      text: `${self ? 'Your' : `${p.name}’s`} connection is poor: ${self ? 'your' : 'their'} picture may freeze or drop to a lower quality, and ${self ? 'you' : 'they'} may be hard to hear.`,
    });
  }
  return warnings;
}

// ------------------------------------------------------------------ local changes

/** A participant's fields changed here before the server says so (our own mic, camera, screen share). */
/** One line for a link's figures (`connection-quality`), for the indicator's tooltip. */
export function qualityText(q) {
  if (!q) return 'Connection: not measured yet';
  const parts = [];
  if (Number.isFinite(q.rttMs)) parts.push(`${q.rttMs} ms round trip`);
  const loss = Math.max(q.downlinkLoss ?? 0, q.uplinkLoss ?? 0);
  if (Number.isFinite(q.downlinkLoss) || Number.isFinite(q.uplinkLoss)) parts.push(`${(loss * 100).toFixed(loss < 0.1 ? 1 : 0)} % loss`);
  if (Number.isFinite(q.jitterMs)) parts.push(`${q.jitterMs} ms jitter`);
  if (Number.isFinite(q.downlinkKbps)) parts.push(`${q.downlinkKbps} kbit/s to them`);
  if (Array.isArray(q.layers)) parts.push(`camera ${q.layers[0]} of ${q.layers[1]} layers`);
  const word = { good: 'Good', fair: 'Fair', poor: 'Poor' }[q.grade] ?? 'Unknown';
  return `${word} connection${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

export function patchParticipant(state, id, patch) {
  if (!id || !state.participants[id]) return state;
  return withParticipant(state, { ...patch, id });
}

/** A scene change made here, shown at once; the server's `scene-updated` confirms or corrects it. */
export function patchScene(state, patch) {
  return { ...state, scene: normaliseScene({ ...state.scene, ...patch }), pendingScenes: (state.pendingScenes ?? 0) + 1 };
}

/** Our mic level crossed the speaking threshold. */
export function setSelfSpeaking(state, speaking) {
  return state.selfSpeaking === Boolean(speaking) ? state : { ...state, selfSpeaking: Boolean(speaking) };
}

// ------------------------------------------------------------------ selectors

export function isModerator(state) {
  return MODERATOR_ROLES.has(state.role);
}

/** Everyone in the room, ourselves first, then in the order they became known. */
export function participantList(state) {
  const self = state.participants[state.selfId];
  return [...(self ? [self] : []), ...Object.values(state.participants).filter((p) => p.id !== state.selfId)];
}

/** How a participant is named in the studio: ours says "(you)". */
export function displayName(state, p) {
  return p.id === state.selfId ? `${p.name} (you)` : p.name;
}

/** The stream id of a participant's camera or screen: the participant id, or `<id>:screen`. */
export function sourceOf(participantId, kind) {
  return kind === 'screen' ? `${participantId}:screen` : participantId;
}

/**
 * The strip's cards in order: each participant's camera, followed by their screen while they share one.
 * `hasScreen(participantId)` says whether a screen picture is there to show (a remote share's track may arrive
 * after the status says it started).
 */
export function stripItems(state, hasScreen = () => true) {
  const out = [];
  for (const p of participantList(state)) {
    out.push({ key: sourceOf(p.id, 'camera'), participantId: p.id, kind: 'camera' });
    const sharing = p.id === state.selfId ? hasScreen(p.id) : Boolean(p.screenSharing) && hasScreen(p.id);
    if (sharing) out.push({ key: sourceOf(p.id, 'screen'), participantId: p.id, kind: 'screen' });
  }
  return out;
}

/** The layout toolbar: the server's layouts, the scene's one marked active. */
export function layoutChoices(state, canvasId = MAIN_CANVAS) {
  const active = canvasId === MAIN_CANVAS ? state.scene.layout : state.scene.canvases.find((c) => c.id === canvasId)?.layout;
  return state.layouts.map((l) => ({ ...l, active: l.id === active }));
}

/** The id of the program's own canvas, as the scene's other canvases and destinations name it. */
export const MAIN_CANVAS = 'main';

/** `canvasLayouts` from `joined` or `room-state`: each canvas id's stage layout, normalised. */
export function normaliseCanvasLayouts(data) {
  const out = {};
  if (!data || typeof data !== 'object') return out;
  for (const [id, sl] of Object.entries(data)) {
    const layout = normaliseStageLayout(sl);
    if (layout) out[id] = layout;
  }
  return out;
}

/**
 * The program's canvases for the studio's canvas tabs: the main one, then the scene's others, each `{id, width,
 * height, label}`; `main` is the program's canvas as the stage knows it.
 */
export function canvasTabs(state) {
  const main = state.stageLayout?.canvas ?? DEFAULT_CANVAS;
  const label = (w, h) => `${w}×${h}`;
  return [
    { id: MAIN_CANVAS, width: main.width, height: main.height, label: `Main · ${label(main.width, main.height)}` },
    ...state.scene.canvases.map((c) => ({ id: c.id, width: c.width, height: c.height, label: `${c.id} · ${label(c.width, c.height)}` })),
  ];
}

/**
 * The scene's canvases with one more beside the main one: the main canvas turned (9:16 for a 16:9 show), named
 * `vertical` (or `vertical-2`…), with the first layout made for vertical canvases the server offers.
 */
export function withVerticalCanvas(state) {
  const main = state.stageLayout?.canvas ?? DEFAULT_CANVAS;
  const taken = new Set(state.scene.canvases.map((c) => c.id));
  let id = 'vertical';
  for (let n = 2; taken.has(id); n++) id = `vertical-${n}`;
  const layout = state.layouts.some((l) => l.id === 'stack') ? 'stack' : state.scene.layout;
  const [width, height] = main.width >= main.height ? [main.height, main.width] : [main.width, main.height];
  return [...state.scene.canvases, { id, width, height, layout }];
}

function overlapping(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/**
 * What the stage draws: the program's canvas and its tiles as fractions of it (`x`, `y`, `w`, `h` in 0..1),
 * each with the studio's label, whether its video is on, whether its speaker is talking, and `layer`: the
 * tile's drawing order (0 at the bottom; higher `z` on top, the server's order among equal `z`). `inset` marks
 * a tile drawn over a lower one (picture-in-picture). No tiles before the program placed anyone.
 */
export function stageTiles(state, canvasId = MAIN_CANVAS) {
  const sl = canvasId === MAIN_CANVAS ? state.stageLayout : (state.canvasLayouts?.[canvasId] ?? null);
  const canvas = sl?.canvas ?? { ...DEFAULT_CANVAS };
  if (!sl) return { canvas, layout: null, tiles: [] };
  const order = sl.tiles.map((t, i) => ({ t, i })).sort((a, b) => a.t.z - b.t.z || a.i - b.i);
  const layerOf = new Map(order.map(({ i }, rank) => [i, rank]));
  // Drawn over a larger tile that is below it: a picture-in-picture inset.
  const isInset = (t, i) =>
    sl.tiles.some((o, j) => layerOf.get(j) < layerOf.get(i) && o.width * o.height > t.width * t.height && overlapping(o, t));
  const tiles = sl.tiles.map((t, i) => {
    // A participant the room does not know (yet) is named as the server names them.
    const p = state.participants[t.participantId];
    const self = t.participantId === state.selfId;
    const name = p ? p.name : t.name;
    const label = !p ? t.name : t.screen ? `${p.name} · screen` : displayName(state, p);
    return {
      source: t.source,
      participantId: t.participantId,
      screen: t.screen,
      self,
      name,
      label,
      x: t.x / canvas.width,
      y: t.y / canvas.height,
      w: t.width / canvas.width,
      h: t.height / canvas.height,
      z: t.z,
      layer: layerOf.get(i),
      inset: isInset(t, i),
      fit: t.fit,
      videoEnabled: t.screen || p?.videoEnabled !== false,
      speaking: !t.screen && (self ? state.selfSpeaking : Boolean(p?.speaking)),
    };
  });
  return { canvas, layout: sl.layout, tiles };
}
