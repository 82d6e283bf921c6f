// The OpenAPI description is complete and true: schemathesis (pinned; `cargo xtask e2e` installs it) runs every
// check it has against the running server's `/api/openapi.json`, signed in as a host who owns a broadcast, with
// deterministic generation (the same requests every run) and a bounded number of examples per operation, and
// reports no failure: every status, header and body
// the server answers is one the description promises, and every request the description calls invalid is refused.
//
// Where the server's rules go beyond what JSON Schema can state, `e2e/schemathesis.toml` names the rule and the
// one answer it may give; `e2e/schemathesis_hooks.py` tells it how to send an SDP offer. Sign-out is left out of the run (it would end the session the rest of the run signs in with); its own tests
// are in the server's API suite. No browser.
//
// Needs a running backyard at BACKYARD_URL and schemathesis's `st` at BACKYARD_E2E_SCHEMATHESIS.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { backyardUrl, ROOT, SHOTS } from '../lib/harness.mjs';

/** Examples per operation and phase: enough to reach every documented response, short enough for every run. */
const MAX_EXAMPLES = 30;

const PASSWORD = 'a long enough password';

/** The access token (the `by_access` cookie, sent back as a Bearer token) a sign-up or sign-in answer sets. */
function accessToken(res) {
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('by_access='));
  assert.ok(cookie, 'the answer sets the access cookie');
  return cookie.split(';')[0].slice('by_access='.length);
}

/** Registers an account as `email` and returns its access token. */
async function signUp(base, email) {
  const res = await fetch(`${base}/api/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: base },
    body: JSON.stringify({ email, password: PASSWORD, name: 'Schema Host' }),
  });
  assert.equal(res.status, 201, `register: ${res.status} ${await res.clone().text()}`);
  return accessToken(res);
}

/**
 * Ends every show of `email`'s that schemathesis put on air (it calls `POST .../start` like any operation), so
 * their programs do not go on encoding under the suites that run after this one. Signs in afresh: the run may
 * have revoked the first session.
 */
async function endLiveShows(base, email) {
  const json = { 'content-type': 'application/json', origin: base };
  const login = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) });
  assert.equal(login.status, 200, `sign in again: ${login.status}`);
  const auth = { authorization: `Bearer ${accessToken(login)}`, origin: base };
  const list = await (await fetch(`${base}/api/broadcasts?limit=100`, { headers: auth })).json();
  for (const b of (list.items ?? []).filter((b) => b.status === 'live')) {
    const res = await fetch(`${base}/api/broadcasts/${b.id}/end`, { method: 'POST', headers: auth });
    console.log(`# ended the live show ${b.id} schemathesis started: ${res.status}`);
  }
}

function run(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('the OpenAPI description', { timeout: 900000 }, () => {
  it('passes every schemathesis check, signed in', async () => {
    const st = process.env.BACKYARD_E2E_SCHEMATHESIS;
    assert.ok(st, 'BACKYARD_E2E_SCHEMATHESIS is not set: run this suite through `cargo xtask e2e openapi`');
    const base = backyardUrl();
    const email = `openapi-${Date.now()}@example.test`;
    const token = await signUp(base, email);
    const created = await fetch(`${base}/api/broadcasts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, origin: base },
      body: JSON.stringify({ title: 'Schema show' }),
    });
    assert.equal(created.status, 201, `create a broadcast: ${created.status}`);
    await mkdir(SHOTS, { recursive: true });
    const report = path.join(SHOTS, 'schemathesis.xml');
    const { code, out } = await run(st, [
      '--config-file', path.join(ROOT, 'e2e', 'schemathesis.toml'),
      'run', `${base}/api/openapi.json`,
      '--checks', 'all',
      '--generation-deterministic',
      '--max-examples', String(MAX_EXAMPLES),
      '--workers', '1',
      '--no-color',
      '--exclude-path', '/api/auth/logout',
      '--header', `Authorization: Bearer ${token}`,
      '--header', `Origin: ${base}`,
      '--report', 'junit', '--report-junit-path', report,
    ], { SCHEMATHESIS_HOOKS: path.join(ROOT, 'e2e', 'schemathesis_hooks.py') });
    await endLiveShows(base, email);
    assert.equal(code, 0, `schemathesis found problems (junit report: ${report}):\n${out.slice(-20000)}`);
  });
});
