// The studio's entry screens against a real backyard: bad input gets a clear message, never a blank page.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, launchParticipant, screenshot } from '../lib/harness.mjs';

/** The text of the error line under a form, once there is one. */
async function errorText(page, selector) {
  return eventually(`an error message in ${selector}`, async () => {
    const l = page.locator(selector);
    return (await l.count()) ? (await l.textContent()).trim() : false;
  }, 10000);
}

describe('sign in, register and guest links', { timeout: 120000 }, () => {
  const base = backyardUrl();
  let b;

  before(async () => {
    b = await launchParticipant('visitor');
  });

  after(async () => {
    await b?.close();
  });

  it('a signed-out visitor is sent to sign in', async () => {
    await b.page.goto(`${base}/#/broadcasts`);
    await b.page.waitForSelector('form.auth-form');
    assert.match(b.page.url(), /#\/login$/);
  });

  it('a wrong password is refused with a message', async () => {
    const page = b.page;
    await page.goto(`${base}/#/register`);
    const email = `auth-${Date.now()}@example.test`;
    await page.fill('input[name=name]', 'Rita Register');
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', 'a good long password');
    await page.click('form.auth-form button[type=submit]');
    await page.click('[data-action=sign-out]');
    await page.waitForSelector('form.auth-form');
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', 'not the password');
    await page.click('form.auth-form button[type=submit]');
    const error = await errorText(page, 'form.auth-form .form-error');
    assert.ok(error.length > 5, `message shown: ${error}`);
    assert.equal(await page.locator('form.create-form').count(), 0, 'still signed out');
    await screenshot(page, 'auth-01-wrong-password');
  });

  it('registering the same email twice says so', async () => {
    const page = b.page;
    const email = `dup-${Date.now()}@example.test`;
    for (let i = 0; i < 2; i++) {
      await page.goto(`${base}/#/register`);
      await page.fill('input[name=name]', 'Dup');
      await page.fill('input[name=email]', email);
      await page.fill('input[name=password]', 'a good long password');
      await page.click('form.auth-form button[type=submit]');
      if (i === 0) {
        await page.click('[data-action=sign-out]');
        await page.waitForSelector('form.auth-form');
      }
    }
    const error = await errorText(page, 'form.auth-form .form-error');
    assert.ok(error.length > 5, `message shown: ${error}`);
  });

  it('an unknown invite link explains itself in the join page', async () => {
    const page = b.page;
    await page.goto(`${base}/join/not-a-real-token`);
    await page.fill('input[name=name]', 'Lost Guest');
    await page.click('[data-action=enter-studio]');
    const error = await errorText(page, '.greenroom-form .form-error');
    assert.ok(error.length > 5, `message shown: ${error}`);
    assert.equal(await page.locator('.studio').count(), 0, 'no studio without a valid invite');
    await screenshot(page, 'auth-02-bad-invite');
  });
});
