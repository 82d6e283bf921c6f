// SVG path data (24×24, stroke-drawn) for the studio's icons.
export const ICONS = {
  mic: ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M19 11a7 7 0 0 1-14 0', 'M12 18v3'],
  micOff: ['M9 9v3a3 3 0 0 0 5.1 2.1', 'M15 9.3V6a3 3 0 0 0-5.7-1.3', 'M19 11a7 7 0 0 1-1.2 3.9', 'M5 11a7 7 0 0 0 10.8 5.9', 'M12 18v3', 'M3 3l18 18'],
  cam: ['M15 10l5-3v10l-5-3z', 'M3 7h12v10H3z'],
  camOff: ['M15 10l5-3v10l-5-3', 'M10.7 7H15v4.3', 'M15 17H3V7h2', 'M3 3l18 18'],
  screen: ['M3 4h18v12H3z', 'M8 20h8', 'M12 16v4'],
  leave: ['M15 12H4', 'M8 8l-4 4 4 4', 'M13 4h6v16h-6'],
  invite: ['M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2', 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8', 'M19 8v6', 'M22 11h-6'],
  settings: ['M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z'],
  chat: ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'],
  broadcast: ['M12 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z', 'M16.2 7.8a6 6 0 0 1 0 8.4', 'M7.8 16.2a6 6 0 0 1 0-8.4', 'M19 5a10 10 0 0 1 0 14', 'M5 19A10 10 0 0 1 5 5'],
  brush: ['M3 21l4-1 11-11-3-3L4 17z', 'M14 5l3 3', 'M17 2l5 5'],
  more: ['M12 6h.01', 'M12 12h.01', 'M12 18h.01'],
  plus: ['M12 5v14', 'M5 12h14'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  warning: ['M12 3L2 20h20z', 'M12 10v4', 'M12 17h.01'],
  up: ['M12 19V5', 'M5 12l7-7 7 7'],
  down: ['M12 5v14', 'M19 12l-7 7-7-7'],
  send: ['M22 2L11 13', 'M22 2l-7 20-4-9-9-4z'],
  copy: ['M9 9h11v11H9z', 'M5 15H4V4h11v1'],
  trash: ['M3 6h18', 'M8 6V4h8v2', 'M6 6l1 14h10l1-14'],
  users: ['M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2', 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8', 'M23 21v-2a4 4 0 0 0-3-3.9', 'M16 3.1a4 4 0 0 1 0 7.8'],
  logo: ['M4 4h16v16H4z', 'M4 16l5-5 4 4 3-3 4 4', 'M15 9h.01'],
  layoutGrid: ['M3 3h8v8H3z', 'M13 3h8v8h-8z', 'M3 13h8v8H3z', 'M13 13h8v8h-8z'],
  layoutSpotlight: ['M3 4h18v11H3z', 'M5 18h4v2H5z', 'M10 18h4v2h-4z', 'M15 18h4v2h-4z'],
  layoutSidebar: ['M3 4h13v16H3z', 'M18 4h3v4h-3z', 'M18 10h3v4h-3z', 'M18 16h3v4h-3z'],
  layoutSolo: ['M3 4h18v16H3z'],
  layoutPip: ['M3 4h18v16H3z', 'M13 12h6v6h-6z'],
  layoutScreen: ['M3 4h14v12H3z', 'M19 4h2v4h-2z', 'M19 10h2v4h-2z', 'M7 20h6'],
  layoutStack: ['M7 2h10v9H7z', 'M7 13h10v9H7z'],
  layoutOneOverTwo: ['M6 2h12v10H6z', 'M6 14h5v8H6z', 'M13 14h5v8h-5z'],
  layoutInset: ['M6 2h12v20H6z', 'M12 13h4v6h-4z'],
  layoutScreenAbove: ['M4 3h16v8H4z', 'M7 13h10v4H7z', 'M7 18h10v4H7z'],
  layoutOther: ['M3 4h18v16H3z', 'M3 12h10', 'M13 4v16', 'M16 15h3'],
};

/** The first-party layouts' own icons, by layout id; any other layout (a plugin's) gets `layoutOther`. */
const LAYOUT_ICONS = {
  solo: ICONS.layoutSolo,
  grid: ICONS.layoutGrid,
  spotlight: ICONS.layoutSpotlight,
  sidebar: ICONS.layoutSidebar,
  pip: ICONS.layoutPip,
  screen: ICONS.layoutScreen,
  stack: ICONS.layoutStack,
  'one-over-two': ICONS.layoutOneOverTwo,
  inset: ICONS.layoutInset,
  'screen-above': ICONS.layoutScreenAbove,
};

/** The icon for a layout id from the server's list. */
export function layoutIcon(id) {
  return Object.hasOwn(LAYOUT_ICONS, id) ? LAYOUT_ICONS[id] : ICONS.layoutOther;
}
