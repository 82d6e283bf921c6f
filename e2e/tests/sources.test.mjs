// An encoder as the source of a show, from the studio: the host opens the Sources panel, creates a stream key,
// copies the server URL and the key (the clipboard holds them), and points an encoder at them (ffmpeg with OBS's
// x264 defaults: High profile, B-frames, 2 s keyframes, AAC 48 kHz). The panel says what arrives, the studio shows
// the broadcast live, nginx (the destination) receives the encoder's picture (pixel check), a viewer with no
// account plays the same stream on the show's watch page (opened to viewers in the Broadcast panel), and End stops
// it all. Revoking the key empties the list. No console error on either page.
// Then an encoder as a source in the studio: ffmpeg with OBS's x264 defaults (B-frames) publishes to a source key;
// the host sees it as a participant with its picture (transcoded for the browsers), puts it on stage with a guest
// and goes live, and nginx receives a program showing both.
// Then a WHIP source: a page with no studio code (plain fetch + RTCPeerConnection) publishes its camera with a
// source key; the host sees it as a participant with its picture, puts it on stage, and DELETE takes it away.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one, its RTMP ingest at BACKYARD_E2E_RTMP_PORT).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { addRtmpDestination, backyardUrl, closeAll, eventually, expectPicture, grabVideo, hostWithInvite, joinAsGuest, launchParticipant, makeClips, participantCard, rgb, screenshot, waitOnStage } from '../lib/harness.mjs';
import { findColour, grabFrame, startRtmpServer } from '../lib/rtmp.mjs';

const COLOUR = '2a9d8f';
const TOLERANCE = 40;

describe('an encoder streams through the Sources panel', { timeout: 180000 }, () => {
  const base = backyardUrl();
  const p = {};
  let nginx;
  let encoder;
  let url;
  let key;
  let watchLink;

  before(async () => {
    nginx = await startRtmpServer();
  });

  after(async () => {
    encoder?.kill('SIGKILL');
    await closeAll(p);
    await nginx?.stop();
  });

  it('the host creates a stream key and copies the server URL and the key', async () => {
    p.host = await launchParticipant('host');
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    await hostWithInvite(page, { base, name: 'Otto Obs', email: `sources-${Date.now()}@example.test`, title: 'E2E encoder show' });
    await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: 'relayed' });
    await page.selectOption('[data-role=watch-visibility]', 'unlisted');
    watchLink = await page.inputValue('[data-role=watch-link]');
    const watchInfo = `${base}/api/watch/${watchLink.split('/').pop()}`;
    await eventually('the show is open to viewers', async () => (await fetch(watchInfo)).status === 200, 10000);

    await page.click('[data-tab=sources]');
    await page.getByText('No stream keys yet').waitFor();
    await page.fill('.sources-panel input[name=label]', 'OBS on the desk');
    await page.click('[data-action=create-ingest-key]');
    const row = page.locator('.sources-panel .dest-item', { hasText: 'OBS on the desk' });
    await row.waitFor();
    assert.match(await row.textContent(), /Waiting for the encoder/);

    url = await page.inputValue('[data-role=ingest-url]');
    assert.equal(url, `rtmp://127.0.0.1:${process.env.BACKYARD_E2E_RTMP_PORT}/live`);
    await page.click('[data-action=copy-ingest-key]');
    await row.getByText('Copied').waitFor();
    key = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(key, /^by_[A-Za-z0-9_-]{40,}$/);
    assert.ok(!(await row.textContent()).includes(key), 'the list shows the key masked');
    await screenshot(page, 'sources-01-key');
  });

  it('an encoder streams: the panel says what arrives, the show is live, nginx gets the picture', async () => {
    const page = p.host.page;
    encoder = spawn(
      'ffmpeg',
      [
        '-v', 'error', '-re',
        '-f', 'lavfi', '-i', `color=c=0x${COLOUR}:s=1280x720:r=30`,
        '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
        '-t', '60',
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-bf', '2', '-g', '60', '-b:v', '2500k',
        '-c:a', 'aac', '-ar', '48000', '-ac', '2',
        '-f', 'flv', `${url}/${key}`,
      ],
      { stdio: 'ignore' },
    );
    const row = page.locator('.sources-panel .dest-item', { hasText: 'OBS on the desk' });
    await row.getByText('Receiving 1280×720 H.264 (High), AAC 48 kHz stereo').waitFor({ timeout: 20000 });
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 15000);
    const banner = page.locator('[data-role=relay]');
    await banner.getByText('On air from the encoder “OBS on the desk”').waitFor();
    await screenshot(page, 'sources-02-receiving');

    const frame = await grabFrame(`${nginx.url}/relayed`, { skipSeconds: 1 });
    assert.equal(frame.streams.find((s) => s.codec_type === 'video')?.codec_name, 'h264');
    const seen = findColour(frame, rgb(COLOUR), TOLERANCE);
    assert.ok(seen && seen.share > 0.9, `nginx shows the encoder's picture: ${JSON.stringify(seen)}`);

    await page.click('[data-tab=broadcast]');
    await page.locator('.dest-item', { hasText: 'Local nginx' }).locator('[data-status=live], .dest-status-text:text("Live")').first().waitFor({ timeout: 15000 });
    await page.locator('[data-role=program-relay]').getByText('On air from the encoder “OBS on the desk”').waitFor();
    await screenshot(page, 'sources-03-destination-live');
  });

  it('a viewer plays the relayed stream on the watch page', async () => {
    p.viewer = await launchParticipant('viewer', { width: 1280, height: 900 });
    const page = p.viewer.page;
    await page.goto(watchLink);
    const video = page.locator('[data-role=watch-video]');
    await eventually('the video advances', async () => (await video.evaluate((v) => v.currentTime)) > 2, 60000, 500);
    await eventually('the encoder’s picture in the watch page', async () => {
      const f = await grabVideo(video);
      const seen = f && findColour(f, rgb(COLOUR), TOLERANCE);
      return seen && seen.share > 0.9;
    }, 30000, 500);
    await screenshot(page, 'sources-04-viewer');
    assert.deepEqual(p.viewer.logs.filter((l) => l.startsWith('[error]')), [], 'no console error on the viewer’s page');
    // The viewer leaves before the end: what a player sees when a stream ends is the watch suite's business.
    await page.goto('about:blank');
  });

  it('End stops the relay, and a revoked key leaves the list', async () => {
    const page = p.host.page;
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 20000);
    await eventually('the encoder was disconnected', async () => encoder.exitCode !== null || encoder.signalCode !== null, 15000);
    await page.click('[data-tab=sources]');
    const row = page.locator('.sources-panel .dest-item', { hasText: 'OBS on the desk' });
    await row.getByText('Waiting for the encoder').waitFor();
    assert.ok(await page.locator('[data-role=relay]').isHidden(), 'the on-air banner is gone');
    assert.ok(await page.locator('[data-role=program-relay]').isHidden(), 'the program monitor is the program again');
    await page.locator('.sources-panel .dest-item button[title=Revoke]').click();
    await page.getByText('No stream keys yet').waitFor();
    const errors = p.host.logs.filter((l) => l.startsWith('[error]'));
    assert.deepEqual(errors, [], 'no console error');
  });
});

describe('an encoder is a source in the studio', { timeout: 180000 }, () => {
  const base = backyardUrl();
  const p = {};
  const OBS = { name: 'OBS on the desk', left: 'f4a261', right: '2a4d9f' };
  const GUEST = { name: 'Gina Guest', left: '8ab17d', right: 'b5179e' };
  let clipDir;
  let nginx;
  let encoder;

  before(async () => {
    clipDir = await makeClips({ guest: GUEST });
    nginx = await startRtmpServer();
  });

  after(async () => {
    encoder?.kill('SIGKILL');
    await closeAll(p, clipDir);
    await nginx?.stop();
  });

  it('the host sees the encoder as a participant with its picture and puts it on stage with a guest', async () => {
    p.host = await launchParticipant('host');
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    const link = await hostWithInvite(page, { base, name: 'Sam Source', email: `source-${Date.now()}@example.test`, title: 'E2E source show' });
    p.guest = await launchParticipant('guest', { clip: GUEST.clip, width: 960, height: 600 });
    await joinAsGuest(p.guest, link, GUEST.name);

    await page.click('[data-tab=sources]');
    await page.fill('.sources-panel input[name=label]', OBS.name);
    await page.selectOption('.sources-panel select[name=mode]', 'source');
    await page.click('[data-action=create-ingest-key]');
    const row = page.locator('.sources-panel .dest-item', { hasText: OBS.name });
    await row.waitFor();
    const url = await page.inputValue('[data-role=ingest-url]');
    await page.click('[data-action=copy-ingest-key]');
    await row.getByText('Copied').waitFor();
    const key = await page.evaluate(() => navigator.clipboard.readText());
    const half = '640x720';
    encoder = spawn(
      'ffmpeg',
      [
        '-v', 'error', '-re',
        '-f', 'lavfi', '-i', `color=c=0x${OBS.left}:s=${half}:r=30`,
        '-f', 'lavfi', '-i', `color=c=0x${OBS.right}:s=${half}:r=30`,
        '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
        '-filter_complex', '[0:v][1:v]hstack=inputs=2,format=yuv420p[v]', '-map', '[v]', '-map', '2:a',
        '-t', '90',
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-bf', '2', '-g', '60', '-b:v', '2500k',
        '-c:a', 'aac', '-ar', '48000', '-ac', '2',
        '-f', 'flv', `${url}/${key}`,
      ],
      { stdio: 'ignore' },
    );
    await row.getByText(/transcoded for the studio/).waitFor({ timeout: 30000 });
    await expectPicture(page, OBS);
    await expectPicture(p.guest.page, OBS);
    assert.ok(await page.locator('[data-role=relay]').isHidden(), 'a source in the studio does not take the show over');

    const ids = [];
    for (const who of [OBS.name, GUEST.name]) {
      const card = participantCard(page, who);
      await card.locator('[data-action=toggle-stage]').click();
      ids.push(await card.getAttribute('data-participant-id'));
    }
    await waitOnStage(page, ids);
    await screenshot(page, 'sources-05-encoder-on-stage');
  });

  it('the host goes live; nginx receives a program showing the encoder and the guest', async () => {
    const page = p.host.page;
    await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: 'studio' });
    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 15000);
    await eventually('a frame from nginx showing both', async () => {
      const f = await grabFrame(`${nginx.url}/studio`, { skipSeconds: 1 });
      const colours = [OBS.left, OBS.right, GUEST.left, GUEST.right].map((c) => findColour(f, rgb(c), 40));
      return colours.every(Boolean) && colours[0].meanX < colours[1].meanX ? f : false;
    }, 60000, 1000);
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast shows ended', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 20000);
    const errors = [p.host, p.guest].flatMap((x) => x.logs.filter((l) => l.startsWith('[error]')));
    assert.deepEqual(errors, [], 'no console error');
  });
});

/** Publishes the page's camera and microphone to `endpoint` over WHIP with `key`; returns the resource URL. */
async function whipPublish(page, endpoint, key) {
  return page.evaluate(async ({ endpoint, key }) => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: the offer goes with every candidate gathered.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    });
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`WHIP answered ${res.status}: ${await res.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    window.__whip = pc;
    return new URL(res.headers.get('Location'), endpoint).href;
  }, { endpoint, key });
}

describe('a WHIP page publishes into the studio', { timeout: 120000 }, () => {
  const base = backyardUrl();
  const p = {};
  const PHONE = { name: 'Phone on a tripod', left: 'e76f51', right: '264653' };
  let clipDir;
  let key;
  let whipUrl;
  let resource;

  before(async () => {
    clipDir = await makeClips({ phone: PHONE });
  });

  after(async () => {
    await closeAll(p, clipDir);
  });

  it('the host makes a source key; the page publishes; the studio shows it and puts it on stage', async () => {
    p.host = await launchParticipant('host');
    const page = p.host.page;
    await hostWithInvite(page, { base, name: 'Wanda Whip', email: `whip-${Date.now()}@example.test`, title: 'E2E WHIP show' });
    await page.click('[data-tab=sources]');
    await page.fill('.sources-panel input[name=label]', PHONE.name);
    await page.selectOption('.sources-panel select[name=mode]', 'source');
    await page.click('[data-action=create-ingest-key]');
    const row = page.locator('.sources-panel .dest-item', { hasText: PHONE.name });
    await row.waitFor();
    assert.match(await row.locator('.dest-platform').textContent(), /Studio/);
    whipUrl = await page.inputValue('[data-role=whip-url]');
    assert.equal(whipUrl, `${base}/api/whip`);
    await page.click('[data-action=copy-ingest-key]');
    await row.getByText('Copied').waitFor();
    key = await page.evaluate(() => navigator.clipboard.readText());

    p.phone = await launchParticipant('phone', { clip: PHONE.clip, width: 640, height: 480 });
    await p.phone.page.goto(`${base}/healthz`);
    resource = await whipPublish(p.phone.page, whipUrl, key);
    assert.match(resource, new RegExp(`^${base}/api/whip/[0-9a-f-]{36}$`));

    await row.getByText('Receiving WebRTC (WHIP)').waitFor({ timeout: 15000 });
    await expectPicture(page, PHONE);
    const card = participantCard(page, PHONE.name);
    await card.locator('[data-action=toggle-stage]').click();
    await waitOnStage(page, [resource.split('/').pop()]);
    await screenshot(page, 'sources-06-whip-on-stage');
  });

  it('DELETE on the resource takes it out of the studio', async () => {
    const status = await p.phone.page.evaluate(async ({ resource, key }) => {
      const res = await fetch(resource, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
      window.__whip.close();
      return res.status;
    }, { resource, key });
    assert.equal(status, 200);
    const page = p.host.page;
    await participantCard(page, PHONE.name).waitFor({ state: 'detached', timeout: 15000 });
    await page.locator('.sources-panel .dest-item', { hasText: PHONE.name }).getByText('Waiting for the encoder').waitFor();
    const errors = p.host.logs.filter((l) => l.startsWith('[error]'));
    assert.deepEqual(errors, [], 'no console error');
  });
});
