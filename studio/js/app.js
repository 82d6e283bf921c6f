// Entry point of the studio at `/`: hash routes for sign in, register, the broadcasts list and the studio room.
//   #/login  #/register  #/broadcasts  #/studio/<broadcastId>

import { api, itemsOf } from './api.js';
import { h, icon, mount, toast } from './dom.js';
import { ICONS } from './icons.js';
import { openStudio } from './room.js';

const root = document.getElementById('app');
/** {user} or {guest} from /api/auth/me, or null when signed out. */
let session = null;
/** Keeps the 15-minute access token fresh while the page is open. */
let refreshTimer = 0;
/** The open studio room, torn down when the user navigates away from it. */
let activeRoom = null;

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function loadSession() {
  try {
    session = await api.me();
  } catch {
    session = null;
  }
  clearInterval(refreshTimer);
  if (session?.user) refreshTimer = setInterval(() => api.refresh(), 10 * 60 * 1000);
}

async function route() {
  const [, page, arg] = location.hash.replace(/^#/, '').split('/');
  if (activeRoom) {
    activeRoom.teardown();
    activeRoom = null;
  }
  if (page === 'login' || page === 'register') {
    authView(page);
    return;
  }
  if (!session) await loadSession();
  if (!session?.user && !session?.guest) {
    go('#/login');
    return;
  }
  if (session.guest) {
    studioView(session.guest.broadcastId, session.guest.name);
    return;
  }
  if (page === 'studio' && arg) studioView(decodeURIComponent(arg));
  else broadcastsView();
}

// ------------------------------------------------------------------ sign in / register

function authView(mode) {
  const register = mode === 'register';
  const error = h('div.form-error', { role: 'alert' });
  const fields = {
    name: register ? h('input', { name: 'name', type: 'text', autocomplete: 'name', required: true, maxLength: 80 }) : null,
    email: h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
    password: h('input', {
      name: 'password',
      type: 'password',
      autocomplete: register ? 'new-password' : 'current-password',
      required: true,
      minLength: register ? 8 : undefined,
    }),
  };
  const submit = h('button.primary.big', { type: 'submit' }, register ? 'Create account' : 'Sign in');
  const form = h(
    'form.auth-form',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          const email = fields.email.value.trim();
          const password = fields.password.value;
          session = register ? await api.register(fields.name.value.trim(), email, password) : await api.login(email, password);
          await loadSession();
          go('#/broadcasts');
        } catch (err) {
          error.textContent = err.message;
          const bad = err.field && fields[err.field];
          if (bad) bad.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    register ? h('div.field', h('label', 'Name'), fields.name) : null,
    h('div.field', h('label', 'Email'), fields.email),
    h('div.field', h('label', 'Password'), fields.password, register ? h('div.field-hint', 'At least 8 characters.') : null),
    error,
    submit,
  );
  mount(
    root,
    h(
      'div.auth-screen',
      h(
        'div.auth-hero',
        h('div.brand.large', h('span.brand-dot'), 'Backyard'),
        h('h2', 'Your live studio, on your own server.'),
        h('p', 'Bring guests on with a link, lay out the stage, and stream to YouTube, Twitch, Facebook and any RTMP server at once.'),
      ),
      h(
        'div.auth-card',
        h('h1', register ? 'Create your account' : 'Sign in'),
        form,
        h(
          'p.muted.switch-auth',
          register ? 'Already have an account? ' : 'New to Backyard? ',
          h('a', { href: register ? '#/login' : '#/register' }, register ? 'Sign in' : 'Create an account'),
        ),
      ),
    ),
  );
  (fields.name ?? fields.email).focus();
}

// ------------------------------------------------------------------ broadcasts

function appHeader() {
  const user = session?.user;
  return h(
    'header.app-header',
    h('div.brand', h('span.brand-dot'), 'Backyard'),
    h(
      'div.user-box',
      h('span.user-name', user?.name ?? ''),
      h(
        'button.ghost',
        {
          type: 'button',
          dataset: { action: 'sign-out' },
          onclick: async () => {
            await api.logout().catch(() => {});
            session = null;
            go('#/login');
          },
        },
        'Sign out',
      ),
    ),
  );
}

function statusBadge(status) {
  const label = { live: 'Live', ended: 'Ended', scheduled: 'Not started' }[status] ?? status;
  return h(`span.badge.${status}`, label);
}

async function broadcastsView() {
  const list = h('div.broadcast-grid', h('div.loading', 'Loading broadcasts…'));
  const title = h('input', { name: 'title', type: 'text', placeholder: 'Broadcast title', required: true, maxLength: 120 });
  const error = h('div.form-error', { role: 'alert' });
  const create = h(
    'form.create-form',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        try {
          const b = await api.createBroadcast(title.value.trim());
          go(`#/studio/${encodeURIComponent(b.id)}`);
        } catch (err) {
          error.textContent = err.message;
        }
      },
    },
    title,
    h('button.primary', { type: 'submit', dataset: { action: 'create-broadcast' } }, icon(ICONS.plus), 'Create broadcast'),
  );
  mount(
    root,
    h(
      'div.app-page',
      appHeader(),
      h(
        'main.page-body',
        h('div.page-head', h('div', h('h1', 'Broadcasts'), h('p.muted', 'Create a broadcast, invite guests, and go live to all your destinations at once.'))),
        h('section.create-card', create, error),
        list,
      ),
    ),
  );
  title.focus();
  try {
    const items = itemsOf(await api.listBroadcasts());
    if (!items.length) {
      mount(list, h('div.empty-state', h('h3', 'No broadcasts yet'), h('p.muted', 'Give your first one a title above.')));
      return;
    }
    mount(
      list,
      items.map((b) =>
        h(
          'article.broadcast-card',
          { dataset: { broadcastId: b.id } },
          h('div.bc-thumb', { style: { '--hue': (b.title.length * 47) % 360 } }, icon(ICONS.broadcast, 'icon big')),
          h(
            'div.bc-body',
            h('div.bc-head', h('h3', b.title), statusBadge(b.status)),
            b.description ? h('p.muted', b.description) : null,
            h('div.bc-meta', `Created ${new Date(b.createdAt).toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' })}`),
          ),
          h(
            'div.bc-actions',
            h(
              'a.button.primary',
              { href: `#/studio/${encodeURIComponent(b.id)}`, dataset: { action: 'open-studio' } },
              b.status === 'ended' ? 'Open' : 'Enter studio',
            ),
          ),
        ),
      ),
    );
  } catch (err) {
    mount(list, h('div.form-error', `Could not load broadcasts: ${err.message}`));
  }
}

// ------------------------------------------------------------------ studio

async function studioView(broadcastId, guestName) {
  let title = 'Get ready';
  if (session?.user) {
    try {
      title = (await api.getBroadcast(broadcastId)).title;
    } catch (e) {
      toast(`Could not open the broadcast: ${e.message}`, 'error');
      go('#/broadcasts');
      return;
    }
  }
  activeRoom = await openStudio(root, {
    broadcastId,
    title,
    who: { name: guestName ?? session?.user?.name },
    onExit: () => {
      activeRoom = null;
      if (session?.user) go('#/broadcasts');
      else mount(root, h('div.center-screen', h('div.card.narrow', h('h1', 'You left the studio'), h('p.muted', 'Thanks for joining.'))));
    },
  });
}

window.addEventListener('hashchange', route);
route();
