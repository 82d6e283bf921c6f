// Every studio screen passes an axe-core audit with no serious or critical violation: sign in, register, the
// broadcasts list, the recordings library, the administrators' Nodes page, the pre-join check, the studio as a host (each side panel, the new
// destination form, the invite, settings and shortcuts dialogs) and as a guest, the guest's join page and a show's
// watch page. A
// violation names the rule, the element and axe's help.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { backyardUrl, closeAll, hostWithInvite, launchParticipant, screenshot } from '../lib/harness.mjs';

/** axe's source, evaluated in the page through the devtools protocol (the studio's CSP refuses inline scripts). */
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe's serious and critical violations on the page as it is now, one line each. */
async function audit(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  // A notification fading out (`.toast.leaving`, on its way to opacity 0) is no longer read; mid-fade its
  // colours are whatever the transition has reached.
  const result = await page.evaluate(() =>
    window.axe.run({ include: [document], exclude: [['.toast.leaving']] }, { resultTypes: ['violations'] }),
  );
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.impact} ${v.id}: ${n.target.join(' ')} (${v.help})`));
}

async function expectClean(page, screen) {
  await screenshot(page, `a11y-${screen}`);
  const found = await audit(page);
  assert.deepEqual(found, [], `${screen}: ${found.length} serious or critical violation(s):\n${found.join('\n')}`);
}

describe('accessibility of every studio screen', { timeout: 300000 }, () => {
  const base = backyardUrl();
  const p = {};
  let link;
  let broadcastId;

  before(async () => {
    p.host = await launchParticipant('a11y-host');
    p.guest = await launchParticipant('a11y-guest');
  });

  after(() => closeAll(p));

  it('sign in and register', async () => {
    const page = p.host.page;
    await page.goto(`${base}/#/login`);
    await page.waitForSelector('form.auth-form');
    await expectClean(page, 'login');
    await page.goto(`${base}/#/register`);
    await page.waitForSelector('form.auth-form input[name=name]');
    await expectClean(page, 'register');
  });

  it('the host’s studio, each side panel', async () => {
    const page = p.host.page;
    link = await hostWithInvite(page, { base, name: 'Ally Host', email: `a11y-${Date.now()}@example.com`, title: 'Accessible show' });
    broadcastId = new URL(page.url()).hash.split('/').find((s) => /^[0-9a-f-]{36}$/.test(s));
    await expectClean(page, 'studio-host-chat');
    for (const tab of ['broadcast', 'overlays']) {
      await page.click(`[data-tab=${tab}]`);
      await expectClean(page, `studio-host-${tab}`);
    }
    // The dialogs and forms a host opens: a new destination, the invite link, the device settings.
    await page.click('[data-tab=broadcast]');
    await page.click('[data-action=add-destination]');
    await page.waitForSelector('.dest-form');
    await expectClean(page, 'studio-host-destination-form');
    await page.click('[data-action=invite]');
    await page.locator('[data-invite-url]').waitFor();
    await expectClean(page, 'studio-host-invite');
    await page.keyboard.press('Escape');
    await page.click('[data-action=settings]');
    await page.locator('dialog[open], .dialog, [role=dialog]').first().waitFor();
    await expectClean(page, 'studio-host-settings');
    await page.keyboard.press('Escape');
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Shift+Slash');
    await page.locator('dialog.modal [data-role=shortcuts]').waitFor();
    await expectClean(page, 'studio-host-shortcuts');
    await page.keyboard.press('Escape');
  });

  it('the guest’s join page, pre-join check and studio', async () => {
    const page = p.guest.page;
    await page.goto(link);
    await page.waitForSelector('input[name=name]');
    // Audited once the camera check is done (the join button is enabled), as a guest sees it.
    await page.waitForSelector('[data-action=enter-studio]:not([disabled])');
    await expectClean(page, 'guest-join');
    await page.fill('input[name=name]', 'Gus Guest');
    await page.click('[data-action=enter-studio]');
    await page.waitForSelector('.studio', { timeout: 15000 });
    await expectClean(page, 'studio-guest');
  });

  it('the watch page, as a viewer finds it before the show', async () => {
    const page = p.guest.page;
    // The host opens the show to viewers from the Broadcast panel; the viewer's page says it has not started.
    await p.host.page.click('[data-tab=broadcast]');
    await p.host.page.selectOption('[data-role=watch-visibility]', 'unlisted');
    await page.goto(`${base}/watch/${broadcastId}`);
    await page.getByText('The show has not started yet').waitFor({ timeout: 15000 });
    await expectClean(page, 'watch');
  });

  it('the administrators’ Nodes page', async () => {
    const operator = await launchParticipant('a11y-operator');
    try {
      const page = operator.page;
      await page.goto(`${base}/#/login`);
      await page.fill('input[name=email]', process.env.BACKYARD_E2E_ADMIN_EMAIL);
      await page.fill('input[name=password]', process.env.BACKYARD_E2E_ADMIN_PASSWORD);
      await page.click('form.auth-form button[type=submit]');
      await page.click('[data-nav=nodes]');
      await page.waitForSelector('.node-card');
      await expectClean(page, 'nodes');
    } finally {
      await operator.close();
    }
  });

  it('the broadcasts list, the recordings library and the pre-join check', async () => {
    const page = p.host.page;
    await page.goto(`${base}/#/broadcasts`);
    await page.waitForSelector('.broadcast-card');
    await expectClean(page, 'broadcasts');
    await page.goto(`${base}/#/recordings`);
    await page.waitForSelector('.recording-grid .empty-state, .recording-card');
    await expectClean(page, 'recordings');
    await page.click('[data-nav=broadcasts]');
    await page.click('[data-action=open-studio]');
    await page.waitForSelector('[data-action=enter-studio]:not([disabled])');
    await expectClean(page, 'prejoin');
  });
});
