// The administrators' Nodes page: every node of the deployment with its load, relay and the broadcasts whose
// program it runs, refreshed while open; nobody else sees it.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one, and registers its administrator).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, launchParticipant, screenshot } from '../lib/harness.mjs';

async function signIn(page, base, email, password) {
  await page.goto(`${base}/#/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('form.auth-form button[type=submit]');
  await page.waitForSelector('[data-nav=broadcasts]');
}

describe('the Nodes page', { timeout: 120000 }, () => {
  const base = backyardUrl();
  const admin = { email: process.env.BACKYARD_E2E_ADMIN_EMAIL, password: process.env.BACKYARD_E2E_ADMIN_PASSWORD };
  let b;

  before(async () => {
    assert.ok(admin.email && admin.password, 'BACKYARD_E2E_ADMIN_EMAIL / _PASSWORD (set by `cargo xtask e2e`)');
    b = await launchParticipant('operator');
  });

  after(async () => {
    await b?.close();
  });

  it('an administrator sees this node, its load and that rooms do not span nodes without a secret', async () => {
    const page = b.page;
    await signIn(page, base, admin.email, admin.password);
    await page.click('[data-nav=nodes]');
    const card = page.locator('.node-card').first();
    await card.waitFor();
    assert.match(page.url(), /#\/nodes$/);
    assert.equal(await page.locator('.node-card').count(), 1, 'one node in embedded mode');
    const text = await card.innerText();
    assert.match(text, /this node/i);
    assert.match(text, /CPU \(cores\)/);
    assert.match(text, /off \(no cluster\.secret\)/);
    // The shows of the other suites may still have programs running here: what matters is that the row is there.
    assert.match(text, /Programs of/);
    // It refreshes itself while open.
    const updated = async () => (await page.locator('.nodes-updated').innerText()).trim();
    const first = await updated();
    assert.match(first, /^Updated /);
    await eventually('the page to refresh', async () => (await updated()) !== first, 10000);
    await screenshot(page, 'nodes-01-this-node');
  });

  it('someone who is not an administrator has no Nodes page', async () => {
    const page = b.page;
    await page.click('[data-action=sign-out]');
    await page.waitForSelector('form.auth-form');
    await page.goto(`${base}/#/register`);
    await page.fill('input[name=name]', 'Not An Admin');
    await page.fill('input[name=email]', `nodes-${Date.now()}@example.test`);
    await page.fill('input[name=password]', 'a good long password');
    await page.click('form.auth-form button[type=submit]');
    await page.waitForSelector('[data-nav=broadcasts]');
    assert.equal(await page.locator('[data-nav=nodes]').count(), 0, 'no Nodes link');
    await page.goto(`${base}/#/nodes`);
    await page.waitForSelector('form.create-form');
    assert.equal(await page.locator('.node-card').count(), 0, 'the broadcasts list instead');
  });
});
