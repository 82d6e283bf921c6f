// Backstage: the host turns on "Guests wait backstage" in the invite dialog and goes live to a real nginx-rtmp
// with nobody on stage and the host's microphone off. A guest joins (Chromium's fake microphone beeps): they wait
// backstage, where their page decodes the program (the return feed) instead of the stage, and a chat message from
// the host reaches them; the RTMP output stays silent, so viewers do not hear them. The host admits them and puts
// them on stage: their beeps are on the RTMP output. The host sends them back: off the stage, backstage again,
// silent again.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addRtmpDestination, backyardUrl, closeAll, decodedFrames, eventually, hostWithInvite, joinAsGuest, launchParticipant, makeClips, screenshot } from '../lib/harness.mjs';
import { peakVolume, startRtmpServer } from '../lib/rtmp.mjs';

const PEOPLE = {
  host: { name: 'Bea Host', left: 'c83232', right: '3232c8' },
  guest: { name: 'Gil Guest', left: '32c832', right: 'c8c832' },
};
const STREAM_KEY = 'e2e-backstage';
/** Digital silence reads about -91 dBFS; Chromium's fake microphone beeps far above this. */
const SILENT_DB = -70;
const HEARD_DB = -40;

describe('guests wait backstage', { timeout: 300000 }, () => {
  const base = backyardUrl();
  let clipDir;
  let nginx;
  const p = {};
  let url;
  let link;

  before(async () => {
    clipDir = await makeClips(PEOPLE, { width: 320, height: 180 });
    nginx = await startRtmpServer();
    url = `${nginx.url}/${STREAM_KEY}`;
  });

  after(async () => {
    await closeAll(p, clipDir);
    await nginx?.stop();
  });

  const guestCard = () => p.host.page.locator('.participant-card[data-kind=camera]', { has: p.host.page.locator('.card-name', { hasText: PEOPLE.guest.name }) });

  it('the host turns backstage on, mutes, and goes live with nobody on stage', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    const page = p.host.page;
    page.on('dialog', (d) => d.accept());
    link = await hostWithInvite(page, { base, name: PEOPLE.host.name, email: `backstage-${Date.now()}@example.test`, title: 'E2E backstage' });
    await page.click('[data-action=invite]');
    await page.check('input[name=backstage]');
    const id = decodeURIComponent(new URL(page.url()).hash.split('/studio/')[1] ?? '');
    await eventually('the broadcast keeps guests backstage', async () => (await page.evaluate(async (b) => (await (await fetch(`/api/broadcasts/${b}`)).json()).settings?.backstage, id)) === true, 10000);
    await screenshot(page, 'backstage-01-invite');
    await page.keyboard.press('Escape');
    await page.click('[data-action=toggle-mic]');

    const dest = await addRtmpDestination(page, { name: 'Local nginx', url: nginx.url, key: STREAM_KEY });
    await page.click('[data-action=go-live]');
    await eventually('the destination is live', async () => (await dest.getAttribute('data-status')) === 'live', 30000);
  });

  it('a guest waits backstage: the return feed plays, the studio chat reaches them, viewers do not hear them', async () => {
    p.guest = await launchParticipant('guest', { clip: PEOPLE.guest.clip });
    const g = p.guest.page;
    await joinAsGuest(p.guest, link, PEOPLE.guest.name);
    await g.locator('[data-role=backstage]').waitFor({ state: 'visible', timeout: 15000 });
    assert.equal(await g.locator('.stage-wrap').isVisible(), false, 'backstage, the guest sees no stage');

    const feed = g.locator('video[data-role=return-feed]');
    const decoded = await eventually('the guest decodes the program as the return feed', async () => {
      const d = await decodedFrames(g, 'video[data-role=return-feed]');
      return d?.frames > 10 ? d : false;
    }, 30000);
    assert.ok(decoded.program, 'the return feed is the server’s `program` stream');
    assert.ok(await feed.evaluate((v) => v.videoWidth > 0), 'the return feed shows a picture');

    const card = guestCard();
    await card.waitFor({ timeout: 15000 });
    assert.equal(await card.getAttribute('data-backstage'), 'true');
    assert.equal(await card.locator('[data-action=admit]').textContent(), 'Admit to the show');

    await p.host.page.click('[data-tab=chat]');
    await p.host.page.fill('.chat-form textarea, .chat-form input', 'Stand by, you are next');
    await p.host.page.keyboard.press('Enter');
    for (const x of [p.host, p.guest]) {
      await x.page.locator('.chat-message', { hasText: 'Stand by, you are next' }).waitFor({ timeout: 10000 });
    }
    await screenshot(g, 'backstage-02-guest-waiting');
    await screenshot(p.host.page, 'backstage-03-host-sees-guest');

    const db = await peakVolume(url);
    assert.ok(db < SILENT_DB, `the RTMP output is silent while the guest is backstage (peak ${db} dB)`);
  });

  it('admitted and on stage, the guest is heard on the RTMP output', async () => {
    const card = guestCard();
    await card.locator('[data-action=admit]').click();
    await p.guest.page.locator('.stage-wrap').waitFor({ state: 'visible', timeout: 15000 });
    assert.equal(await p.guest.page.locator('[data-role=backstage]').isVisible(), false);
    await eventually('the host sees the guest in the show', async () => (await card.getAttribute('data-backstage')) === 'false', 10000);
    await card.locator('[data-action=toggle-stage]').click();
    await eventually('the guest is on stage', async () => (await card.getAttribute('data-on-stage')) === 'true', 10000);
    const heard = await eventually('the guest’s beeps on the RTMP output', async () => {
      const db = await peakVolume(url);
      return db > HEARD_DB ? { db } : false;
    }, 45000, 1000);
    assert.ok(heard.db > HEARD_DB);
  });

  it('sent back, the guest leaves the stage, waits backstage again and is silent on air', async () => {
    const page = p.host.page;
    const card = guestCard();
    await card.locator('[data-action=participant-menu]').click();
    await page.click('.menu [data-action=send-backstage]');
    await eventually('off the stage and backstage in the host’s strip', async () => (await card.getAttribute('data-on-stage')) === 'false' && (await card.getAttribute('data-backstage')) === 'true', 10000);
    await p.guest.page.locator('[data-role=backstage]').waitFor({ state: 'visible', timeout: 15000 });
    await eventually('the RTMP output is silent again', async () => {
      const db = await peakVolume(url);
      return db < SILENT_DB ? { db } : false;
    }, 30000, 1000);
    await page.click('[data-action=end-broadcast]');
    await eventually('the broadcast ends', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'ended', 15000);
  });
});
