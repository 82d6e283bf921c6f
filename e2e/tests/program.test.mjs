// Going live from the studio: a host and a guest in Chromium, both put on stage from the studio UI; the host
// adds a custom RTMP destination (a real nginx-rtmp on loopback) and presses Go live. The stream nginx receives
// is H.264 + AAC and shows both participants' camera patterns; the destination panel says "Live"; the program
// preview in the studio shows the composed picture; End stops it. Then the host finds the recording from the
// broadcasts list beside each person's own recording, plays it in the page, downloads it and deletes it. Neither
// page logged a console error.
// A second destination asks for its own quality (360p, from the destination form): nginx receives that stream
// at 640×360 beside the full-size one; a Twitch profile over Twitch's bitrate is refused in the form.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { addRtmpDestination, backyardUrl, closeAll, decodedFrames, eventually, grabVideo, hostWithInvite, joinAsGuest, launchParticipant, makeClips, rgb, screenshot } from '../lib/harness.mjs';
import { findColour, grabFrame, startRtmpServer } from '../lib/rtmp.mjs';

const PEOPLE = {
  host: { name: 'Paula Host', left: 'c83232', right: '3232c8' },
  guest: { name: 'Quentin Guest', left: '32c832', right: 'c8c832' },
};
// The program scales and re-encodes (VP8 → decode → x264), so allow a little more than the SFU test.
const TOLERANCE = 32;
const STREAM_KEY = 'e2e-program';
const SMALL_KEY = 'e2e-program-small';

/** Both halves of `who`'s clip are in the frame, each covering a visible area, left half left of right half. */
function assertPattern(frame, who, where) {
  const left = findColour(frame, rgb(who.left), TOLERANCE);
  const right = findColour(frame, rgb(who.right), TOLERANCE);
  assert.ok(left && left.share > 0.01, `${who.name}'s left colour #${who.left} is in the ${where} (${JSON.stringify(left)})`);
  assert.ok(right && right.share > 0.01, `${who.name}'s right colour #${who.right} is in the ${where} (${JSON.stringify(right)})`);
  assert.ok(left.meanX < right.meanX, `${who.name}'s picture is not mirrored or swapped in the ${where}`);
}

describe('go live from the studio to a real RTMP server', { timeout: 240000 }, () => {
  const base = backyardUrl();
  let clipDir;
  let nginx;
  const p = {};

  before(async () => {
    clipDir = await makeClips(PEOPLE);
    nginx = await startRtmpServer();
  });

  after(async () => {
    await closeAll(p, clipDir);
    await nginx?.stop();
  });

  it('host and guest are in the studio, both on stage', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    const link = await hostWithInvite(page, {
      base,
      name: PEOPLE.host.name,
      email: `program-${Date.now()}@example.test`,
      title: 'E2E go live',
    });

    p.guest = await launchParticipant('guest', { clip: PEOPLE.guest.clip });
    await joinAsGuest(p.guest, `${base}/join/${link.split('/join/')[1]}`, PEOPLE.guest.name);

    const guestCard = page.locator('.participant-card[data-kind=camera]', { has: page.locator('.card-name', { hasText: PEOPLE.guest.name }) });
    await guestCard.waitFor({ timeout: 15000 });
    await page.locator('.participant-card[data-self][data-kind=camera] [data-action=toggle-stage]').click();
    await guestCard.locator('[data-action=toggle-stage]').click();
    await page.click('[data-layout=grid]');
    // The guest's studio follows the scene the server confirmed.
    await eventually('both on stage in the guest’s view', async () => (await p.guest.page.locator('.participant-card[data-on-stage=true]').count()) === 2, 15000);
  });

  it('a destination can ask for its own quality; the platform’s limits are said in the form', async () => {
    const page = p.host.page;
    await page.click('[data-tab=broadcast]');
    // Twitch takes at most 6000 kb/s of video: the form shows the server's refusal and creates nothing.
    await page.click('[data-action=add-destination]');
    await page.selectOption('.dest-form select[name=platform]', 'twitch');
    await page.fill('.dest-form input[name=streamKey]', 'live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz0123');
    await page.selectOption('.dest-form select[name=resolution]', '1080p');
    assert.equal(await page.inputValue('.dest-form input[name=videoKbps]'), '6000', 'a size suggests its usual bitrate');
    await page.selectOption('.dest-form select[name=resolution]', '720p');
    await page.fill('.dest-form input[name=videoKbps]', '12000');
    await page.click('.dest-form button[type=submit]');
    const error = page.locator('.dest-form .form-error');
    await eventually('the form says what Twitch accepts', async () => /Twitch accepts at most 6000 kb\/s/.test(await error.textContent()), 15000);
    await screenshot(page, 'program-00-twitch-bitrate-refused');
    await page.click('.dest-form button.ghost');
    assert.equal(await page.locator('.dest-item').count(), 0, 'nothing was created');

    // A custom RTMP server at 360p: the row says what it is sent.
    await page.click('[data-action=add-destination]');
    await page.selectOption('.dest-form select[name=platform]', 'rtmp');
    await page.fill('.dest-form input[name=name]', 'Small nginx');
    await page.fill('.dest-form input[name=rtmpUrl]', nginx.url);
    await page.fill('.dest-form input[name=streamKey]', SMALL_KEY);
    await page.selectOption('.dest-form select[name=resolution]', '360p');
    await page.selectOption('.dest-form select[name=fps]', '15');
    await page.click('.dest-form button[type=submit]');
    const small = page.locator('.dest-item', { hasText: 'Small nginx' });
    await small.waitFor();
    assert.equal(await small.locator('[data-role=dest-encode]').textContent(), '640×360 · 15 fps · 700 kb/s');

    // The quality editor opens on the row with what is set, and saves a change.
    await small.locator('[data-action=destination-quality]').click();
    const editor = page.locator('.quality-form');
    assert.equal(await editor.locator('select[name=resolution]').inputValue(), '360p');
    await editor.locator('input[name=videoKbps]').fill('600');
    await screenshot(page, 'program-00-quality-editor');
    await editor.locator('button[type=submit]').click();
    await editor.waitFor({ state: 'detached' });
    assert.equal(await small.locator('[data-role=dest-encode]').textContent(), '640×360 · 15 fps · 600 kb/s');
  });

  it('host adds a custom RTMP destination and goes live; nginx receives both patterns', async () => {
    const page = p.host.page;
    const dest = await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: STREAM_KEY });
    assert.match(await dest.locator('[data-role=dest-encode]').textContent(), /^Program's quality · 1280×720 · 30 fps/);

    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 15000);
    await eventually('the destination shows live', async () => (await dest.getAttribute('data-status')) === 'live', 30000);

    // A probe of a live stream can end before its first video packet (it joined between keyframes), so a
    // probe that saw no video is retried; one frame decoded with both patterns proves the video anyway.
    const frame = await eventually('a frame from nginx with both patterns', async () => {
      const f = await grabFrame(`${nginx.url}/${STREAM_KEY}`);
      const probed = f.streams.some((s) => s.codec_type === 'video');
      return probed && findColour(f, rgb(PEOPLE.host.left), TOLERANCE) && findColour(f, rgb(PEOPLE.guest.left), TOLERANCE) ? f : false;
    }, 60000, 1000);
    const kinds = Object.fromEntries(frame.streams.map((s) => [s.codec_type, s.codec_name]));
    assert.deepEqual(kinds, { video: 'h264', audio: 'aac' });
    assertPattern(frame, PEOPLE.host, 'RTMP output');
    assertPattern(frame, PEOPLE.guest, 'RTMP output');
    // The 360p destination gets its own encode of the same program.
    const small = await eventually('a frame from the 360p destination', async () => {
      const f = await grabFrame(`${nginx.url}/${SMALL_KEY}`);
      return f.streams.some((x) => x.codec_type === 'video') && findColour(f, rgb(PEOPLE.guest.left), TOLERANCE) ? f : false;
    }, 60000, 1000);
    const video = small.streams.find((x) => x.codec_type === 'video');
    assert.deepEqual([video.width, video.height], [640, 360], 'the 360p destination receives 640×360');
    assertPattern(small, PEOPLE.host, '360p output');
    const fullSize = frame.streams.find((x) => x.codec_type === 'video');
    assert.deepEqual([fullSize.width, fullSize.height], [1280, 720], 'the other destination gets the program’s size');
    await screenshot(page, 'program-01-host-live');
  });

  it('the studio’s program preview shows the composed picture, live over the host’s WebRTC connection', async () => {
    const preview = p.host.page.locator('video[data-role=program-preview]');
    await eventually('the preview plays the server’s program track', async () => (await preview.getAttribute('data-source')) === 'webrtc', 30000);
    // The <video> plays a track one of the page's peer connections receives, and frames of it are decoded.
    const decoded = await eventually('program track frames decoded', async () => {
      const d = await decodedFrames(p.host.page, 'video[data-role=program-preview]');
      return d?.frames > 10 ? d : false;
    }, 30000);
    assert.ok(decoded.program, 'the track is the server’s `program` stream');
    const guestSees = await p.guest.page.evaluate(() => (window.__peerConnections ?? []).some((pc) => pc.remoteDescription?.sdp.includes('msid:program ')));
    assert.equal(guestSees, false, 'guests are not sent the program preview');
    const frame = await eventually('program preview frames', async () => {
      const f = await grabVideo(preview);
      return f && findColour(f, rgb(PEOPLE.guest.left), TOLERANCE) ? f : false;
    }, 30000);
    assertPattern(frame, PEOPLE.host, 'program preview');
    assertPattern(frame, PEOPLE.guest, 'program preview');
  });

  it('End stops the broadcast', async () => {
    const page = p.host.page;
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
    await eventually('the guest sees it ended', async () => (await p.guest.page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
    await screenshot(page, 'program-02-host-ended');
  });

  it('the recording is in the library: found from the broadcasts list, it plays in the page, downloads and deletes', async () => {
    const page = p.host.page;
    await page.goto(`${base}/#/broadcasts`);
    await page.locator('[data-action=open-recordings]').waitFor();
    await screenshot(page, 'program-03-broadcasts');
    await page.click('[data-action=open-recordings]');
    // The program's recording; beside it each person on stage has their own (below).
    const card = page.locator('.recording-card:not(:has(.recording-who))');
    await eventually('the recording is finalised', async () => {
      if ((await card.getAttribute('data-status').catch(() => null)) === 'ready') return true;
      await page.reload();
      return false;
    }, 30000, 1000);
    const player = card.locator('video.recording-player');
    await player.evaluate((v) => {
      v.muted = true;
      return v.play();
    });
    await eventually('the recording plays in the page', async () => (await player.evaluate((v) => v.currentTime)) > 1, 20000);
    assert.ok(await player.evaluate((v) => v.videoWidth > 0), 'the player decodes the picture');
    await screenshot(page, 'program-04-recordings');
    const [download] = await Promise.all([page.waitForEvent('download'), card.locator('[data-action=download-recording]').click()]);
    const file = await readFile(await download.path());
    assert.ok(file.length > 50000, `the download is ${file.length} bytes`);
    assert.equal(file.subarray(4, 8).toString('latin1'), 'ftyp', 'the download is an MP4');
    assert.match(download.suggestedFilename(), /\.mp4$/);
    // Both people were on stage while live: each has their own recording, named, as their browser sent it.
    const own = await page.locator('.recording-card .recording-who').allTextContents();
    assert.deepEqual(own.sort(), [`${PEOPLE.guest.name}’s own recording`, `${PEOPLE.host.name}’s own recording`].sort());
    // The host's page accepts confirmations (set up with the studio above): the delete is confirmed.
    await card.locator('[data-action=delete-recording]').click();
    await card.waitFor({ state: 'detached', timeout: 10000 });
    const left = await page.evaluate(async () => (await (await fetch('/api/recordings')).json()).items);
    assert.ok(left.every((r) => r.participantId), 'the program’s recording is gone from the API too; the people’s own stay');
  });

  it('a normal session logs no console errors, for the host or the guest', () => {
    // Chromium logs every 4xx answer; the one Twitch refusal above was asked for, and is the only one allowed.
    const refusal = '[error] Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)';
    const hostLogs = [...p.host.logs];
    const asked = hostLogs.indexOf(refusal);
    assert.ok(asked >= 0, 'the Twitch refusal was answered 422');
    hostLogs.splice(asked, 1);
    for (const x of [{ ...p.host, logs: hostLogs }, p.guest]) {
      const errors = x.logs.filter((l) => l.startsWith('[error]') || l.startsWith('[pageerror]'));
      assert.deepEqual(errors, [], `${x.name}'s console (failed requests: ${x.logs.filter((l) => l.startsWith('[http')).join('; ') || 'none'})`);
    }
  });
});
