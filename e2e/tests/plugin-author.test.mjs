// A plugin author outside the checkout, on a fresh shell: in an empty folder, `backyard plugin new overlay
// scoreboard`, the build command its README documents, `backyard plugin render` with props (the plugin's own
// log line shows, and the props change the picture), then the component copied into the running server's
// plugin folder as its README says. The server loads it without a restart: `GET /api/plugins` lists it, the
// host's studio offers it (after the next join) with a text field for its prop, and "Show" puts the typed text
// on the program (`program.jpg`, where the badge is drawn).
//
// Needs a running backyard at BACKYARD_URL, its binary at BACKYARD_E2E_BIN and its plugin folder at
// BACKYARD_E2E_PLUGIN_DIR (`cargo xtask e2e` sets all three), and cargo with the wasm32-wasip2 target.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, makeClip, sampleProgram, screenshot } from '../lib/harness.mjs';

const BIN = process.env.BACKYARD_E2E_BIN;
const PLUGIN_DIR = process.env.BACKYARD_E2E_PLUGIN_DIR;
/** Full blocks draw solid white in the badge, easy to find in a JPEG. */
const SCORE = '████ 2–1 ████';

/** A shell's environment, no more: no cargo, rustup or Backyard variables from the suite that runs this. */
function freshEnv() {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'RUSTUP_HOME', 'CARGO_HOME', 'TMPDIR'];
  return Object.fromEntries(keep.filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
}

/** Runs a command line word by word in `cwd` and resolves with its output; rejects (with the output) on failure. */
function sh(cwd, cmd, args, { timeout = 600000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: freshEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      const out = { code, stdout, stderr };
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`));
    });
  });
}

/** The mean colour of a small box around `point` (fractions) of the program's latest frame, or null. */
async function programColour(page, broadcastId, point) {
  return (await sampleProgram(page, broadcastId, [point])).colours?.[0] ?? null;
}

describe('a plugin author outside the checkout', { timeout: 900000 }, () => {
  let work;
  let crate;
  let host;
  let clipDir;

  before(async () => {
    assert.ok(BIN && PLUGIN_DIR, 'BACKYARD_E2E_BIN and BACKYARD_E2E_PLUGIN_DIR are set by `cargo xtask e2e`');
    work = await mkdtemp(path.join(tmpdir(), 'backyard-author-'));
    crate = path.join(work, 'scoreboard');
  });

  after(async () => {
    if (host) await closeAll({ host }, clipDir);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('makes, builds and previews an overlay with props', async () => {
    const made = await sh(work, BIN, ['plugin', 'new', 'overlay', 'scoreboard']);
    assert.match(made.stdout, /cargo build --release --target wasm32-wasip2/);
    const readme = await readFile(path.join(crate, 'README.md'), 'utf8');
    // The build command is the one the README documents.
    assert.ok(readme.includes('cargo build --release --target wasm32-wasip2'));
    await sh(crate, 'cargo', ['build', '--release', '--target', 'wasm32-wasip2']);
    const wasm = 'target/wasm32-wasip2/release/scoreboard.wasm';
    const shown = await sh(crate, BIN, ['plugin', 'render', wasm, '--props', JSON.stringify({ text: SCORE }), '--out', 'with.png']);
    assert.match(shown.stdout, /wrote with\.png/);
    assert.ok(shown.stderr.includes(`drawing '${SCORE}' at top-left`), `the plugin's log line: ${shown.stderr}`);
    await sh(crate, BIN, ['plugin', 'render', wasm, '--props', '{"text":""}', '--out', 'without.png']);
    const [a, b] = await Promise.all([readFile(path.join(crate, 'with.png')), readFile(path.join(crate, 'without.png'))]);
    assert.ok(!a.equals(b), 'the props changed nothing');
    // A layout-only flag is refused for an overlay.
    await assert.rejects(sh(crate, BIN, ['plugin', 'render', wasm, '--speaker', 'Ada']), /--speaker is for a layout plugin/);
  });

  it('loads into the running server and goes on the program from the studio', async () => {
    const base = backyardUrl();
    clipDir = await mkdtemp(path.join(tmpdir(), 'backyard-author-clip-'));
    // A dark camera, so the badge's white blocks stand out on the program.
    const clip = await makeClip(clipDir, 'dark', '202020', '202020');
    host = await launchParticipant('author-host', { clip });
    const page = host.page;
    await hostWithInvite(page, { base, name: 'Pat Author', email: `author-${Date.now()}@example.com`, title: 'Plugin night' });
    const broadcastId = new URL(page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    assert.ok(broadcastId, `the studio URL names the broadcast: ${page.url()}`);

    // Installed as the README says: the manifest, then the component as plugin.wasm.
    const to = path.join(PLUGIN_DIR, 'scoreboard');
    await mkdir(to, { recursive: true });
    await copyFile(path.join(crate, 'plugin.toml'), path.join(to, 'plugin.toml'));
    await copyFile(path.join(crate, 'target/wasm32-wasip2/release/scoreboard.wasm'), path.join(to, 'plugin.wasm'));
    const listed = await eventually(
      'GET /api/plugins lists scoreboard',
      async () => {
        const res = await page.request.get(`${base}/api/plugins`);
        if (!res.ok()) return false;
        const p = (await res.json()).find((x) => x.name === 'scoreboard');
        return p?.status === 'ok' ? p : false;
      },
      30000,
      500,
    );
    assert.equal(listed.kind, 'overlay');

    // The next join offers it: the host reloads the studio and enters again.
    await page.reload();
    await page.click('[data-action=enter-studio]');
    await page.waitForSelector('.studio[data-role=host]', { timeout: 15000 });
    await page.click('[data-tab=overlays]');
    const card = page.locator('.plugin-overlay[data-overlay="scoreboard/scoreboard"]');
    await card.waitFor({ timeout: 15000 });
    await screenshot(page, 'plugin-author-studio');

    // Where the badge goes (top-left): dark before it is shown.
    const spot = [0.06, 0.066];
    await eventually('the program shows the dark camera', async () => {
      const c = await programColour(page, broadcastId, spot);
      return c && c.every((v) => v < 100) ? c : false;
    }, 30000, 500);
    await card.locator('input[name=prop-text]').fill(SCORE);
    await card.locator('[data-action=toggle-plugin-overlay]').click();
    await eventually('the badge is on the program', async () => {
      const c = await programColour(page, broadcastId, spot);
      return c && c.every((v) => v > 180) ? c : false;
    }, 20000, 500);
    assert.equal(await card.locator('[data-action=toggle-plugin-overlay]').textContent(), 'Hide Scoreboard');
    await screenshot(page, 'plugin-author-on-air');
  });
});
