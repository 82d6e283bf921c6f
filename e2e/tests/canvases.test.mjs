// One show in two formats, from the studio: a host and two guests in Chromium (each a two-colour fake camera), all
// three on stage in the main canvas's grid. The host adds a vertical canvas from the tabs above the stage (720×1280
// beside the program's 1280×720), picks it, and gives it its own layout: the stage then draws that canvas's tiles as
// its director placed them (`canvas-layout`), the layout bar is that canvas's, and it gets a banner of its own (the
// main canvas shows none). Three destinations on a real
// nginx-rtmp: two on the main canvas (the program's bitrate and a leaner one), one on the vertical canvas, chosen
// in the destination form. Live: the program runs exactly three encodes (two landscape, one vertical); each stream
// nginx receives has its own size and bitrate (ffprobe), and a frame of each shows every person in the rectangle
// its canvas's layout gave them. Screenshots of the tabs, the vertical stage and the form.
//
// The guests show no video in their own pages (only the host's is looked at), so nothing but the host decodes.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  addRtmpDestination,
  backyardUrl,
  closeAll,
  eventually,
  hostWithInvite,
  joinAsGuest,
  launchParticipant,
  makeClips,
  recordSignaling,
  rgb,
  screenshot,
  showNoVideo,
  waitOnStage,
} from '../lib/harness.mjs';
import { grabFrame, measuredVideoKbps, startRtmpServer } from '../lib/rtmp.mjs';

const PEOPLE = {
  host: { name: 'Vera Host', left: 'c83232', right: '3232c8' },
  ada: { name: 'Ada Guest', left: '32c832', right: 'c8c832' },
  bob: { name: 'Bob Guest', left: 'c832c8', right: '32c8c8' },
};
const CLIP = { width: 320, height: 180, fps: 15 };
/** The program scales, composes and encodes twice (VP8 → x264): colours move a little. */
const TOLERANCE = 40;
/** The program's own bitrate (`[program] video_kbps`), which the destinations without a profile get. */
const PROGRAM_KBPS = 3000;
const WIDE = { key: 'e2e-wide', name: 'Wide nginx', size: [1280, 720], kbps: PROGRAM_KBPS };
const LEAN = { key: 'e2e-lean', name: 'Lean nginx', size: [1280, 720], videoKbps: 1200, kbps: 1200 };
const TALL = { key: 'e2e-tall', name: 'Tall nginx', size: [720, 1280], canvas: 'vertical', kbps: PROGRAM_KBPS };

/** Every `[data-source]` tile on the host's stage as fractions of the stage, and the stage's canvas. */
async function stageView(page) {
  return page.evaluate(() => {
    const stage = document.querySelector('[data-role=stage]');
    const s = stage.getBoundingClientRect();
    const tiles = [...stage.querySelectorAll('[data-source]')].map((el) => {
      const r = el.getBoundingClientRect();
      return { source: el.dataset.source, x: (r.left - s.left) / s.width, y: (r.top - s.top) / s.height, w: r.width / s.width, h: r.height / s.height };
    });
    return { canvas: stage.dataset.canvas, canvasId: stage.dataset.canvasId, layout: stage.dataset.layout, tiles };
  });
}

/** Null when the stage draws exactly `sl`'s tiles (within 2 % of the canvas), else what differs. */
function stageMatches(view, sl) {
  if (!sl) return 'no layout from the server yet';
  if (view.canvas !== `${sl.canvas.width}x${sl.canvas.height}`) return `stage canvas ${view.canvas}`;
  if (view.tiles.length !== sl.tiles.length) return `stage has ${view.tiles.length} tiles, the canvas ${sl.tiles.length}`;
  for (const t of sl.tiles) {
    const d = view.tiles.find((v) => v.source === t.source);
    if (!d) return `${t.source} is not on the stage`;
    const want = { x: t.x / sl.canvas.width, y: t.y / sl.canvas.height, w: t.width / sl.canvas.width, h: t.height / sl.canvas.height };
    for (const k of ['x', 'y', 'w', 'h']) if (Math.abs(d[k] - want[k]) > 0.02) return `${t.source} ${k}: ${d[k].toFixed(3)} on the stage, ${want[k].toFixed(3)} placed`;
  }
  return null;
}

/** The mean colour of a small box at (fx, fy) of a frame from rtmp.mjs's grabFrame. */
function colourAt(frame, fx, fy) {
  const box = 4;
  const x0 = Math.min(frame.width - box, Math.max(0, Math.round(fx * frame.width - box / 2)));
  const y0 = Math.min(frame.height - box, Math.max(0, Math.round(fy * frame.height - box / 2)));
  const sum = [0, 0, 0];
  for (let y = y0; y < y0 + box; y++) for (let x = x0; x < x0 + box; x++) for (let k = 0; k < 3; k++) sum[k] += frame.rgb[(y * frame.width + x) * 3 + k];
  return sum.map((v) => Math.round(v / (box * box)));
}

/** Null when each camera tile of `sl` shows its owner's two colours (a third in from either side), else what is wrong. */
function everyoneInPlace(frame, sl) {
  for (const t of sl.tiles) {
    const who = Object.values(PEOPLE).find((p) => p.id === t.participantId);
    if (!who) return `a tile for ${t.participantId}, who is none of the test's people`;
    for (const [side, f] of [['left', 0.3], ['right', 0.7]]) {
      const got = colourAt(frame, (t.x + f * t.width) / sl.canvas.width, (t.y + 0.5 * t.height) / sl.canvas.height);
      const want = rgb(who[side]);
      if (got.some((v, i) => Math.abs(v - want[i]) > TOLERANCE)) return `${who.name}'s ${side} half: ${got} where #${who[side]} was placed`;
    }
  }
  return null;
}

describe('one show in two formats: a vertical canvas beside the main one', { timeout: 300000 }, () => {
  const base = backyardUrl();
  let clipDir;
  let nginx;
  let rec;
  let broadcastId;
  const p = {};

  before(async () => {
    clipDir = await makeClips(PEOPLE, CLIP);
    nginx = await startRtmpServer();
  });

  after(async () => {
    if (broadcastId && p.host) {
      await p.host.page.evaluate((id) => fetch(`/api/broadcasts/${id}/end`, { method: 'POST', credentials: 'same-origin' }), broadcastId).catch(() => {});
    }
    await closeAll(p, clipDir);
    await nginx?.stop();
  });

  it('three people on stage; the host adds a vertical canvas with a layout of its own', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    rec = recordSignaling(page);
    const link = await hostWithInvite(page, { base, name: PEOPLE.host.name, email: `canvases-${Date.now()}@example.test`, title: 'E2E two formats' });
    broadcastId = decodeURIComponent(new URL(page.url()).hash.split('/studio/')[1] ?? '');
    for (const key of ['ada', 'bob']) {
      p[key] = await launchParticipant(key, { clip: PEOPLE[key].clip });
      await joinAsGuest(p[key], link, PEOPLE[key].name);
      await showNoVideo(p[key].page);
    }
    await eventually('the host knows both guests', async () => [PEOPLE.ada.name, PEOPLE.bob.name].every((n) => [...rec.names.values()].includes(n)), 20000);
    PEOPLE.host.id = rec.joined.participantId;
    for (const key of ['ada', 'bob']) PEOPLE[key].id = [...rec.names].find(([, n]) => n === PEOPLE[key].name)[0];
    for (const card of await page.locator('.participant-card[data-kind=camera]').all()) await card.locator('[data-action=toggle-stage]').click();
    const ids = [PEOPLE.host.id, PEOPLE.ada.id, PEOPLE.bob.id];
    await waitOnStage(page, ids);
    await page.click('.layout-bar [data-layout="grid"]');

    // One tab, the main canvas; the button adds a 9:16 one, which the stage then shows when picked.
    assert.deepEqual(await page.locator('[data-role=canvases] .canvas-tab').evaluateAll((els) => els.map((e) => e.dataset.canvas)), ['main']);
    await page.click('[data-action=add-canvas]');
    const tall = page.locator('.canvas-tab[data-canvas=vertical]');
    await tall.waitFor({ timeout: 15000 });
    assert.match(await tall.textContent(), /vertical · 720×1280/);
    await tall.click();
    await eventually('the vertical canvas is on the stage, stacked, as its director placed it', async () => {
      const sl = rec.canvasLayouts.vertical;
      if (sl?.layout !== 'stack' || sl.tiles.length !== 3) return false;
      const problem = stageMatches(await stageView(page), sl);
      return problem === null ? true : { problem };
    }, 30000);
    assert.equal(await page.getAttribute('.layout-bar [data-layout="stack"]', 'aria-pressed'), 'true', 'the layout bar is the vertical canvas’s');
    assert.equal(await page.getAttribute('.layout-bar [data-layout="grid"]', 'aria-pressed'), 'false');
    await page.click('.layout-bar [data-layout="one-over-two"]', { noWaitAfter: true });
    await eventually('the vertical canvas takes one over two; the main one stays a grid', async () => {
      const sl = rec.canvasLayouts.vertical;
      if (sl?.layout !== 'one-over-two') return false;
      const problem = stageMatches(await stageView(page), sl);
      return problem === null && rec.stageLayouts.at(-1)?.layout === 'grid' ? true : { problem };
    }, 30000);
    // Overlays of its own: a banner on the vertical canvas only; the main canvas keeps none.
    await page.click('[data-tab=overlays]');
    await page.check('[data-action=own-overlays]');
    await page.fill('textarea[name=bannerText]', 'Now in 9:16');
    await page.click('[data-action=toggle-banner]');
    await eventually('the vertical canvas shows its own banner, the main canvas none', async () => {
      const scene = rec.last['scene-updated']?.scene;
      const own = scene?.canvases?.[0]?.overlays?.banner;
      const onStage = await page.locator('[data-role=stage] .overlay-banner').textContent().catch(() => null);
      return own?.visible && own.text === 'Now in 9:16' && !scene.overlays?.banner?.visible && onStage === 'Now in 9:16';
    }, 15000);
    await screenshot(page, 'canvases-01-vertical-tab');
    await page.click('.canvas-tab[data-canvas=main]');
    assert.equal(await page.locator('[data-role=stage] .overlay-banner').count(), 0, 'no banner on the main canvas');
    assert.ok(await page.locator('[data-action=own-overlays]').isHidden(), 'the main canvas has no choice to make');
    await eventually('the main canvas is back on the stage', async () => (stageMatches(await stageView(page), rec.stageLayouts.at(-1)) === null ? true : false), 15000);
    assert.equal(await page.getAttribute('.layout-bar [data-layout="grid"]', 'aria-pressed'), 'true');
  });

  it('two destinations on the main canvas at different bitrates, one on the vertical canvas', async () => {
    const page = p.host.page;
    for (const d of [WIDE, LEAN, TALL]) {
      const row = await addRtmpDestination(page, { name: d.name, url: nginx.url, key: d.key, videoKbps: d.videoKbps, canvas: d.canvas });
      const encode = await row.locator('[data-role=dest-encode]').textContent();
      assert.match(encode, new RegExp(`${d.canvas ? `^${d.canvas} canvas · ` : '^(?!.*canvas)'}.*${d.size[0]}×${d.size[1]}`), `${d.name}: ${encode}`);
    }
    await page.click('[data-action=add-destination]');
    await screenshot(page, 'canvases-02-destination-form');
    await page.click('.dest-form button.ghost');
  });

  it('live: three encodes; each stream has its canvas, its size and bitrate, and everyone where their canvas put them', async () => {
    const page = p.host.page;
    await page.click('[data-action=go-live]');
    for (const d of [WIDE, LEAN, TALL]) {
      const row = page.locator('.dest-item', { hasText: d.name });
      await eventually(`${d.name} shows live`, async () => (await row.getAttribute('data-status')) === 'live', 30000);
    }
    const encodes = await eventually('program-status lists three encodes', async () => {
      const e = rec.last['program-status']?.stats?.encodes ?? [];
      return e.length === 3 ? e : false;
    }, 20000);
    assert.deepEqual(
      encodes.map((e) => [e.canvas, e.settings.width, e.settings.height]),
      [[0, 1280, 720], [0, 1280, 720], [1, 720, 1280]],
      'the program’s own encode, a leaner one of the same canvas, and the vertical canvas’s',
    );
    assert.equal(encodes[1].settings.videoKbps, LEAN.videoKbps);
    await screenshot(page, 'canvases-03-live');

    for (const d of [WIDE, LEAN, TALL]) {
      const url = `${nginx.url}/${d.key}`;
      const sl = d.canvas ? rec.canvasLayouts[d.canvas] : rec.stageLayouts.at(-1);
      const [w, h] = d.size.map((v) => v / 4);
      const frame = await eventually(`${d.name}: a frame with everyone in place`, async () => {
        const f = await grabFrame(url, { width: w, height: h });
        const video = f.streams.find((s) => s.codec_type === 'video');
        if (!video) return false;
        assert.deepEqual([video.width, video.height], d.size, `${d.name}: ffprobe's size`);
        const problem = everyoneInPlace(f, sl);
        return problem === null ? { ...f, video } : { problem };
      }, 45000, 1000);
      // The stream says its bitrate (the encoder's, in its metadata); what arrives keeps to it (a still picture may
      // take less, never much more).
      const said = Number(frame.video.bit_rate) / 1000;
      const measured = await measuredVideoKbps(url);
      console.log(`${d.name}: ${frame.video.width}x${frame.video.height}, ${said.toFixed(0)} kb/s said, ${measured.toFixed(0)} kb/s measured`);
      assert.ok(Math.abs(said / d.kbps - 1) < 0.05, `${d.name}: ${said} kb/s said, ${d.kbps} asked for`);
      assert.ok(measured < d.kbps * 1.35, `${d.name}: ${measured} kb/s measured, ${d.kbps} asked for`);
    }

    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 20000);
  });
});
