// The studio's own overlay controls reach the program: a host alone in the studio with a dark fake camera types a
// ticker text and shows it; the ticker scrolls along the bottom of the composed program (`program.jpg`, drawn by the
// first-party overlays plugin) and on the host's stage (drawn by the studio), and Hide takes it off both.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, makeClip, sampleProgram, screenshot } from '../lib/harness.mjs';

/** Full blocks scroll by as solid white, easy to find in a JPEG whatever the scroll position. */
const TICKER = Array(12).fill('██████').join(' ');
/** Points along the middle of the ticker bar (it is 6.5 % of the canvas high, at the bottom). */
const BAR = Array.from({ length: 12 }, (_, i) => [(i + 0.5) / 12, 0.968]);

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
});
