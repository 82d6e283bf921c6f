// Guests' local recordings: the host turns on "Record everyone on their own device" and goes live with a guest in
// the studio. The guest's Chromium records its own camera and microphone (MediaRecorder) and uploads it with tus
// while live; the test cuts the guest's connection to the upload endpoint for several seconds mid-show, and the
// upload resumes from where the server's copy ends. After 30 s the host ends the show: the rest is uploaded, the
// server copies it into a WebM file players can seek in, and the host finds it in the library, beside the
// program's recording, under the guest's name; ffprobe reads it as VP8 + Opus lasting what the guest's page
// recorded (within 1 s), and FFmpeg decodes it without an error. A guest whose page is reloaded mid-show (they
// open the invite again) loses nothing kept: the new page uploads what the old one recorded, and records anew. A
// server with a tiny
// `limits.local_recording_bytes_per_broadcast`, refuses the guest's upload, and the guest's studio says why.
//
// Starts backyards of its own (`BACKYARD_E2E_BIN`), so each has its own limits.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { closeAll, eventually, expectPlays, hostWithInvite, joinAsGuest, launchParticipant, makeClips, screenshot } from '../lib/harness.mjs';
import { OwnServer } from '../lib/server.mjs';

const run = promisify(execFile);
const GUEST = 'Gail Guest';
/** How long the guest records. */
const RECORD_SECONDS = 30;
/** How long the guest's uploads are cut off, from 8 s into the recording. */
const CUT_SECONDS = 8;

/** A host and a guest in a fresh broadcast on `server`, the host's "record everyone" switch on. */
async function studioWithLocalRecording(server, people, tag) {
  const host = people.host.page;
  const link = await hostWithInvite(host, { base: server.url, name: 'Hana Host', email: `local-${tag}-${Date.now()}@example.com`, title: `Local recordings ${tag}` });
  const broadcastId = new URL(host.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
  await host.click('[data-tab=broadcast]');
  await host.check('input[name=localRecording]');
  await eventually('the broadcast asks for local recordings', async () =>
    host.evaluate(async (id) => (await (await fetch(`/api/broadcasts/${id}`)).json()).settings?.localRecording === true, broadcastId), 10000, 250);
  people.guest.link = link;
  await joinAsGuest(people.guest, link, GUEST);
  await host.click('[data-action=go-live]');
  await eventually('the broadcast shows live', async () => (await host.getAttribute('.status-pill', 'data-status')) === 'live', 20000);
  return broadcastId;
}

async function ownRecording(page) {
  const el = page.locator('[data-role=own-recording]');
  return { state: await el.getAttribute('data-state'), text: await el.textContent(), seconds: Number(await el.getAttribute('data-seconds')) };
}

describe('guests’ local recordings', { timeout: 240000 }, () => {
  let dir;
  let clipDir;
  const people = { host: { left: '3050d0', right: 'd0d030' } };
  const servers = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'backyard-local-recordings-'));
    clipDir = await makeClips(people);
    // The guest's camera moves and is noisy, as a real one is: its recording takes a real camera's bitrate.
    people.guest = { clip: path.join(clipDir, 'guest.y4m') };
    await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=640x360:r=30:d=4', '-vf', 'noise=alls=30:allf=t,format=yuv420p', '-f', 'yuv4mpegpipe', people.guest.clip]);
    for (const [key, who] of Object.entries(people)) Object.assign(who, await launchParticipant(`localrec-${key}`, { clip: who.clip }));
    // "End the broadcast?" and the like.
    people.host.page.on('dialog', (d) => d.accept());
  });

  after(async () => {
    await closeAll(people, clipDir);
    for (const s of servers) await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads the guest’s recording through a cut connection and lists a playable file of its length', async () => {
    const server = new OwnServer(path.join(dir, 'one'), 'local-recordings');
    servers.push(server);
    await server.start();
    const broadcastId = await studioWithLocalRecording(server, people, 'upload');
    const guest = people.guest.page;
    const host = people.host.page;

    await eventually('the guest’s studio records', async () => (await ownRecording(guest)).state === 'recording', 15000, 250);
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 8000));
    // The guest's uploads fail (connection reset) for a while, then get through again.
    let cut = 0;
    await guest.route('**/api/local-recordings**', (route) => {
      cut += 1;
      return route.abort('connectionreset');
    });
    await eventually('the guest’s studio says the upload waits for the connection', async () => (await ownRecording(guest)).state === 'retrying', CUT_SECONDS * 1000, 250);
    await screenshot(guest, 'local-recordings-01-guest-cut-off');
    await new Promise((r) => setTimeout(r, CUT_SECONDS * 1000 - 1000));
    await guest.unroute('**/api/local-recordings**');
    console.log(`# ${cut} requests of the guest's upload cut off over ${CUT_SECONDS} s`);
    assert.ok(cut >= 1, 'the upload tried while cut off');
    await eventually('the upload goes on after the cut', async () => (await ownRecording(guest)).state === 'recording', 20000, 250);

    // The host sees the guest's upload in the Program panel while live.
    const row = host.locator(`[data-role=local-recordings] .local-rec-row`).filter({ hasText: GUEST });
    await row.waitFor({ timeout: 15000 });
    assert.equal(await row.getAttribute('data-state'), 'uploading');
    await host.locator('section.local-recordings').scrollIntoViewIfNeeded();
    await screenshot(host, 'local-recordings-02-host-sees-uploads');

    await new Promise((r) => setTimeout(r, Math.max(0, RECORD_SECONDS * 1000 - (Date.now() - startedAt))));
    await host.click('[data-action=end-broadcast]');
    await eventually('the guest’s recording is uploaded', async () => (await ownRecording(guest)).state === 'uploaded', 60000, 250);
    const own = await ownRecording(guest);
    await screenshot(guest, 'local-recordings-03-guest-uploaded');
    await eventually('the host sees it kept', async () => (await row.getAttribute('data-state')) === 'kept', 30000, 250);

    const items = await host.evaluate(async () => (await (await fetch('/api/recordings')).json()).items);
    const local = items.find((r) => r.local && r.participantName === GUEST);
    assert.ok(local, JSON.stringify(items));
    assert.equal(local.broadcastId, broadcastId);
    assert.equal(local.status, 'ready');
    assert.ok(items.some((r) => !r.participantId), 'the program’s recording is listed beside it');

    const file = path.join(server.data, 'recordings', `${local.id}.webm`);
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,codec_type,width,height:format=duration', '-of', 'json', file]);
    const probe = JSON.parse(stdout);
    const duration = Number(probe.format.duration);
    const codecs = probe.streams.map((s) => s.codec_name).sort();
    console.log(`# the guest's page recorded ${own.seconds} s; the kept file: ${codecs.join(' + ')}, ${duration.toFixed(2)} s, ${local.fileSize} bytes (listed ${local.duration.toFixed(2)} s)`);
    assert.deepEqual(codecs, ['opus', 'vp8']);
    assert.ok(own.seconds >= RECORD_SECONDS - 1 && own.seconds <= RECORD_SECONDS + 5, `the page recorded ${own.seconds} s`);
    assert.ok(Math.abs(duration - own.seconds) <= 1, `the file lasts ${duration} s, the page recorded ${own.seconds} s`);
    assert.ok(Math.abs(local.duration - duration) <= 0.5, `listed ${local.duration} s`);
    // A browser's recording has a variable frame rate (now and then two frames on the same millisecond, which
    // only the null muxer minds): what counts is that the demuxer and decoders find nothing wrong.
    const { stderr } = await run('ffmpeg', ['-v', 'error', '-i', file, '-fps_mode', 'passthrough', '-f', 'null', '-']);
    const problems = stderr.split('\n').filter((l) => l.trim() && !l.startsWith('[null @'));
    assert.deepEqual(problems, [], 'FFmpeg reads and decodes the whole file without an error');

    // The library lists it under the guest's name, playable in the page.
    await host.goto(`${server.url}/#/recordings/${broadcastId}`);
    const card = host.locator(`.recording-card[data-recording-id="${local.id}"]`);
    await card.waitFor({ timeout: 15000 });
    assert.match(await card.locator('.recording-who').textContent(), /Gail Guest’s local recording/);
    await expectPlays('the guest’s recording plays in the page', card.locator('video'));
    await screenshot(host, 'local-recordings-04-library');
  });

  it('uploads what a reloaded page recorded, and records again after it', async () => {
    const server = new OwnServer(path.join(dir, 'reload'), 'local-recordings-reload');
    servers.push(server);
    await server.start();
    await studioWithLocalRecording(server, people, 'reload');
    const guest = people.guest.page;
    await eventually('the guest’s studio records', async () => (await ownRecording(guest)).state === 'recording', 15000, 250);
    await new Promise((r) => setTimeout(r, 10000));
    // The guest's page goes away mid-show and comes back: the same invite, the same browser.
    await joinAsGuest(people.guest, people.guest.link, GUEST);
    await eventually('the new page records', async () => (await ownRecording(guest)).state === 'recording', 15000, 250);
    await new Promise((r) => setTimeout(r, 5000));
    await people.host.page.click('[data-action=end-broadcast]');
    const mine = await eventually('both of the guest’s recordings are kept', async () => {
      const items = await people.host.page.evaluate(async () => (await (await fetch('/api/recordings')).json()).items);
      const local = items.filter((r) => r.local && r.participantName === GUEST);
      return local.length === 2 && local.every((r) => r.status === 'ready') ? local : null;
    }, 60000, 500);
    const durations = mine.map((r) => r.duration).sort((a, b) => a - b);
    console.log(`# before and after the reload: ${durations.map((d) => d.toFixed(2)).join(' s and ')} s kept`);
    assert.ok(durations[1] >= 8.5, `the old page recorded about 10 s before it went; kept ${durations[1]} s`);
    assert.ok(durations[0] >= 3, `the new page recorded about 5 s; kept ${durations[0]} s`);
  });

  it('refuses an upload past the broadcast’s storage and tells the guest why', async () => {
    const server = new OwnServer(path.join(dir, 'small'), 'local-recordings-quota', { limits: 'local_recording_bytes_per_broadcast = 200000' });
    servers.push(server);
    await server.start();
    await studioWithLocalRecording(server, people, 'quota');
    const guest = people.guest.page;
    const refused = await eventually('the guest’s studio says the upload was refused', async () => {
      const s = await ownRecording(guest);
      return s.state === 'refused' ? s : null;
    }, 30000, 250);
    assert.match(refused.text, /storage for local recordings is full/);
    await screenshot(guest, 'local-recordings-05-guest-over-quota');
    const row = people.host.page.locator(`[data-role=local-recordings] .local-rec-row`).filter({ hasText: GUEST });
    await eventually('the host sees the refusal', async () => (await row.getAttribute('data-state').catch(() => null)) === 'refused', 15000, 250);
    await people.host.page.click('[data-action=end-broadcast]');
  });
});
