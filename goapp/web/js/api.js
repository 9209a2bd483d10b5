// HTTP API client and the session: access token in memory, refresh token in localStorage,
// renewed before expiry. Refresh tokens rotate and a reused one revokes every session, so
// tabs take turns refreshing under a Web Lock and always use the latest stored token.

const REFRESH_KEY = "goapp.refresh";
const listeners = new Set();

export const session = { user: null, access: null, expiresAt: 0 };
let refreshTimer = null;
let refreshing = null;

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || { code: `http_${status}`, message: `HTTP ${status}` };
    super(err.message || err.code);
    this.status = status;
    this.code = err.code;
    this.details = err;
  }
}

export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit() {
  for (const fn of listeners) fn(session);
}

function storedRefresh() {
  try { return localStorage.getItem(REFRESH_KEY); } catch { return null; }
}

function store(token) {
  try {
    if (token) localStorage.setItem(REFRESH_KEY, token);
    else localStorage.removeItem(REFRESH_KEY);
  } catch { /* private mode: the session lasts as long as the tab */ }
}

function adopt(s) {
  session.user = s.user;
  session.access = s.access_token;
  session.expiresAt = Date.now() + s.expires_in * 1000;
  store(s.refresh_token);
  clearTimeout(refreshTimer);
  // Renew a minute before expiry (or at 80% of a short lifetime).
  const lead = Math.min(60_000, s.expires_in * 200);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), Math.max(5_000, s.expires_in * 1000 - lead));
  emit();
}

function clear() {
  session.user = null;
  session.access = null;
  session.expiresAt = 0;
  clearTimeout(refreshTimer);
  store(null);
  emit();
}

async function withLock(fn) {
  if (navigator.locks && navigator.locks.request) return navigator.locks.request("goapp-refresh", fn);
  return fn();
}

/** Renew the access token with the stored refresh token. Resolves to true when logged in. */
export function refresh() {
  if (refreshing) return refreshing;
  refreshing = withLock(async () => {
    const token = storedRefresh();
    if (!token) { if (session.user) clear(); return false; }
    let res;
    try {
      res = await fetch("/api/refresh", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }) });
    } catch (e) {
      throw new ApiError(0, { error: { code: "network", message: "the server cannot be reached" } });
    }
    if (res.status === 401) { clear(); return false; }
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    adopt(await res.json());
    return true;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

/** An access token valid for at least a few seconds, renewed when needed (null: guest). */
export async function accessToken() {
  if (!session.access && !storedRefresh()) return null;
  if (!session.access || Date.now() > session.expiresAt - 10_000) await refresh();
  return session.access;
}

/** Call the API. Returns the decoded JSON; throws ApiError. */
export async function api(method, path, body, { auth = true, raw = null, contentType = null } = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = {};
    const token = auth ? await accessToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (raw !== null) { payload = raw; headers["Content-Type"] = contentType || "text/plain"; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload });
    } catch (e) {
      throw new ApiError(0, { error: { code: "network", message: "the server cannot be reached" } });
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (res.ok) return data;
    const err = new ApiError(res.status, data);
    if (res.status === 401 && err.code === "token_expired" && attempt === 0 && storedRefresh()) {
      session.expiresAt = 0;
      continue;
    }
    throw err;
  }
  throw new ApiError(401, null);
}

export async function login(name, password) {
  adopt(await api("POST", "/api/login", { name, password }, { auth: false }));
}

export async function register(name, password) {
  adopt(await api("POST", "/api/register", { name, password }, { auth: false }));
}

export async function logout() {
  const token = storedRefresh();
  clear();
  if (token) await api("POST", "/api/logout", { refresh_token: token }, { auth: false }).catch(() => {});
}

/** At start: resume the stored session, if any. */
export async function restore() {
  if (!storedRefresh()) return false;
  try { return await refresh(); } catch { return false; }
}

// Another tab logged out (or in): follow it.
window.addEventListener("storage", (e) => {
  if (e.key !== REFRESH_KEY) return;
  if (!e.newValue && session.user) { session.user = null; session.access = null; clearTimeout(refreshTimer); emit(); }
  else if (e.newValue && !session.user) refresh().catch(() => {});
});
