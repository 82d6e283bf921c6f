// Entry point of the studio at `/`: hash routes for sign in, register, the broadcasts list, the recordings library
// and the studio room.
//   #/login  #/register  #/broadcasts  #/recordings  #/recordings/<broadcastId>  #/studio/<broadcastId>
//   #/nodes (administrators: the nodes of the deployment)

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

/** The timer of a page that refreshes itself, stopped when another page opens. */
let pageTimer = null;

async function route() {
  const [, page, arg] = location.hash.replace(/^#/, '').split('/');
  clearInterval(pageTimer);
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
  else if (page === 'recordings') recordingsView(arg ? decodeURIComponent(arg) : null);
  else if (page === 'nodes' && session.user.isAdmin) nodesView();
  else broadcastsView();
}

// ------------------------------------------------------------------ sign in / register

function authView(mode) {
  const register = mode === 'register';
  const error = h('div.form-error', { role: 'alert' });
  const fields = {
    name: register ? h('input', { id: 'auth-name', name: 'name', type: 'text', autocomplete: 'name', required: true, maxLength: 80 }) : null,
    email: h('input', { id: 'auth-email', name: 'email', type: 'email', autocomplete: 'email', required: true }),
    password: h('input', {
      id: 'auth-password',
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
    register ? h('div.field', h('label', { for: 'auth-name' }, 'Name'), fields.name) : null,
    h('div.field', h('label', { for: 'auth-email' }, 'Email'), fields.email),
    h('div.field', h('label', { for: 'auth-password' }, 'Password'), fields.password, register ? h('div.field-hint', 'At least 8 characters.') : null),
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

function appHeader(current) {
  const user = session?.user;
  const link = (id, href, label) => h(`a.nav-link${current === id ? '.active' : ''}`, { href, dataset: { nav: id }, 'aria-current': current === id ? 'page' : null }, label);
  return h(
    'header.app-header',
    h('div.brand', h('span.brand-dot'), 'Backyard'),
    h(
      'nav.app-nav',
      link('broadcasts', '#/broadcasts', 'Broadcasts'),
      link('recordings', '#/recordings', 'Recordings'),
      user?.isAdmin ? link('nodes', '#/nodes', 'Nodes') : null,
    ),
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
      appHeader('broadcasts'),
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
            b.status === 'scheduled'
              ? null
              : h('a.button.ghost', { href: `#/recordings/${encodeURIComponent(b.id)}`, dataset: { action: 'open-recordings' } }, 'Recordings'),
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

// ------------------------------------------------------------------ recordings

/** "1:02:03" or "2:03" for a duration in seconds. */
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const parts = hms[0] ? hms : hms.slice(1);
  return parts.map((n, i) => (i === 0 ? String(n) : String(n).padStart(2, '0'))).join(':');
}

/** "12.4 MB" for a size in bytes. */
function bytes(n) {
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} kB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

/** What a recording is called: the show's title, and whose it is for a participant's own recording. */
function recordingTitle(r) {
  const title = r.title || 'Untitled';
  return r.participantName ? `${title} — ${r.participantName}` : title;
}

/**
 * A file name for a recording's download: its title (and participant), made safe, and its date; the program's
 * recording is MP4, a participant's WebM (as their browser sent it).
 */
function fileName(r) {
  const safe = recordingTitle(r).replace(/[^\p{L}\p{N} _-]+/gu, '').trim().replace(/\s+/g, '-') || 'recording';
  return `${safe}-${r.createdAt.slice(0, 10)}.${r.participantId ? 'webm' : 'mp4'}`;
}

/** One recording: play it in the page, download it, delete it. */
function recordingCard(r, onDelete) {
  const ready = r.status === 'ready';
  const label = { recording: 'Recording…', ready: 'Ready', failed: 'Failed' }[r.status] ?? r.status;
  const when = new Date(r.createdAt).toLocaleString(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
  const remove = h(
    'button.ghost.danger',
    { type: 'button', dataset: { action: 'delete-recording' }, disabled: r.status === 'recording', title: r.status === 'recording' ? 'It is still recording' : null },
    'Delete',
  );
  const card = h(
    'article.recording-card',
    { dataset: { recordingId: r.id, status: r.status } },
    ready
      ? h('video.recording-player', { controls: true, preload: 'metadata', src: r.url, 'aria-label': `Play ${recordingTitle(r)}` })
      : h('div.recording-placeholder', label),
    h(
      'div.recording-body',
      h('div.bc-head', h('h3', r.title || 'Untitled'), h(`span.badge.${r.status}`, label)),
      r.participantName
        ? h(
            'div.recording-who',
            { dataset: { participant: r.participantId, local: r.local ? 'true' : null } },
            r.local ? `${r.participantName}’s local recording (made on their device, full quality)` : `${r.participantName}’s own recording`,
          )
        : null,
      h('div.bc-meta', `${when} · ${duration(r.duration)} · ${bytes(r.fileSize)}`),
    ),
    h(
      'div.bc-actions',
      ready ? h('a.button.ghost', { href: r.url, download: fileName(r), dataset: { action: 'download-recording' } }, 'Download') : null,
      remove,
    ),
  );
  remove.onclick = async () => {
    if (!window.confirm(`Delete the recording “${recordingTitle(r)}” from ${when}? This cannot be undone.`)) return;
    remove.disabled = true;
    try {
      await api.deleteRecording(r.id);
      card.remove();
      toast('Recording deleted.', 'success');
      onDelete();
    } catch (err) {
      remove.disabled = false;
      toast(`Could not delete it: ${err.message}`, 'error');
    }
  };
  return card;
}

/** Every recording of the account, newest first, or only those of one broadcast. */
async function recordingsView(broadcastId) {
  const list = h('div.recording-grid', h('div.loading', 'Loading recordings…'));
  const heading = h('h1', 'Recordings');
  const sub = h('p.muted', 'Play, download or delete the recordings of your shows: the program, and each person on stage as they sent it.');
  mount(
    root,
    h(
      'div.app-page',
      appHeader('recordings'),
      h('main.page-body', h('div.page-head', h('div', heading, sub)), list),
    ),
  );
  try {
    let items = itemsOf(await api.listRecordings());
    if (broadcastId) {
      items = items.filter((r) => r.broadcastId === broadcastId);
      try {
        heading.textContent = `Recordings of “${(await api.getBroadcast(broadcastId)).title}”`;
      } catch {
        // The broadcast is gone; its recordings (if any) are still listed.
      }
      sub.replaceChildren('The program and each person on stage, recorded while this broadcast was live. ', h('a', { href: '#/recordings' }, 'All recordings'));
    }
    const empty = () =>
      mount(list, h('div.empty-state', h('h3', 'No recordings yet'), h('p.muted', 'Every show is recorded while it is live; its recording appears here.')));
    if (!items.length) {
      empty();
      return;
    }
    mount(list, items.map((r) => recordingCard(r, () => list.querySelector('.recording-card') || empty())));
  } catch (err) {
    mount(list, h('div.form-error', `Could not load recordings: ${err.message}`));
  }
}

// ------------------------------------------------------------------ nodes (administrators)

/** How long ago an RFC 3339 time was, in words. */
function since(rfc3339) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(rfc3339)) / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

function nodeCard(node, thisNode, titles) {
  const load = node.load ?? {};
  const stat = (label, value) => h('div.node-stat', h('span.node-stat-value', value), h('span.node-stat-label', label));
  const shows = node.programs ?? [];
  return h(
    'article.node-card',
    { dataset: { node: node.id }, 'aria-label': `Node ${node.id}` },
    h(
      'div.node-head',
      h('h2.node-id', node.id),
      node.id === thisNode ? h('span.badge.ready', 'This node') : null,
      h('span.muted.node-version', `v${node.version} · up ${since(node.startedAt)}`),
    ),
    h(
      'div.node-stats',
      stat('CPU (cores)', (load.cpuCores ?? 0).toFixed(2)),
      stat('In studios', String(load.participants ?? 0)),
      stat('Programs', String(load.programs ?? 0)),
    ),
    h(
      'dl.node-facts',
      h('dt', 'HTTP'),
      h('dd', node.http),
      h('dt', 'Media relay'),
      h('dd', node.relay ?? 'off (no cluster.secret): rooms do not span nodes'),
      h('dt', 'Programs of'),
      h(
        'dd.node-shows',
        shows.length
          ? shows.map((id) => h('span.node-show', { title: id }, titles.get(id) ?? id))
          : h('span.muted', 'no broadcast'),
      ),
    ),
  );
}

async function nodesView() {
  const list = h('div.node-grid', h('div.loading', 'Loading nodes…'));
  const sub = h('p.muted', 'Every node of this deployment, its load, and the broadcasts whose program it runs.');
  const updated = h('p.muted.nodes-updated', { 'aria-live': 'off' });
  mount(root, h('div.app-page', appHeader('nodes'), h('main.page-body', h('div.page-head', h('div', h('h1', 'Nodes'), sub), updated), list)));
  const refresh = async () => {
    try {
      const view = await api.cluster();
      const titles = new Map((view.broadcasts ?? []).map((b) => [b.id, b.status === 'live' ? `${b.title} (live)` : b.title]));
      mount(list, view.nodes.map((n) => nodeCard(n, view.thisNode, titles)));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      mount(list, h('div.form-error', { role: 'alert' }, `Could not load the nodes: ${err.message}`));
    }
  };
  await refresh();
  pageTimer = setInterval(refresh, 2000);
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
