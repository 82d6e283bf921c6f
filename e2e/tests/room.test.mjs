// Three people in the studio: a host and two guests in three Chromium processes, each with its own fake
// camera clip, see and hear each other through Backyard's SFU; leave, host mute, chat and chat history work.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, expectPicture, joinAsGuest, launchParticipant, makeClip, participantCard as card, screenshot } from '../lib/harness.mjs';

// Each participant's clip: two halves of distinct colours, far apart in every channel so a swapped or tinted
// picture cannot pass (`expectPicture`).
const PEOPLE = {
  host: { name: 'Ada Host', left: 'c83232', right: '3232c8' },
  grace: { name: 'Grace Guest', left: '32c832', right: 'c8c832' },
  linus: { name: 'Linus Guest', left: 'c832c8', right: '32c8c8' },
};
const MEDIA_MS = 30000;

/** Inbound audio RTP stats of every peer connection on the page. */
async function inboundAudio(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__peerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') out.push({ samples: s.totalSamplesReceived ?? 0, energy: s.totalAudioEnergy ?? 0 });
      });
    }
    return out;
  });
}

/** Every remote participant's audio reaches a playing <audio> element and its samples keep coming. */
async function expectAudioFrom(page, count) {
  await eventually(
    `${count} remote <audio> elements playing`,
    () => page.evaluate((n) => {
      const els = [...document.querySelectorAll('[data-role=remote-audio] audio')];
      return els.length === n && els.every((a) => a.srcObject && a.srcObject.getAudioTracks().length > 0 && !a.paused);
    }, count),
    MEDIA_MS,
  );
  const first = await eventually(`${count} inbound audio streams with samples`, async () => {
    const s = await inboundAudio(page);
    return s.filter((x) => x.samples > 0).length >= count ? s : false;
  }, MEDIA_MS);
  await eventually('audio samples still arriving', async () => {
    const s = await inboundAudio(page);
    const total = (list) => list.reduce((a, x) => a + x.samples, 0);
    return total(s) > total(first) + 48000 * 0.5 && s.some((x) => x.energy > 0) ? s : false;
  }, MEDIA_MS);
}

async function sendChat(page, text) {
  await page.fill('.chat-form input', text);
  await page.press('.chat-form input', 'Enter');
}

async function expectChat(page, texts) {
  await eventually(`chat shows ${JSON.stringify(texts)}`, async () => {
    const shown = await page.locator('.chat-message .chat-text').allTextContents();
    return texts.every((t) => shown.includes(t)) ? shown : false;
  }, 15000);
}

describe('three people in the studio', { timeout: 240000 }, () => {
  const base = backyardUrl();
  let clipDir;
  const p = {};
  let inviteLink;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-clips-'));
    for (const [key, who] of Object.entries(PEOPLE)) {
      who.clip = await makeClip(clipDir, key, who.left, who.right);
    }
  });

  after(async () => {
    for (const x of Object.values(p)) {
      if (process.env.BACKYARD_E2E_LOGS) console.log(`--- ${x.name} console\n${x.logs.join('\n')}`);
      await x.close();
    }
    if (clipDir) await rm(clipDir, { recursive: true, force: true });
  });

  it('host registers, signs out, signs in, creates a broadcast and enters the studio', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    const page = p.host.page;
    const email = `host-${Date.now()}@example.test`;
    const password = 'correct horse battery';
    await page.goto(`${base}/#/register`);
    await page.fill('input[name=name]', PEOPLE.host.name);
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', password);
    await page.click('form.auth-form button[type=submit]');
    await page.waitForSelector('[data-action=sign-out]');
    await page.click('[data-action=sign-out]');
    await page.waitForSelector('form.auth-form');
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', password);
    await page.click('form.auth-form button[type=submit]');
    await page.waitForSelector('form.create-form');
    await page.fill('input[name=title]', 'E2E three-way');
    await page.click('[data-action=create-broadcast]');
    await page.click('[data-action=enter-studio]');
    await page.waitForSelector('.studio[data-role=host]', { timeout: 15000 });
    await screenshot(page, 'room-01-host-alone');
  });

  it('host copies an invite link', async () => {
    const page = p.host.page;
    await page.click('[data-action=invite]');
    const input = page.locator('[data-invite-url]');
    await input.waitFor();
    inviteLink = await input.inputValue();
    assert.match(inviteLink, /\/join\/[^/]+$/);
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(clip, inviteLink, 'the invite link is on the clipboard');
    await page.keyboard.press('Escape');
    // The link must work from the page's own origin in this test, whatever public_url the server announces.
    inviteLink = `${base}/join/${inviteLink.split('/join/')[1]}`;
  });

  it('two guests join through the link, each in its own Chromium with its own camera', async () => {
    p.grace = await launchParticipant('grace', { clip: PEOPLE.grace.clip });
    p.linus = await launchParticipant('linus', { clip: PEOPLE.linus.clip });
    await joinAsGuest(p.grace, inviteLink, PEOPLE.grace.name);
    await joinAsGuest(p.linus, inviteLink, PEOPLE.linus.name);
    for (const x of [p.grace, p.linus]) assert.equal(await x.page.getAttribute('.studio', 'data-role'), 'guest');
  });

  it('everyone decodes everyone else’s camera with the sender’s colours', async () => {
    const views = [
      [p.host, [PEOPLE.grace, PEOPLE.linus]],
      [p.grace, [PEOPLE.host, PEOPLE.linus]],
      [p.linus, [PEOPLE.host, PEOPLE.grace]],
    ];
    await Promise.all(views.flatMap(([viewer, others]) => others.map((o) => expectPicture(viewer.page, o))));
    await screenshot(p.host.page, 'room-02-host-three');
    await screenshot(p.grace.page, 'room-03-grace-three');
    await screenshot(p.linus.page, 'room-04-linus-three');
  });

  it('everyone receives audio samples from both others', async () => {
    await Promise.all([p.host, p.grace, p.linus].map((x) => expectAudioFrom(x.page, 2)));
  });

  it('chat round-trips between all three', async () => {
    await sendChat(p.host.page, 'Welcome, both of you');
    await sendChat(p.grace.page, 'Hi from Grace');
    await sendChat(p.linus.page, 'Linus here');
    const all = ['Welcome, both of you', 'Hi from Grace', 'Linus here'];
    await Promise.all([p.host, p.grace, p.linus].map((x) => expectChat(x.page, all)));
  });

  it('a guest shares her screen as its own track, beside her camera, and stops', async () => {
    await p.grace.page.click('[data-action=share-screen]');
    for (const x of [p.host, p.linus]) {
      const screen = card(x.page, PEOPLE.grace.name, 'screen').locator('video');
      await eventually(`Grace's screen decoded for ${x.name}`, async () => {
        const size = (await screen.count()) ? await screen.evaluate((v) => [v.videoWidth, v.videoHeight]) : [0, 0];
        return size[0] > size[1] && size[1] > 0 ? size : false;
      }, MEDIA_MS);
      await expectPicture(x.page, PEOPLE.grace);
    }
    await screenshot(p.host.page, 'room-05-host-sees-screen');
    await p.grace.page.click('[data-action=share-screen]');
    for (const x of [p.host, p.linus]) {
      await eventually(`Grace's screen tile gone for ${x.name}`, async () => (await card(x.page, PEOPLE.grace.name, 'screen').count()) === 0, 15000);
    }
  });

  it('host mutes a guest: the mic state updates for everyone, the guest may unmute', async () => {
    const host = p.host.page;
    for (const x of [p.host, p.linus]) assert.equal(await card(x.page, PEOPLE.grace.name).getAttribute('data-audio-enabled'), 'true');
    await card(host, PEOPLE.grace.name).locator('[data-action=participant-menu]').click();
    await host.click('.menu [data-action=mute-audio]');
    const muted = (page, selfView) =>
      eventually(`Grace shown muted${selfView ? ' to herself' : ''}`, async () => {
        const c = selfView ? page.locator('.participant-card[data-self][data-kind=camera]') : card(page, PEOPLE.grace.name);
        return (await c.getAttribute('data-audio-enabled')) === 'false';
      }, 10000);
    await Promise.all([muted(host), muted(p.linus.page), muted(p.grace.page, true)]);
    assert.equal(await p.grace.page.locator('[data-action=toggle-mic]').getAttribute('aria-pressed'), 'true', 'her own mic button shows muted');
    await screenshot(host, 'room-06-host-muted-grace');
    await screenshot(p.grace.page, 'room-07-grace-muted');
    await p.grace.page.click('[data-action=toggle-mic]');
    await eventually('Grace unmuted herself, seen by the host', async () => (await card(host, PEOPLE.grace.name).getAttribute('data-audio-enabled')) === 'true', 10000);
  });

  it('a guest leaves and their tile disappears for the others', async () => {
    await p.linus.page.click('[data-action=leave]');
    await p.linus.page.waitForSelector('[data-role=room-ended]');
    for (const x of [p.host, p.grace]) {
      await eventually(`Linus's tile gone for ${x.name}`, async () => (await card(x.page, PEOPLE.linus.name).count()) === 0, 15000);
    }
    await p.linus.close();
    delete p.linus;
  });

  it('a late joiner sees the chat history', async () => {
    p.late = await launchParticipant('late');
    await joinAsGuest(p.late, inviteLink, 'Late Guest');
    await expectChat(p.late.page, ['Welcome, both of you', 'Hi from Grace', 'Linus here']);
    await expectPicture(p.late.page, PEOPLE.host);
    await expectPicture(p.late.page, PEOPLE.grace);
    await screenshot(p.late.page, 'room-08-late-joiner');
  });

  it('host removes a guest: the guest is told, and their tile disappears for the others', async () => {
    const host = p.host.page;
    host.once('dialog', (d) => d.accept());
    await card(host, 'Late Guest').locator('[data-action=participant-menu]').click();
    await host.click('.menu [data-action=remove]');
    await p.late.page.waitForSelector('[data-role=room-ended][data-reason=removed]', { timeout: 15000 });
    for (const x of [p.host, p.grace]) {
      await eventually(`the removed guest's tile gone for ${x.name}`, async () => (await card(x.page, 'Late Guest').count()) === 0, 15000);
    }
    await screenshot(p.late.page, 'room-09-removed');
  });
});
