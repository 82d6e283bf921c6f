// REST client for the gateway's JSON API. Cookies carry auth; an expired access token is refreshed
// once, transparently, and the request retried.

/** An error returned by the API as {"error": {code, message, field}}, or a network failure. */
export class ApiError extends Error {
  constructor(status, { code = 'error', message = 'Something went wrong.', field } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let refreshing = null;

async function refreshSession() {
  // Several requests may hit 401 at once; they share one refresh.
  refreshing ??= fetch('/api/auth/refresh', { method: 'POST', credentials: 'same-origin' })
    .then((r) => r.ok)
    .catch(() => false)
    .finally(() => {
      setTimeout(() => (refreshing = null), 0);
    });
  return refreshing;
}

/** Sends one request; `body` is JSON unless it is FormData. Resolves with the parsed JSON (or null for 204). */
export async function request(method, path, body, { retry = true } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { code: 'network', message: 'Cannot reach the server. Check your connection.' });
  }
  if (res.status === 401 && retry && !path.startsWith('/api/auth/')) {
    if (await refreshSession()) return request(method, path, body, { retry: false });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    throw new ApiError(res.status, json?.error ?? { code: `http_${res.status}`, message: `The server answered ${res.status}.` });
  }
  return json;
}

export const api = {
  me: () => request('GET', '/api/auth/me'),
  login: (email, password) => request('POST', '/api/auth/login', { email, password }),
  register: (name, email, password) => request('POST', '/api/auth/register', { name, email, password }),
  logout: () => request('POST', '/api/auth/logout'),
  refresh: () => refreshSession(),

  listBroadcasts: (limit = 50, offset = 0) => request('GET', `/api/broadcasts?limit=${limit}&offset=${offset}`),
  listBrands: () => request('GET', '/api/brands'),
  createBrand: (brand) => request('POST', '/api/brands', brand),
  deleteBrand: (id) => request('DELETE', `/api/brands/${encodeURIComponent(id)}`),
  /** The deployment's nodes, their load and the shows each is home to (administrators only). */
  cluster: () => request('GET', '/api/cluster'),
  listRecordings: (limit = 100, offset = 0) => request('GET', `/api/recordings?limit=${limit}&offset=${offset}`),
  deleteRecording: (id) => request('DELETE', `/api/recordings/${encodeURIComponent(id)}`),
  createBroadcast: (title, description) => request('POST', '/api/broadcasts', { title, description }),
  getBroadcast: (id) => request('GET', `/api/broadcasts/${encodeURIComponent(id)}`),
  updateBroadcast: (id, patch) => request('PATCH', `/api/broadcasts/${encodeURIComponent(id)}`, patch),
  /**
   * Changes some of a broadcast's settings, keeping the others (the API replaces the whole object); returns the
   * broadcast as it was before.
   */
  async updateSettings(id, changes) {
    const before = await api.getBroadcast(id);
    await api.updateBroadcast(id, { settings: { ...(before.settings ?? {}), ...changes } });
    return before;
  },
  deleteBroadcast: (id) => request('DELETE', `/api/broadcasts/${encodeURIComponent(id)}`),
  startBroadcast: (id) => request('POST', `/api/broadcasts/${encodeURIComponent(id)}/start`),
  endBroadcast: (id) => request('POST', `/api/broadcasts/${encodeURIComponent(id)}/end`),

  createInvite: (id, role = 'guest') => request('POST', `/api/broadcasts/${encodeURIComponent(id)}/invites`, { role }),
  redeemInvite: (token, name) => request('POST', `/api/invites/${encodeURIComponent(token)}/redeem`, { name }),

  listDestinations: (id) => request('GET', `/api/broadcasts/${encodeURIComponent(id)}/destinations`),
  addDestination: (id, dest) => request('POST', `/api/broadcasts/${encodeURIComponent(id)}/destinations`, dest),
  updateDestination: (id, destId, patch) =>
    request('PATCH', `/api/broadcasts/${encodeURIComponent(id)}/destinations/${encodeURIComponent(destId)}`, patch),
  deleteDestination: (id, destId) =>
    request('DELETE', `/api/broadcasts/${encodeURIComponent(id)}/destinations/${encodeURIComponent(destId)}`),
  testDestination: (id, destId) =>
    request('POST', `/api/broadcasts/${encodeURIComponent(id)}/destinations/${encodeURIComponent(destId)}/test`),

  listIngestKeys: (id) => request('GET', `/api/broadcasts/${encodeURIComponent(id)}/ingest-keys`),
  createIngestKey: (id, key) => request('POST', `/api/broadcasts/${encodeURIComponent(id)}/ingest-keys`, key),
  revealIngestKey: (id, keyId) =>
    request('POST', `/api/broadcasts/${encodeURIComponent(id)}/ingest-keys/${encodeURIComponent(keyId)}/reveal`),
  deleteIngestKey: (id, keyId) =>
    request('DELETE', `/api/broadcasts/${encodeURIComponent(id)}/ingest-keys/${encodeURIComponent(keyId)}`),

  /** The account's uploads: `kind` `clip` (MP4 video clips) or `image`. */
  listUploads: (kind) => request('GET', `/api/uploads?kind=${encodeURIComponent(kind)}`),
  upload: (file) => {
    const form = new FormData();
    form.append('file', file);
    return request('POST', '/api/upload', form);
  },
  /** Uploads an image (a logo, a slate's picture) of at most 5 MB; resolves to its `/api/uploads/<sha256>` URL. */
  uploadImage: async (file) => {
    if (file.size > MAX_IMAGE_BYTES) throw new Error('that image is larger than 5 MB');
    const json = await api.upload(file);
    const url = json?.url ?? json?.upload?.url;
    if (!url) throw new Error('the server did not return an address for the upload');
    return url;
  },
};

/** The largest image the studio uploads (the server's own limit may be lower). */
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

/** Lists come back as {items,...} from paginated endpoints and as bare arrays from some others. */
export function itemsOf(json) {
  if (Array.isArray(json)) return json;
  return json?.items ?? [];
}
