// The studio's own overlay controls reach the program: a host alone in the studio with a dark fake camera types a
// ticker text and shows it; the ticker scrolls along the bottom of the composed program (`program.jpg`, drawn by the
// first-party overlays plugin) and on the host's stage (drawn by the studio), and Hide takes it off both. Then
// brand kits: the host saves two brands with different colours (one with a background colour) in the overlays
// panel; applying one, then the other, changes the banner's colour and the background on the program. A third
// brand has a background picture (a PNG uploaded in the brand form) and the serif font: applied, the picture
// covers the program's canvas behind the tiles, and the stage. Last, a full-canvas picture (a PNG frame,
// transparent in the middle) covers the program's edges and leaves its middle as it was.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, makeClip, near, rgb, sampleProgram, screenshot } from '../lib/harness.mjs';

/** Full blocks scroll by as solid white, easy to find in a JPEG whatever the scroll position. */
const TICKER = Array(12).fill('██████').join(' ');
/** Points along the middle of the ticker bar (it is 6.5 % of the canvas high, at the bottom). */
const BAR = Array.from({ length: 12 }, (_, i) => [(i + 0.5) / 12, 0.968]);
/** A grid over the bottom third of the canvas, where the banner is drawn. */
const LOWER = Array.from({ length: 19 * 12 }, (_, i) => [0.05 + (i % 19) * 0.05, 0.7 + Math.floor(i / 19) * 0.025]);
/** Behind the tiles: nobody is on stage, so the middle of the canvas is the background. */
const MIDDLE = [[0.5, 0.35], [0.3, 0.3], [0.7, 0.3]];
const BRANDS = {
  red: { name: 'Red morning', color: '#d03030' },
  amber: { name: 'Amber evening', color: '#e0a020', background: '#306030' },
};
/** The program scales, blends and JPEG-encodes: colours within this distance per channel. */
const TOLERANCE = 40;

describe('the studio’s overlay controls', { timeout: 300000 }, () => {
  let host;
  let clipDir;
  let broadcastId;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-overlays-'));
    host = await launchParticipant('overlays-host', { clip: await makeClip(clipDir, 'dark', '202020', '202020') });
    await hostWithInvite(host.page, { base: backyardUrl(), name: 'Olive Host', email: `overlays-${Date.now()}@example.com`, title: 'Ticker show' });
    broadcastId = new URL(host.page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    assert.ok(broadcastId, host.page.url());
  });

  after(() => closeAll({ host }, clipDir));

  /** How many points along the ticker bar are near white in the program's latest frame. */
  async function whiteOnBar() {
    const r = await sampleProgram(host.page, broadcastId, BAR);
    if (!r.colours) return -1;
    return r.colours.filter((c) => c.every((v) => v > 200)).length;
  }

  it('shows and hides the ticker on the program and the stage', async () => {
    const page = host.page;
    await page.click('[data-tab=overlays]');
    await eventually('the program runs, nothing at the bottom', async () => (await whiteOnBar()) === 0, 30000, 500);
    const toggle = page.locator('[data-action=toggle-ticker]');
    await page.fill('textarea[name=tickerText]', TICKER);
    await toggle.click();
    await eventually('the ticker scrolls along the bottom of the program', async () => (await whiteOnBar()) >= 3, 20000, 500);
    assert.equal(await toggle.textContent(), 'Hide ticker');
    await page.locator('[data-role=stage] .overlay-ticker').waitFor();
    await screenshot(page, 'overlays-ticker');
    await toggle.click();
    await eventually('the ticker leaves the program', async () => (await whiteOnBar()) === 0, 20000, 500);
    await page.locator('[data-role=stage] .overlay-ticker').waitFor({ state: 'detached' });
    assert.equal(await toggle.textContent(), 'Show ticker');
  });

  /**
   * The latest frame: how many of the bottom third's points are near `banner` (hex) and whether the middle is
   * near `background` (hex). Throws what it saw unless there are at least `min` (or, with `min` 0, none).
   */
  async function expectOnProgram({ banner, min, background }) {
    const r = await sampleProgram(host.page, broadcastId, [...LOWER, ...MIDDLE]);
    if (!r.colours) throw new Error(r.error ?? 'no program frame');
    const hits = r.colours.slice(0, LOWER.length).filter((c) => near(c, rgb(banner.slice(1)), TOLERANCE)).length;
    const middle = r.colours.slice(LOWER.length);
    const bgOk = middle.every((c) => near(c, rgb(background.slice(1)), TOLERANCE));
    if ((min ? hits >= min : hits === 0) && bgOk) return true;
    throw new Error(`${hits} points near ${banner} at the bottom; the middle is ${JSON.stringify(middle)}, want ${background}`);
  }

  it('brand kits: two saved brands, and switching brand recolours the banner and the background on the program', async () => {
    const page = host.page;
    await page.click('[data-tab=overlays]');
    for (const b of Object.values(BRANDS)) {
      await page.fill('input[name=brandName]', b.name);
      await page.fill('input[name=brandColor]', b.color);
      if (b.background) {
        await page.check('input[name=brandUseBackground]');
        await page.fill('input[name=brandBackground]', b.background);
      }
      await page.click('[data-action=save-brand]');
      await page.locator('.brand-item', { hasText: b.name }).waitFor();
    }
    const saved = await page.evaluate(async () => (await (await fetch('/api/brands')).json()).items.map((b) => [b.name, b.color, b.background]));
    assert.deepEqual(saved, [
      [BRANDS.red.name, BRANDS.red.color, null],
      [BRANDS.amber.name, BRANDS.amber.color, BRANDS.amber.background],
    ]);

    await page.fill('textarea[name=bannerText]', 'Brand check: the colour of this banner comes from the brand');
    await page.click('[data-action=toggle-banner]');
    const apply = (b) => page.locator('.brand-item', { hasText: b.name }).locator('[data-action=apply-brand]').click();

    await apply(BRANDS.red);
    await eventually('the banner is the red brand’s colour on the program, the background stays black', () => expectOnProgram({ banner: BRANDS.red.color, min: 10, background: '#000000' }), 20000, 500);
    assert.equal(await page.locator('.brand-item[data-applied=true]').textContent().then((t) => t.includes(BRANDS.red.name)), true);
    // The stage redraws its overlay layer on every render: read the banner's colour until it holds still.
    await eventually('the stage draws the banner in the brand colour too', async () => {
      const colour = await page.locator('[data-role=stage] .overlay-banner').evaluate((el) => getComputedStyle(el).backgroundColor);
      if (colour !== 'rgb(208, 48, 48)') throw new Error(`the stage's banner is ${JSON.stringify(colour)}`);
      return true;
    }, 10000);
    await screenshot(page, 'overlays-brand-red');

    await apply(BRANDS.amber);
    await eventually('switching brand: the banner turns amber and the background green', async () => {
      await expectOnProgram({ banner: BRANDS.red.color, min: 0, background: BRANDS.amber.background });
      return expectOnProgram({ banner: BRANDS.amber.color, min: 10, background: BRANDS.amber.background });
    }, 20000, 500);
    await eventually('the stage shows the brand background too', async () => {
      const colour = await page.locator('[data-role=stage]').evaluate((el) => getComputedStyle(el).backgroundColor);
      if (colour !== 'rgb(48, 96, 48)') throw new Error(`the stage's background is ${JSON.stringify(colour)}`);
      return true;
    }, 10000);
    await screenshot(page, 'overlays-brand-amber');

    // The applied brand pressed again: no brand; the operator's colours and the default background come back.
    await apply(BRANDS.amber);
    await eventually('no brand: the banner leaves the brand colour, the background is black again', () => expectOnProgram({ banner: BRANDS.amber.color, min: 0, background: '#000000' }), 20000, 500);
    await page.click('[data-action=toggle-banner]');
  });

  it('a brand’s background picture covers the program behind the tiles, and the stage', async () => {
    const page = host.page;
    // Magenta on the left half, teal on the right: the picture's orientation shows on the program.
    const picture = path.join(clipDir, 'backdrop.png');
    await promisify(execFile)('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=0xc040c0:s=320x360', '-f', 'lavfi', '-i', 'color=c=0x30b0b0:s=320x360',
      '-filter_complex', '[0:v][1:v]hstack=inputs=2', '-frames:v', '1', picture]);
    await page.fill('input[name=brandName]', 'Picture night');
    await page.fill('input[name=brandColor]', '#2060d0');
    await page.selectOption('select[name=brandFont]', 'serif');
    await page.setInputFiles('input[name=brandPicture]', picture);
    await eventually('the picture is uploaded', async () => (await page.locator('[data-role=brand-picture]').textContent()) === 'backdrop.png', 15000, 250);
    await page.click('[data-action=save-brand]');
    const item = page.locator('.brand-item', { hasText: 'Picture night' });
    await item.waitFor();
    const saved = await page.evaluate(async () => (await (await fetch('/api/brands')).json()).items.find((b) => b.name === 'Picture night'));
    assert.match(saved.backgroundImage ?? '', /^\/api\/uploads\/[0-9a-f]{64}$/, JSON.stringify(saved));
    assert.equal(saved.font, 'serif');

    const sides = [[0.2, 0.35], [0.8, 0.35], [0.2, 0.6], [0.8, 0.6]];
    const onProgram = async (left, right) => {
      const r = await sampleProgram(host.page, broadcastId, sides);
      if (!r.colours) throw new Error(r.error ?? 'no program frame');
      const want = [left, right, left, right].map((c) => rgb(c));
      if (r.colours.every((c, i) => near(c, want[i], TOLERANCE))) return true;
      throw new Error(`the program's sides are ${JSON.stringify(r.colours)}, want ${left} | ${right}`);
    };
    await item.locator('[data-action=apply-brand]').click();
    await eventually('the picture covers the program behind the tiles', () => onProgram('c040c0', '30b0b0'), 20000, 500);
    assert.equal(await page.locator('[data-role=stage]').getAttribute('data-brand-font'), 'serif', 'the stage sets the overlays in the brand’s font');
    await eventually('the stage shows the picture too', async () =>
      page.locator('[data-role=stage]').evaluate((el) => el.classList.contains('has-brand-picture') && getComputedStyle(el).backgroundImage.includes('/api/uploads/')), 10000, 250);
    await screenshot(page, 'overlays-brand-picture');
    await item.locator('[data-action=apply-brand]').click();
    await eventually('no brand: the default background again', () => onProgram('000000', '000000'), 20000, 500);
  });

  it('a full-canvas picture covers the program over the tiles, its transparent middle showing what is under it', async () => {
    const page = host.page;
    // A magenta frame 48 pixels wide around a transparent middle.
    const frame = path.join(clipDir, 'frame.png');
    await promisify(execFile)('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=0xc040c0:s=640x360', '-f', 'lavfi',
      '-i', 'color=c=white:s=640x360,drawbox=x=48:y=48:w=544:h=264:color=black:t=fill,format=gray',
      '-filter_complex', '[0:v][1:v]alphamerge,format=rgba', '-frames:v', '1', frame]);
    await page.setInputFiles('input[name=picture]', frame);
    const points = [[0.03, 0.5], [0.97, 0.5], [0.5, 0.04], [0.5, 0.5]];
    const onProgram = async (edge) => {
      const r = await sampleProgram(host.page, broadcastId, points);
      if (!r.colours) throw new Error(r.error ?? 'no program frame');
      const want = [edge, edge, edge, '000000'].map((c) => rgb(c));
      if (r.colours.every((c, i) => near(c, want[i], TOLERANCE))) return true;
      throw new Error(`the program's edges and middle are ${JSON.stringify(r.colours)}, want ${edge} around black`);
    };
    // Uploading shows it.
    await eventually('the frame covers the program’s edges, the middle stays', () => onProgram('c040c0'), 20000, 500);
    await page.locator('[data-role=stage] .overlay-picture').waitFor();
    await page.locator('[data-action=upload-picture]').scrollIntoViewIfNeeded();
    await screenshot(page, 'overlays-full-canvas-picture');
    const toggle = page.locator('[data-action=toggle-picture]');
    assert.equal(await toggle.textContent(), 'Hide picture');
    await toggle.click();
    await eventually('hidden: the edges are the background again', () => onProgram('000000'), 20000, 500);
    await page.locator('[data-role=stage] .overlay-picture').waitFor({ state: 'detached' });
  });
});
