// `cargo xtask bench sfu` part (b): Chromium join → first remote frame. A host (its own Chromium with a fake
// camera clip) stays in the room; a second Chromium, already open, joins through the invite link and leaves
// BENCH_JOINS times (default 10). Each join is timed in the joining page from the click on the green room's
// Join button (a capture-phase click listener) to the first decoded frame of a remote video: a <video> whose
// track is received by one of the page's RTCPeerConnections, seen by requestVideoFrameCallback or by
// videoWidth + currentTime, whichever is first. The camera starts before the click (the button is enabled
// only then), so the time is signaling + ICE/DTLS + the first keyframe + decode.
//
// Prints `join-ms <ms>` per join and `result median_ms=… p90_ms=…`. Needs BACKYARD_URL (a backyard serving the
// studio); run it through `cargo xtask bench sfu`.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { backyardUrl, hostWithInvite, launchParticipant, makeClip, screenshot } from '../lib/harness.mjs';

const JOINS = Number(process.env.BENCH_JOINS ?? 10);
const HOST = { name: 'Bench Host', left: 'c83232', right: '3232c8' };
const GUEST = { name: 'Bench Guest', left: '32c832', right: 'c8c832' };
const FRAME_TIMEOUT_MS = 30000;

/** Installed in the joining page before each click: records the click time and the first remote frame's time. */
function armProbe() {
  window.__join = { clickedAt: null, firstFrameAt: null, via: null };
  document.addEventListener(
    'click',
    (ev) => {
      if (ev.target.closest?.('[data-action=enter-studio]') && window.__join.clickedAt === null) window.__join.clickedAt = performance.now();
    },
    { capture: true },
  );
  const watched = new WeakSet();
  const record = (via) => {
    if (window.__join.firstFrameAt === null && window.__join.clickedAt !== null) {
      window.__join.firstFrameAt = performance.now();
      window.__join.via = via;
    }
  };
  const remoteTracks = () => {
    const out = new Set();
    for (const pc of window.__peerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      for (const r of pc.getReceivers()) if (r.track?.kind === 'video') out.add(r.track);
    }
    return out;
  };
  const scan = () => {
    if (window.__join.firstFrameAt !== null) return;
    const remote = remoteTracks();
    for (const v of document.querySelectorAll('video')) {
      const tracks = v.srcObject?.getVideoTracks?.() ?? [];
      if (!tracks.some((t) => remote.has(t))) continue;
      if (v.videoWidth > 0 && v.currentTime > 0) record('videoWidth+currentTime');
      if (!watched.has(v) && v.requestVideoFrameCallback) {
        watched.add(v);
        v.requestVideoFrameCallback(() => record('requestVideoFrameCallback'));
      }
    }
    setTimeout(scan, 2);
  };
  scan();
}

function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

async function main() {
  const base = backyardUrl();
  const clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-bench-clips-'));
  const people = [];
  try {
    HOST.clip = await makeClip(clipDir, 'host', HOST.left, HOST.right);
    GUEST.clip = await makeClip(clipDir, 'guest', GUEST.left, GUEST.right);

    // The publisher: registers, creates a broadcast, enters the studio and stays.
    const host = await launchParticipant('bench-host', { clip: HOST.clip });
    people.push(host);
    const page = host.page;
    const link = await hostWithInvite(page, {
      base,
      name: HOST.name,
      email: `bench-${Date.now()}@example.test`,
      title: 'Join bench',
    });

    // The joiner: one Chromium for every join.
    const guest = await launchParticipant('bench-guest', { clip: GUEST.clip });
    people.push(guest);
    const g = guest.page;
    const samples = [];
    for (let i = 0; i < JOINS; i++) {
      await g.goto(link);
      await g.fill('input[name=name]', GUEST.name);
      await g.waitForSelector('[data-action=enter-studio]:not([disabled])', { timeout: 15000 });
      await g.evaluate(armProbe);
      await g.click('[data-action=enter-studio]');
      await g.waitForFunction(() => window.__join.firstFrameAt !== null, null, { timeout: FRAME_TIMEOUT_MS, polling: 50 });
      const j = await g.evaluate(() => window.__join);
      const ms = j.firstFrameAt - j.clickedAt;
      samples.push(ms);
      console.log(`join-ms ${ms.toFixed(1)}`);
      console.error(`join ${i + 1}/${JOINS}: ${ms.toFixed(0)} ms (first frame seen by ${j.via})`);
      if (i === 0) await screenshot(g, 'join-bench-guest');
      await g.click('[data-action=leave]');
      await g.waitForSelector('[data-role=room-ended]', { timeout: 15000 });
      // Let the host's side settle (the guest's tile removed) before the next join.
      await page.waitForFunction(
        (name) => ![...document.querySelectorAll('.participant-card .card-name')].some((n) => n.textContent.includes(name)),
        GUEST.name,
        { timeout: 15000 },
      );
    }
    const sorted = [...samples].sort((a, b) => a - b);
    console.log(`result joins=${samples.length} median_ms=${percentile(sorted, 50).toFixed(1)} p90_ms=${percentile(sorted, 90).toFixed(1)}`);
  } finally {
    for (const p of people) await p.close();
    await rm(clipDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
