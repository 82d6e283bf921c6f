// Health the host can see: a host on stage goes live to a real nginx-rtmp; then the server is starved of CPU
// for real (its priority lowered with renice and both cores loaded with busy loops at normal priority). The
// studio must show a warning above the stage, the program line must say it is short of CPU and the destination
// row must not claim a clean stream ("0 dropped"). Once the CPU is back the warning clears by itself.
//
// The server's program reports its health every 2 s from the ticks it skipped (the rules are unit-tested on
// simulated time in gateway/src/program/health.rs), so a starved program is reported within about 4 s; this
// test gives it 20 s so a busy machine cannot make it flaky.
//
// Needs a running backyard at BACKYARD_URL and its pid at BACKYARD_E2E_PID (`cargo xtask e2e` sets both).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { addRtmpDestination, backyardUrl, eventually, hostWithInvite, launchParticipant, makeClip, screenshot } from '../lib/harness.mjs';
import { startRtmpServer } from '../lib/rtmp.mjs';

const run = promisify(execFile);
const HOST = { name: 'Hana Host', left: 'c83232', right: '3232c8' };
/** The server's priority while starved (19 is the lowest; 10 leaves its status task room to report). */
const STARVED_NICE = 10;
/** Correctness bound with margin: the program reports every 2 s, so a starved one is seen within about 4 s. */
const REPORT_MS = 20000;

function serverPid() {
  const pid = Number(process.env.BACKYARD_E2E_PID);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('BACKYARD_E2E_PID is not set: run this suite through `cargo xtask e2e health`');
  return pid;
}

/** Sets the priority of every thread of `pid` (renice on a pid only moves its main thread). */
async function renice(pid, nice) {
  const threads = await readdir(`/proc/${pid}/task`);
  assert.ok(threads.length > 0, `the server (pid ${pid}) has threads`);
  await run('renice', ['-n', String(nice), '-p', ...threads]);
}

/** One busy loop per core plus one, at normal priority: `stop()` ends them. */
function loadCores() {
  const hogs = Array.from({ length: cpus().length + 1 }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return {
    stop() {
      for (const h of hogs) h.kill('SIGKILL');
    },
  };
}

describe('the studio shows the host when the show is unhealthy', { timeout: 240000 }, () => {
  const base = backyardUrl();
  let clipDir;
  let nginx;
  let host;
  let hogs;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-clips-'));
    HOST.clip = await makeClip(clipDir, 'host', HOST.left, HOST.right);
    nginx = await startRtmpServer();
  });

  after(async () => {
    hogs?.stop();
    await renice(serverPid(), 0).catch(() => {});
    if (process.env.BACKYARD_E2E_LOGS && host) console.log(`--- host console\n${host.logs.join('\n')}`);
    await host?.close();
    await nginx?.stop();
    if (clipDir) await rm(clipDir, { recursive: true, force: true });
  });

  it('a host on stage is live to nginx-rtmp, and all is well', async () => {
    host = await launchParticipant('host', { clip: HOST.clip });
    const page = host.page;
    page.on('dialog', (d) => d.accept());
    await hostWithInvite(page, { base, name: HOST.name, email: `health-${Date.now()}@example.test`, title: 'E2E health' });
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    const dest = await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: 'e2e-health' });
    await page.click('[data-action=go-live]');
    await eventually('the destination is live', async () => (await dest.getAttribute('data-status')) === 'live', 30000);
    await eventually('the program keeps its frame rate and the destination counts its drops', async () => {
      const ok = (await page.getAttribute('[data-role=program-status]', 'data-health')) === 'ok';
      const text = await dest.locator('.dest-stats').textContent().catch(() => '');
      return ok && /\d+ dropped/.test(text) ? text : false;
    }, REPORT_MS);
    assert.equal(await page.locator('[data-role=health]').isVisible(), false, 'no warning while all is well');
  });

  it('starved of CPU, the program is reported within the bound: a warning above the stage, no clean-stream claim', async () => {
    const page = host.page;
    const dest = page.locator('.dest-item', { hasText: 'Local nginx' });
    await renice(serverPid(), STARVED_NICE);
    hogs = loadCores();
    const warning = page.locator('[data-role=health] [data-health=program]');
    await warning.waitFor({ state: 'visible', timeout: REPORT_MS });
    assert.match(await warning.textContent(), /short of CPU: the program runs at \d+ of \d+ fps/);
    assert.equal(await page.getAttribute('[data-role=program-status]', 'data-health'), 'starved');
    assert.match(await page.locator('[data-role=program-status]').textContent(), /short of CPU, \d+ frames skipped/);
    const stats = await dest.locator('.dest-stats').textContent();
    assert.doesNotMatch(stats, /\b0 dropped/, `the destination row does not claim a clean stream: ${stats}`);
    assert.match(stats, /choppy/);
    assert.equal(await dest.getAttribute('data-health'), 'degraded');
    await screenshot(page, 'health-starved');
  });

  it('with the CPU back, the warning clears by itself', async () => {
    const page = host.page;
    hogs.stop();
    hogs = null;
    await renice(serverPid(), 0);
    await page.locator('[data-role=health]').waitFor({ state: 'hidden', timeout: REPORT_MS * 2 });
    await eventually('the program line is healthy again', async () => (await page.getAttribute('[data-role=program-status]', 'data-health')) === 'ok', REPORT_MS);
    const dest = page.locator('.dest-item', { hasText: 'Local nginx' });
    await eventually('the destination row is clean again', async () => (await dest.getAttribute('data-health')) === 'ok', REPORT_MS);
    await screenshot(page, 'health-recovered');
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast ends', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
  });
});
