// The Broadcast panel's "Viewers" section: who may watch the show on this server's watch page (the broadcast's
// `settings.watch`: off, unlisted, public), the page's link, and the state of the stream it plays while live.

import { api } from './api.js';
import { copyButton, h, labelFor, toast } from './dom.js';

export const WATCH_CHOICES = [
  ['off', 'Off: no watch page'],
  ['unlisted', 'Unlisted: anyone with the link'],
  ['public', 'Public: listed on this server'],
];

/** What the section says about the viewers' stream, from its output status (kind `hls`) while on air. */
export function streamText(watch, status) {
  if (watch === 'off') return 'Viewers can watch here too: choose who may, before you go live.';
  if (!status) return 'The watch page plays the show once you go live.';
  if (status.state === 'live') return 'Viewers are watching the live stream (a few seconds behind the studio).';
  if (status.state === 'failed') return `The viewers' stream stopped: ${status.reason ?? 'unknown error'}`;
  if (status.state === 'stopped') return 'The show has ended.';
  return 'Starting the viewers’ stream…';
}

export class ViewersSection {
  /** `canChange`: only the broadcast's owner may open or close it to viewers. */
  constructor({ broadcastId, canChange }) {
    this.broadcastId = broadcastId;
    this.watch = 'off';
    this.status = null;
    this.select = h(
      'select',
      { name: 'watch', disabled: !canChange, dataset: { role: 'watch-visibility' }, onchange: () => this.change(this.select.value) },
      WATCH_CHOICES.map(([v, label]) => h('option', { value: v }, label)),
    );
    const url = `${location.origin}/watch/${broadcastId}`;
    this.link = h('input', { type: 'text', readOnly: true, value: url, 'aria-label': 'Watch page link', dataset: { role: 'watch-link' }, onfocus: (e) => e.target.select() });
    this.linkRow = h(
      'div.copy-row',
      this.link,
      copyButton(url),
      h('a.button.secondary', { href: url, target: '_blank', rel: 'noopener' }, 'Open'),
    );
    this.state = h('p.program-state', { dataset: { role: 'watch-status' } });
    this.el = h('section.panel-section', h('h3', 'Viewers'), labelFor(this.select, 'Watch page'), this.select, this.linkRow, this.state);
    this.render();
  }

  async load() {
    try {
      const b = await api.getBroadcast(this.broadcastId);
      this.watch = b.settings?.watch ?? 'off';
      this.render();
    } catch {
      // The section keeps its default (off); the server is the judge when it changes.
    }
  }

  async change(watch) {
    const before = this.watch;
    this.watch = watch;
    this.render();
    try {
      const b = await api.updateSettings(this.broadcastId, { watch });
      // Closing takes effect at once (the stream's playlist is refused); the stream itself starts with a go-live.
      if (b.status === 'live' && before === 'off' && watch !== 'off') {
        toast('Viewers can watch from the next time you go live.', 'info');
      }
    } catch (e) {
      this.watch = before;
      this.render();
      toast(`Could not change who may watch: ${e.message}`, 'error');
    }
  }

  /** The viewers' stream's output status while on air (room-state.js's `outputs.hls`). */
  setStatus(status) {
    this.status = status;
    this.render();
  }

  render() {
    this.select.value = this.watch;
    this.linkRow.hidden = this.watch === 'off';
    this.state.textContent = streamText(this.watch, this.status);
    this.state.dataset.status = this.status?.state ?? 'idle';
  }
}
