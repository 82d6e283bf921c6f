// The stage canvas: what the scene will look like on air, drawn in the browser from the same scene the server's
// compositor renders (stage members, layout, overlays). Placements are fractions of a 16:9 canvas.

import { h, initials, hueOf } from './dom.js';

/** Layouts the studio offers, in toolbar order; `id` is the scene's `layout` value. */
export const LAYOUTS = [
  { id: 'solo', label: 'Solo', icon: 'layoutSolo' },
  { id: 'grid', label: 'Grid', icon: 'layoutGrid' },
  { id: 'spotlight', label: 'Spotlight', icon: 'layoutSpotlight' },
  { id: 'sidebar', label: 'Sidebar', icon: 'layoutSidebar' },
  { id: 'pip', label: 'Picture-in-picture', icon: 'layoutPip' },
  { id: 'screen-share', label: 'Screen share', icon: 'layoutScreen' },
];

const GAP = 0.012;

// Coordinates are fractions of a 16:9 canvas, so a tile with w === h is itself 16:9: every camera tile keeps the
// camera's shape and nothing is cropped more than the layout needs.

/** Even grid of 16:9 tiles, as large as the box allows, centred; the last row centred too. */
function grid(ids, box = { x: 0, y: 0, w: 1, h: 1 }) {
  const n = ids.length;
  if (!n) return [];
  let best = { cols: 1, rows: n, size: 0 };
  for (let cols = n; cols >= 1; cols--) {
    const rows = Math.ceil(n / cols);
    const size = Math.min((box.w - GAP * (cols + 1)) / cols, (box.h - GAP * (rows + 1)) / rows);
    if (size > best.size + 1e-9) best = { cols, rows, size };
  }
  const { cols, rows, size } = best;
  const y0 = box.y + (box.h - (rows * size + (rows - 1) * GAP)) / 2;
  return ids.map((id, i) => {
    const row = Math.floor(i / cols);
    const inRow = row === rows - 1 ? n - row * cols : cols;
    const col = i - row * cols;
    const x0 = box.x + (box.w - (inRow * size + (inRow - 1) * GAP)) / 2;
    return { id, x: x0 + col * (size + GAP), y: y0 + row * (size + GAP), w: size, h: size, z: 1 };
  });
}

/** A centred row (or column) of equal 16:9 tiles no larger than `max`. */
function line(ids, box, vertical, max) {
  const n = ids.length;
  if (!n) return [];
  const room = vertical ? box.h : box.w;
  const size = Math.min(max, (room - GAP * (n + 1)) / n);
  const start = (room - (n * size + (n - 1) * GAP)) / 2;
  return ids.map((id, i) =>
    vertical
      ? { id, x: box.x, y: box.y + start + i * (size + GAP), w: size, h: size, z: 1 }
      : { id, x: box.x + start + i * (size + GAP), y: box.y, w: size, h: size, z: 1 },
  );
}

const FULL = (id) => ({ id, x: 0, y: 0, w: 1, h: 1, z: 1 });

/**
 * Where each visible item goes. `items` are {id, screen?: bool} in stage order; a screen item's id is
 * `<participantId>:screen`. Returns [{id, x, y, w, h, z}] with coordinates as fractions of the canvas.
 */
export function placements(layout, items) {
  const people = items.filter((i) => !i.screen).map((i) => i.id);
  const screens = items.filter((i) => i.screen).map((i) => i.id);
  const all = [...screens, ...people];
  if (!all.length) return [];
  switch (layout) {
    case 'solo':
      return [FULL(all[0])];
    case 'pip': {
      const [main, inset] = all;
      const out = [FULL(main)];
      if (inset) out.push({ id: inset, x: 1 - 0.26 - 0.025, y: 1 - 0.26 - 0.04, w: 0.26, h: 0.26, z: 2 });
      return out;
    }
    case 'spotlight': {
      const [main, ...rest] = all;
      if (!rest.length) return [FULL(main)];
      const mainH = 0.74;
      const out = [{ id: main, x: (1 - mainH) / 2, y: GAP, w: mainH, h: mainH, z: 1 }];
      const rowY = mainH + 2 * GAP;
      return out.concat(line(rest, { x: 0, y: rowY, w: 1, h: 1 - rowY - GAP }, false, 1 - rowY - GAP));
    }
    case 'sidebar':
    case 'screen-share': {
      const main = layout === 'screen-share' && screens.length ? screens[0] : all[0];
      const rest = all.filter((id) => id !== main).slice(0, 6);
      if (!rest.length) return [FULL(main)];
      const side = Math.min(0.23, (1 - GAP * (rest.length + 1)) / rest.length);
      const mainW = 1 - side - 3 * GAP;
      return [
        { id: main, x: GAP, y: (1 - mainW) / 2, w: mainW, h: mainW, z: 1 },
        ...line(rest, { x: 1 - side - GAP, y: 0, w: side, h: 1 }, true, side),
      ];
    }
    default:
      return grid(all);
  }
}

/**
 * Renders the stage into `root`, reusing tile elements between renders so playing videos don't restart.
 * `source(id)` returns {name, stream, mirrored, videoEnabled, speaking, screen} for an item id.
 */
export class StageView {
  constructor(root) {
    this.root = root;
    this.tiles = new Map();
    this.overlayLayer = h('div.stage-overlays');
    this.empty = h('div.stage-empty', h('div.stage-empty-title', 'The stage is empty'), h('div.stage-empty-hint', ''));
    root.append(this.empty, this.overlayLayer);
  }

  render({ layout, items, overlays = {}, source, emptyHint }) {
    const places = placements(layout, items);
    const seen = new Set();
    for (const p of places) {
      seen.add(p.id);
      const info = source(p.id);
      if (!info) continue;
      let tile = this.tiles.get(p.id);
      if (!tile) {
        tile = this.makeTile(p.id);
        this.tiles.set(p.id, tile);
        this.root.insertBefore(tile.el, this.overlayLayer);
      }
      this.updateTile(tile, info, p);
    }
    for (const [id, tile] of this.tiles) {
      if (!seen.has(id)) {
        tile.el.remove();
        this.tiles.delete(id);
      }
    }
    this.empty.hidden = places.length > 0;
    this.empty.querySelector('.stage-empty-hint').textContent = emptyHint ?? '';
    this.renderOverlays(overlays);
  }

  makeTile(id) {
    const video = h('video', { autoplay: true, playsInline: true, muted: true });
    const avatar = h('div.avatar');
    const name = h('div.stage-name');
    const el = h('div.stage-tile', { dataset: { id } }, video, avatar, name);
    return { el, video, avatar, name, stream: null };
  }

  updateTile(tile, info, p) {
    Object.assign(tile.el.style, {
      left: `${p.x * 100}%`,
      top: `${p.y * 100}%`,
      width: `${p.w * 100}%`,
      height: `${p.h * 100}%`,
      zIndex: String(p.z),
    });
    if (tile.stream !== info.stream) {
      tile.stream = info.stream;
      tile.video.srcObject = info.stream ?? null;
    }
    const showVideo = Boolean(info.stream) && info.videoEnabled !== false;
    tile.video.hidden = !showVideo;
    tile.avatar.hidden = showVideo;
    tile.avatar.textContent = initials(info.name);
    tile.avatar.style.setProperty('--hue', hueOf(info.name));
    tile.el.classList.toggle('inset', p.z > 1);
    tile.el.classList.toggle('mirrored', Boolean(info.mirrored));
    tile.el.classList.toggle('screen', Boolean(info.screen));
    tile.el.classList.toggle('speaking', Boolean(info.speaking));
    tile.name.textContent = info.screen ? `${info.name} · screen` : info.name;
  }

  renderOverlays({ banner, lowerThird, logo, comment } = {}) {
    const layer = this.overlayLayer;
    layer.replaceChildren();
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
