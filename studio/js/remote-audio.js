// What the studio plays out loud: one hidden <audio> per remote participant (our own voice is never played
// back), routed to the speakers picked in the settings.

import { h, toast } from './dom.js';

export class RemoteAudio {
  constructor() {
    this.el = h('div.remote-audio', { hidden: true, dataset: { role: 'remote-audio' } });
    /** The chosen speakers (`setSinkId`), or undefined for the default. */
    this.sinkId = undefined;
  }

  /** `streams`: participant id → the MediaStream carrying their microphone. */
  render(streams) {
    const want = new Map(streams);
    for (const el of [...this.el.children]) {
      const s = want.get(el.dataset.participantId);
      if (!s) el.remove();
      else {
        if (el.srcObject !== s) el.srcObject = s;
        want.delete(el.dataset.participantId);
      }
    }
    for (const [id, s] of want) {
      const el = h('audio', { autoplay: true, dataset: { participantId: id } });
      el.srcObject = s;
      if (this.sinkId) el.setSinkId?.(this.sinkId).catch(() => {});
      this.el.append(el);
      el.play().catch(() => toast('Click anywhere to hear the other participants.'));
    }
  }

  setSink(deviceId) {
    this.sinkId = deviceId;
    for (const a of this.el.children) a.setSinkId(deviceId).catch(() => {});
  }
}
