// Navigation and presence, shared by the views without importing the entry module.

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else if (path !== location.pathname + location.search) history.pushState(null, "", path);
  window.dispatchEvent(new Event("goapp:navigate"));
}

// Who is online (from the lobby's presence messages).
const onlineUsers = new Map();
const listeners = new Set();
export const presence = { users: 0, guests: 0 };

export function onlineList() { return [...onlineUsers.values()].sort((a, b) => a.name.localeCompare(b.name)); }

export function onPresence(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export function applyPresence(m) {
  if (m.online) { onlineUsers.clear(); for (const u of m.online) onlineUsers.set(u.id, u); }
  for (const u of m.joined || []) onlineUsers.set(u.id, u);
  for (const u of m.left || []) onlineUsers.delete(u.id);
  presence.users = m.users ?? onlineUsers.size;
  presence.guests = m.guests ?? 0;
  for (const fn of listeners) fn(onlineList());
}
