// The host's stage is what goes on air. A host and two guests in three Chromium processes, each with its own
// two-colour fake camera; the host puts 1, then 3 people on stage and, for every layout the server offers in
// `joined.layouts`, the tiles the studio draws on its stage (`[data-source]` elements, measured relative to
// the stage element as fractions of it) match the program's tiles from the server's latest `stage-layout`
// event within 2 % of the canvas, and the composed program (`GET /api/broadcasts/{id}/program.jpg`, decoded
// in the page with an <img> and a canvas) shows each camera tile's owner's colours where that tile is. Then a
// guest shares her screen and every layout is checked again. Last, three more guests join from one more
// Chromium process (a context each, one shared small clip: six processes would be too heavy for a 2-core machine)
// and every layout is checked with six on stage.
//
// The first three mute their microphones first: the fake microphone beeps, and a changing active speaker would
// move tiles in the speaker-led layouts while they are measured. The last three join with a silent fake
// microphone instead, so their busy process is never asked for a click. Only the host's page shows video: the
// others hide theirs, so the server sends them none (adaptive video) and nothing but the host decodes it.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, hostWithInvite, closeAll, joinAsGuest, launchCrowd, launchParticipant, makeClip, makeClips, makeSilence, near, recordSignaling, rgb, sampleProgram, screenshot, showNoVideo, waitOnStage } from '../lib/harness.mjs';

const PEOPLE = {
  host: { name: 'Stella Host', left: 'c83232', right: '3232c8' },
  ada: { name: 'Ada Guest', left: '32c832', right: 'c8c832' },
  bob: { name: 'Bob Guest', left: 'c832c8', right: '32c8c8' },
};
/** The three guests who join last share one Chromium process and so one camera clip. */
const CROWD = { names: ['Cat Guest', 'Dan Guest', 'Eve Guest'], left: 'c89632', right: '6432c8' };
/** How far a stage tile's edges may be from the program's, as a fraction of the canvas. */
const GEOMETRY_TOLERANCE = 0.02;
/** The program scales, composes and JPEG-encodes a VP8 picture: a little more than the SFU tests allow. */
const COLOUR_TOLERANCE = 40;
const MEDIA_MS = 45000;
/**
 * Small, slow fake cameras: every page decodes everyone else's video, and with six people that is 30 decoders
 * on two cores. Half a tile's width is still many pixels for the colour checks.
 */
const CLIP = { width: 320, height: 180, fps: 15 };
/** How long one of the three crowd guests may take to join (their process is the busiest on the machine). */
const CROWD_JOIN_MS = 60000;

/** The latest placements the server sent, or null. */
const latestLayout = (rec) => rec.stageLayouts.at(-1) ?? null;

/** Every `[data-source]` tile on the studio's stage, as fractions of the stage element, plus the stage's shape. */
async function stageRects(page) {
  return page.evaluate(() => {
    const stage = document.querySelector('[data-role=stage]');
    if (!stage) return null;
    const s = stage.getBoundingClientRect();
    const tiles = [...stage.querySelectorAll('[data-source]')].map((el) => {
      const r = el.getBoundingClientRect();
      return {
        source: el.dataset.source,
        fit: el.dataset.fit,
        x: (r.left - s.left) / s.width,
        y: (r.top - s.top) / s.height,
        w: r.width / s.width,
        h: r.height / s.height,
      };
    });
    return { aspect: s.width / s.height, tiles };
  });
}

/** Is the canvas point (fractions) inside tile `t` (a `stage-layout` tile, pixels on `canvas`)? */
function inside(t, canvas, [fx, fy]) {
  const x = fx * canvas.width;
  const y = fy * canvas.height;
  return x >= t.x && x <= t.x + t.width && y >= t.y && y <= t.y + t.height;
}

/**
 * Checks one moment: the host's stage shows exactly the tiles of the latest `stage-layout` (same sources,
 * same fit, rectangles within the tolerance), and program.jpg shows each visible camera tile's owner.
 * Returns a description of the first mismatch, or null when everything matches.
 */
async function compare(host, rec, broadcastId, { layout, expect }) {
  const sl = latestLayout(rec);
  if (!sl) return 'no stage-layout yet';
  if (sl.layout !== layout) return `the latest stage-layout is for ${sl.layout}, not ${layout}`;
  const problem = expect(sl);
  if (problem) return problem;
  const { canvas } = sl;
  const view = await stageRects(host.page);
  if (!view) return 'no stage on the host’s page';
  const wantAspect = canvas.width / canvas.height;
  if (Math.abs(view.aspect - wantAspect) / wantAspect > GEOMETRY_TOLERANCE) return `stage aspect ${view.aspect}, canvas ${wantAspect}`;
  const drawn = new Map(view.tiles.map((t) => [t.source, t]));
  if (drawn.size !== sl.tiles.length || sl.tiles.some((t) => !drawn.has(t.source))) {
    return `stage shows ${JSON.stringify([...drawn.keys()])}, the program ${JSON.stringify(sl.tiles.map((t) => t.source))}`;
  }
  for (const t of sl.tiles) {
    const d = drawn.get(t.source);
    const want = { x: t.x / canvas.width, y: t.y / canvas.height, w: t.width / canvas.width, h: t.height / canvas.height };
    for (const k of ['x', 'y', 'w', 'h']) {
      if (Math.abs(d[k] - want[k]) > GEOMETRY_TOLERANCE) return `${t.source} ${k}: stage ${d[k].toFixed(3)}, program ${want[k].toFixed(3)}`;
    }
    if (d.fit !== t.fit) return `${t.source} fit: stage ${d.fit}, program ${t.fit}`;
  }

  // Each camera tile: a point a third in from either side at mid-height shows that half of the owner's clip
  // (a cover crop is centred, so the halves stay on their sides), unless a tile above covers the point.
  const checks = [];
  for (const t of sl.tiles) {
    if (t.screen) continue;
    const who = Object.values(PEOPLE).find((p) => p.id === t.participantId);
    if (!who) return `a tile for ${t.participantId}, who is none of the test's people`;
    const above = sl.tiles.filter((o) => o !== t && (o.z > t.z || (o.z === t.z && sl.tiles.indexOf(o) > sl.tiles.indexOf(t))));
    for (const [side, fx] of [['left', 0.3], ['right', 0.7]]) {
      const point = [(t.x + fx * t.width) / canvas.width, (t.y + 0.5 * t.height) / canvas.height];
      if (above.some((o) => inside(o, canvas, point))) continue;
      checks.push({ who, side, point });
    }
  }
  const program = await sampleProgram(host.page, broadcastId, checks.map((c) => c.point));
  if (program.error) return program.error;
  if (Math.abs(program.width / program.height - wantAspect) / wantAspect > GEOMETRY_TOLERANCE) {
    return `program.jpg is ${program.width}x${program.height}, the canvas ${canvas.width}x${canvas.height}`;
  }
  for (const [i, c] of checks.entries()) {
    const want = rgb(c.who[c.side]);
    if (!near(program.colours[i], want, COLOUR_TOLERANCE)) {
      return `program.jpg at ${c.point.map((v) => v.toFixed(3))} is ${program.colours[i]}, want ${c.who.name}'s ${c.side} #${c.who[c.side]}`;
    }
  }
  return null;
}

/** Puts exactly `ids` on stage from the host's strip, and waits until the server's scene says so. */
async function setStage(page, ids) {
  for (const card of await page.locator('.participant-card[data-kind=camera]').all()) {
    const id = await card.getAttribute('data-participant-id');
    const on = (await card.getAttribute('data-on-stage')) === 'true';
    if (on !== ids.includes(id)) await card.locator('[data-action=toggle-stage]').click();
  }
  return waitOnStage(page, ids);
}

describe('the host’s stage is the program', { timeout: 600000 }, () => {
  const base = backyardUrl();
  let clipDir;
  const p = {};
  let rec;
  let broadcastId;
  let link;

  before(async () => {
    clipDir = await makeClips(PEOPLE, CLIP);
  });

  after(() => closeAll(p, clipDir));

  it('a host and two guests are in the studio, microphones off', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    rec = recordSignaling(p.host.page);
    link = await hostWithInvite(p.host.page, {
      base,
      name: PEOPLE.host.name,
      email: `stage-${Date.now()}@example.test`,
      title: 'E2E stage',
    });
    broadcastId = decodeURIComponent(new URL(p.host.page.url()).hash.split('/studio/')[1] ?? '');
    assert.ok(broadcastId, `the studio's address names the broadcast: ${p.host.page.url()}`);
    for (const key of ['ada', 'bob']) {
      p[key] = await launchParticipant(key, { clip: PEOPLE[key].clip });
      await joinAsGuest(p[key], link, PEOPLE[key].name);
      await showNoVideo(p[key].page);
    }
    const names = () => [...rec.names.values()];
    await eventually('the host knows both guests', async () => (names().includes(PEOPLE.ada.name) && names().includes(PEOPLE.bob.name) ? names() : false), 15000);
    PEOPLE.host.id = rec.joined.participantId;
    for (const key of ['ada', 'bob']) {
      PEOPLE[key].id = [...rec.names].find(([, name]) => name === PEOPLE[key].name)?.[0];
      assert.ok(PEOPLE[key].id, `${PEOPLE[key].name} has a participant id`);
    }
    for (const x of [p.host, p.ada, p.bob]) {
      await x.page.click('[data-action=toggle-mic]');
      assert.equal(await x.page.getAttribute('[data-action=toggle-mic]', 'aria-pressed'), 'true', `${x.name}'s microphone is off`);
    }
  });

  it('the layout toolbar is the server’s list of layouts', async () => {
    const layouts = rec.joined.layouts;
    assert.ok(Array.isArray(layouts) && layouts.length > 0, 'joined lists the layouts');
    for (const id of ['grid', 'solo', 'spotlight', 'sidebar', 'pip', 'screen']) {
      assert.ok(layouts.some((l) => l.id === id), `the first-party ${id} layout is offered`);
    }
    const buttons = await p.host.page.locator('.layout-bar [data-layout]').evaluateAll((els) => els.map((e) => ({ id: e.dataset.layout, title: e.title })));
    assert.deepEqual(
      buttons.map((b) => b.id),
      layouts.map((l) => l.id),
    );
    for (const [i, l] of layouts.entries()) assert.equal(buttons[i].title, l.description || l.name);
    assert.equal(await p.host.page.locator('[data-role=stage] [data-source]').count(), 0, 'nobody on stage yet');
  });

  /** Every layout the server offers, with `ids` on stage; `screens` are the sources of the screens shared. */
  async function everyLayout(ids, screens = []) {
    for (const { id: layout } of rec.joined.layouts) {
      // No waiting for navigations after the click: a busy page can take long to say it has none.
      await p.host.page.click(`.layout-bar [data-layout="${layout}"]`, { noWaitAfter: true });
      const expect = (sl) => {
        const wanted = new Set([...ids, ...screens]);
        const stray = sl.tiles.find((t) => !wanted.has(t.source));
        if (stray) return `${stray.source} is placed but not on stage`;
        if (!sl.tiles.length) return 'nobody placed';
        // The grid shows everyone on stage; every other layout picks from them as it likes.
        if (layout === 'grid' && sl.tiles.length !== wanted.size) return `grid places ${sl.tiles.length} of ${wanted.size}`;
        return null;
      };
      await eventually(
        `${layout} with ${ids.length} on stage${screens.length ? ' and a screen' : ''}: the stage matches the program`,
        async () => {
          const problem = await compare(p.host, rec, broadcastId, { layout, expect });
          return problem === null ? true : { problem };
        },
        MEDIA_MS,
        500,
      );
      if (ids.length > 1) await screenshot(p.host.page, `stage-${ids.length}${screens.length ? '-screen' : ''}-${layout.replace('/', '_')}`);
    }
  }

  it('one on stage: every layout', async () => {
    await setStage(p.host.page, [PEOPLE.host.id]);
    await everyLayout([PEOPLE.host.id]);
  });

  it('three on stage: every layout', async () => {
    await setStage(p.host.page, [PEOPLE.host.id, PEOPLE.ada.id, PEOPLE.bob.id]);
    await everyLayout([PEOPLE.host.id, PEOPLE.ada.id, PEOPLE.bob.id]);
  });

  it('three on stage and a screen share: every layout', async () => {
    await p.ada.page.click('[data-action=share-screen]');
    const screen = `${PEOPLE.ada.id}:screen`;
    await eventually('the program places Ada’s screen', async () => latestLayout(rec)?.tiles.some((t) => t.source === screen && t.screen), 30000);
    await everyLayout([PEOPLE.host.id, PEOPLE.ada.id, PEOPLE.bob.id], [screen]);
    await p.host.page.click('.layout-bar [data-layout="screen"]');
    await eventually('the screen layout makes the screen the largest tile, letterboxed', async () => {
      const now = latestLayout(rec);
      if (now?.layout !== 'screen') return false;
      const big = now.tiles.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
      return big.source === screen && big.fit === 'contain' ? big : false;
    }, 15000);
    await p.ada.page.click('[data-action=share-screen]');
    await eventually('the screen leaves the program and the stage', async () => {
      const gone = !latestLayout(rec)?.tiles.some((t) => t.source === screen);
      return gone && (await p.host.page.locator(`[data-role=stage] [data-source="${screen}"]`).count()) === 0;
    }, 15000);
  });

  it('six on stage: every layout', async () => {
    const clip = await makeClip(clipDir, 'crowd', CROWD.left, CROWD.right, CLIP);
    const audio = await makeSilence(clipDir);
    const crowd = await launchCrowd('crowd', CROWD.names.length, { clip, audio });
    const names = () => [...rec.names.values()];
    // One at a time, each known to the host before the next starts, so their page loads do not pile up.
    for (const [i, x] of crowd.entries()) {
      p[x.name] = x;
      const t0 = Date.now();
      await joinAsGuest(x, link, CROWD.names[i], { ms: CROWD_JOIN_MS });
      await showNoVideo(x.page);
      await eventually(`the host knows ${CROWD.names[i]}`, async () => (names().includes(CROWD.names[i]) ? names() : false), CROWD_JOIN_MS);
      console.log(`${CROWD.names[i]} joined and is known to the host after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    for (const [i, name] of CROWD.names.entries()) {
      const id = [...rec.names].find(([, n]) => n === name)?.[0];
      assert.ok(id, `${name} has a participant id`);
      PEOPLE[`crowd${i}`] = { name, left: CROWD.left, right: CROWD.right, id };
    }
    const six = Object.values(PEOPLE).map((who) => who.id);
    assert.equal(six.length, 6);
    await setStage(p.host.page, six);
    await everyLayout(six);
  });

  it('nobody on stage: the stage is empty again', async () => {
    await setStage(p.host.page, []);
    await eventually('no tiles on the stage, the empty-stage hint shows', async () => {
      const tiles = await p.host.page.locator('[data-role=stage] [data-source]').count();
      return tiles === 0 && (await p.host.page.locator('.stage-empty').isVisible());
    }, 15000);
  });
});
