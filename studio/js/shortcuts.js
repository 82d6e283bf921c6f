// The studio's keyboard shortcuts: which key asks for what (a pure function, tested without a page) and the help
// dialog that lists them. Keys are ignored while typing in a field and with Ctrl, Alt or Meta held, so the
// browser's own shortcuts and text entry are never taken.

/** What the help dialog lists; `moderator` ones only work for hosts and co-hosts. */
export const SHORTCUTS = [
  { keys: ['M'], label: 'Mute or unmute your microphone' },
  { keys: ['V'], label: 'Turn your camera off or on' },
  { keys: ['1', '…', '9'], label: 'Pick a layout, in the toolbar’s order', moderator: true },
  { keys: ['Shift', '1', '…', '9'], label: 'Put the n-th person of the strip on stage, or take them off', moderator: true },
  { keys: ['B'], label: 'Show or hide the banner', moderator: true },
  { keys: ['T'], label: 'Show or hide the ticker', moderator: true },
  { keys: ['?'], label: 'Show these shortcuts' },
];

const TYPING = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

/**
 * The action a `keydown` asks for, or null: `{action: 'toggle-mic' | 'toggle-camera' | 'toggle-banner' |
 * 'toggle-ticker' | 'help'}`, or `{action: 'layout' | 'stage', index}` (0-based) for hosts and co-hosts.
 */
export function shortcutFor(e, { moderator = false } = {}) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return null;
  const t = e.target;
  if (t && (t.isContentEditable || TYPING.has(t.tagName))) return null;
  if (e.key === '?') return { action: 'help' };
  const digit = /^Digit([1-9])$/.exec(e.code ?? '');
  if (digit) return moderator ? { action: e.shiftKey ? 'stage' : 'layout', index: Number(digit[1]) - 1 } : null;
  if (e.shiftKey) return null;
  switch ((e.key ?? '').toLowerCase()) {
    case 'm':
      return { action: 'toggle-mic' };
    case 'v':
      return { action: 'toggle-camera' };
    case 'b':
      return moderator ? { action: 'toggle-banner' } : null;
    case 't':
      return moderator ? { action: 'toggle-ticker' } : null;
    default:
      return null;
  }
}
