// The stage: what goes on air, drawn from the program's own placements (`stage-layout`), so the host sees
// exactly the tiles the server's compositor draws. Nothing is laid out here: each tile is the server's
// rectangle scaled to the stage element (which keeps the program canvas's shape), its z-order and fit, with
// the participant's camera or screen video, a name label, and an avatar while the camera is off. Overlays
// (banner, lower third, logo, featured comment) and the slate are drawn by the browser from the scene.

import { h, initials, hueOf } from './dom.js';

export class StageView {
  constructor(root) {
    this.root = root;
    /** Tile elements by source (`<participantId>` or `<participantId>:screen`), reused between renders. */
    this.tiles = new Map();
    this.overlayLayer = h('div.stage-overlays');
    /** The ticker has a layer of its own, kept while its text stays, so its scrolling does not restart on every render. */
    this.tickerLayer = h('div.stage-overlays');
    this.emptyHint = h('div.stage-empty-hint', '');
    this.empty = h('div.stage-empty', h('div.stage-empty-title', 'The stage is empty'), this.emptyHint);
    this.slateTitle = h('div.slate-title');
    this.slateText = h('div.slate-text');
    this.slate = h('div.stage-slate', { hidden: true, dataset: { role: 'stage-slate' } }, h('div.slate-block', this.slateTitle, h('div.slate-rule'), this.slateText));
    root.append(this.empty, this.slate, this.tickerLayer, this.overlayLayer);
  }

  /**
   * `view` is `stageTiles(state)` from room-state.js; `streamOf(source)` the MediaStream to show for a tile
   * (or null); `overlays` the scene's overlays; `emptyHint` what to say while nobody is on stage; `clip` the scene's
   * playing clip, whose tile (source `clip`) plays the uploaded file itself, muted (the program carries its sound).
   */
  render({ view, streamOf, overlays = {}, brand = null, slate = null, emptyHint = '', clip = null }) {
    const { canvas, tiles } = view;
    // The brand's colours, as the program draws them: text overlays in its colour, its background behind tiles.
    if (brand?.color) this.root.style.setProperty('--brand', brand.color);
    else this.root.style.removeProperty('--brand');
    if (brand?.background) this.root.style.setProperty('--brand-bg', brand.background);
    else this.root.style.removeProperty('--brand-bg');
    this.root.classList.toggle('has-brand-bg', Boolean(brand?.background));
    // Its picture covers the stage behind the tiles, as it covers the canvas.
    this.root.style.backgroundImage = brand?.backgroundImage ? `url("${encodeURI(brand.backgroundImage)}")` : '';
    this.root.classList.toggle('has-brand-picture', Boolean(brand?.backgroundImage));
    // Its font on the overlays, as the program sets them.
    this.root.dataset.brandFont = brand?.font ?? 'sans';
    this.root.style.setProperty('--canvas-w', String(canvas.width));
    this.root.style.setProperty('--canvas-h', String(canvas.height));
    this.root.dataset.canvas = `${canvas.width}x${canvas.height}`;
    if (view.layout) this.root.dataset.layout = view.layout;
    else delete this.root.dataset.layout;
    const seen = new Set();
    for (const t of tiles) {
      seen.add(t.source);
      let tile = this.tiles.get(t.source);
      if (!tile) {
        tile = this.makeTile(t.source);
        this.tiles.set(t.source, tile);
        this.root.insertBefore(tile.el, this.slate);
      }
      if (t.source === 'clip') this.updateClipTile(tile, t, clip);
      else this.updateTile(tile, t, streamOf(t.source));
    }
    for (const [source, tile] of this.tiles) {
      if (!seen.has(source)) {
        tile.el.remove();
        this.tiles.delete(source);
      }
    }
    this.empty.hidden = tiles.length > 0 || Boolean(slate);
    this.emptyHint.textContent = emptyHint;
    this.renderOverlays(overlays);
    // The slate covers the tiles, under the other overlays, as on the program.
    this.slate.hidden = !slate;
    this.slate.dataset.kind = slate?.kind ?? '';
    this.slateTitle.textContent = slate?.title ?? '';
    this.slateText.textContent = slate?.text ?? '';
    // The host's picture covers the canvas behind the words, which sit on a dark panel over it.
    this.slate.classList.toggle('has-image', Boolean(slate?.image));
    this.slate.style.backgroundImage = slate?.image ? `url("${encodeURI(slate.image)}")` : '';
  }

  makeTile(source) {
    const video = h('video', { autoplay: true, playsInline: true, muted: true });
    const avatar = h('div.avatar');
    const name = h('div.stage-name');
    const el = h('div.stage-tile', { dataset: { source } }, video, avatar, name);
    return { el, video, avatar, name, stream: null };
  }

  updateTile(tile, t, stream) {
    Object.assign(tile.el.style, {
      left: `${t.x * 100}%`,
      top: `${t.y * 100}%`,
      width: `${t.w * 100}%`,
      height: `${t.h * 100}%`,
      // Above the empty-stage hint, below the overlay layer.
      zIndex: String(1 + t.layer),
    });
    const d = tile.el.dataset;
    d.participantId = t.participantId;
    d.fit = t.fit;
    d.z = String(t.z);
    d.self = t.self ? 'true' : 'false';
    if (tile.stream !== stream) {
      tile.stream = stream ?? null;
      tile.video.srcObject = tile.stream;
    }
    const showVideo = Boolean(stream) && t.videoEnabled;
    tile.video.hidden = !showVideo;
    tile.avatar.hidden = showVideo;
    tile.avatar.textContent = initials(t.name);
    tile.avatar.style.setProperty('--hue', hueOf(t.name));
    tile.el.classList.toggle('inset', t.inset);
    tile.el.classList.toggle('screen', t.screen);
    tile.el.classList.toggle('speaking', t.speaking);
    tile.name.textContent = t.label;
  }

  /** The clip's tile: the uploaded file, played from its start when it is a new clip. */
  updateClipTile(tile, t, clip) {
    this.updateTile(tile, { ...t, videoEnabled: Boolean(clip?.url) }, null);
    if (!clip?.url) return;
    tile.video.hidden = false;
    tile.avatar.hidden = true;
    if (tile.video.dataset.clip !== clip.url) {
      tile.video.dataset.clip = clip.url;
      tile.video.srcObject = null;
      tile.video.src = clip.url;
      tile.video.play().catch(() => {});
    }
  }

  renderOverlays({ banner, lowerThird, logo, comment, ticker, picture } = {}) {
    const text = ticker?.visible ? ticker.text : '';
    if (this.tickerLayer.dataset.text !== text) {
      this.tickerLayer.dataset.text = text;
      this.tickerLayer.replaceChildren(...(text ? [h('div.overlay-ticker', h('span', text))] : []));
    }
    const layer = this.overlayLayer;
    layer.replaceChildren();
    // Under every other overlay, over the tiles, covering the stage as the program covers its canvas.
    if (picture?.visible && picture.url) layer.append(h('img.overlay-picture', { src: picture.url, alt: '' }));
    if (logo?.visible && logo.url) layer.append(h('img.overlay-logo', { src: logo.url, alt: '' }));
    if (lowerThird?.visible && (lowerThird.name || lowerThird.title)) {
      layer.append(
        h('div.overlay-lower-third', h('div.lt-name', lowerThird.name ?? ''), lowerThird.title ? h('div.lt-title', lowerThird.title) : null),
      );
    }
    if (comment?.visible && comment.text) {
      layer.append(h('div.overlay-comment', h('div.oc-name', comment.name ?? ''), h('div.oc-text', comment.text)));
    }
    if (banner?.visible && banner.text) layer.append(h('div.overlay-banner', banner.text));
  }
}
