// The studio's dialogs: the invite link (guest or co-host) and the camera / microphone / speakers settings.

import { api } from './api.js';
import { copyButton, h, icon, labelFor, toast } from './dom.js';
import { ICONS } from './icons.js';
import { describeMediaError, LevelMeter } from './media.js';
import { deviceSelect } from './prejoin.js';
import { SHORTCUTS } from './shortcuts.js';

/** A modal dialog with a title and a close button; replaces any dialog already open. */
export function showDialog(title, ...content) {
  document.querySelector('dialog.modal')?.remove();
  const dlg = h(
    'dialog.modal',
    h('div.modal-head', h('h2', title), h('button.icon-btn', { type: 'button', title: 'Close', onclick: () => dlg.close() }, icon(ICONS.close))),
    ...content,
  );
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function closeDialogs() {
  document.querySelector('dialog.modal')?.remove();
}

/** The invite dialog's "guests wait backstage" switch; `onChange(on)` once the server took it. */
function backstageSwitch(broadcastId, on, onChange) {
  const box = h('input', { type: 'checkbox', checked: on, name: 'backstage' });
  box.onchange = async () => {
    try {
      await setBackstage(broadcastId, box.checked);
      onChange(box.checked);
    } catch (e) {
      box.checked = !box.checked;
      toast(`Could not change that: ${e.message}`, 'error');
    }
  };
  return h('div.check-row.backstage-switch', box, labelFor(box, 'Guests wait backstage until you admit them'));
}

/**
 * Whether guests of `broadcastId` wait backstage when they join: the broadcast's `settings.backstage`, merged into
 * its other settings.
 */
async function setBackstage(broadcastId, on) {
  await api.updateSettings(broadcastId, { backstage: on });
}

/**
 * Creates an invite link for `broadcastId` (guest by default, co-host on request), copies it and shows it.
 * Only the owner (`canInviteCohost`) may hand out co-host rights.
 */
export async function inviteDialog({ broadcastId, role = 'guest', canInviteCohost, backstage = null, onBackstage = () => {} }) {
  let invite;
  try {
    invite = await api.createInvite(broadcastId, role);
  } catch (e) {
    toast(`Could not create an invite: ${e.message}`, 'error');
    return;
  }
  const url = invite.url ?? `${location.origin}/join/${invite.token}`;
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch {
    copied = false;
  }
  const roleTab = (r, label) =>
    h(
      `button.seg${r === role ? '.active' : ''}`,
      { type: 'button', dataset: { inviteRole: r }, onclick: () => r !== role && inviteDialog({ broadcastId, role: r, canInviteCohost, backstage, onBackstage }) },
      label,
    );
  showDialog(
    role === 'cohost' ? 'Invite a co-host' : 'Invite a guest',
    canInviteCohost ? h('div.segmented', roleTab('guest', 'Guest'), roleTab('cohost', 'Co-host')) : null,
    h(
      'p.muted',
      role === 'cohost'
        ? 'A co-host can bring people on stage, change the layout and overlays, and mute or remove guests.'
        : 'Anyone with this link can join the studio as a guest, without an account.',
    ),
    h(
      'div.copy-row',
      h('input', {
        type: 'text',
        readOnly: true,
        value: url,
        'aria-label': role === 'cohost' ? 'Co-host invite link' : 'Guest invite link',
        dataset: { inviteUrl: url, role },
        onfocus: (e) => e.target.select(),
      }),
      copyButton(url, copied ? 'Copied' : 'Copy'),
    ),
    h('p.field-hint', `Expires ${invite.expiresAt ? new Date(invite.expiresAt).toLocaleString() : 'when the broadcast ends'}.`),
    role === 'guest' && backstage !== null ? backstageSwitch(broadcastId, backstage, onBackstage) : null,
  );
  if (copied) toast('Invite link copied to the clipboard.', 'success');
}

/**
 * Camera, microphone (with a level meter) and, where the browser can route audio, speakers. `media` is the
 * LocalMedia; `sinkId` the speakers in use; `onCamera()` after the camera changed; `onSpeakers(deviceId)`.
 */
export function settingsDialog({ media, sinkId, onCamera, onSpeakers, onShortcuts }) {
  const body = h('div.settings-body', 'Loading devices…');
  showDialog('Camera and microphone', body);
  media.devices().then((list) => {
    const meterBar = h('div.meter-bar');
    const meter = new LevelMeter();
    meter.attach(media.audio);
    const tick = () => {
      if (!body.isConnected) {
        meter.close();
        return;
      }
      meterBar.style.width = `${Math.round(meter.level() * 100)}%`;
      requestAnimationFrame(tick);
    };
    body.replaceChildren(
      h(
        'div.field',
        h('label', 'Camera'),
        deviceSelect(list.videoinput, media.camera?.getSettings().deviceId, 'Camera', (id) =>
          media.useCamera(id).then(() => onCamera()).catch((e) => toast(describeMediaError(e, 'camera'), 'error')),
        ),
      ),
      h(
        'div.field',
        h('label', 'Microphone'),
        deviceSelect(list.audioinput, media.audio?.getSettings().deviceId, 'Microphone', (id) =>
          media.useMicrophone(id).then((t) => meter.attach(t)).catch((e) => toast(describeMediaError(e, 'microphone'), 'error')),
        ),
        h('div.meter', meterBar),
      ),
    );
    if (list.audiooutput.length && typeof HTMLMediaElement.prototype.setSinkId === 'function') {
      body.append(h('div.field', h('label', 'Speakers'), deviceSelect(list.audiooutput, sinkId, 'Speakers', onSpeakers)));
    }
    if (onShortcuts) {
      body.append(h('div.form-row', h('button.ghost', { type: 'button', dataset: { action: 'show-shortcuts' }, onclick: onShortcuts }, 'Keyboard shortcuts (?)')));
    }
    requestAnimationFrame(tick);
  });
}

/** The keyboard shortcuts, as `shortcuts.js` maps them; a host's own ones only for hosts and co-hosts. */
export function shortcutsDialog({ moderator }) {
  const rows = SHORTCUTS.filter((s) => moderator || !s.moderator).map((s) =>
    h('tr', h('td.keys', s.keys.map((k) => (k === '…' ? h('span', ' … ') : h('kbd', k)))), h('td', s.label)),
  );
  showDialog(
    'Keyboard shortcuts',
    h('table.shortcuts', { dataset: { role: 'shortcuts' } }, h('tbody', rows)),
    h('p.muted', 'They do nothing while you type in a field.'),
  );
}
