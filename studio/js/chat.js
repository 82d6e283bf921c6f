// The chat panel: history from `joined`, live messages, and a composer. Hosts can put a comment on screen.

import { h, clock, hueOf, initials, icon } from './dom.js';
import { ICONS } from './icons.js';

const MAX_LENGTH = 500;

export class ChatPanel {
  /** `onFeature(message)`, for hosts, puts a message on stage; null hides the button. */
  constructor({ send, selfId, onFeature = null }) {
    this.send = send;
    this.onFeature = onFeature;
    this.selfId = selfId;
    this.ids = new Set();
    this.list = h('div.chat-list', { role: 'log', 'aria-live': 'polite' });
    this.emptyNote = h('div.chat-empty', 'No messages yet. This chat is for the people in the studio and backstage; viewers never see it.');
    this.input = h('input', { type: 'text', placeholder: 'Message the studio', maxLength: MAX_LENGTH, 'aria-label': 'Chat message' });
    const form = h(
      'form.chat-form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          const text = this.input.value.trim();
          if (!text) return;
          if (this.send(text)) this.input.value = '';
        },
      },
      this.input,
      h('button.icon-btn', { type: 'submit', title: 'Send', dataset: { action: 'send-chat' } }, icon(ICONS.send)),
    );
    this.el = h('div.panel.chat-panel', this.list, form);
    this.list.append(this.emptyNote);
  }

  /** Adds messages (history or live), skipping ones already shown. */
  add(messages) {
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    for (const m of messages) {
      if (!m || this.ids.has(m.id)) continue;
      this.ids.add(m.id);
      const mine = m.participantId === this.selfId;
      this.list.append(
        h(
          `div.chat-message${mine ? '.mine' : ''}`,
          { dataset: { id: m.id, participantId: m.participantId ?? '' } },
          h('div.chat-avatar', { style: { '--hue': hueOf(m.name) } }, initials(m.name)),
          h(
            'div.chat-body',
            h('div.chat-meta', h('span.chat-name', m.name), h('span.chat-time', clock(m.sentAt))),
            h('div.chat-text', m.text),
          ),
          this.onFeature
            ? h('button.chat-feature', { type: 'button', title: 'Show on stage', dataset: { action: 'feature-comment' }, onclick: () => this.onFeature(m) }, icon(ICONS.up))
            : null,
        ),
      );
    }
    this.emptyNote.hidden = this.ids.size > 0;
    if (nearBottom || messages.length > 1) this.list.scrollTop = this.list.scrollHeight;
  }
}
