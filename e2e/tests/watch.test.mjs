// The watch page: a host opens the show to viewers from the Broadcast panel (public), goes live with no
// destination, and a viewer with no account opens /watch/<id> in another Chromium. hls.js (served by Backyard)
// plays the program's HLS stream: the <video> shows the host's camera pattern and advances, and the page says how
// far behind live it is; switched to "Low latency" it plays the same program over WebRTC (WHEP: the encode's own
// H.264, no second encode; its sound as Opus) about a second behind. ffprobe reads the playlist (H.264 + AAC at the program's size) and the FLV stream. The public list names
// the show while it is live. After End the page says the show ended; a show that is not open to viewers is not
// found. Neither page logged a console error.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, closeAll, eventually, grabVideo, hostWithInvite, launchParticipant, makeClips, rgb, screenshot } from '../lib/harness.mjs';
import { findColour } from '../lib/rtmp.mjs';

const run = promisify(execFile);
const HOST = { name: 'Wanda Watch', left: 'c83232', right: '3232c8' };
const TOLERANCE = 36;

describe('viewers watch the show on its watch page', { timeout: 240000 }, () => {
  const base = backyardUrl();
  let clipDir;
  let broadcastId;
  const p = {};

  before(async () => {
    clipDir = await makeClips({ host: HOST });
  });

  after(async () => {
    await closeAll(p, clipDir);
  });

  it('a show not open to viewers has no watch page', async () => {
    p.host = await launchParticipant('host', { clip: HOST.clip });
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    await hostWithInvite(page, { base, name: HOST.name, email: `watch-${Date.now()}@example.test`, title: 'E2E watch party' });
    broadcastId = new URL(page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    assert.ok(broadcastId, page.url());
    const res = await fetch(`${base}/api/watch/${broadcastId}`);
    assert.equal(res.status, 404, 'watch is off by default');

    p.viewer = await launchParticipant('viewer', { width: 1280, height: 900 });
    await p.viewer.page.goto(`${base}/watch/${broadcastId}`);
    await p.viewer.page.getByText('This show is not available').waitFor({ timeout: 15000 });
  });

  it('the host makes it public from the Broadcast panel, puts herself on stage and goes live', async () => {
    const page = p.host.page;
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    await page.click('[data-tab=broadcast]');
    await page.selectOption('[data-role=watch-visibility]', 'public');
    await eventually('the setting is saved', async () => (await (await fetch(`${base}/api/watch/${broadcastId}`)).status) === 200, 10000);
    const link = await page.inputValue('[data-role=watch-link]');
    assert.equal(link, `${base}/watch/${broadcastId}`);
    await screenshot(page, 'watch-01-viewers-section');

    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 15000);
    await eventually('the viewers’ stream is live', async () => (await page.getAttribute('[data-role=watch-status]', 'data-status')) === 'live', 30000);
    const list = await (await fetch(`${base}/api/watch`)).json();
    assert.ok(list.some((s) => s.id === broadcastId && s.title === 'E2E watch party' && s.visibility === 'public'), JSON.stringify(list));
  });

  it('ffprobe reads the HLS stream: H.264 and AAC at the program’s size', async () => {
    const info = await (await fetch(`${base}/api/watch/${broadcastId}`)).json();
    assert.equal(info.hls, `/api/watch/${broadcastId}/hls/index.m3u8`);
    const playlist = await eventually('a playlist with segments', async () => {
      const res = await fetch(`${base}${info.hls}`);
      const text = res.ok ? await res.text() : '';
      return text.includes('.m4s') ? text : false;
    }, 30000, 500);
    assert.match(playlist, /#EXT-X-MAP:URI="init.mp4"/);
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height', '-of', 'json', `${base}${info.hls}`], { timeout: 30000 });
    const streams = JSON.parse(stdout).streams;
    const video = streams.find((s) => s.codec_type === 'video');
    assert.equal(video?.codec_name, 'h264', stdout);
    assert.ok(video.width >= 640 && video.height >= 360, stdout);
    assert.equal(streams.find((s) => s.codec_type === 'audio')?.codec_name, 'aac', stdout);

    // The same encode as FLV over HTTP, for players that do not read HLS.
    assert.equal(info.flv, `/api/watch/${broadcastId}/live.flv`);
    const flv = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height', '-of', 'json', `${base}${info.flv}`], { timeout: 30000 });
    const flvStreams = JSON.parse(flv.stdout).streams;
    assert.deepEqual(flvStreams.map((s) => s.codec_name).sort(), ['aac', 'h264'], flv.stdout);
    assert.equal(flvStreams.find((s) => s.codec_type === 'video').width, video.width);
  });

  it('the viewer’s page plays the program with hls.js and says how far behind live it is', async () => {
    const page = p.viewer.page;
    const video = page.locator('[data-role=watch-video]');
    await eventually('the video advances', async () => (await video.evaluate((v) => v.currentTime)) > 2, 60000, 500);
    const frame = await eventually('the host’s picture in the watch page', async () => {
      const f = await grabVideo(video);
      return f && findColour(f, rgb(HOST.left), TOLERANCE) && findColour(f, rgb(HOST.right), TOLERANCE) ? f : false;
    }, 30000, 500);
    assert.ok(findColour(frame, rgb(HOST.left), TOLERANCE).meanX < findColour(frame, rgb(HOST.right), TOLERANCE).meanX, 'not mirrored');
    const t0 = await video.evaluate((v) => v.currentTime);
    await eventually('it keeps playing', async () => (await video.evaluate((v) => v.currentTime)) > t0 + 2, 20000, 500);
    // (Wrapped: "0.0 s behind live" is a reading too, and 0 would read as "not yet".)
    const { secs: latency } = await eventually('a latency readout', async () => {
      const m = /([\d.]+) s behind live/.exec(await page.textContent('[data-role=watch-latency]'));
      return m ? { secs: Number(m[1]) } : false;
    }, 15000, 500);
    assert.ok(latency > 0 && latency < 20, `${latency} s behind live`);
    console.log(`# the watch page plays ${latency} s behind live`);
    assert.equal(await page.textContent('[data-role=watch-title]'), 'E2E watch party');
    assert.equal(await page.getAttribute('[data-role=watch-flv]', 'href'), `${base}/api/watch/${broadcastId}/live.flv`);
    await screenshot(page, 'watch-02-viewer-playing');
  });

  it('switched to low latency, the page plays the program over WebRTC (WHEP) closer to live', async () => {
    const page = p.viewer.page;
    const info = await (await fetch(`${base}/api/watch/${broadcastId}`)).json();
    assert.equal(info.whep, `/api/watch/${broadcastId}/whep`);
    await page.selectOption('[data-role=watch-mode]', 'webrtc');
    const video = page.locator('[data-role=watch-video]');
    await eventually('a WebRTC stream in the video', async () => video.evaluate((v) => v.srcObject instanceof MediaStream), 20000, 250);
    const frame = await eventually('the host’s picture over WebRTC', async () => {
      const f = await grabVideo(video);
      return f && findColour(f, rgb(HOST.left), TOLERANCE) && findColour(f, rgb(HOST.right), TOLERANCE) ? f : false;
    }, 30000, 500);
    assert.ok(findColour(frame, rgb(HOST.left), TOLERANCE).meanX < findColour(frame, rgb(HOST.right), TOLERANCE).meanX, 'not mirrored');
    const decoded = async () => page.evaluate(async () => {
      const pc = window.__peerConnections.at(-1);
      const stats = [...(await pc.getStats()).values()].find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
      return { frames: stats?.framesDecoded ?? 0, codec: stats && (await pc.getStats()).get(stats.codecId)?.mimeType };
    });
    const first = await decoded();
    assert.equal(first.codec, 'video/H264', 'the program’s own H.264');
    await eventually('frames keep coming', async () => (await decoded()).frames > first.frames + 30, 15000, 500);
    const sound = await page.evaluate(async () => {
      const pc = window.__peerConnections.at(-1);
      const stats = [...(await pc.getStats()).values()];
      const audio = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'audio');
      return { samples: audio?.totalSamplesReceived ?? 0, codec: audio && stats.find((s) => s.id === audio.codecId)?.mimeType };
    });
    assert.equal(sound.codec, 'audio/opus', 'the program’s sound, as Opus');
    assert.ok(sound.samples > 48000, `${sound.samples} samples of the program’s sound`);
    // (Wrapped: "0.0 s behind live" is a reading too, and 0 would read as "not yet".)
    const { secs: latency } = await eventually('a latency readout', async () => {
      const m = /([\d.]+) s behind live/.exec(await page.textContent('[data-role=watch-latency]'));
      return m ? { secs: Number(m[1]) } : false;
    }, 15000, 500);
    assert.ok(latency >= 0 && latency < 5, `${latency} s behind live`);
    console.log(`# over WebRTC the watch page plays ${latency} s behind the server`);
    await screenshot(page, 'watch-03-viewer-webrtc');
  });

  it('after End the watch page says the show ended, and it leaves the public list', async () => {
    await p.host.page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await p.host.page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
    await p.viewer.page.getByText('The show has ended').waitFor({ timeout: 20000 });
    const list = await (await fetch(`${base}/api/watch`)).json();
    assert.ok(!list.some((s) => s.id === broadcastId), JSON.stringify(list));
    const gone = await fetch(`${base}/api/watch/${broadcastId}/hls/index.m3u8`);
    assert.equal(gone.status, 404);
    await screenshot(p.viewer.page, 'watch-04-ended');
  });

  it('neither page logged a console error', () => {
    for (const x of [p.host, p.viewer]) {
      // The viewer's first look at a show that was not open is a 404 the page expects and explains.
      const errors = x.logs.filter((l) => (l.startsWith('[error]') || l.startsWith('[pageerror]')) && !l.includes('404'));
      assert.deepEqual(errors, [], `${x.name}'s console (failed requests: ${x.logs.filter((l) => l.startsWith('[http')).join('; ') || 'none'})`);
    }
  });
});
