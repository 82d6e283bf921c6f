// Slates: a host on stage (a red | blue camera) shows "Starting soon" from the overlays panel: the composed
// program (`program.jpg`) is covered by the slate (no camera colours anywhere) and the host's stage draws the same
// slate; a picture the host uploads covers the program behind the slate's words; "Back to the stage" brings the
// camera back. Live with nobody on stage, the program shows "Be right back" by itself until someone is on stage
// again. And with a real RTMP server receiving the show, killing the host's Chromium (`kill -9`) while live:
// nginx keeps receiving frames with no gap over 0.1 s, the slate; the host signs in again in a new browser, comes back on stage, and the show returns. Then the host plays a video clip
// (uploaded from the Clips section): nginx receives its red picture and its tone, and the camera once it ended; with
// the clip's sound chosen to play under slates, a "Be right back" slate has it and the stage after it does not.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { addRtmpDestination, backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, makeClip, near, rgb, sampleProgram, screenshot } from '../lib/harness.mjs';
import { grabFrame, peakVolume, startRtmpServer } from '../lib/rtmp.mjs';

const run = promisify(execFile);
const STREAM_KEY = 'e2e-slate';
const EMAIL = `slate-${Date.now()}@example.com`;
const PASSWORD = 'correct horse battery';

const LEFT = 'c83232';
const RIGHT = '3232c8';
/** Behind a slate nobody is on stage: the program's background (black without a brand) is all around its words. */
const SLATE_BG = '000000';
/** The picture a host puts behind the slate. */
const PICTURE = '20c040';
/** Corners and the middle of each half of the canvas. */
const POINTS = [[0.05, 0.05], [0.95, 0.95], [0.25, 0.5], [0.75, 0.5]];
const TOLERANCE = 40;

describe('slates cover the program', { timeout: 240000 }, () => {
  let host;
  let clipDir;
  let broadcastId;
  let nginx;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-slate-'));
    host = await launchParticipant('slate-host', { clip: await makeClip(clipDir, 'halves', LEFT, RIGHT) });
    host.page.on('dialog', (d) => d.accept());
    await hostWithInvite(host.page, { base: backyardUrl(), name: 'Sally Slate', email: EMAIL, title: 'Slate show' });
    broadcastId = new URL(host.page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    assert.ok(broadcastId, host.page.url());
  });

  after(async () => {
    await closeAll({ host }, clipDir);
    await nginx?.stop();
  });

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
    // A picture of the host's behind the slate: it covers the program's canvas (and the stage's), the words over
    // it; removed, the program's background is back.
    const picture = path.join(clipDir, 'slate-picture.png');
    await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `color=c=0x${PICTURE}:s=320x180`, '-frames:v', '1', picture]);
    await page.setInputFiles('input[name=slateImage]', picture);
    const corners = [[0.05, 0.05], [0.95, 0.95]];
    await eventually('the picture behind the slate on the program', async () => {
      const r = await sampleProgram(page, broadcastId, corners);
      return r.colours?.every((c) => near(c, rgb(PICTURE), TOLERANCE));
    }, 20000, 500);
    await eventually('the stage draws the picture', async () => (await stageSlate().getAttribute('class')).includes('has-image'), 10000);
    assert.equal(await stageSlate().locator('.slate-title').textContent(), 'Starting soon');
    await screenshot(page, 'slate-01b-starting-soon-over-a-picture');
    await page.click('[data-action=remove-slate-image]');
    await eventually('the program background behind the slate again', async () => (await program()) === 'slate', 20000, 500);
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
  });

  it('the host’s Chromium is killed while live: nginx keeps receiving the slate, gapless, until the host is back on stage', async () => {
    const page = host.page;
    // A destination added while live starts with the next go-live: this show goes to nginx from a fresh start.
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
    nginx = await startRtmpServer();
    await page.goto(`${backyardUrl()}/#/broadcasts`);
    await page.fill('input[name=title]', 'Slate show, live');
    await page.click('[data-action=create-broadcast]');
    await page.click('[data-action=enter-studio]');
    await page.waitForSelector('.studio[data-role=host]', { timeout: 15000 });
    broadcastId = new URL(page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    const dest = await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: STREAM_KEY });
    await page.click('[data-action=go-live]');
    await eventually('the destination shows live', async () => (await dest.getAttribute('data-status')) === 'live', 30000);
    const url = `${nginx.url}/${STREAM_KEY}`;
    await eventually('nginx shows the camera', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && near(pixel(f, 0.25, 0.5), rgb(LEFT), TOLERANCE);
    }, 30000, 1000);

    // Capture 14 s of what nginx receives; the host's browser is killed 4 s in.
    const dir = await mkdtemp(path.join(tmpdir(), 'backyard-slate-capture-'));
    const file = path.join(dir, 'capture.flv');
    const capture = spawn('ffmpeg', ['-v', 'error', '-rw_timeout', '10000000', '-i', url, '-t', '14', '-c', 'copy', '-f', 'flv', file], { stdio: 'ignore' });
    const captured = new Promise((resolve) => capture.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 4000));
    await run('pkill', ['-9', '-f', 'backyard-e2e-slate-host-']);
    await eventually('the away slate at nginx', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && [[0.05, 0.05], [0.25, 0.5], [0.75, 0.5]].every(([x, y]) => near(pixel(f, x, y), rgb(SLATE_BG), 16));
    }, 20000, 1000);
    await captured;
    const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file]);
    const times = stdout.split('\n').map(Number).filter((t) => Number.isFinite(t) && t > 0).sort((a, b) => a - b);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const worst = Math.max(...gaps);
    console.log(`# nginx received ${times.length} frames over ${(times.at(-1) - times[0]).toFixed(1)} s; the longest gap ${(worst * 1000).toFixed(0)} ms`);
    assert.ok(times.length > 300, `${times.length} frames in 14 s`);
    // 0.1 s is the goal (34 ms measured alone); the bound leaves room for a machine busy with other suites,
    // where the program itself may skip a tick or two whatever it shows.
    assert.ok(worst <= 0.25, `a gap of ${worst} s in what nginx received`);
    await rm(dir, { recursive: true, force: true });

    // The host signs in again in a new browser and comes back on stage: the show returns.
    host = await launchParticipant('slate-host-again', { clip: await makeClip(clipDir, 'halves2', LEFT, RIGHT) });
    const again = host.page;
    again.on('dialog', (d) => d.accept());
    await again.goto(`${backyardUrl()}/#/login`);
    await again.fill('input[name=email]', EMAIL);
    await again.fill('input[name=password]', PASSWORD);
    await again.click('form.auth-form button[type=submit]');
    await again.waitForSelector('.broadcast-card', { timeout: 15000 });
    await again.click(`[data-action=open-studio][href="#/studio/${broadcastId}"]`);
    await again.click('[data-action=enter-studio]:not([disabled])', { timeout: 20000 });
    await again.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click({ timeout: 15000 });
    await eventually('nginx shows the camera again', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && near(pixel(f, 0.25, 0.5), rgb(LEFT), TOLERANCE) && near(pixel(f, 0.75, 0.5), rgb(RIGHT), TOLERANCE);
    }, 30000, 1000);
    const pill = await again.textContent('.status-pill');
    const [, hh, mm, ss] = /LIVE (\d+):(\d+):(\d+)/.exec(pill) ?? [];
    assert.ok(Number(hh) * 3600 + Number(mm) * 60 + Number(ss) >= 15, `back in a show live for over 15 s, the clock says ${pill}`);
    await screenshot(again, 'slate-03-back-on-stage');

    // A clip from the Clips section plays into the show, over the whole canvas: nginx receives its red picture
    // and its tone; once it has played, it comes off the scene and the camera is back. The host's own mic is
    // off, so the tone is the clip's.
    await again.click('[data-action=toggle-mic]');
    const clipFile = path.join(clipDir, 'red-tone.mp4');
    await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=red:s=640x360:r=30:d=12', '-f', 'lavfi', '-i', 'sine=f=1000:d=12',
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clipFile]);
    await again.click('[data-tab=overlays]');
    await again.setInputFiles('input[name=clipFile]', clipFile);
    const row = again.locator('.clip-item', { hasText: 'red-tone.mp4' });
    await row.waitFor({ timeout: 15000 });
    await row.locator('[data-action=play-clip]').click();
    // The sound is measured from the start while the picture is looked for: both within the clip's 12 s.
    const tone = peakVolume(url, 6);
    await eventually('nginx shows the clip', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && [[0.25, 0.5], [0.75, 0.5], [0.05, 0.05]].every(([x, y]) => near(pixel(f, x, y), rgb('ff0000'), 70));
    }, 12000, 500);
    const during = await tone;
    assert.equal(await row.getAttribute('data-playing'), 'true');
    await screenshot(again, 'slate-04-clip-playing');
    await eventually('the clip played to its end and came off the scene', async () => (await row.getAttribute('data-playing')) === 'false', 20000, 500);
    await eventually('nginx shows the camera after the clip', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && near(pixel(f, 0.25, 0.5), rgb(LEFT), TOLERANCE) && near(pixel(f, 0.75, 0.5), rgb(RIGHT), TOLERANCE);
    }, 30000, 1000);
    const later = await peakVolume(url, 2);
    console.log(`# the clip's tone peaked at ${during} dB at nginx; after it, ${later} dB`);
    assert.ok(during > -30, `the clip's tone is in the output (${during} dB)`);
    assert.ok(later < during - 20, `quiet after the clip (${later} dB)`);

    // The clip's sound under the slates: chosen in the Clips section, it loops while "Be right back" shows and
    // stops with the slate.
    await row.locator('[data-action=slate-audio]').click();
    await eventually('the clip is the sound under slates', async () => (await row.locator('[data-action=slate-audio]').getAttribute('aria-pressed')) === 'true', 10000);
    await again.click('[data-slate=brb]');
    await eventually('nginx shows the slate', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && [[0.25, 0.5], [0.75, 0.5]].every(([x, y]) => !near(pixel(f, x, y), rgb(LEFT), TOLERANCE) && !near(pixel(f, x, y), rgb(RIGHT), TOLERANCE));
    }, 20000, 500);
    const underSlate = await peakVolume(url, 3);
    await screenshot(again, 'slate-05-sound-under-the-slate');
    await again.click('[data-slate=off]');
    await eventually('nginx shows the camera after the slate', async () => {
      const f = await grabFrame(url, { skipSeconds: 0 }).catch(() => null);
      return f && near(pixel(f, 0.25, 0.5), rgb(LEFT), TOLERANCE);
    }, 30000, 1000);
    const afterSlate = await peakVolume(url, 2);
    console.log(`# under the slate the clip's sound peaked at ${underSlate} dB at nginx; after it, ${afterSlate} dB`);
    assert.ok(underSlate > -30, `the sound under the slate is in the output (${underSlate} dB)`);
    assert.ok(afterSlate < underSlate - 20, `quiet once the slate is gone (${afterSlate} dB)`);
    await again.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await again.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
  });
});

/** The colour of a grabbed RGB frame at (fx, fy), as fractions of its size. */
function pixel(frame, fx, fy) {
  const x = Math.min(frame.width - 1, Math.round(fx * frame.width));
  const y = Math.min(frame.height - 1, Math.round(fy * frame.height));
  const i = (y * frame.width + x) * 3;
  return [frame.rgb[i], frame.rgb[i + 1], frame.rgb[i + 2]];
}
