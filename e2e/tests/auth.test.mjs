// The studio's entry screens against a real backyard: bad input gets a clear message, never a blank page.
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, eventually, hostWithInvite, launchParticipant, screenshot } from '../lib/harness.mjs';

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

  it('a join the server never answers tells the guest after 30 s, and trying again gets them in', async () => {
    const host = await launchParticipant('auth-host');
    const guest = await launchParticipant('auth-guest');
    try {
      const link = await hostWithInvite(host.page, { base, name: 'Hana Host', email: `hana-${Date.now()}@example.test`, title: 'Slow join' });
      const page = guest.page;
      // The server never sees the guest's first `join-broadcast`; everything else passes both ways.
      let swallowed = 0;
      await page.routeWebSocket(/\/ws$/, (ws) => {
        const server = ws.connectToServer();
        ws.onMessage((m) => {
          if (swallowed === 0 && String(m).includes('"join-broadcast"')) {
            swallowed += 1;
            return;
          }
          server.send(m);
        });
        server.onMessage((m) => ws.send(m));
      });
      // The page's clock, so the 30 s pass at once.
      await page.clock.install();
      await page.goto(link);
      await page.fill('input[name=name]', 'Sol Slow');
      await page.click('[data-action=enter-studio]');
      await eventually('the join was sent and went unanswered', async () => swallowed === 1, 15000);
      assert.equal(await page.locator('.form-error').textContent(), '', 'no message before the time is up');
      await page.clock.runFor(30000);
      const error = await errorText(page, '.greenroom-form .form-error');
      assert.match(error, /did not answer in time/);
      assert.ok(await page.locator('[data-action=enter-studio]').isEnabled(), 'the button works again');
      await screenshot(page, 'auth-03-join-unanswered');
      await page.click('[data-action=enter-studio]');
      await page.waitForSelector('.studio', { timeout: 15000 });
    } finally {
      await guest.close();
      await host.close();
    }
  });
});
