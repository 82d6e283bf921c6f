// The host's slates, at the top of the overlays panel: "Starting soon", "Be right back" and "Thanks for watching"
// cover the whole program (nobody on stage is seen or heard meanwhile), with a line of the host's own under the
// title. The choice is the scene's `slate` ({kind, text} or null), so every host's studio and the program follow
// it. While live with nobody on stage the program shows "Be right back" by itself; this section says so. A picture
// the host uploads (the scene's `slateImage`) fills the canvas behind every slate, the automatic one included.

import { api } from './api.js';
import { h, labelFor, toast } from './dom.js';
import { SLATES } from './room-state.js';


export class SlateSection {
  /** `onchange(slate)` with the scene's new slate (`null`: none); `onimage(url)` with its picture (`null`: none). */
  constructor({ onchange, onimage }) {
    this.onchange = onchange;
    this.onimage = onimage;
    this.slate = null;
    this.image = null;
    this.thumb = h('img', { alt: 'The picture behind the slate', hidden: true });
    this.file = h('input', { type: 'file', accept: 'image/png', hidden: true, name: 'slateImage', 'aria-label': 'Picture behind the slate' });
    this.file.onchange = () => this.upload(this.file.files[0]);
    this.choose = h('button.ghost', { type: 'button', dataset: { action: 'upload-slate-image' }, onclick: () => this.file.click() }, 'Upload picture (PNG)…');
    this.clear = h('button.ghost', { type: 'button', dataset: { action: 'remove-slate-image' }, onclick: () => this.onimage(null) }, 'Remove picture');
    this.text = h('input', { type: 'text', maxLength: 120, placeholder: 'e.g. Back at 3 pm with our next guest', name: 'slateText' });
    this.text.onchange = () => {
      if (this.slate) this.onchange({ ...this.slate, text: this.text.value.trim() });
    };
    this.buttons = Object.entries(SLATES).map(([kind, title]) =>
      h('button.secondary', { type: 'button', dataset: { slate: kind }, 'aria-pressed': 'false', onclick: () => this.pick(kind) }, title),
    );
    this.off = h('button.secondary', { type: 'button', dataset: { slate: 'off' }, onclick: () => this.onchange(null) }, 'Back to the stage');
    this.el = h(
      'section.panel-section.slate-section',
      h('h3', 'Slate'),
      h('p.field-hint', 'Covers the program; nobody on stage is seen or heard. Live with nobody on stage, viewers see “Be right back”.'),
      h('div.slate-buttons', this.buttons),
      h('div.field', labelFor(this.text, 'Line under the title'), this.text),
      h('div.slate-picture', this.thumb, this.choose, this.clear, this.file),
      this.off,
    );
    this.paint();
  }

  pick(kind) {
    this.onchange(this.slate?.kind === kind ? null : { kind, text: this.text.value.trim() });
  }

  async upload(file) {
    if (!file) return;
    try {
      this.onimage(await api.uploadImage(file));
    } catch (e) {
      toast(`Upload failed: ${e.message}`, 'error');
    } finally {
      this.file.value = '';
    }
  }

  /** The scene's slate changed (ours or another host's edit); `image` is its picture. */
  set(slate, image = this.image) {
    this.slate = slate ?? null;
    this.image = image ?? null;
    if (this.slate && document.activeElement !== this.text) this.text.value = this.slate.text;
    this.paint();
  }

  paint() {
    for (const b of this.buttons) {
      const on = this.slate?.kind === b.dataset.slate;
      b.setAttribute('aria-pressed', String(on));
      b.classList.toggle('active', on);
    }
    this.off.hidden = !this.slate;
    this.thumb.hidden = !this.image;
    if (this.image) this.thumb.src = this.image;
    this.clear.hidden = !this.image;
    this.choose.textContent = this.image ? 'Change picture…' : 'Upload picture (PNG)…';
  }
}
