// Participants' own recordings: a host on stage (a camera that flashes white, a microphone that beeps, each
// once every four seconds) goes live; beside the program's MP4, the server writes the host's media as their
// Chromium sent it into a WebM file of its own. The server is killed with `kill -9` mid-show and started again:
// both recordings are finalised from their files, the participant's is listed with the host's name, holds VP8
// and Opus at the camera's full 960×540 (the best simulcast layer, not the one the program decoded), and every
// flash and beep in it sits at the same time as in the program's recording (within 40 ms).
//
// Starts a backyard of its own (`BACKYARD_E2E_BIN`, embedded state in a fresh data folder), so it can kill it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { closeAll, eventually, expectPlays, hostWithInvite, launchParticipant, screenshot } from '../lib/harness.mjs';
import { OwnServer } from '../lib/server.mjs';

const run = promisify(execFile);
const EMAIL = `recorder-${Date.now()}@example.com`;
const NAME = 'Rita Recorder';
/** The fake media repeat every PERIOD seconds: a flash (and a beep) FLASH_AT seconds in. */
const PERIOD = 4;
const FLASH_AT = 1;
/** How far the same flash or beep may sit apart in the two files. */
const ALIGNED_WITHIN = 0.04;

/** A 960×540 camera (sent in three simulcast layers), dark grey but white for three frames FLASH_AT s into every PERIOD s. */
async function flashingCamera(dir) {
  const file = path.join(dir, 'flash.y4m');
  const from = FLASH_AT * 30;
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `color=c=0x303030:s=960x540:r=30:d=${PERIOD}`,
    '-vf', `drawbox=c=white:t=fill:enable='between(n,${from},${from + 2})',format=yuv420p`, '-f', 'yuv4mpegpipe', file]);
  return file;
}

/** A microphone, silent but for a 100 ms 1 kHz beep FLASH_AT s into every PERIOD s. */
async function beepingMicrophone(dir) {
  const file = path.join(dir, 'beep.wav');
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `sine=f=1000:r=48000:d=${PERIOD}`,
    '-af', `volume=enable='not(between(t,${FLASH_AT},${FLASH_AT + 0.1}))':volume=0`, '-ac', '1', file]);
  return file;
}

/** Times (on the file's own timeline, start offset kept) at which `file`'s picture turns bright. */
async function flashes(file) {
  const out = path.join(path.dirname(file), `${path.basename(file)}.luma.txt`);
  await run('ffmpeg', ['-v', 'error', '-copyts', '-i', file, '-an', '-vf', `signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=${out}`, '-f', 'null', '-']);
  return onsets(await readFile(out, 'utf8'), 'lavfi.signalstats.YAVG', (v) => v > 120);
}

/** Times at which `file`'s sound turns loud (in 5 ms steps). */
async function beeps(file) {
  const out = path.join(path.dirname(file), `${path.basename(file)}.rms.txt`);
  await run('ffmpeg', ['-v', 'error', '-copyts', '-i', file, '-vn', '-af',
    `aresample=48000,asetnsamples=n=240,astats=metadata=1:reset=1,ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=${out}`, '-f', 'null', '-']);
  return onsets(await readFile(out, 'utf8'), 'lavfi.astats.Overall.RMS_level', (v) => v > -35);
}

/** From ffmpeg's metadata printout: the times at which `on(value)` becomes true after being false. */
function onsets(text, key, on) {
  const times = [];
  let t = null;
  let was = true;
  for (const line of text.split('\n')) {
    const frame = /pts_time:([-0-9.]+)/.exec(line);
    if (frame) t = Number(frame[1]);
    else if (line.startsWith(`${key}=`) && t !== null) {
      const now = on(Number(line.slice(key.length + 1)));
      if (now && !was) times.push(t);
      was = now;
    }
  }
  return times;
}

async function probe(file) {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height:format=start_time,duration', '-of', 'json', file]);
  return JSON.parse(stdout);
}

describe('participants’ own recordings', { timeout: 240000 }, () => {
  let dir;
  let server;
  let host;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'backyard-recordings-'));
    server = new OwnServer(dir, 'recordings');
    await server.start();
    host = await launchParticipant('recordings-host', {
      clip: await flashingCamera(dir),
      flags: [`--use-file-for-fake-audio-capture=${await beepingMicrophone(dir)}`],
    });
    // The server's program is what is timed here: the browser encoding its camera three times yields to it.
    const { stdout: pids } = await run('pgrep', ['-f', 'backyard-e2e-recordings-host-']).catch(() => ({ stdout: '' }));
    for (const pid of pids.split('\n').filter(Boolean)) await run('renice', ['-n', '10', '-p', pid]).catch(() => {});
    await hostWithInvite(host.page, { base: server.url, name: NAME, email: EMAIL, title: 'Recorded show' });
  });

  after(async () => {
    await closeAll({ host });
    if (server?.proc?.exitCode === null) await server.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('records the host as sent, survives kill -9, and lines up with the program to 40 ms', async () => {
    const page = host.page;
    const broadcastId = new URL(page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    // Live first, on stage a few seconds later: the host's file starts where they came on, not at zero.
    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 20000);
    await new Promise((r) => setTimeout(r, 4000));
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    const list = () => page.evaluate(async () => (await (await fetch('/api/recordings')).json()).items);
    const mine = (items) => items.find((r) => r.participantName === 'Rita Recorder');
    await eventually('the host’s own recording is listed while live', async () => mine(await list())?.status === 'recording', 15000, 500);
    await new Promise((r) => setTimeout(r, 13000));

    await server.kill();
    await server.start();
    const items = await eventually('both recordings finalised after the restart', async () => {
      const all = await list().catch(() => null);
      return all?.length === 2 && all.every((r) => r.status === 'ready') ? all : null;
    }, 20000, 500);
    const program = items.find((r) => !r.participantId);
    const own = mine(items);
    assert.ok(program && own, JSON.stringify(items));
    assert.equal(own.broadcastId, broadcastId);
    assert.equal(own.title, 'Recorded show');
    const ownFile = path.join(server.data, 'recordings', `${own.id}.webm`);
    const programFile = path.join(server.data, 'recordings', `${program.id}.mp4`);

    // As sent: VP8 and Opus, not encoded again, the picture at the camera's own 960×540 (the top simulcast layer,
    // once the browser sends it: a file opened while it was still ramping up starts on a layer below).
    const p = await probe(ownFile);
    const video = p.streams.find((s) => s.codec_type === 'video');
    const audio = p.streams.find((s) => s.codec_type === 'audio');
    assert.deepEqual([video?.codec_name, audio?.codec_name], ['vp8', 'opus'], JSON.stringify(p));
    const { stdout: sizes } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'frame=width,height', '-of', 'csv=p=0', ownFile]);
    const frames = sizes.split('\n').filter(Boolean);
    console.log(`# the host's file: ${frames.length} pictures, the first ${frames[0]}, the last ${frames.at(-1)}`);
    assert.equal(frames.at(-1), '960,540', 'the camera at its own size');
    const start = Number(p.format.start_time);
    console.log(`# the host's file starts ${start.toFixed(3)} s into the show and lasts ${own.duration.toFixed(1)} s; the program's ${program.duration.toFixed(1)} s`);
    assert.ok(start > 3, `the host came on stage 4 s into the show; their file starts at ${start} s`);
    assert.ok(own.duration > 8, `${own.duration} s recorded before the kill`);

    // Every flash and beep in the host's file has its twin in the program's, at the same time (up to the end of
    // the program's file, which the kill cut a moment before the host's).
    const programEnd = Number((await probe(programFile)).format.duration);
    for (const [what, find] of [['flash', flashes], ['beep', beeps]]) {
      const [all, programAt] = [await find(ownFile), await find(programFile)];
      const mineAt = all.filter((t) => t < programEnd - 0.5);
      assert.ok(mineAt.length >= 2, `${what}es in the host's file: ${mineAt}`);
      const offsets = mineAt.map((t) => Math.min(...programAt.map((u) => Math.abs(u - t))));
      console.log(`# ${what}: host's file ${mineAt.map((t) => t.toFixed(3)).join(' ')}; the program's ${programAt.map((t) => t.toFixed(3)).join(' ')}; apart ${offsets.map((o) => (o * 1000).toFixed(0)).join(' ')} ms`);
      assert.ok(offsets.every((o) => o <= ALIGNED_WITHIN), `each ${what} within ${ALIGNED_WITHIN * 1000} ms of the program's`);
    }

    // The library lists it with the host's name, playable in the page.
    await page.goto(`${server.url}/#/recordings/${broadcastId}`);
    const card = page.locator(`.recording-card[data-recording-id="${own.id}"]`);
    await card.waitFor({ timeout: 15000 });
    assert.match(await card.locator('.recording-who').textContent(), /Rita Recorder/);
    assert.match(await card.locator('[data-action=download-recording]').getAttribute('download'), /Rita-Recorder.*\.webm$/);
    await expectPlays('the host’s recording plays in the page', card.locator('video'));
    await screenshot(page, 'recordings-01-library');
  });
});
