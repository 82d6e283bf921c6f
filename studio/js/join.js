// The guest page at /join/<token>: pick a name, check camera and mic, redeem the invite (which sets the guest
// session cookie), then enter the studio room. No account needed.

import { api } from './api.js';
import { h, mount } from './dom.js';
import { openStudio } from './room.js';

const root = document.getElementById('app');
const token = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() ?? '');
const NAME_KEY = 'backyard.guestName';

function remembered() {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

function showEnd(title, text) {
  mount(root, h('div.center-screen', h('div.card.narrow', { dataset: { role: 'room-ended' } }, h('h1', title), h('p.muted', text))));
}

if (!token || location.pathname.split('/').filter(Boolean)[0] !== 'join') {
  showEnd('This invite link is incomplete', 'Ask the host to send you the full link.');
} else {
  openStudio(root, {
    title: 'You are invited to a live studio',
    askName: true,
    who: { name: remembered() },
    beforeJoin: async (name) => {
      const { guest } = await api.redeemInvite(token, name);
      try {
        localStorage.setItem(NAME_KEY, name);
      } catch {
        // Not remembered in private mode; nothing else depends on it.
      }
      return { broadcastId: guest.broadcastId };
    },
    onExit: () => showEnd('You left the studio', 'Thanks for joining. You can close this tab, or open the invite link again to rejoin.'),
  });
}
