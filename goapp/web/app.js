// goapp's browser app: entry point, router and the page frame (header, connection state,
// theme, settings). Views live in js/views/*.js; each is a function(main, params) that
// renders into ``main`` and returns a cleanup function.

import { onSessionChange, restore, session, logout } from "./js/api.js";
import { socket } from "./js/ws.js";
import { h, clear, saveSettings, applyTheme, effectiveTheme, toast, onSettings, dismissOldToasts } from "./js/ui.js";
import { lobbyView } from "./js/views/lobby.js";
import { gameView } from "./js/views/game.js";
import { reviewView } from "./js/views/review.js";
import { authView } from "./js/views/auth.js";
import { settingsView } from "./js/views/settings.js";
import { playerView } from "./js/views/player.js";
import { leaderboardView } from "./js/views/leaderboard.js";
import { handleNotify, onYourMove, resetNotifications } from "./js/notify.js";
import { userHref, forgetProfiles } from "./js/players.js";
import { navigate, applyPresence, presence } from "./js/nav.js";

const routes = [
  [/^\/$/, lobbyView],
  [/^\/login$/, (m) => authView(m, { mode: "login" })],
  [/^\/register$/, (m) => authView(m, { mode: "register" })],
  [/^\/settings$/, settingsView],
  [/^\/game\/(\d+)$/, (m, [id]) => gameView(m, { id: Number(id) })],
  [/^\/review\/(\d+)$/, (m, [id]) => reviewView(m, { id: Number(id) })],
  [/^\/review(?:\/sgf)?$/, (m) => reviewView(m, { id: null })],
  [/^\/user\/([^/]+)$/, playerView],
  [/^\/leaderboard$/, leaderboardView],
];

let cleanup = null;
const main = document.getElementById("main");

window.goapp = { navigate, socket, session };

function render() {
  dismissOldToasts();
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  const path = location.pathname.replace(/\/+$/, "") || "/";
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (m) {
      clear(main);
      main.dataset.view = view.name || "";
      cleanup = view(main, m.slice(1)) || null;
      window.scrollTo(0, 0);
      updateNav();
      return;
    }
  }
  clear(main, h("section.card.narrow", null, h("h1", null, "Not found"), h("p", null, h("a", { href: "/" }, "Back to the lobby"))));
}

// Links inside the app navigate without reloading.
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);
window.addEventListener("goapp:navigate", render);

// -- header ---------------------------------------------------------------------------------

const header = document.getElementById("header");
const conn = h("span.conn", { role: "status", "aria-live": "polite", id: "conn" });
const online = h("span.online", { title: "Players online", id: "online-count" });
const themeBtn = h("button.icon-btn", { type: "button", id: "theme-toggle", "aria-label": "Toggle dark theme",
  onclick: () => saveSettings({ theme: effectiveTheme() === "dark" ? "light" : "dark" }) });
const userBox = h("div.userbox");
// "Your move" in games that wait for me (correspondence notifications): a badge to the first.
const yourMove = h("a.badge#your-move", { hidden: true, href: "/" });
function renderYourMove(ids) {
  yourMove.hidden = !ids.length;
  if (!ids.length) return;
  yourMove.href = `/game/${ids[0]}`;
  yourMove.textContent = ids.length === 1 ? "Your move" : `Your move · ${ids.length}`;
  yourMove.title = `It is your move in ${ids.length} game${ids.length === 1 ? "" : "s"}`;
}
onYourMove(renderYourMove);
// A "sliders" icon for the settings link (drawn: no icon font).
const settingsIcon = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("aria-hidden", "true");
  for (const [y, x] of [[5, 13], [10, 6], [15, 11]]) {
    const line = document.createElementNS(NS, "path");
    line.setAttribute("d", `M3 ${y}H17`);
    const knob = document.createElementNS(NS, "circle");
    knob.setAttribute("cx", x); knob.setAttribute("cy", y); knob.setAttribute("r", "2.3");
    svg.append(line, knob);
  }
  return h("a.icon-btn.settings-link", { href: "/settings", "aria-label": "Settings", title: "Settings" }, svg);
})();

function updateNav() {
  const path = location.pathname;
  for (const a of header.querySelectorAll("nav a, a.settings-link")) {
    const active = a.getAttribute("href") === path;
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function renderUser() {
  if (session.user) {
    clear(userBox,
      h("a.me", { id: "me", href: userHref(session.user.name), title: `Your page · rating ${Math.round(session.user.rating)}` }, h("span.dot.online-dot"), session.user.name),
      h("button.btn.small.ghost", { type: "button", id: "logout", onclick: async () => { await logout(); toast("Logged out"); navigate("/"); } }, "Log out"));
  } else {
    clear(userBox,
      h("a.btn.small.ghost", { href: "/login", id: "nav-login" }, "Log in"),
      h("a.btn.small.primary", { href: "/register", id: "nav-register" }, "Register"));
  }
}

function renderThemeBtn() {
  const dark = effectiveTheme() === "dark";
  themeBtn.textContent = dark ? "☀" : "☾";
  themeBtn.setAttribute("aria-pressed", String(dark));
  themeBtn.title = dark ? "Light theme" : "Dark theme";
}

clear(header,
  h("a.brand", { href: "/", "aria-label": "goapp lobby" },
    h("span.logo", { "aria-hidden": "true" }, h("span.l1"), h("span.l2")), "goapp"),
  h("nav", { "aria-label": "Main" },
    h("a", { href: "/" }, "Lobby"),
    h("a", { href: "/leaderboard", title: "Leaderboard" }, h("span.long", null, "Leaderboard"), h("span.short", null, "Ranks")),
    h("a", { href: "/review" }, "Review")),
  h("div.spacer"), conn, online, yourMove, settingsIcon, themeBtn, userBox);

socket.onStatus((s) => {
  conn.dataset.state = s;
  conn.textContent = s === "open" ? "" : s === "reconnecting" ? "Reconnecting…" : s === "connecting" ? "Connecting…" : "";
  conn.title = s === "open" ? "Connected" : conn.textContent;
});

// Presence is global: follow it from anywhere.
socket.subscribeLobby((m) => {
  if (m.type !== "presence" || m.game_id != null) return;
  applyPresence(m);
  online.textContent = `${presence.users} online`;
  online.title = `${presence.users} players and ${presence.guests} guests online`;
});

// A challenge of mine was accepted (or someone accepted mine): go to the game.
socket.onDirect((m) => {
  if (m.kind !== "challenge_accepted" || !session.user) return;
  const p = m.payload;
  if ((p.black_id === session.user.id || p.white_id === session.user.id) && !location.pathname.startsWith("/game/")) {
    toast("Your challenge was accepted: the game starts");
    navigate(`/game/${p.game_id}`);
  }
});

// Frames for this user: a "your move" notification; an automatch pairing (from any page).
socket.on("notify", handleNotify);
socket.on("automatch", (m) => {
  const p = m.payload || {};
  if (m.kind !== "paired" || p.game_id == null) return;
  if (location.pathname === `/game/${p.game_id}`) return;
  const opp = p.opponent ? (typeof p.opponent === "string" ? p.opponent : p.opponent.name) : null;
  toast(`Opponent found${opp ? `: ${opp}` : ""}. The game starts`);
  navigate(`/game/${p.game_id}`);
});
socket.onDirect((m) => { if (m.kind === "challenge_accepted") forgetProfiles(); });

let lastUser = undefined;
onSessionChange(() => {
  renderUser();
  const id = session.user ? session.user.id : null;
  if (lastUser !== undefined && id !== lastUser) { resetNotifications(); socket.restart(); }
  else if (id !== null && id === lastUser) socket.reauth(session.access); // token renewed
  lastUser = id;
});

// Keyboard shortcut: "t" toggles the theme (outside text fields).
document.addEventListener("keydown", (e) => {
  if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable]")) return;
  if (e.key === "t" && !e.ctrlKey && !e.metaKey && !e.altKey) themeBtn.click();
});

applyTheme();
renderThemeBtn();
onSettings(renderThemeBtn);
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", renderThemeBtn);

(async () => {
  await restore();
  lastUser = session.user ? session.user.id : null;
  renderUser();
  socket.start();
  render();
  document.documentElement.dataset.ready = "1";
})();

