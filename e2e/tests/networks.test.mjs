// Real networks: a guest whose Chromium runs in the lab network namespace (`cargo xtask e2e` makes it), with its
// link capped by tc tbf and made lossy by nftables (this kernel has no netem). The host and another guest are on
// stage, publishing their cameras in three layers.
// - The lab guest's downlink capped at 600 kbit/s with 3 % loss: over a minute it keeps decoding both cameras
//   (a low layer, few freezes), the unimpaired guest keeps the top layer, and the publishers are not made to send
//   a storm of keyframes.
// - Its uplink capped at 500 kbit/s: it still shows on the others' stage (a lower layer); once the cap lifts and
//   its browser sends the top layer again, the host gets it within 2 s.
// - 15 % loss both ways for 5 s: everyone's video recovers within 3 s of it ending, without renegotiating.
// The host's card for the lab guest shows its connection's grade, and /metrics has the figures.
//
// Needs a running backyard at BACKYARD_URL with the lab network (`cargo xtask e2e`, as root).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  backyardUrl,
  closeAll,
  eventually,
  hostWithInvite,
  impair,
  joinAsGuest,
  lab,
  launchInLab,
  launchParticipant,
  makeClips,
  receivedVideo,
  recordSignaling,
  screenshot,
  sentLayers,
} from '../lib/harness.mjs';

const PEOPLE = {
  host: { name: 'Nia Host', left: 'c83232', right: '3232c8' },
  ada: { name: 'Ada Steady', left: '32c832', right: 'c8c832' },
  bo: { name: 'Bo Roaming', left: 'c832c8', right: '32c8c8' },
};
const MINUTE_MS = 60000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The grade `page`'s card of participant `id` shows (`good`, `fair`, `poor`, or `unknown` before a report). */
const qualityOf = (page, id) => page.locator(`.participant-card[data-participant-id="${id}"][data-kind=camera] .card-quality`).getAttribute('data-quality');

describe('real networks: simulcast and bandwidth estimation on impaired links', { timeout: 600000 }, () => {
  const base = backyardUrl();
  let clipDir;
  const p = {};
  let rec;
  const id = {};

  before(async () => {
    // 960×540: the smallest camera a browser sends in three layers (135p, 270p, 540p).
    clipDir = await makeClips(PEOPLE, { width: 960, height: 540, fps: 15 });
  });

  after(async () => {
    await impair({}).catch(() => {});
    await closeAll(p, clipDir);
  });

  it('three people join, the lab guest through the lab network', async () => {
    p.host = await launchParticipant('host', { clip: PEOPLE.host.clip });
    rec = recordSignaling(p.host.page);
    const link = await hostWithInvite(p.host.page, { base, name: PEOPLE.host.name, email: `networks-${Date.now()}@example.test`, title: 'E2E networks' });
    // A full-HD window: Ada's stage tiles need the top layer (Bo's, in a smaller window, the middle one).
    p.ada = await launchParticipant('ada', { clip: PEOPLE.ada.clip, width: 1920, height: 1080 });
    await joinAsGuest(p.ada, link, PEOPLE.ada.name);
    p.bo = await launchInLab('bo', { clip: PEOPLE.bo.clip });
    await joinAsGuest(p.bo, link.replace(base, lab().url), PEOPLE.bo.name, { ms: 30000 });
    for (const who of ['ada', 'bo']) {
      id[who] = await eventually(`the host knows ${who}`, async () => [...rec.names].find(([, n]) => n === PEOPLE[who].name)?.[0] ?? false);
    }
    id.host = rec.joined.participantId;
    // Microphones off: the fake ones beep, which would move the layouts' focus around.
    for (const who of ['host', 'ada', 'bo']) await p[who].page.click('[data-action=toggle-mic]');
    // The host and Ada on stage: everyone shows their cameras large.
    for (const who of ['host', 'ada']) {
      await p.host.page.locator(`.participant-card[data-participant-id="${id[who]}"] [data-action=toggle-stage]`).click();
    }
    for (const who of ['host', 'ada']) {
      await eventually(`Bo decodes ${who}`, async () => ((await receivedVideo(p.bo.page, id[who]))?.frames > 30 ? {} : false), 30000);
    }
    // On a clean link everyone's indicator says so.
    await eventually('the host sees Bo’s connection as good', async () => (await qualityOf(p.host.page, id.bo)) === 'good', 20000);
  });

  it('a downlink capped at 600 kbit/s with 3 % loss keeps decoding a low layer, and nobody else pays for it', async () => {
    await impair({ down: '600kbit', downLoss: 3 });
    // The estimate settles on the capped link.
    await sleep(8000);
    const start = { host: await sentLayers(p.host.page), ada: await sentLayers(p.ada.page) };
    const before = { host: await receivedVideo(p.bo.page, id.host), ada: await receivedVideo(p.bo.page, id.ada) };
    const adaBefore = await receivedVideo(p.ada.page, id.host);
    await sleep(MINUTE_MS);
    const after = { host: await receivedVideo(p.bo.page, id.host), ada: await receivedVideo(p.bo.page, id.ada) };
    const end = { host: await sentLayers(p.host.page), ada: await sentLayers(p.ada.page) };
    await screenshot(p.bo.page, 'networks-capped-downlink');
    // The host sees Bo's poor link on Bo's card, with the figures behind it; /metrics has them too.
    const grade = await qualityOf(p.host.page, id.bo);
    assert.ok(['fair', 'poor'].includes(grade), `Bo's connection shows as ${grade}`);
    const detail = await p.host.page.locator(`.participant-card[data-participant-id="${id.bo}"] .card-quality`).getAttribute('title');
    console.log(`# the host's indicator for Bo: ${detail}`);
    assert.match(detail, /loss/);
    await p.host.page.locator(`.participant-card[data-participant-id="${id.bo}"] .card-quality`).hover();
    await screenshot(p.host.page, 'networks-quality');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const series of ['backyard_connection_downlink_estimate_bits_per_second', 'backyard_connection_loss_ratio', 'backyard_connection_jitter_seconds']) {
      assert.ok(metrics.split('\n').some((l) => l.startsWith(series) && l.includes(`participant="${id.bo}"`)), `${series} for Bo in /metrics`);
    }
    for (const who of ['host', 'ada']) {
      const fps = (after[who].frames - before[who].frames) / (MINUTE_MS / 1000);
      const freezes = after[who].freezes - before[who].freezes;
      const d = (k) => after[who][k] - before[who][k];
      console.log(`# Bo receives ${who}: ${fps.toFixed(1)} fps at ${after[who].height}p, ${freezes} freezes, ${d('lost')} packets lost, ${d('nacks')} NACKs, ${d('plis')} PLIs, ${d('keyframes')} keyframes in the minute`);
      // Keyframes the publisher encoded in the minute, per layer: at most one per 2 s.
      const keyframes = end[who].map((layer) => [layer.rid, layer.keyframes - (start[who].find((l) => l.rid === layer.rid)?.keyframes ?? 0)]);
      console.log(`# ${who} sent keyframes in the minute: ${keyframes.map(([rid, n]) => `${rid} ${n}`).join(', ')}`);
      assert.ok(fps >= 10, `Bo decodes ${who} at ${fps.toFixed(1)} fps`);
      assert.ok(freezes <= 3, `Bo saw ${who} freeze ${freezes} times`);
      const top = Math.max(...end[who].map((l) => l.height));
      assert.ok(after[who].height < top, `Bo gets a lower layer of ${who} (${after[who].height}p, top ${top}p)`);
      for (const [rid, n] of keyframes) assert.ok(n <= MINUTE_MS / 2000, `${who}'s ${rid} layer sent ${n} keyframes in a minute`);
    }
    // Ada's link is fine: she keeps the host's top layer.
    const adaGets = await receivedVideo(p.ada.page, id.host);
    const hostTop = Math.max(...end.host.map((l) => l.height));
    console.log(`# Ada receives the host at ${adaGets.height}p (${adaBefore.height}p before Bo's link was capped; top ${hostTop}p)`);
    assert.equal(adaGets.height, hostTop, 'the unimpaired guest keeps the top layer');
    await impair({});
  });

  it('an uplink capped at 500 kbit/s still shows, and the top layer is back soon after its browser resumes it', async () => {
    // Bo alone on stage: the host's tile for Bo needs Bo's top layer.
    for (const who of ['bo', 'host', 'ada']) {
      await p.host.page.locator(`.participant-card[data-participant-id="${id[who]}"] [data-action=toggle-stage]`).click();
    }
    await eventually('the host decodes Bo', async () => ((await receivedVideo(p.host.page, id.bo))?.frames > 30 ? {} : false), 30000);
    await impair({ up: '500kbit' });
    await sleep(10000);
    const before = await receivedVideo(p.host.page, id.bo);
    await sleep(10000);
    const capped = await receivedVideo(p.host.page, id.bo);
    const fps = (capped.frames - before.frames) / 10;
    console.log(`# the host receives Bo at ${fps.toFixed(1)} fps, ${capped.height}p, with Bo's uplink capped`);
    assert.ok(fps >= 5, `the host still decodes Bo (${fps.toFixed(1)} fps)`);
    assert.ok(capped.height < 540, `a lower layer while capped (${capped.height}p)`);
    const stalled = await p.host.page.locator(`.stage-tile[data-participant-id="${id.bo}"] video`).evaluate((v) => v.hidden);
    assert.equal(stalled, false, 'Bo shows as video, not as a name card');
    await screenshot(p.host.page, 'networks-capped-uplink');
    await impair({});
    const lifted = Date.now();
    // Two clocks: the browser's own send-side estimator must climb back before it sends its top layer again;
    // from then on the server must switch the host to it quickly.
    let lastTop = (await sentLayers(p.bo.page)).find((l) => l.rid === 'f')?.frames ?? 0;
    let resumed = null;
    const top = await eventually('the host gets Bo’s top layer again', async () => {
      const f = (await sentLayers(p.bo.page)).find((l) => l.rid === 'f')?.frames ?? 0;
      if (resumed === null && f > lastTop + 5) resumed = Date.now();
      lastTop = f;
      const got = await receivedVideo(p.host.page, id.bo);
      return got?.height === 540 ? got : false;
    }, 45000, 250);
    const took = (Date.now() - lifted) / 1000;
    const switched = (Date.now() - (resumed ?? lifted)) / 1000;
    console.log(`# the top layer (${top.height}p) was back ${took.toFixed(1)} s after the cap lifted; Bo's browser resumed it after ${(((resumed ?? lifted) - lifted) / 1000).toFixed(1)} s, the server switched ${switched.toFixed(1)} s later`);
    assert.ok(switched <= 2, `the server took ${switched.toFixed(1)} s to switch to the resumed top layer`);
    // The browser's own climb: 15 s here (the target is 10 s; see the notes in ARCHITECTURE.md).
    assert.ok(took <= 30, `the top layer took ${took.toFixed(1)} s to come back`);
  });

  it('15 % loss for 5 s: every video recovers within 3 s of it ending, with no renegotiation', async () => {
    const offersBefore = await p.bo.page.evaluate(() => (window.__peerConnections ?? []).map((pc) => pc.remoteDescription?.sdp.length));
    await impair({ downLoss: 15, upLoss: 15 });
    await sleep(5000);
    await impair({});
    const ended = Date.now();
    const watch = [
      ['Bo', p.bo.page, id.host],
      ['Bo', p.bo.page, id.ada],
      ['the host', p.host.page, id.bo],
      ['Ada', p.ada.page, id.bo],
    ];
    const base = await Promise.all(watch.map(([, page, who]) => receivedVideo(page, who)));
    await eventually('every video moves again', async () => {
      const now = await Promise.all(watch.map(([, page, who]) => receivedVideo(page, who)));
      return now.every((n, i) => n.frames >= base[i].frames + 10) ? now : false;
    }, 10000, 200);
    const took = (Date.now() - ended) / 1000;
    console.log(`# every video recovered ${took.toFixed(1)} s after the loss ended`);
    assert.ok(took <= 3, `recovery took ${took.toFixed(1)} s`);
    const offersAfter = await p.bo.page.evaluate(() => (window.__peerConnections ?? []).map((pc) => pc.remoteDescription?.sdp.length));
    assert.deepEqual(offersAfter, offersBefore, 'no renegotiation');
  });
});
