// The studio room's state (studio/js/room-state.js), checked without a browser: protocol events fold into
// plain data without touching the state they were given, and the selectors give the views exactly the
// program's tiles (as canvas fractions), the server's layouts, and the strip's cards.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ICONS, layoutIcon } from '../../studio/js/icons.js';
import {
  apply,
  CHAT_LIMIT,
  DEFAULT_CANVAS,
  displayName,
  DROP_WARNING_STATUSES,
  healthWarnings,
  POOR_WARNING_REPORTS,
  initialState,
  isModerator,
  layoutChoices,
  normaliseClip,
  normaliseOutputStatus,
  normaliseScene,
  normaliseSlate,
  participantList,
  patchParticipant,
  patchScene,
  qualityText,
  setSelfSpeaking,
  shownSlate,
  stageTiles,
  stripItems,
} from '../../studio/js/room-state.js';

const HOST = '0192f1b0-0000-7000-8000-000000000001';
const ADA = '0192f1c4-0000-7000-8000-000000000002';
const BOB = '0192f1c4-0000-7000-8000-000000000003';

const person = (id, name, extra = {}) => ({
  id,
  userId: null,
  name,
  role: 'guest',
  audioEnabled: true,
  videoEnabled: true,
  screenSharing: false,
  speaking: false,
  ...extra,
});

const LAYOUTS = [
  { id: 'solo', name: 'Solo', description: 'Only the active speaker, full screen', plugin: 'layouts' },
  { id: 'grid', name: 'Grid', description: 'Everyone in equal tiles', plugin: 'layouts' },
  { id: 'spotlight', name: 'Spotlight', description: 'The active speaker large', plugin: 'layouts' },
  { id: 'sidebar', name: 'Sidebar', description: 'The active speaker large, others beside', plugin: 'layouts' },
  { id: 'pip', name: 'Picture in picture', description: 'Others in small corner tiles', plugin: 'layouts' },
  { id: 'screen', name: 'Screen share', description: 'The shared screen large', plugin: 'layouts' },
  { id: 'corner-layouts/corner', name: 'Corner', description: 'Everyone in a corner', plugin: 'corner-layouts' },
];

function joinedData(extra = {}) {
  return {
    participantId: HOST,
    role: 'host',
    broadcast: { id: 'b1', title: 'Friday show', status: 'scheduled' },
    participants: [person(ADA, 'Ada')],
    iceServers: [],
    chat: [{ id: 'm1', participantId: ADA, name: 'Ada', text: 'hi', sentAt: '2026-11-29T10:12:16.123Z' }],
    scene: { stage: [ADA], layout: 'grid', overlays: { banner: { text: 'Live', visible: true } } },
    layouts: LAYOUTS,
    stageLayout: null,
    ...extra,
  };
}

/** Freezes a value and everything in it, so any write to a state given to `apply` throws. */
function deepFreeze(v) {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Folds events into a state, freezing each state first: proves `apply` never writes to its input. */
function fold(events, state = initialState(), opts) {
  for (const e of events) state = apply(deepFreeze(state), e, opts);
  return state;
}

const joined = (extra, opts) => fold([{ event: 'joined', data: joinedData(extra) }], initialState(), opts);

const tile = (source, name, x, y, width, height, z = 0, extra = {}) => ({
  source,
  participantId: source.replace(/:screen$/, ''),
  screen: source.endsWith(':screen'),
  name,
  x,
  y,
  width,
  height,
  z,
  fit: source.endsWith(':screen') ? 'contain' : 'cover',
  ...extra,
});

describe('room state: joined', () => {
  it('starts empty: nobody, no layouts, no placements, the default canvas', () => {
    const s = initialState();
    assert.equal(s.selfId, null);
    assert.deepEqual(s.participants, {});
    assert.deepEqual(s.layouts, []);
    assert.equal(s.stageLayout, null);
    assert.deepEqual(stageTiles(s), { canvas: DEFAULT_CANVAS, layout: null, tiles: [] });
  });

  it('takes who we are, the room, the scene, the layouts and the chat from joined', () => {
    const s = joined();
    assert.equal(s.selfId, HOST);
    assert.equal(s.role, 'host');
    assert.ok(isModerator(s));
    assert.equal(s.broadcast.title, 'Friday show');
    assert.deepEqual(Object.keys(s.participants), [ADA, HOST]);
    assert.deepEqual(s.scene.stage, [ADA]);
    assert.equal(s.scene.layout, 'grid');
    assert.deepEqual(s.scene.overlays.banner, { text: 'Live', visible: true });
    assert.deepEqual(s.scene.overlays.lowerThird, { name: '', title: '', visible: false }, 'missing overlays get defaults');
    assert.deepEqual(s.layouts, LAYOUTS);
    assert.equal(s.stageLayout, null);
    assert.deepEqual(s.chat.map((m) => m.id), ['m1']);
  });

  it('adds our own entry when the server lists only the others, with the local devices’ state', () => {
    const s = joined({}, { self: { audioEnabled: false, videoEnabled: true } });
    assert.equal(s.participants[HOST].name, 'You');
    assert.equal(s.participants[HOST].role, 'host');
    assert.equal(s.participants[HOST].audioEnabled, false);
    const listed = joined({ participants: [person(HOST, 'Paula', { role: 'host', audioEnabled: true })] }, { self: { audioEnabled: false } });
    assert.equal(listed.participants[HOST].name, 'Paula', 'the server’s entry wins');
    assert.equal(listed.participants[HOST].audioEnabled, true);
  });

  it('a guest is no moderator', () => {
    assert.equal(isModerator(joined({ role: 'guest' })), false);
    assert.equal(isModerator(joined({ role: 'cohost' })), true);
  });

  it('keeps the server’s layouts in order, drops entries without an id and duplicates, names the nameless', () => {
    const s = joined({ layouts: [{ id: 'grid', name: 'Grid' }, { name: 'no id' }, null, { id: 'grid', name: 'Again' }, { id: 'x/y' }] });
    assert.deepEqual(s.layouts, [
      { id: 'grid', name: 'Grid', description: '', plugin: '' },
      { id: 'x/y', name: 'x/y', description: '', plugin: '' },
    ]);
    assert.deepEqual(joined({ layouts: undefined }).layouts, [], 'a server without the list offers none');
  });

  it('takes the plugins’ overlays from joined: ids are <plugin>/<overlay>, props are names, duplicates dropped', () => {
    const s = joined({
      overlays: [
        { id: 'scoreboard/score', name: 'Score', description: 'The score', props: ['home', 'away', 7], plugin: 'scoreboard' },
        { id: 'banner' },
        { id: 'scoreboard/score', name: 'Again' },
        { id: 'clock/clock' },
      ],
    });
    assert.deepEqual(s.overlayChoices, [
      { id: 'scoreboard/score', name: 'Score', description: 'The score', props: ['home', 'away'], plugin: 'scoreboard' },
      { id: 'clock/clock', name: 'clock/clock', description: '', props: [], plugin: '' },
    ]);
    assert.deepEqual(joined({ overlays: undefined }).overlayChoices, []);
  });

  it('a scene keeps plugin overlays and the ticker, with visible a boolean and props text only', () => {
    const overlays = {
      ticker: { text: 'news', visible: true },
      plugins: { 'scoreboard/score': { visible: true, props: { home: '2', away: 1 } }, 'clock/clock': { visible: 'yes' } },
    };
    const scene = normaliseScene({ overlays });
    assert.deepEqual(scene.overlays.ticker, { text: 'news', visible: true });
    assert.deepEqual(scene.overlays.plugins, {
      'scoreboard/score': { visible: true, props: { home: '2' } },
      'clock/clock': { visible: false, props: {} },
    });
    assert.deepEqual(normaliseScene({}).overlays.plugins, {});
  });

  it('takes the latest placements from joined', () => {
    const stageLayout = { layout: 'grid', canvas: { width: 1280, height: 720 }, tiles: [tile(ADA, 'Ada', 0, 180, 640, 360)] };
    const s = joined({ stageLayout });
    assert.deepEqual(s.stageLayout, stageLayout);
  });

  it('a rejoin replaces the room but keeps the chat already seen', () => {
    let s = joined();
    s = fold([{ event: 'chat-message', data: { id: 'm2', participantId: ADA, name: 'Ada', text: 'still here' } }], s);
    s = fold([{ event: 'joined', data: joinedData({ participants: [person(BOB, 'Bob')], chat: [{ id: 'm1', name: 'Ada', text: 'hi' }] }) }], s);
    assert.deepEqual(Object.keys(s.participants), [BOB, HOST]);
    assert.deepEqual(s.chat.map((m) => m.id), ['m1', 'm2']);
  });
});

describe('room state: events', () => {
  it('people join, change and leave', () => {
    let s = joined();
    s = fold([{ event: 'participant-joined', data: { participant: person(BOB, 'Bob') } }], s);
    assert.deepEqual(participantList(s).map((p) => p.id), [HOST, ADA, BOB], 'ourselves first');
    s = fold([{ event: 'participant-status-updated', data: { participant: { ...person(BOB, 'Bob'), audioEnabled: false, speaking: true } } }], s);
    assert.equal(s.participants[BOB].audioEnabled, false);
    assert.equal(s.participants[BOB].speaking, true);
    s = fold([{ event: 'participant-left', data: { participantId: ADA, reason: 'left' } }], s);
    assert.deepEqual(Object.keys(s.participants), [HOST, BOB]);
    const same = fold([{ event: 'participant-left', data: { participantId: 'nobody' } }], s);
    assert.equal(same, s, 'an unknown leaver changes nothing');
  });

  it('a room-state after a lag replaces who is here, the scene and the stage, and merges the chat', () => {
    let s = joined();
    s = fold([{ event: 'room-state', data: {
      participants: [person(HOST, 'Host'), person(BOB, 'Bob')],
      scene: { stage: [BOB], layout: 'solo', overlays: {} },
      stageLayout: null,
      chat: [{ id: 'c1', participantId: BOB, name: 'Bob', text: 'missed this', sentAt: '2026-11-29T10:12:16.123Z' }],
      skipped: 300,
    } }], s);
    assert.deepEqual(Object.keys(s.participants).sort(), [HOST, BOB].sort(), 'Ada left while we lagged');
    assert.deepEqual(s.scene.stage, [BOB]);
    assert.equal(s.scene.layout, 'solo');
    assert.ok(s.chat.some((m) => m.text === 'missed this'));
  });

  it('chat messages are added once, and only the latest are kept', () => {
    let s = joined();
    const m = { id: 'm2', participantId: ADA, name: 'Ada', text: 'hello' };
    s = fold([{ event: 'chat-message', data: m }], s);
    const again = fold([{ event: 'chat-message', data: m }], s);
    assert.equal(again, s);
    const many = Array.from({ length: CHAT_LIMIT + 10 }, (_, i) => ({ event: 'chat-message', data: { id: `x${i}`, name: 'A', text: String(i) } }));
    s = fold(many, s);
    assert.equal(s.chat.length, CHAT_LIMIT);
    assert.equal(s.chat.at(-1).id, `x${CHAT_LIMIT + 9}`);
  });

  it('the broadcast starts and ends', () => {
    let s = fold([{ event: 'broadcast-started', data: { broadcastId: 'b1', startTime: '2026-11-29T10:15:00Z' } }], joined());
    assert.equal(s.broadcast.status, 'live');
    assert.equal(s.broadcast.startTime, '2026-11-29T10:15:00Z');
    assert.equal(s.broadcast.title, 'Friday show');
    s = fold([{ event: 'broadcast-ended', data: { broadcastId: 'b1', endTime: '2026-11-29T11:15:00Z' } }], s);
    assert.equal(s.broadcast.status, 'ended');
  });

  it('moderation mutes us, or removes us', () => {
    let s = fold([{ event: 'moderated', data: { action: 'mute-audio', byParticipantId: ADA } }], joined({ role: 'guest' }));
    assert.equal(s.participants[HOST].audioEnabled, false);
    s = fold([{ event: 'moderated', data: { action: 'mute-video' } }], s);
    assert.equal(s.participants[HOST].videoEnabled, false);
    assert.equal(s.removed, false);
    s = fold([{ event: 'moderated', data: { action: 'remove' } }], s);
    assert.equal(s.removed, true);
  });

  it('the scene follows scene-updated, and a stored `screen-share` is the `screen` layout', () => {
    let s = fold([{ event: 'scene-updated', data: { scene: { stage: [ADA, HOST], layout: 'spotlight', overlays: {} } } }], joined());
    assert.deepEqual(s.scene.stage, [ADA, HOST]);
    assert.equal(s.scene.layout, 'spotlight');
    assert.equal(s.scene.overlays.banner.visible, false);
    s = fold([{ event: 'scene-updated', data: { scene: { stage: [], layout: 'screen-share' } } }], s);
    assert.equal(s.scene.layout, 'screen');
    assert.deepEqual(normaliseScene(undefined), normaliseScene({ layout: 'grid' }));
  });

  it('the canvases beside the main one are kept through a scene change made here, so it never drops them', () => {
    const canvases = [{ id: 'vertical', width: 720, height: 1280, layout: 'stack' }];
    const scene = normaliseScene({ canvases: [...canvases, { id: 'odd' }, null, { id: 'no-layout', width: 320, height: 320 }] });
    assert.deepEqual(scene.canvases, [...canvases, { id: 'no-layout', width: 320, height: 320, layout: 'grid' }]);
    assert.deepEqual(patchScene({ scene }, { layout: 'solo' }).scene.canvases, scene.canvases);
    assert.deepEqual(normaliseScene({}).canvases, []);
    // A canvas with overlays of its own keeps them, normalised as the main canvas's are.
    const own = normaliseScene({ canvases: [{ ...canvases[0], overlays: { banner: { text: 'Tall', visible: true } } }] }).canvases[0];
    assert.equal(own.overlays.banner.text, 'Tall');
    assert.deepEqual(own.overlays.lowerThird, normaliseScene({}).overlays.lowerThird);
  });

  it('a slate is kept from the scene; live with nobody on stage the studio shows "Be right back" as the program does', () => {
    assert.deepEqual(normaliseSlate({ kind: 'starting', text: 'At noon' }), { kind: 'starting', text: 'At noon' });
    assert.deepEqual(normaliseSlate({ kind: 'brb' }), { kind: 'brb', text: '' });
    for (const bad of [null, 'brb', { kind: 'party' }, { text: 'x' }]) assert.equal(normaliseSlate(bad), null, JSON.stringify(bad));
    let s = joined();
    assert.equal(shownSlate(s), null, 'not live, nobody on stage: no slate');
    s = fold([{ event: 'scene-updated', data: { scene: { stage: [], layout: 'grid', slate: { kind: 'ending', text: 'Bye' } } } }], s);
    assert.deepEqual(shownSlate(s), { kind: 'ending', title: 'Thanks for watching', text: 'Bye', image: null });
    s = fold([{ event: 'scene-updated', data: { scene: { stage: [], layout: 'grid' } } }, { event: 'broadcast-started', data: { status: 'live' } }], s);
    assert.equal(s.broadcast.status, 'live');
    assert.deepEqual(shownSlate(s), { kind: 'brb', title: 'Be right back', text: '', image: null });
    assert.equal(shownSlate(s, { programOnAir: false }), null, 'live from an encoder: the program is not on air');
    // The host's picture goes behind every slate, the automatic one too, and other edits send it on.
    const picture = `/api/uploads/${'cd'.repeat(32)}`;
    s = patchScene(s, { slateImage: picture });
    assert.equal(shownSlate(s).image, picture);
    s = patchScene(s, { layout: 'solo' });
    assert.equal(s.scene.slateImage, picture, 'a layout change keeps the picture');
    s = fold([{ event: 'stage-layout', data: { layout: 'grid', canvas: { width: 1280, height: 720 }, tiles: [tile(ADA, 'Ada', 0, 0, 1280, 720)] } }], s);
    assert.equal(shownSlate(s), null, 'someone on stage');
  });

  it('a playing clip is kept from the scene (other edits send it on) and no slate shows over it', () => {
    const clip = { url: `/api/uploads/${'ab'.repeat(32)}`, name: 'Intro', mode: 'tile' };
    assert.deepEqual(normaliseClip(clip), clip);
    assert.deepEqual(normaliseClip({ url: clip.url }), { url: clip.url, name: '', mode: 'full' });
    for (const bad of [null, 'x', { name: 'no url' }, { url: '' }]) assert.equal(normaliseClip(bad), null, JSON.stringify(bad));
    let s = fold([{ event: 'broadcast-started', data: { status: 'live' } }], joined());
    s = fold([{ event: 'scene-updated', data: { scene: { stage: [], layout: 'grid', clip, slate: { kind: 'brb' } } } }], s);
    assert.deepEqual(s.scene.clip, clip);
    assert.equal(shownSlate(s), null, 'the clip is the program');
    s = patchScene(s, { layout: 'solo' });
    assert.deepEqual(s.scene.clip, clip, 'a layout change keeps the clip playing');
  });

  it('stage-layout replaces the placements, with every field filled in', () => {
    const s = fold(
      [
        {
          event: 'stage-layout',
          data: {
            layout: 'corner-layouts/corner',
            canvas: { width: 1080, height: 1920 },
            tiles: [
              { source: ADA, participantId: ADA, screen: false, name: 'Ada', x: 10, y: 20, width: 300, height: 400, z: 2, fit: 'cover' },
              { source: `${ADA}:screen`, x: 0, y: 0, width: 1080, height: 600 },
              { participantId: BOB, x: 0, y: 0, width: 10, height: 10 },
            ],
          },
        },
      ],
      joined(),
    );
    assert.equal(s.stageLayout.layout, 'corner-layouts/corner');
    assert.deepEqual(s.stageLayout.canvas, { width: 1080, height: 1920 });
    assert.deepEqual(s.stageLayout.tiles, [
      { source: ADA, participantId: ADA, screen: false, name: 'Ada', x: 10, y: 20, width: 300, height: 400, z: 2, fit: 'cover' },
      { source: `${ADA}:screen`, participantId: ADA, screen: true, name: '', x: 0, y: 0, width: 1080, height: 600, z: 0, fit: 'cover' },
    ]);
    const bad = fold([{ event: 'stage-layout', data: { layout: 'grid', canvas: { width: 0 }, tiles: 'no' } }], s);
    assert.deepEqual(bad.stageLayout, { layout: 'grid', canvas: DEFAULT_CANVAS, tiles: [] });
  });

  it('destination-status: destinations by destinationId, the recording apart, in the documented shape', () => {
    const live = {
      id: 'd1',
      destinationId: 'd1',
      kind: 'destination',
      target: 'rtmp://a.rtmp.youtube.com/live2/••••',
      state: 'live',
      bitrateKbps: 2980,
      droppedFrames: 0,
      uptimeSecs: 42,
      connects: 1,
    };
    let s = fold([{ event: 'destination-status', data: live }], joined());
    assert.deepEqual(s.outputs.destinations.d1, {
      ...live,
      reason: undefined,
      attempt: undefined,
      retryInMs: undefined,
      statusesSinceDrop: null,
    });
    s = fold(
      [{ event: 'destination-status', data: { id: 'd1', destinationId: 'd1', kind: 'destination', state: 'reconnecting', reason: 'refused', attempt: 2, retryInMs: 1000 } }],
      s,
    );
    assert.equal(s.outputs.destinations.d1.state, 'reconnecting');
    assert.equal(s.outputs.destinations.d1.reason, 'refused');
    assert.equal(s.outputs.destinations.d1.retryInMs, 1000);
    s = fold([{ event: 'destination-status', data: { id: 'recording', kind: 'recording', state: 'live', uptimeSecs: 5 } }], s);
    assert.equal(s.outputs.recording.state, 'live');
    assert.equal(s.outputs.recording.destinationId, undefined);
    assert.deepEqual(Object.keys(s.outputs.destinations), ['d1'], 'the recording is no destination');
    s = fold([{ event: 'destination-status', data: { id: 'hls', kind: 'hls', target: 'hls', state: 'live' } }], s);
    assert.equal(s.outputs.hls.state, 'live');
    assert.deepEqual(Object.keys(s.outputs.destinations), ['d1'], "the viewers' stream is no destination");
  });

  it('destination-status reads `state`, not a `status` field', () => {
    const s = normaliseOutputStatus({ id: 'd1', destinationId: 'd1', kind: 'destination', status: 'live', bitrate: 3000000 });
    assert.equal(s.state, 'idle');
    assert.equal(s.bitrateKbps, undefined);
  });

  it('connection-quality is kept per participant and forgotten when they leave', () => {
    const q = { participantId: ADA, grade: 'fair', rttMs: 48, downlinkLoss: 0.03, uplinkLoss: 0, jitterMs: 4, downlinkKbps: 610, layers: [2, 3] };
    let s = fold([{ event: 'connection-quality', data: q }], joined());
    assert.equal(s.quality[ADA].grade, 'fair');
    assert.equal(qualityText(s.quality[ADA]), 'Fair connection: 48 ms round trip, 3.0 % loss, 4 ms jitter, 610 kbit/s to them, camera 2 of 3 layers');
    assert.equal(qualityText(undefined), 'Connection: not measured yet');
    assert.equal(fold([{ event: 'connection-quality', data: { ...q, grade: 'superb' } }], s), s, 'an unknown grade is ignored');
    s = fold([{ event: 'participant-left', data: { participantId: ADA, reason: 'left' } }], s);
    assert.equal(s.quality[ADA], undefined);
  });

  it('program-status is kept as sent', () => {
    const data = { state: 'running', fps: 30, onStage: [ADA], stats: { ticks: 900 } };
    assert.deepEqual(fold([{ event: 'program-status', data }], joined()).program, data);
  });

  it('health: a starved program and a destination dropping frames warn the hosts, and the warnings clear', () => {
    const ok = { state: 'running', fps: 30, targetFps: 30, skipped: 0, health: 'ok', onStage: [], stats: {} };
    let s = fold([{ event: 'program-status', data: ok }], joined());
    assert.deepEqual(healthWarnings(s), []);
    s = fold([{ event: 'program-status', data: { ...ok, fps: 12.4, skipped: 35, health: 'starved' } }], s);
    const [starved] = healthWarnings(s);
    assert.equal(starved.id, 'program');
    assert.match(starved.text, /12 of 30 fps/);
    assert.deepEqual(healthWarnings(fold([{ event: 'program-status', data: ok }], s)), [], 'ok again: no warning');

    const status = (droppedFrames, state = 'live') => ({ event: 'destination-status', data: { id: 'd1', destinationId: 'd1', kind: 'destination', state, droppedFrames } });
    s = fold([status(0), status(0)], joined());
    assert.equal(s.outputs.destinations.d1.statusesSinceDrop, null, 'never dropped');
    assert.deepEqual(healthWarnings(s), []);
    s = fold([status(4)], s);
    assert.deepEqual(healthWarnings(s, { d1: 'My YouTube' }).map((w) => [w.id, w.text.split(' is ')[0]]), [['destination:d1', 'My YouTube']]);
    assert.match(healthWarnings(s)[0].text, /^A destination is dropping frames \(4 so far\)/, 'unnamed: still said');
    // A few statuses without a new drop keep the warning (no blinking), then it clears.
    for (let i = 1; i < DROP_WARNING_STATUSES; i++) {
      s = fold([status(4)], s);
      assert.equal(healthWarnings(s).length, 1, `${i} status(es) after the drop`);
    }
    s = fold([status(4)], s);
    assert.deepEqual(healthWarnings(s), []);
    assert.deepEqual(healthWarnings(fold([status(9, 'reconnecting')], s)), [], 'a destination that is not live warns in its own row');
  });

  it('health: a participant whose link stays poor warns the hosts, and one bad second does not', () => {
    const report = (grade) => ({ event: 'connection-quality', data: { participantId: ADA, grade, rttMs: 420, downlinkLoss: 0.12, uplinkLoss: 0.01, downlinkKbps: 140 } });
    let s = joined();
    for (let i = 1; i < POOR_WARNING_REPORTS; i++) {
      s = fold([report('poor')], s);
      assert.deepEqual(healthWarnings(s), [], `${i} poor report(s)`);
    }
    s = fold([report('poor')], s);
    const [warning] = healthWarnings(s);
    assert.equal(warning.id, `connection:${ADA}`);
    assert.match(warning.text, /^Ada’s connection is poor: their picture may freeze/);
    assert.deepEqual(healthWarnings(fold([report('poor')], s)), [warning], 'the same words while it lasts');
    s = fold([report('fair')], s);
    assert.deepEqual(healthWarnings(s), [], 'better: the warning goes');
    assert.deepEqual(healthWarnings(fold([report('poor'), report('good'), report('poor')], s)), [], 'not in a row');
    assert.deepEqual(healthWarnings(fold([report('poor'), report('poor'), report('poor')], joined({ role: 'guest' }))), [], 'guests are not told');
  });

  it('health: guests are not told about the program or the destinations', () => {
    const guest = joined({ role: 'guest' });
    const s = fold([{ event: 'program-status', data: { state: 'running', fps: 5, targetFps: 30, skipped: 50, health: 'starved' } }], guest);
    assert.deepEqual(healthWarnings(s), []);
  });

  it('events it does not know leave the state alone', () => {
    const s = joined();
    assert.equal(apply(s, { event: 'webrtc-offer', data: { sdp: 'v=0' } }), s);
    assert.equal(apply(s, { event: 'something-new', data: {} }), s);
  });
});

describe('room state: local changes', () => {
  it('our own mic, camera and screen show before the server echoes them', () => {
    const s = joined();
    const next = patchParticipant(deepFreeze(s), HOST, { audioEnabled: false, screenSharing: true });
    assert.equal(next.participants[HOST].audioEnabled, false);
    assert.equal(next.participants[HOST].screenSharing, true);
    assert.equal(patchParticipant(s, 'nobody', { audioEnabled: false }), s);
  });

  it('a scene change shows at once', () => {
    const s = patchScene(deepFreeze(joined()), { layout: 'corner-layouts/corner' });
    assert.equal(s.scene.layout, 'corner-layouts/corner');
    assert.deepEqual(s.scene.stage, [ADA]);
    assert.equal(s.scene.overlays.banner.visible, true);
  });

  it('quick scene edits: echoes of our older updates do not undo a newer one; a refused one is answered too', () => {
    let s = joined();
    s = patchScene(deepFreeze(s), { stage: [ADA] });
    s = patchScene(deepFreeze(s), { stage: [ADA, HOST] });
    assert.equal(s.pendingScenes, 2);
    const echo = (stage) => ({ event: 'scene-updated', data: { scene: { stage, layout: 'grid' } } });
    s = fold([echo([ADA])], s);
    assert.deepEqual(s.scene.stage, [ADA, HOST], 'the first echo does not undo the second edit');
    s = fold([echo([ADA, HOST])], s);
    assert.deepEqual([s.scene.stage, s.pendingScenes], [[ADA, HOST], 0]);
    s = fold([echo([HOST])], s);
    assert.deepEqual(s.scene.stage, [HOST], 'with nothing of ours pending, another host’s edit shows');
    s = patchScene(patchScene(s, { layout: 'disco' }), { layout: 'solo' });
    s = fold([{ event: 'error', data: { code: 'invalid_field', field: 'layout', event: 'scene-update' } }, echo([HOST])], s);
    assert.equal(s.pendingScenes, 0);
    assert.equal(fold([{ event: 'error', data: { code: 'rate_limited', event: 'chat-message' } }], s), s, 'other errors change nothing');
  });

  it('joined: our own card has the name the room knows us by', () => {
    const s = joined({ self: person(HOST, 'Stella', { role: 'host', audioEnabled: false }) }, { self: { audioEnabled: false } });
    assert.equal(s.participants[HOST].name, 'Stella');
    assert.equal(joined().participants[HOST].name, 'You', 'an older server without `self`: a placeholder');
  });

  it('our speaking flag changes only when it flips', () => {
    const s = joined();
    assert.equal(setSelfSpeaking(s, false), s);
    assert.equal(setSelfSpeaking(s, true).selfSpeaking, true);
  });
});

describe('room state: what the views draw', () => {
  const withTiles = (tiles, canvas = { width: 1280, height: 720 }, extra = {}) =>
    fold([{ event: 'stage-layout', data: { layout: 'grid', canvas, tiles } }], joined(extra));

  it('the stage draws the program’s tiles as fractions of its canvas, nothing of its own', () => {
    const s = withTiles([tile(ADA, 'Ada', 0, 180, 640, 360), tile(HOST, 'Host', 640, 180, 640, 360)]);
    const view = stageTiles(s);
    assert.deepEqual(view.canvas, { width: 1280, height: 720 });
    assert.equal(view.layout, 'grid');
    assert.deepEqual(
      view.tiles.map(({ source, x, y, w, h, fit }) => ({ source, x, y, w, h, fit })),
      [
        { source: ADA, x: 0, y: 0.25, w: 0.5, h: 0.5, fit: 'cover' },
        { source: HOST, x: 0.5, y: 0.25, w: 0.5, h: 0.5, fit: 'cover' },
      ],
    );
  });

  it('a tile on stage that the scene does not list is drawn anyway: the program is what goes on air', () => {
    const s = withTiles([tile(BOB, 'Bob', 0, 0, 1280, 720)]);
    const [t] = stageTiles(s).tiles;
    assert.equal(t.source, BOB);
    assert.equal(t.label, 'Bob', 'an unknown participant is named as the server names them');
    assert.equal(t.videoEnabled, true);
  });

  it('labels: ours says (you), a screen says so, names follow the participant', () => {
    const s = withTiles([
      tile(HOST, 'Host', 0, 0, 640, 360),
      tile(ADA, 'Ada', 640, 0, 640, 360),
      tile(`${ADA}:screen`, 'Ada (screen)', 0, 360, 1280, 360),
    ], undefined, { participants: [person(ADA, 'Ada Lovelace'), person(HOST, 'Paula', { role: 'host' })] });
    assert.deepEqual(
      stageTiles(s).tiles.map((t) => [t.label, t.self, t.screen]),
      [
        ['Paula (you)', true, false],
        ['Ada Lovelace', false, false],
        ['Ada Lovelace · screen', false, true],
      ],
    );
    assert.equal(displayName(s, s.participants[HOST]), 'Paula (you)');
  });

  it('drawing order follows z, then the server’s order; a small tile over a big one is an inset', () => {
    const s = withTiles([
      tile(BOB, 'Bob', 1000, 560, 240, 135, 2),
      tile(ADA, 'Ada', 0, 0, 1280, 720, 0),
      tile(HOST, 'Host', 740, 560, 240, 135, 1),
      tile(`${ADA}:screen`, 'Ada (screen)', 20, 20, 200, 100, 1),
    ]);
    const byId = Object.fromEntries(stageTiles(s).tiles.map((t) => [t.source, t]));
    assert.equal(byId[ADA].layer, 0);
    assert.equal(byId[HOST].layer, 1);
    assert.equal(byId[`${ADA}:screen`].layer, 2);
    assert.equal(byId[BOB].layer, 3);
    assert.equal(byId[ADA].inset, false);
    assert.equal(byId[HOST].inset, true);
    assert.equal(byId[BOB].inset, true);
    assert.equal(byId[`${ADA}:screen`].fit, 'contain');
  });

  it('side-by-side tiles are no insets', () => {
    const s = withTiles([tile(ADA, 'Ada', 16, 16, 900, 506, 0), tile(HOST, 'Host', 924, 16, 340, 191, 1)]);
    assert.ok(stageTiles(s).tiles.every((t) => !t.inset));
  });

  it('a camera that is off shows the avatar; who speaks rings (ours from the local meter)', () => {
    let s = withTiles([tile(ADA, 'Ada', 0, 0, 640, 360), tile(HOST, 'Host', 640, 0, 640, 360), tile(`${ADA}:screen`, 'Ada (screen)', 0, 360, 640, 360)]);
    s = fold([{ event: 'participant-status-updated', data: { participant: person(ADA, 'Ada', { videoEnabled: false, speaking: true }) } }], s);
    s = setSelfSpeaking(s, true);
    const [ada, host, screen] = stageTiles(s).tiles;
    assert.equal(ada.videoEnabled, false);
    assert.equal(ada.speaking, true);
    assert.equal(host.speaking, true);
    assert.equal(screen.videoEnabled, true, 'a screen has no camera switch');
    assert.equal(screen.speaking, false);
  });

  it('a portrait canvas keeps its own shape', () => {
    const s = withTiles([tile(ADA, 'Ada', 0, 0, 720, 1280)], { width: 720, height: 1280 });
    const view = stageTiles(s);
    assert.deepEqual(view.canvas, { width: 720, height: 1280 });
    assert.deepEqual([view.tiles[0].w, view.tiles[0].h], [1, 1]);
  });

  it('an empty program has no tiles', () => {
    assert.deepEqual(withTiles([]).stageLayout.tiles, []);
    assert.deepEqual(stageTiles(withTiles([])).tiles, []);
  });

  it('the layout toolbar is the server’s list, the scene’s layout active', () => {
    const s = patchScene(joined(), { layout: 'corner-layouts/corner' });
    const choices = layoutChoices(s);
    assert.deepEqual(choices.map((l) => l.id), LAYOUTS.map((l) => l.id));
    assert.deepEqual(choices.filter((l) => l.active).map((l) => l.id), ['corner-layouts/corner']);
    assert.equal(choices[1].description, 'Everyone in equal tiles');
  });

  it('first-party layouts keep their icons; any other layout gets the generic one', () => {
    assert.equal(layoutIcon('grid'), ICONS.layoutGrid);
    assert.equal(layoutIcon('screen'), ICONS.layoutScreen);
    assert.equal(layoutIcon('pip'), ICONS.layoutPip);
    assert.equal(layoutIcon('corner-layouts/corner'), ICONS.layoutOther);
    assert.equal(layoutIcon('toString'), ICONS.layoutOther);
  });

  it('the strip: ourselves first, each camera, and a screen card while a share is there to show', () => {
    let s = joined();
    s = fold([{ event: 'participant-status-updated', data: { participant: person(ADA, 'Ada', { screenSharing: true }) } }], s);
    assert.deepEqual(
      stripItems(s, () => true).map((i) => i.key),
      [HOST, HOST + ':screen', ADA, `${ADA}:screen`],
    );
    assert.deepEqual(
      stripItems(s, (id) => id === ADA).map((i) => i.key),
      [HOST, ADA, `${ADA}:screen`],
    );
    assert.deepEqual(
      stripItems(s, () => false).map((i) => i.key),
      [HOST, ADA],
      'a share whose picture has not arrived yet has no card',
    );
  });
});
