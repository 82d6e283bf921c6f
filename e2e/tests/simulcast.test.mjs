// Simulcast and layer selection with real Chromiums: a guest with a 720p camera publishes it in three layers; the
// host, who shows the guest only in a small strip card, receives a low layer, and the full one once the guest's
// tile fills the stage; a video the host's page does not show is not sent at all. The program takes the layer
// its tile needs: a picture-in-picture inset a low one, `solo` the top one, switching without losing the picture.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  backyardUrl,
  closeAll,
  eventually,
  hostWithInvite,
  joinAsGuest,
  launchParticipant,
  makeClip,
  near,
  recordSignaling,
  receivedVideo,
  rgb,
  sampleProgram,
  screenshot,
  sentLayers,
  waitOnStage,
} from '../lib/harness.mjs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const PEOPLE = {
  host: { name: 'Hana Host', left: 'c83232', right: '3232c8' },
  guest: { name: 'Gus Guest', left: '32c832', right: 'c8c832' },
};

describe('simulcast: each viewer gets the layer it shows', { timeout: 240000 }, () => {
  const base = backyardUrl();
  let clipDir;
  const p = {};
  let rec;
  let broadcastId;
  let guestId;

  before(async () => {
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-clips-'));
    PEOPLE.host.clip = await makeClip(clipDir, 'host', PEOPLE.host.left, PEOPLE.host.right, { width: 320, height: 180, fps: 15 });
    PEOPLE.guest.clip = await makeClip(clipDir, 'guest', PEOPLE.guest.left, PEOPLE.guest.right, { width: 1280, height: 720, fps: 15 });
  });

  after(async () => {
    await closeAll(p, clipDir);
  });

  it('a guest publishes its camera in three layers', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    rec = recordSignaling(p.host.page);
    const link = await hostWithInvite(p.host.page, { base, name: PEOPLE.host.name, email: `simulcast-${Date.now()}@example.test`, title: 'E2E simulcast' });
    broadcastId = decodeURIComponent(new URL(p.host.page.url()).hash.split('/studio/')[1] ?? '');
    p.guest = await launchParticipant('guest', { clip: PEOPLE.guest.clip });
    await joinAsGuest(p.guest, link, PEOPLE.guest.name);
    // Both microphones off: Chromium's fake one beeps, which would move the layouts' focus to whoever beeped last.
    await p.host.page.click('[data-action=toggle-mic]');
    await p.guest.page.click('[data-action=toggle-mic]');
    const layers = await eventually('the guest sends three layers', async () => {
      const l = await sentLayers(p.guest.page);
      return l.length === 3 ? l : false;
    }, 30000);
    assert.deepEqual(layers.map((l) => l.rid), ['q', 'h', 'f'], JSON.stringify(layers));
    assert.ok(layers[0].height < layers[1].height && layers[1].height < layers[2].height, JSON.stringify(layers));
    guestId = await eventually('the host knows the guest', async () => [...rec.names].find(([, n]) => n === PEOPLE.guest.name)?.[0] ?? false);
  });

  it('the host gets a low layer for the strip card and the top one for a full stage tile', async () => {
    const page = p.host.page;
    const low = await eventually('the host receives a low layer for the small card', async () => {
      const [got, sent] = [await receivedVideo(page, guestId), await sentLayers(p.guest.page)];
      return got?.frames > 0 && sent.length === 3 && got.height > 0 && got.height < sent[2].height ? got : false;
    }, 30000);
    await screenshot(page, 'simulcast-strip');
    // The guest alone on stage: a tile most of the stage wide needs the full layer.
    await page.locator(`.participant-card[data-participant-id="${guestId}"] [data-action=toggle-stage]`).click();
    const top = await eventually('the host receives the top layer for the stage tile', async () => {
      const [got, sent] = [await receivedVideo(page, guestId), await sentLayers(p.guest.page)];
      return got && sent.length === 3 && got.height === sent[2].height ? got : false;
    }, 30000);
    assert.ok(top.height > low.height, `${top.height} > ${low.height}`);
    await screenshot(page, 'simulcast-stage');
  });

  it('the program takes a low layer for a picture-in-picture inset and the top one for solo', async () => {
    const page = p.host.page;
    // Picture-in-picture with the host first on stage: the host fills the canvas, the guest is the small inset.
    const toggle = (id) => page.locator(`.participant-card[data-participant-id="${id}"] [data-action=toggle-stage]`).click();
    await toggle(guestId);
    await waitOnStage(page, []);
    await toggle(rec.joined.participantId);
    await waitOnStage(page, [rec.joined.participantId]);
    await toggle(guestId);
    await waitOnStage(page, [rec.joined.participantId, guestId]);
    await page.click('.layout-bar [data-layout="pip"]');
    const layerOf = () => rec.last['program-status']?.stats?.layers?.[guestId];
    await eventually('the program decodes a lower layer for the inset', async () => {
      const l = layerOf();
      return l !== undefined && l < 2 ? { l } : false;
    }, 30000);
    await screenshot(page, 'simulcast-pip');
    // Solo shows the first on stage: take the host off so the guest is shown.
    await page.click('.layout-bar [data-layout="solo"]');
    await toggle(rec.joined.participantId);
    await waitOnStage(page, [guestId]);
    await eventually('the program decodes the top layer for solo', async () => (layerOf() === 2 ? { l: 2 } : false), 30000);
    // The picture survived the switch: the program shows the guest's colours.
    const want = [rgb(PEOPLE.guest.left), rgb(PEOPLE.guest.right)];
    await eventually('the program shows the guest', async () => {
      const s = await sampleProgram(page, broadcastId, [[0.25, 0.5], [0.75, 0.5]]);
      return s.colours?.every((c, i) => near(c, want[i], 40)) ? s : false;
    }, 20000);
    await screenshot(page, 'simulcast-solo');
  });
});
