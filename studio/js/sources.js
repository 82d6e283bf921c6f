// The host's "Sources" panel: encoders (OBS, a hardware encoder, ffmpeg, a WHIP page or app) that publish to
// this server. It shows the RTMP and WHIP URLs and each ingest key (masked; "Copy key" fetches it whole),
// whether an encoder is sending with it (`ingest-status`), and lets the owner create and revoke keys. A relay
// key's RTMP stream goes to the broadcast's destinations as it is (the broadcast is live while it sends); a
// source key's WHIP publisher joins the studio as a participant the host can put on stage.

import { api } from './api.js';
import { copyButton, h, icon, labelFor, mount, toast } from './dom.js';
import { ICONS } from './icons.js';

const STATE_LABEL = { idle: 'Waiting for the encoder', live: 'Receiving', error: 'Stopped' };

/** The line under a key's name, from its status. */
export function statusText(status) {
  if (!status || status.state === 'idle') return STATE_LABEL.idle;
  if (status.state === 'live') return status.stream ? `Receiving ${status.stream}` : 'Encoder connected, waiting for its stream…';
  return status.message ? `Stopped: ${status.message}` : STATE_LABEL.error;
}

export class SourcesPanel {
  /** `canManage`: only the broadcast's owner may create, copy or revoke keys. */
  /** `onLive(key)`: the key an encoder is on air with (its `status.stream` says what arrives), or null. */
  constructor({ broadcastId, canManage, onLive = () => {} }) {
    this.broadcastId = broadcastId;
    this.canManage = canManage;
    this.onLive = onLive;
    this.keys = new Map();
    this.url = h('div.ingest-urls');
    this.list = h('div.dest-list', { dataset: { role: 'ingest-keys' } });
    this.label = h('input', { type: 'text', name: 'label', maxLength: 60, placeholder: 'OBS on the desk', required: true });
    this.mode = h(
      'select',
      { name: 'mode' },
      h('option', { value: 'relay' }, 'Relay: RTMP straight to the destinations'),
      h('option', { value: 'source' }, 'Source: a participant in the studio (RTMP or WHIP)'),
    );
    this.form = h(
      'form.dest-form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          this.create();
        },
      },
      labelFor(this.label, 'Encoder name'),
      this.label,
      labelFor(this.mode, 'Use'),
      this.mode,
      h('button.primary.full', { type: 'submit', dataset: { action: 'create-ingest-key' } }, icon(ICONS.plus), 'Create stream key'),
    );
    this.form.hidden = !canManage;
    this.el = h(
      'div.panel.sources-panel',
      h(
        'section.panel-section',
        h('h3', 'Sources'),
        h(
          'p.field-hint',
          'Stream from OBS, a hardware encoder or ffmpeg. A relay key’s RTMP stream goes to this broadcast’s destinations ' +
            'as it is, with no re-encode, and is recorded: the broadcast is live while the encoder sends. A source key’s ' +
            'encoder appears in the studio as a participant you can put on stage, over RTMP or WHIP. OBS: Settings → ' +
            'Stream → Service “Custom” (RTMP: the server and key below) or “WHIP” (the WHIP URL, the key as its Bearer token).',
        ),
        h('h4', 'Server'),
        this.url,
        h('h4', 'Stream keys'),
        this.list,
        this.form,
      ),
    );
  }

  async load() {
    try {
      const json = await api.listIngestKeys(this.broadcastId);
      this.rtmpUrl = json.rtmpUrl ?? null;
      this.whipUrl = json.whipUrl ?? null;
      this.keys = new Map((json.items ?? []).map((k) => [k.id, k]));
      this.render();
    } catch (e) {
      mount(this.list, h('div.form-error', `Could not load stream keys: ${e.message}`));
    }
  }

  async create() {
    const label = this.label.value.trim();
    if (!label) return;
    try {
      await api.createIngestKey(this.broadcastId, { label, mode: this.mode.value });
      this.label.value = '';
      // The list shows keys masked, as the server lists them; "Copy key" fetches one whole.
      await this.load();
      toast('Stream key created: copy it into your encoder.', 'info');
    } catch (e) {
      toast(`Could not create the key: ${e.message}`, 'error');
    }
  }

  async copyKey(key, button) {
    try {
      const { key: whole } = await api.revealIngestKey(this.broadcastId, key.id);
      await navigator.clipboard.writeText(whole);
      button.textContent = 'Copied';
    } catch (e) {
      toast(`Could not copy the key: ${e.message}`, 'error');
    }
  }

  async revoke(key) {
    if (!confirm(`Revoke “${key.label}”? An encoder sending with it is disconnected, and the key stops working.`)) return;
    try {
      await api.deleteIngestKey(this.broadcastId, key.id);
      this.keys.delete(key.id);
      this.render();
    } catch (e) {
      toast(`Could not revoke the key: ${e.message}`, 'error');
    }
  }

  /** An `ingest-status` event. */
  setStatus({ ingestKeyId, ...status }) {
    const key = this.keys.get(ingestKeyId);
    if (!key) return;
    key.status = status;
    this.render();
  }

  render() {
    // Only a relay takes the show over; a WHIP source is a participant like any other.
    this.onLive([...this.keys.values()].find((k) => k.mode === 'relay' && k.status?.state === 'live' && k.status.stream) ?? null);
    const urlRow = (url, label, role) => {
      const input = h('input', { type: 'text', readOnly: true, value: url, 'aria-label': label, dataset: { role }, onfocus: (e) => e.target.select() });
      return h('div.copy-row', input, copyButton(url));
    };
    mount(this.url, [
      h('div.field-hint', 'RTMP'),
      this.rtmpUrl
        ? urlRow(this.rtmpUrl, 'RTMP server URL', 'ingest-url')
        : h('p.field-hint', 'The RTMP ingest is off on this server (ingest.rtmp_bind in its configuration).'),
      h('div.field-hint', 'WHIP (source keys only)'),
      this.whipUrl ? urlRow(this.whipUrl, 'WHIP endpoint URL', 'whip-url') : null,
    ]);
    if (!this.keys.size) {
      mount(this.list, h('div.dest-empty', this.canManage ? 'No stream keys yet: create one for your encoder.' : 'No stream keys yet.'));
      return;
    }
    mount(this.list, [...this.keys.values()].map((k) => this.renderKey(k)));
  }

  renderKey(key) {
    const state = key.status?.state ?? 'idle';
    const copy = h('button.secondary', { type: 'button', dataset: { action: 'copy-ingest-key' }, onclick: (e) => this.copyKey(key, e.currentTarget) }, 'Copy key');
    const dot = { live: 'live', error: 'failed', idle: 'idle' }[state] ?? 'idle';
    return h(
      'div.dest-item.ingest-item',
      { dataset: { ingestKeyId: key.id, status: state } },
      h(
        'div.ingest-head',
        h('div.dest-platform', { title: key.mode === 'source' ? 'A participant in the studio' : 'A relay to the destinations' }, key.mode === 'source' ? 'Studio' : 'Relay'),
        h(
          'div.dest-info',
          h('div.dest-name', key.label),
          h('div.dest-status', h(`span.status-dot.${dot}`), h('span.dest-status-text', statusText(key.status))),
          h('div.dest-stats', h('code', key.key)),
        ),
      ),
      this.canManage
        ? h(
            'div.dest-actions',
            copy,
            h('button.secondary', { type: 'button', title: 'Revoke', 'aria-label': `Revoke ${key.label}`, onclick: () => this.revoke(key) }, icon(ICONS.trash), 'Revoke'),
          )
        : null,
    );
  }
}
