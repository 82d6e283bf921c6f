// Tiny DOM helpers: the studio builds its UI from plain elements, no framework.

/**
 * Creates an element: h('button.primary', {onclick, disabled: true, dataset: {id}}, 'Go live', childEl).
 * Children may be strings, nodes, arrays or null (skipped). Text is always set as text, never as HTML.
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = dv;
    } else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'style' && typeof v === 'object') {
      for (const [sk, sv] of Object.entries(v)) {
        if (sk.startsWith('--')) el.style.setProperty(sk, sv);
        else el.style[sk] = sv;
      }
    }
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

let fieldIds = 0;

/** A <label> tied to `control` (which gets an id when it has none), so screen readers and clicks find it. */
export function labelFor(control, text) {
  if (!control.id) control.id = `field-${++fieldIds}`;
  return h('label', { for: control.id }, text);
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An inline SVG icon from icons.js's path data. */
export function icon(paths, cls = 'icon') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  for (const d of [].concat(paths)) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

/** Replaces all children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A short-lived message at the bottom of the screen. */
export function toast(text, kind = 'info') {
  let host = document.getElementById('toasts');
  if (!host) {
    host = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(host);
  }
  const t = h(`div.toast.${kind}`, text);
  host.append(t);
  setTimeout(() => t.classList.add('leaving'), 3500);
  setTimeout(() => t.remove(), 4000);
}

/** Initials for an avatar: "Ada Lovelace" -> "AL". */
export function initials(name = '') {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return '?';
  return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

/** A stable hue for a name, so each person's avatar keeps its colour. */
export function hueOf(text = '') {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

/** "14:05" in the viewer's locale. */
export function clock(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A button that copies `text` to the clipboard and says so (or asks to select and copy where it may not). */
export function copyButton(text, label = 'Copy') {
  return h(
    'button.secondary',
    {
      type: 'button',
      onclick: async (ev) => {
        try {
          await navigator.clipboard.writeText(text);
          ev.target.textContent = 'Copied';
        } catch {
          ev.target.textContent = 'Select and copy';
        }
      },
    },
    label,
  );
}
