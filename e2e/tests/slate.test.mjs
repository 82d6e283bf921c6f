// Slates: a host on stage (a red | blue camera) shows "Starting soon" from the overlays panel: the composed
// program (`program.jpg`) is covered by the slate (no camera colours anywhere) and the host's stage draws the same
// slate; "Back to the stage" brings the camera back. Live with nobody on stage, the program shows "Be right
// back" by itself until someone is on stage again.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, makeClip, near, rgb, sampleProgram, screenshot } from '../lib/harness.mjs';

const LEFT = 'c83232';
const RIGHT = '3232c8';
/** The slate's default background. */
const SLATE_BG = '101318';
/** Corners and the middle of each half of the canvas. */
const POINTS = [[0.05, 0.05], [0.95, 0.95], [0.25, 0.5], [0.75, 0.5]];
const TOLERANCE = 40;

describe('slates cover the program', { timeout: 240000 }, () => {
  let host;
  let clipDir;
  let broadcastId;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-slate-'));
    host = await launchParticipant('slate-host', { clip: await makeClip(clipDir, 'halves', LEFT, RIGHT) });
    host.page.on('dialog', (d) => d.accept());
    await hostWithInvite(host.page, { base: backyardUrl(), name: 'Sally Slate', email: `slate-${Date.now()}@example.com`, title: 'Slate show' });
    broadcastId = new URL(host.page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    assert.ok(broadcastId, host.page.url());
  });

  after(() => closeAll({ host }, clipDir));

  /** What the program's latest frame shows at POINTS: 'camera' (both halves' colours), 'slate' (its background everywhere), or null. */
  async function program() {
    const r = await sampleProgram(host.page, broadcastId, POINTS);
    if (!r.colours) return null;
    const [, , left, right] = r.colours;
    if (near(left, rgb(LEFT), TOLERANCE) && near(right, rgb(RIGHT), TOLERANCE)) return 'camera';
    if (r.colours.every((c) => near(c, rgb(SLATE_BG), 16))) return 'slate';
    return JSON.stringify(r.colours);
  }

  const stageSlate = () => host.page.locator('[data-role=stage] [data-role=stage-slate]');

  it('a host shows "Starting soon": the program and the stage show the slate, then the camera again', async () => {
    const page = host.page;
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    await eventually('the camera on the program', async () => (await program()) === 'camera', 30000, 500);
    await page.click('[data-tab=overlays]');
    await page.fill('input[name=slateText]', 'Our show begins at noon');
    await page.click('[data-slate=starting]');
    await eventually('the slate covers the program', async () => (await program()) === 'slate', 20000, 500);
    await stageSlate().waitFor();
    assert.equal(await stageSlate().locator('.slate-title').textContent(), 'Starting soon');
    assert.equal(await stageSlate().locator('.slate-text').textContent(), 'Our show begins at noon');
    assert.equal(await page.getAttribute('[data-slate=starting]', 'aria-pressed'), 'true');
    await screenshot(page, 'slate-01-starting-soon');
    await page.click('[data-slate=off]');
    await eventually('the camera is back on the program', async () => (await program()) === 'camera', 20000, 500);
    await stageSlate().waitFor({ state: 'hidden' });
  });

  it('live with nobody on stage, the program says "Be right back" until someone is on stage', async () => {
    const page = host.page;
    const toggle = page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]');
    await toggle.click();
    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 15000);
    await eventually('the away slate on the program', async () => (await program()) === 'slate', 20000, 500);
    await stageSlate().waitFor();
    assert.equal(await stageSlate().locator('.slate-title').textContent(), 'Be right back');
    await screenshot(page, 'slate-02-be-right-back');
    await toggle.click();
    await eventually('the camera is back on the program', async () => (await program()) === 'camera', 20000, 500);
    await stageSlate().waitFor({ state: 'hidden' });
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
  });
});
