// The host's brand kits, at the top of the overlays panel: the account's saved brands (`/api/brands`: name,
// brand colour, optional background colour, background picture and logo), a form to save a new one, and one
// applied to this broadcast at a time. Applying copies the brand into the scene (`scene.brand`: {id, name, color,
// background, backgroundImage, font}),
// so the program and everyone's stage take its colours from the scene; a brand with a logo shows it too.

import { api } from './api.js';
import { h, icon, labelFor, mount, toast } from './dom.js';
import { ICONS } from './icons.js';

/** The fonts Backyard ships, as a brand names them (`font`), with what the form calls them. */
export const FONTS = { sans: 'Sans (DejaVu Sans)', serif: 'Serif (DejaVu Serif)', mono: 'Monospace (DejaVu Sans Mono)' };

export class BrandSection {
  /** `onapply(brand, logoUrl)` applies a saved brand (`null`: no brand); `logoUrl` is the brand's logo or null. */
  constructor({ onapply }) {
    this.onapply = onapply;
    /** The account's brands, as `GET /api/brands` lists them. */
    this.brands = [];
    /** The scene's brand (a copy of one of them), or null. */
    this.applied = null;
    this.list = h('div.brand-list');
    this.name = h('input', { type: 'text', maxLength: 60, placeholder: 'e.g. Morning show', name: 'brandName', required: true });
    this.color = h('input', { type: 'color', value: '#2563eb', name: 'brandColor' });
    this.useBackground = h('input', { type: 'checkbox', name: 'brandUseBackground' });
    this.background = h('input', { type: 'color', value: '#14213d', name: 'brandBackground', 'aria-label': 'Background colour' });
    this.useBackground.onchange = () => {
      this.background.disabled = !this.useBackground.checked;
    };
    this.background.disabled = true;
    this.font = h(
      'select',
      { name: 'brandFont' },
      Object.entries(FONTS).map(([value, label]) => h('option', { value }, label)),
    );
    /** The new brand's picture behind the tiles: an `/api/uploads/<sha256>` URL once uploaded. */
    this.picture = null;
    this.pictureFile = h('input', { type: 'file', accept: 'image/png', hidden: true, name: 'brandPicture', 'aria-label': 'Background picture' });
    this.pictureFile.onchange = () => this.uploadPicture(this.pictureFile.files[0]);
    this.pictureState = h('span.field-hint', { dataset: { role: 'brand-picture' } }, 'None');
    this.form = h(
      'form.brand-form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          this.save();
        },
      },
      h('div.field', labelFor(this.name, 'New brand'), this.name),
      h(
        'div.brand-colours',
        h('div.field', labelFor(this.color, 'Brand colour'), this.color),
        h('div.field', h('div.check-row', this.useBackground, labelFor(this.useBackground, 'Background')), this.background),
      ),
      h('div.field', labelFor(this.font, 'Overlay font'), this.font),
      h(
        'div.field.brand-picture',
        h('span.field-label', 'Background picture'),
        h(
          'div.check-row',
          h('button.ghost', { type: 'button', dataset: { action: 'upload-brand-picture' }, onclick: () => this.pictureFile.click() }, 'Upload (PNG)…'),
          this.pictureState,
          this.pictureFile,
        ),
      ),
      h('button.secondary', { type: 'submit', dataset: { action: 'save-brand' } }, 'Save brand'),
    );
    this.el = h('section.panel-section.brand-section', h('h3', 'Brand'), this.list, this.form);
    this.paint();
  }

  async load() {
    try {
      this.brands = (await api.listBrands()).items ?? [];
    } catch (e) {
      toast(`Could not load your brands: ${e.message}`, 'error');
    }
    this.paint();
  }

  /** The scene's brand changed (ours or another host's edit). */
  set(brand) {
    this.applied = brand ?? null;
    this.paint();
  }

  /** Uploads the new brand's background picture (saved with the brand). */
  async uploadPicture(file) {
    if (!file) return;
    this.pictureState.textContent = 'Uploading…';
    try {
      this.picture = await api.uploadImage(file);
      this.pictureState.textContent = file.name;
    } catch (e) {
      this.picture = null;
      this.pictureState.textContent = 'None';
      this.font.value = 'sans';
      toast(`Could not upload the picture: ${e.message}`, 'error');
    }
    this.pictureFile.value = '';
  }

  async save() {
    const body = { name: this.name.value.trim(), color: this.color.value };
    if (this.useBackground.checked) body.background = this.background.value;
    if (this.picture) body.backgroundImage = this.picture;
    if (this.font.value !== 'sans') body.font = this.font.value;
    try {
      const brand = await api.createBrand(body);
      this.brands.push(brand);
      this.name.value = '';
      this.picture = null;
      this.pictureState.textContent = 'None';
      this.paint();
      toast(`Saved the brand “${brand.name}”.`, 'success');
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  async remove(brand) {
    if (!confirm(`Delete the brand “${brand.name}”? A broadcast that uses it keeps its colours.`)) return;
    try {
      await api.deleteBrand(brand.id);
      this.brands = this.brands.filter((b) => b.id !== brand.id);
      this.paint();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  apply(brand) {
    if (!brand) {
      this.onapply(null, null);
      return;
    }
    const copy = { id: brand.id, name: brand.name, color: brand.color };
    if (brand.background) copy.background = brand.background;
    if (brand.backgroundImage) copy.backgroundImage = brand.backgroundImage;
    if (brand.font) copy.font = brand.font;
    this.onapply(copy, brand.logoUrl ?? null);
  }

  paint() {
    const rows = this.brands.map((b) => {
      const on = this.applied?.id === b.id;
      return h(
        'div.brand-item',
        { dataset: { brandId: b.id, applied: String(on) } },
        h('span.brand-swatch', {
          style: { '--brand': b.color, '--brand-bg': b.background ?? '#000000', backgroundImage: b.backgroundImage ? `url("${encodeURI(b.backgroundImage)}")` : '' },
          'aria-hidden': 'true',
        }),
        h('span.brand-name', b.name),
        h(
          'button.secondary',
          { type: 'button', dataset: { action: 'apply-brand' }, 'aria-pressed': String(on), onclick: () => this.apply(on ? null : b) },
          on ? 'Applied' : 'Apply',
        ),
        h('button.icon-btn', { type: 'button', title: `Delete ${b.name}`, 'aria-label': `Delete ${b.name}`, onclick: () => this.remove(b) }, icon(ICONS.trash)),
      );
    });
    const hint = this.brands.length ? null : h('p.field-hint', 'Save a brand to reuse its colours in every show.');
    mount(this.list, [...rows, hint]);
  }
}
