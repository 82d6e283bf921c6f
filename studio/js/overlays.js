// The host's overlay controls: banner, lower third, ticker, logo, the chat comment featured on screen, and the overlays
// of installed overlay plugins (one card each, a text field per prop the overlay reads). Edits become the
// scene's `overlays` object:
//   {banner: {text, visible}, lowerThird: {name, title, visible}, logo: {url, visible}, picture: {url, visible},
//    comment: {messageId, name, text, visible}, ticker: {text, visible}, plugins: {'<plugin>/<overlay>': {visible, props: {prop: text}}}}

import { api } from './api.js';
import { h, toast } from './dom.js';
import { emptyOverlays, normaliseOverlays } from './room-state.js';

export class OverlaysPanel {
  /** `onchange(overlays)` is called with the whole object after each edit. */
  constructor({ onchange }) {
    this.onchange = onchange;
    this.overlays = emptyOverlays();

    this.bannerText = h('textarea', { rows: 2, maxLength: 140, placeholder: 'e.g. Live Q&A — ask in the chat!', name: 'bannerText' });
    this.bannerShow = h('button.secondary', { type: 'button', dataset: { action: 'toggle-banner' } });
    this.ltName = h('input', { type: 'text', maxLength: 60, placeholder: 'Name', name: 'lowerThirdName' });
    this.ltTitle = h('input', { type: 'text', maxLength: 80, placeholder: 'Title', name: 'lowerThirdTitle' });
    this.ltShow = h('button.secondary', { type: 'button', dataset: { action: 'toggle-lower-third' } });
    this.tickerText = h('textarea', { rows: 2, maxLength: 500, placeholder: 'e.g. Next up: Q&A with our guests · Follow us for more', name: 'tickerText', 'aria-label': 'Ticker text' });
    this.tickerShow = h('button.secondary', { type: 'button', dataset: { action: 'toggle-ticker' } });
    this.logoImg = h('img.logo-thumb', { alt: 'Logo' });
    this.logoInput = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp,image/gif', hidden: true, name: 'logo' });
    this.logoShow = h('button.secondary', { type: 'button', dataset: { action: 'toggle-logo' } });
    this.pictureImg = h('img.logo-thumb.picture-thumb', { alt: 'Full-canvas picture' });
    this.pictureInput = h('input', { type: 'file', accept: 'image/png', hidden: true, name: 'picture', 'aria-label': 'Full-canvas picture (PNG)' });
    this.pictureShow = h('button.secondary', { type: 'button', dataset: { action: 'toggle-picture' } });
    this.commentText = h('div.comment-preview');
    this.commentHide = h('button.secondary', { type: 'button', dataset: { action: 'hide-comment' }, onclick: () => this.commit({ comment: { ...this.overlays.comment, visible: false } }) }, 'Hide comment');

    this.bannerShow.onclick = () => this.commit({ banner: { text: this.bannerText.value.trim(), visible: !this.overlays.banner.visible } });
    this.bannerText.onchange = () => this.commit({ banner: { ...this.overlays.banner, text: this.bannerText.value.trim() } });
    this.ltShow.onclick = () =>
      this.commit({ lowerThird: { name: this.ltName.value.trim(), title: this.ltTitle.value.trim(), visible: !this.overlays.lowerThird.visible } });
    for (const i of [this.ltName, this.ltTitle]) {
      i.onchange = () => this.commit({ lowerThird: { ...this.overlays.lowerThird, name: this.ltName.value.trim(), title: this.ltTitle.value.trim() } });
    }
    this.tickerShow.onclick = () => this.commit({ ticker: { ...this.overlays.ticker, text: this.tickerText.value.trim(), visible: !this.overlays.ticker.visible } });
    this.tickerText.onchange = () => this.commit({ ticker: { ...this.overlays.ticker, text: this.tickerText.value.trim() } });
    this.tickerText.oninput = () => this.paint();
    this.logoShow.onclick = () => this.commit({ logo: { ...this.overlays.logo, visible: !this.overlays.logo.visible } });
    this.logoInput.onchange = () => this.upload(this.logoInput.files[0]);
    this.pictureShow.onclick = () => this.commit({ picture: { ...this.overlays.picture, visible: !this.overlays.picture.visible } });
    this.pictureInput.onchange = () => this.upload(this.pictureInput.files[0], 'picture');

    this.el = h(
      'div.panel.overlays-panel',
      h('section.panel-section', h('h3', 'Banner'), this.bannerText, h('div.form-row', this.bannerShow)),
      h('section.panel-section', h('h3', 'Lower third'), this.ltName, this.ltTitle, h('div.form-row', this.ltShow)),
      h('section.panel-section', h('h3', 'Ticker'), this.tickerText, h('div.form-row', this.tickerShow)),
      h(
        'section.panel-section',
        h('h3', 'Logo'),
        h('div.logo-row', h('div.logo-box', this.logoImg), h('button.ghost', { type: 'button', onclick: () => this.logoInput.click() }, 'Upload image…'), this.logoInput),
        h('div.form-row', this.logoShow),
      ),
      h(
        'section.panel-section',
        h('h3', 'Full-canvas picture'),
        h('p.field-hint', 'A PNG over the whole picture, under the other overlays: its transparent parts show the people (a frame, a border, a sponsor strip).'),
        h(
          'div.logo-row',
          h('div.logo-box.picture-box', this.pictureImg),
          h('button.ghost', { type: 'button', dataset: { action: 'upload-picture' }, onclick: () => this.pictureInput.click() }, 'Upload PNG…'),
          this.pictureInput,
        ),
        h('div.form-row', this.pictureShow),
      ),
      h('section.panel-section', h('h3', 'Comment on screen'), this.commentText, h('div.form-row', this.commentHide)),
    );
    /** One card per plugin overlay: `{choice, inputs: {prop: <input>}, toggle}` by overlay id. */
    this.pluginCards = new Map();
    this.pluginSection = h('section.panel-section.plugin-overlays', { hidden: true });
    this.el.append(this.pluginSection);
    this.paint();
  }

  /** The plugins' overlays the server offers (`joined.overlays`): a card each, none when there are none. */
  setChoices(choices) {
    this.pluginCards.clear();
    this.pluginSection.replaceChildren(h('h3', 'From plugins'));
    for (const choice of choices) {
      const inputs = {};
      for (const prop of choice.props) {
        inputs[prop] = h('input', { type: 'text', maxLength: 500, placeholder: prop, name: `prop-${prop}`, 'aria-label': `${choice.name}: ${prop}` });
      }
      const props = () => Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()]));
      const current = () => this.overlays.plugins[choice.id] ?? { visible: false, props: {} };
      const commit = (o) => this.commit({ plugins: { ...this.overlays.plugins, [choice.id]: o } });
      const toggle = h('button.secondary', { type: 'button', dataset: { action: 'toggle-plugin-overlay' } });
      toggle.onclick = () => commit({ visible: !current().visible, props: props() });
      for (const i of Object.values(inputs)) i.onchange = () => commit({ ...current(), props: props() });
      const card = h(
        'div.plugin-overlay',
        { dataset: { overlay: choice.id } },
        h('div.plugin-overlay-name', choice.name, h('span.muted', ` · ${choice.plugin}`)),
        choice.description ? h('div.muted.plugin-overlay-description', choice.description) : null,
        ...Object.values(inputs),
        h('div.form-row', toggle),
      );
      this.pluginCards.set(choice.id, { choice, inputs, toggle });
      this.pluginSection.append(card);
    }
    this.pluginSection.hidden = choices.length === 0;
    this.set(this.overlays);
  }

  /** Uploads an image for the logo (or the full-canvas `picture`) and shows it. */
  async upload(file, key = 'logo') {
    if (!file) return;
    try {
      this.commit({ [key]: { url: await api.uploadImage(file), visible: true } });
    } catch (e) {
      toast(`Upload failed: ${e.message}`, 'error');
    } finally {
      this.logoInput.value = '';
      this.pictureInput.value = '';
    }
  }

  commit(patch) {
    this.overlays = { ...this.overlays, ...patch };
    this.paint();
    this.onchange(this.overlays);
  }

  /** Shows overlays that changed elsewhere (another host, or the server's scene). */
  set(overlays) {
    this.overlays = normaliseOverlays(overlays);
    if (document.activeElement !== this.bannerText) this.bannerText.value = this.overlays.banner.text;
    if (document.activeElement !== this.ltName) this.ltName.value = this.overlays.lowerThird.name;
    if (document.activeElement !== this.ltTitle) this.ltTitle.value = this.overlays.lowerThird.title;
    if (document.activeElement !== this.tickerText) this.tickerText.value = this.overlays.ticker.text;
    for (const [id, card] of this.pluginCards) {
      const props = this.overlays.plugins[id]?.props ?? {};
      for (const [prop, input] of Object.entries(card.inputs)) if (document.activeElement !== input) input.value = props[prop] ?? '';
    }
    this.paint();
  }

  paint() {
    const { banner, lowerThird, logo, comment } = this.overlays;
    this.commentText.textContent = comment.visible ? `${comment.name}: ${comment.text}` : 'Pick a chat message with “Show on stage” to feature it.';
    this.commentText.classList.toggle('muted', !comment.visible);
    this.commentHide.disabled = !comment.visible;
    this.bannerShow.textContent = banner.visible ? 'Hide banner' : 'Show banner';
    this.bannerShow.classList.toggle('active', banner.visible);
    this.ltShow.textContent = lowerThird.visible ? 'Hide lower third' : 'Show lower third';
    this.ltShow.classList.toggle('active', lowerThird.visible);
    this.tickerShow.textContent = this.overlays.ticker.visible ? 'Hide ticker' : 'Show ticker';
    this.tickerShow.classList.toggle('active', this.overlays.ticker.visible);
    this.tickerShow.disabled = !this.overlays.ticker.visible && !this.tickerText.value.trim() && !this.overlays.ticker.text;
    this.logoShow.textContent = logo.visible ? 'Hide logo' : 'Show logo';
    this.logoShow.classList.toggle('active', logo.visible);
    this.logoShow.disabled = !logo.url;
    this.logoImg.hidden = !logo.url;
    if (logo.url) this.logoImg.src = logo.url;
    const { picture } = this.overlays;
    this.pictureShow.textContent = picture.visible ? 'Hide picture' : 'Show picture';
    this.pictureShow.classList.toggle('active', picture.visible);
    this.pictureShow.disabled = !picture.url;
    this.pictureImg.hidden = !picture.url;
    if (picture.url) this.pictureImg.src = picture.url;
    for (const [id, card] of this.pluginCards) {
      const on = this.overlays.plugins[id]?.visible === true;
      card.toggle.textContent = on ? `Hide ${card.choice.name}` : `Show ${card.choice.name}`;
      card.toggle.classList.toggle('active', on);
    }
  }
}
