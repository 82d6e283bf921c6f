// Shared harness for the browser tests: Debian's Chromium launched headless (one process per participant so
// each can have its own fake camera clip), fake-capture clips made with ffmpeg, pixel sampling of <video>
// elements, and screenshots under target/e2e/.

import { execFile } from 'node:child_process';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHOTS = process.env.BACKYARD_E2E_SHOTS ?? path.join(ROOT, 'target', 'e2e');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Flags measured on these machines (measured on these machines): no sandbox as root, no network chatter, fake media. */
const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/** The Backyard under test. `cargo xtask e2e` starts one and sets this. */
export function backyardUrl() {
  const url = process.env.BACKYARD_URL;
  if (!url) throw new Error('BACKYARD_URL is not set: run these tests through `cargo xtask e2e`, or point it at a running backyard');
  return url.replace(/\/$/, '');
}

/**
 * Writes a y4m clip for `--use-file-for-fake-video-capture`: the left half `left`, the right half `right`
 * (hex colours like "d03030"), so a test can tell the picture apart from a tint and check orientation.
 */
export async function makeClip(dir, name, left, right, { width = 640, height = 360, seconds = 2, fps = 30 } = {}) {
  const file = path.join(dir, `${name}.y4m`);
  const half = `${width / 2}x${height}`;
  await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `color=c=0x${left}:s=${half}:r=${fps}:d=${seconds}`,
    '-f', 'lavfi', '-i', `color=c=0x${right}:s=${half}:r=${fps}:d=${seconds}`,
    '-filter_complex', '[0:v][1:v]hstack=inputs=2,format=yuv420p',
    '-f', 'yuv4mpegpipe', file,
  ]);
  return file;
}

/**
 * A silent WAV file in `dir`, for a fake microphone that never speaks (Chromium's own fake microphone beeps,
 * which makes its owner the active speaker now and then).
 */
export async function makeSilence(dir, name = 'silence') {
  const file = path.join(dir, `${name}.wav`);
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=48000:cl=mono', '-t', '2', file]);
  return file;
}

/** Converts "d03030" to [r, g, b]. */
export function rgb(hex) {
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** Records every RTCPeerConnection a page creates, so tests can read getStats() without the studio exposing anything. */
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...a) {
    const pc = new Native(...a);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
}

/** A participant on `page` of `context`, its console kept; `close` ends it (and whatever `cleanup` adds). */
async function participant(name, context, cleanup = async () => {}) {
  const page = context.pages()[0] ?? (await context.newPage());
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  // The console names no address for a failed load: keep which request it was.
  page.on('response', (r) => {
    if (r.status() >= 400) logs.push(`[http ${r.status()}] ${r.request().method()} ${r.url()} at ${new Date().toISOString()}`);
  });
  return {
    name,
    context,
    page,
    logs,
    async close() {
      await context.close().catch(() => {});
      await cleanup();
    },
  };
}

const PERMISSIONS = ['camera', 'microphone', 'clipboard-read', 'clipboard-write'];

/**
 * One participant: its own Chromium process and profile, optionally with its own fake camera clip.
 * Its page records every RTCPeerConnection it creates (`window.__peerConnections`).
 */
export async function launchParticipant(name, { clip, width = 1440, height = 900, executablePath = CHROMIUM, flags = [] } = {}) {
  const profile = await mkdtemp(path.join(tmpdir(), `backyard-e2e-${name}-`));
  const args = [...BASE_FLAGS, ...flags];
  if (clip) args.push(`--use-file-for-fake-video-capture=${clip}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args,
    viewport: { width, height },
    permissions: PERMISSIONS,
  });
  await context.addInitScript(recordPeerConnections);
  return participant(name, context, () => rm(profile, { recursive: true, force: true }));
}

/**
 * `count` participants in one Chromium process, each in a context of its own (own cookies, so each is a separate
 * guest) and all showing the same fake camera `clip`: more people in a room than a process each would allow on
 * a small machine. Returns them in order, named `${name}-1`, `${name}-2`, ...; closing the last ends the process.
 */
export async function launchCrowd(name, count, { clip, audio, width = 960, height = 600 } = {}) {
  const args = [...BASE_FLAGS];
  if (clip) args.push(`--use-file-for-fake-video-capture=${clip}`);
  if (audio) args.push(`--use-file-for-fake-audio-capture=${audio}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  let open = count;
  const crowd = [];
  for (let i = 1; i <= count; i++) {
    const context = await browser.newContext({ viewport: { width, height }, permissions: PERMISSIONS });
    await context.addInitScript(recordPeerConnections);
    crowd.push(
      await participant(`${name}-${i}`, context, async () => {
        if (--open === 0) await browser.close().catch(() => {});
      }),
    );
  }
  return crowd;
}

/**
 * Hides every video of a page (a constructed style sheet: the studio's CSP refuses inline styles), so it reports
 * each remote video at 0 × 0 and the server sends it none to decode: for participants whose own view no test looks
 * at, on a machine where every decoder counts.
 */
export async function showNoVideo(page) {
  const shown = await page.evaluate(() => {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync('video { display: none !important; }');
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    return [...document.querySelectorAll('video')].filter((v) => v.clientWidth > 0).length;
  });
  if (shown) throw new Error(`${shown} videos still shown after hiding them`);
}

export async function screenshot(page, name) {
  await mkdir(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/**
 * Average colour of small boxes at the given fractions of a <video>'s decoded frame, read through a canvas.
 * Returns null when the element has no decoded frame yet.
 */
export async function sampleVideo(locator, points = [[0.25, 0.5], [0.75, 0.5]]) {
  return locator.evaluate((video, pts) => {
    if (!video.videoWidth || video.readyState < 2) return null;
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(video, 0, 0);
    return pts.map(([fx, fy]) => {
      const size = 16;
      const x = Math.max(0, Math.round(fx * c.width - size / 2));
      const y = Math.max(0, Math.round(fy * c.height - size / 2));
      const d = ctx.getImageData(x, y, size, size).data;
      const sum = [0, 0, 0];
      for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
      return sum.map((s) => Math.round(s / (d.length / 4)));
    });
  }, points);
}

/**
 * Fetches the program's latest composed frame as the host and decodes it in the page (an <img> drawn on a
 * canvas); returns its size and the mean colour of a small box around each point (fractions of the frame).
 */
export async function sampleProgram(page, broadcastId, points, { canvas = null } = {}) {
  return page.evaluate(
    async ({ id, points, canvas }) => {
      const query = canvas ? `?canvas=${encodeURIComponent(canvas)}` : '';
      const res = await fetch(`/api/broadcasts/${id}/program.jpg${query}`, { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) return { error: `program.jpg: HTTP ${res.status}` };
      const url = URL.createObjectURL(await res.blob());
      try {
        const img = new Image();
        img.src = url;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const ctx = c.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(img, 0, 0);
        const box = 6;
        const colours = points.map(([fx, fy]) => {
          const x = Math.min(c.width - box, Math.max(0, Math.round(fx * c.width - box / 2)));
          const y = Math.min(c.height - box, Math.max(0, Math.round(fy * c.height - box / 2)));
          const d = ctx.getImageData(x, y, box, box).data;
          const sum = [0, 0, 0];
          for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
          return sum.map((v) => Math.round(v / (d.length / 4)));
        });
        return { width: c.width, height: c.height, colours };
      } finally {
        URL.revokeObjectURL(url);
      }
    },
    { id: broadcastId, points, canvas },
  );
}

/** One RGB frame of a <video> element, scaled to width×height (the shape rtmp.mjs's grabFrame returns), or null before it plays. */
export async function grabVideo(locator, width = 320, height = 180) {
  const data = await locator.evaluate(
    (video, [w, h]) => {
      if (!video.videoWidth || video.readyState < 2) return null;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(video, 0, 0, w, h);
      return Array.from(ctx.getImageData(0, 0, w, h).data.filter((_, i) => i % 4 !== 3));
    },
    [width, height],
  );
  return data && { width, height, rgb: Uint8Array.from(data) };
}

/** True when every channel of `got` is within `tol` of `want`. */
export function near(got, want, tol) {
  return got.every((v, i) => Math.abs(v - want[i]) <= tol);
}

/** The tile of the participant called `name` on `page`: their camera, or their screen share (`kind`). */
export function participantCard(page, name, kind = 'camera') {
  return page.locator(`.participant-card[data-kind=${kind}]`, { has: page.locator('.card-name', { hasText: name }) });
}

/**
 * Waits until the camera tile of `who` ({name, left, right}: a `makeClip` clip's colours) on `page` decodes
 * frames showing who's two colours. VP8 keeps a flat known pattern within a few levels; the default
 * tolerance covers the YUV 4:2:0 round trip too.
 */
export async function expectPicture(page, who, { tolerance = 28, ms = 30000 } = {}) {
  const video = participantCard(page, who.name).locator('video');
  const want = [rgb(who.left), rgb(who.right)];
  await eventually(
    `${who.name}'s picture`,
    async () => {
      const got = await sampleVideo(video);
      return got && near(got[0], want[0], tolerance) && near(got[1], want[1], tolerance) ? got : false;
    },
    ms,
  );
}

/**
 * Polls `probe` until it returns a truthy value or `ms` passes; returns that value or throws with the last
 * value seen, so a failure says what the page showed instead of only "timed out".
 */
export async function eventually(what, probe, ms = 20000, every = 250) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Waits until the `<video>` at `locator` plays in its page (muted; its time advances in a second). */
export async function expectPlays(what, locator, ms = 15000) {
  await eventually(what, async () =>
    locator.evaluate(async (v) => {
      v.muted = true;
      await v.play().catch(() => {});
      const from = v.currentTime;
      await new Promise((r) => setTimeout(r, 1000));
      return v.currentTime > from + 0.5;
    }), ms, 500);
}

/**
 * In `page`: registers a new host account, creates a broadcast titled `title`, enters its studio and copies the
 * guest invite link, which it returns. `query` (e.g. `?relay=1`) is used for the studio and appended to the link.
 */
export async function hostWithInvite(page, { base, name, email, title, query = '' }) {
  await page.goto(`${base}/${query}#/register`);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('form.auth-form button[type=submit]');
  await page.waitForSelector('form.create-form');
  await page.fill('input[name=title]', title);
  await page.click('[data-action=create-broadcast]');
  await page.click('[data-action=enter-studio]');
  await page.waitForSelector('.studio[data-role=host]', { timeout: 15000 });
  await page.click('[data-action=invite]');
  const input = page.locator('[data-invite-url]');
  await input.waitFor();
  const link = `${base}/join/${(await input.inputValue()).split('/join/')[1]}${query}`;
  await page.keyboard.press('Escape');
  return link;
}

/**
 * Opens invite `link` in participant `p`'s page, enters `name` and the studio, and waits for it (`selector`).
 * `ms` bounds each step: a page in a busy browser process can take long to load and connect.
 */
export async function joinAsGuest(p, link, name, { ms = 15000, selector = '.studio' } = {}) {
  let step = 'loading the invite';
  try {
    await p.page.goto(link, { timeout: ms });
    step = 'typing the name';
    await p.page.fill('input[name=name]', name, { timeout: ms });
    step = 'clicking "Join studio" (enabled once the camera has started)';
    await p.page.click('[data-action=enter-studio]', { timeout: ms });
    step = `waiting for ${selector}`;
    await p.page.waitForSelector(selector, { timeout: ms });
  } catch (e) {
    // Say what the page showed: a failed join's message, or where it was stuck.
    const shot = await screenshot(p.page, `join-failed-${p.name}`).catch(() => 'none');
    const shown = await p.page
      .evaluate(() => document.body.innerText.replace(/\s+/g, ' ').slice(0, 400))
      .catch((err) => `(page unreadable: ${err.message})`);
    const lastLines = p.logs.slice(-10).join('\n');
    throw new Error(`${name} could not join while ${step}: ${e.message.split('\n')[0]}\npage: ${shown}\nscreenshot: ${shot}\nlast console lines:\n${lastLines}`, { cause: e });
  }
}

/**
 * A fresh folder with a two-colour fake-camera clip for each of `people` (`{key: {left, right}}`, sets `.clip`);
 * `options` as for `makeClip` (size, frame rate).
 */
export async function makeClips(people, options = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'backyard-clips-'));
  for (const [key, who] of Object.entries(people)) who.clip = await makeClip(dir, key, who.left, who.right, options);
  return dir;
}

/** Closes every participant's browser (printing its console when BACKYARD_E2E_LOGS is set) and removes `clipDir`. */
export async function closeAll(participants, clipDir) {
  for (const x of Object.values(participants)) {
    if (process.env.BACKYARD_E2E_LOGS) console.log(`--- ${x.name} console\n${x.logs.join('\n')}`);
    await x.close();
  }
  if (clipDir) await rm(clipDir, { recursive: true, force: true });
}

/**
 * In a host's studio `page`: adds a custom RTMP destination named `name` (`url` the server's RTMP URL, `key` the
 * stream key) from the Broadcast panel and returns its row.
 */
export async function addRtmpDestination(page, { name, url, key, videoKbps = null, canvas = null }) {
  await page.click('[data-tab=broadcast]');
  await page.click('[data-action=add-destination]');
  await page.selectOption('.dest-form select[name=platform]', 'rtmp');
  await page.fill('.dest-form input[name=name]', name);
  await page.fill('.dest-form input[name=rtmpUrl]', url);
  await page.fill('.dest-form input[name=streamKey]', key);
  if (videoKbps) await page.fill('.dest-form input[name=videoKbps]', String(videoKbps));
  if (canvas) await page.selectOption('.dest-form select[name=canvas]', canvas);
  await page.click('.dest-form button[type=submit]');
  const row = page.locator('.dest-item', { hasText: name });
  await row.waitFor();
  return row;
}

/**
 * How many frames the page decoded of the track the `<video>` matching `selector` plays, and whether that track is
 * the server's program (`msid:program`); null until the video has a track a peer connection receives.
 */
export async function decodedFrames(page, selector) {
  return page.evaluate(async (sel) => {
    const track = document.querySelector(sel)?.srcObject?.getVideoTracks()[0];
    for (const pc of window.__peerConnections ?? []) {
      const receiver = pc.getReceivers().find((r) => r.track === track);
      if (!receiver) continue;
      let frames = 0;
      (await receiver.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') frames = s.framesDecoded ?? 0;
      });
      return { frames, program: pc.remoteDescription.sdp.includes('msid:program ') };
    }
    return null;
  }, selector);
}

/**
 * Watches `page`'s signaling socket: the `joined` answer, who is who (participant id → name), every
 * `stage-layout` the server sends, the latest `canvas-layout` of each other canvas (`canvasLayouts[id]`), and the
 * latest data of every event (`last[event]`).
 */
export function recordSignaling(page) {
  const rec = { joined: null, names: new Map(), stageLayouts: [], canvasLayouts: {}, last: {} };
  page.on('websocket', (ws) => {
    if (!new URL(ws.url()).pathname.endsWith('/ws')) return;
    ws.on('framereceived', ({ payload }) => {
      let msg;
      try {
        msg = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
      } catch {
        return;
      }
      const data = msg?.data ?? {};
      if (msg?.event) rec.last[msg.event] = data;
      switch (msg?.event) {
        case 'joined':
          rec.joined = data;
          rec.stageLayouts = data.stageLayout ? [data.stageLayout] : [];
          for (const p of data.participants ?? []) rec.names.set(p.id, p.name);
          break;
        case 'participant-joined':
        case 'participant-status-updated':
          rec.names.set(data.participant.id, data.participant.name);
          break;
        case 'stage-layout':
          rec.stageLayouts.push(data);
          break;
        case 'canvas-layout':
          rec.canvasLayouts[data.canvasId] = data.stage;
          break;
        default:
          break;
      }
    });
  });
  return rec;
}

/**
 * The lab network `cargo xtask e2e` makes: a network namespace joined to this machine by a veth pair. `url` is
 * the server as seen from inside it.
 */
export function lab() {
  const env = process.env;
  const [ns, hostIp, hostDev, guestDev] = [env.BACKYARD_E2E_LAB_NS, env.BACKYARD_E2E_LAB_HOST_IP, env.BACKYARD_E2E_LAB_HOST_DEV, env.BACKYARD_E2E_LAB_GUEST_DEV];
  if (!ns || !hostIp) throw new Error('no lab network: run this suite through `cargo xtask e2e` (as root)');
  const url = new URL(backyardUrl());
  url.hostname = hostIp;
  return { ns, hostIp, hostDev, guestDev, url: url.origin };
}

/** A participant whose Chromium runs inside the lab namespace (its traffic crosses the veth pair). */
export async function launchInLab(name, options = {}) {
  const { ns } = lab();
  const dir = await mkdtemp(path.join(tmpdir(), `backyard-lab-${name}-`));
  const wrapper = path.join(dir, 'chromium-in-lab');
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
  await chmod(wrapper, 0o755);
  // The studio needs a secure context (camera, microphone); loopback is one, the lab's address is not.
  const flags = [`--unsafely-treat-insecure-origin-as-secure=${lab().url}`];
  const p = await launchParticipant(name, { ...options, executablePath: wrapper, flags });
  const close = p.close;
  p.close = async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  };
  return p;
}

/**
 * Impairs the lab participant's link: `down`/`up` cap a direction (a tc rate such as '600kbit'; tbf queues what
 * exceeds it, so delay builds up as on a real capped link), `downLoss`/`upLoss` drop that percentage of its UDP
 * packets (nftables). Each call replaces the previous impairment; `impair({})` lifts it.
 */
export async function impair({ down, up, downLoss = 0, upLoss = 0 } = {}) {
  const { ns, hostDev, guestDev } = lab();
  const sh = (cmd) => run('sh', ['-c', cmd]);
  const quiet = (cmd) => sh(`${cmd} 2>/dev/null || true`);
  await quiet(`tc qdisc del dev ${hostDev} root`);
  await quiet(`ip netns exec ${ns} tc qdisc del dev ${guestDev} root`);
  await quiet(`ip netns exec ${ns} nft delete table inet lab`);
  const tbf = (rate) => `tbf rate ${rate} burst 24kb latency 400ms`;
  if (down) await sh(`tc qdisc add dev ${hostDev} root ${tbf(down)}`);
  if (up) await sh(`ip netns exec ${ns} tc qdisc add dev ${guestDev} root ${tbf(up)}`);
  if (downLoss || upLoss) {
    const rules = [
      'table inet lab {',
      downLoss ? `  chain down { type filter hook input priority 0; meta l4proto udp numgen random mod 100 < ${downLoss} drop; }` : '',
      upLoss ? `  chain up { type filter hook output priority 0; meta l4proto udp numgen random mod 100 < ${upLoss} drop; }` : '',
      '}',
    ].join('\n');
    const file = path.join(tmpdir(), `backyard-lab-${process.pid}.nft`);
    await writeFile(file, rules);
    await sh(`ip netns exec ${ns} nft -f ${file}`);
    await rm(file, { force: true });
  }
}

/** What `page` sends of its camera: one entry per simulcast layer that encodes frames, lowest first. */
export async function sentLayers(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__peerConnections ?? []) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid && s.framesEncoded > 0) {
          out.push({ rid: s.rid, width: s.frameWidth, height: s.frameHeight, frames: s.framesEncoded, keyframes: s.keyFramesEncoded ?? 0 });
        }
      });
    }
    return out.sort((a, b) => a.height - b.height);
  });
}

/**
 * What `page` receives of participant `id`'s camera: decoded height, frames decoded, freezes (Chromium's
 * `freezeCount`) and bytes; null when it receives none.
 */
export async function receivedVideo(page, id) {
  return page.evaluate(async (pid) => {
    for (const pc of window.__peerConnections ?? []) {
      const sections = pc.remoteDescription?.sdp.split('\r\nm=') ?? [];
      for (const t of pc.getTransceivers()) {
        if (t.receiver.track.kind !== 'video' || !t.mid) continue;
        const m = sections.find((s) => s.includes(`a=mid:${t.mid}\r\n`));
        if (!m?.includes(`a=msid:${pid} `)) continue;
        let got = null;
        (await t.receiver.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp') {
            got = { height: s.frameHeight ?? 0, frames: s.framesDecoded ?? 0, freezes: s.freezeCount ?? 0, bytes: s.bytesReceived ?? 0, plis: s.pliCount ?? 0, nacks: s.nackCount ?? 0, lost: s.packetsLost ?? 0, keyframes: s.keyFramesDecoded ?? 0 };
          }
        });
        return got;
      }
    }
    return null;
  }, id);
}

/** Waits until the strip of `page` (a host's) marks exactly `ids` as on stage; returns them. */
export async function waitOnStage(page, ids, ms = 15000) {
  return eventually(
    `${ids.length} on stage`,
    async () => {
      const on = await page.locator('.participant-card[data-kind=camera][data-on-stage=true]').evaluateAll((els) => els.map((e) => e.dataset.participantId));
      return on.length === ids.length && ids.every((id) => on.includes(id)) ? on : false;
    },
    ms,
  );
}
