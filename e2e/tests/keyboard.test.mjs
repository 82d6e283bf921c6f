// The host's keyboard shortcuts. Which key asks for what is checked without a page (`studio/js/shortcuts.js`);
// then, in Chromium, a host drives the studio from the keyboard: Shift+1 puts the first person of the strip on
// stage, 2 picks the toolbar's second layout, M mutes and unmutes, B shows the banner typed in the overlays panel,
// ? opens the list of shortcuts, and keys typed into the chat box are only text. Last, on a touch screen (no
// hover) the strip's stage buttons are shown without hovering.
//
// Needs a running backyard at BACKYARD_URL (`cargo xtask e2e` starts one).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { shortcutFor } from '../../studio/js/shortcuts.js';
import { backyardUrl, closeAll, eventually, hostWithInvite, launchParticipant, screenshot } from '../lib/harness.mjs';

const key = (k, more = {}) => ({ key: k, code: /^[0-9]$/.test(k) ? `Digit${k}` : `Key${k.toUpperCase()}`, target: { tagName: 'BODY' }, ...more });

describe('shortcuts: which key asks for what', () => {
  it('hosts pick layouts with 1–9 and the stage with Shift+1–9; everyone mutes with M', () => {
    const host = { moderator: true };
    assert.deepEqual(shortcutFor(key('2'), host), { action: 'layout', index: 1 });
    assert.deepEqual(shortcutFor(key('!', { code: 'Digit1', shiftKey: true }), host), { action: 'stage', index: 0 });
    assert.deepEqual(shortcutFor(key('m'), host), { action: 'toggle-mic' });
    assert.deepEqual(shortcutFor(key('M'), {}), { action: 'toggle-mic' });
    assert.deepEqual(shortcutFor(key('?', { code: 'Slash', shiftKey: true }), {}), { action: 'help' });
    assert.deepEqual(shortcutFor(key('b'), host), { action: 'toggle-banner' });
  });

  it('a guest has no host keys; typing, held modifiers and repeats ask for nothing', () => {
    assert.equal(shortcutFor(key('2'), { moderator: false }), null);
    assert.equal(shortcutFor(key('b'), { moderator: false }), null);
    for (const tagName of ['INPUT', 'TEXTAREA', 'SELECT']) assert.equal(shortcutFor(key('m', { target: { tagName } }), { moderator: true }), null);
    assert.equal(shortcutFor(key('m', { target: { tagName: 'DIV', isContentEditable: true } }), {}), null);
    for (const mod of ['ctrlKey', 'metaKey', 'altKey', 'repeat']) assert.equal(shortcutFor(key('m', { [mod]: true }), {}), null);
    assert.equal(shortcutFor(key('x'), { moderator: true }), null);
  });
});

describe('a host drives the studio from the keyboard', { timeout: 300000 }, () => {
  let host;

  before(async () => {
    host = await launchParticipant('keyboard-host');
    await hostWithInvite(host.page, { base: backyardUrl(), name: 'Kim Host', email: `keys-${Date.now()}@example.com`, title: 'Keyboard show' });
  });

  after(() => closeAll({ host }));

  it('stage, layout, mute, banner and help from the keyboard; chat keys stay text', async () => {
    const page = host.page;
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    const me = page.locator('.participant-card[data-kind=camera]').first();
    await page.keyboard.press('Shift+Digit1');
    await eventually('Shift+1 puts the host on stage', async () => (await me.getAttribute('data-on-stage')) === 'true', 10000);
    const second = page.locator('.layout-bar .layout-btn').nth(1);
    await page.keyboard.press('2');
    await eventually('2 picks the second layout', async () => (await second.getAttribute('aria-pressed')) === 'true', 10000);
    const mic = page.locator('[data-action=toggle-mic]');
    await page.keyboard.press('m');
    await eventually('M mutes', async () => (await mic.getAttribute('aria-pressed')) === 'true', 5000);
    await page.keyboard.press('m');
    await eventually('M unmutes', async () => (await mic.getAttribute('aria-pressed')) === 'false', 5000);
    // Muting and unmuting within one round trip: the server's late echo of the mute does not mute us again.
    await page.waitForTimeout(1000);
    assert.equal(await mic.getAttribute('aria-pressed'), 'false', 'the echo of the first M muted the microphone again');

    await page.click('[data-tab=overlays]');
    await page.fill('textarea[name=bannerText]', 'Live from the keyboard');
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('b');
    // The text's own edit and the shortcut are two scene updates; the server's echoes settle on the last.
    await eventually('B shows the banner on the stage and in the panel', async () => {
      const shown = (await page.locator('[data-role=stage] .overlay-banner').count()) === 1;
      return shown && (await page.textContent('[data-action=toggle-banner]')) === 'Hide banner';
    }, 10000);

    await page.keyboard.press('Shift+Slash');
    await page.locator('dialog.modal [data-role=shortcuts]').waitFor();
    await screenshot(page, 'keyboard-shortcuts');
    await page.keyboard.press('Escape');

    await page.click('[data-tab=chat]');
    const chat = page.locator('.chat-panel textarea, .chat-panel input').first();
    await chat.click();
    await page.keyboard.type('m2');
    assert.equal(await mic.getAttribute('aria-pressed'), 'false', 'typing M in the chat box did not mute');
    assert.equal(await second.getAttribute('aria-pressed'), 'true', 'typing 2 in the chat box did not change the layout');
    assert.equal(await chat.inputValue(), 'm2');
  });

  it('on a touch screen the stage buttons show without hovering', async () => {
    const page = host.page;
    const stageBtn = page.locator('.participant-card[data-kind=camera] [data-action=toggle-stage]').first();
    const opacity = (l) => l.evaluate((el) => getComputedStyle(el).opacity);
    await page.mouse.move(1, 1);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await eventually('with a mouse the stage button waits for a hover', async () => (await opacity(stageBtn)) === '0', 5000);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
    try {
      assert.ok(await page.evaluate(() => matchMedia('(hover: none)').matches), 'the page sees a touch screen');
      await eventually('on a touch screen the stage button shows', async () => (await opacity(stageBtn)) === '1', 5000);
      await screenshot(page, 'keyboard-touch-strip');
    } finally {
      await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: false });
      await cdp.detach();
    }
  });
});
