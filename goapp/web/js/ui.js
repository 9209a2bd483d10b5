// Small DOM helpers, settings, sounds and time formatting shared by the views.

/** h("div.card#main", {onclick, ...attrs}, children...) */
export function h(tag, attrs = null, ...children) {
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i.exec(tag);
  const e = document.createElement(m[1] || "div");
  for (const part of m[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === ".") e.classList.add(part.slice(1));
    else e.id = part.slice(1);
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "text") e.textContent = v;
      else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") e[k] = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** e.append that skips null, undefined and false. */
export function add(e, ...children) {
  append(e, children);
  return e;
}

export function clear(e, ...children) {
  e.replaceChildren();
  append(e, children);
  return e;
}

// -- settings -----------------------------------------------------------------------------

const SETTINGS_KEY = "goapp.settings";
const DEFAULTS = { theme: "system", sound: true, confirmMove: "auto", coords: true };

export const settings = (() => {
  let s = {};
  try { s = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}"); } catch { s = {}; }
  return { ...DEFAULTS, ...s };
})();

const settingsListeners = new Set();
export function onSettings(fn) { settingsListeners.add(fn); return () => settingsListeners.delete(fn); }

export function saveSettings(changes) {
  Object.assign(settings, changes);
  try { localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings)); } catch { /* ignore */ }
  applyTheme();
  for (const fn of settingsListeners) fn(settings);
}

export function isTouch() {
  return window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
}

/** Does a tap/click need a second confirmation before the move is sent? */
export function confirmMoves() {
  if (settings.confirmMove === "on") return true;
  if (settings.confirmMove === "off") return false;
  return isTouch();
}

export function applyTheme() {
  const root = document.documentElement;
  if (settings.theme === "light" || settings.theme === "dark") root.dataset.theme = settings.theme;
  else delete root.dataset.theme;
}

export function effectiveTheme() {
  if (settings.theme === "light" || settings.theme === "dark") return settings.theme;
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

// -- sound --------------------------------------------------------------------------------

let audio = null;
/** A stone-on-wood click made with WebAudio (no file). */
export function playStoneSound() {
  if (!settings.sound) return;
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
    const t = audio.currentTime;
    const len = Math.floor(audio.sampleRate * 0.06);
    const buf = audio.createBuffer(1, len, audio.sampleRate);
    const data = buf.getChannelData(0);
    for (let i = 0; i < len; i++) data[i] = (Math.random() * 2 - 1) * Math.pow(1 - i / len, 6);
    const noise = audio.createBufferSource();
    noise.buffer = buf;
    const band = audio.createBiquadFilter();
    band.type = "bandpass";
    band.frequency.value = 2400;
    band.Q.value = 1.2;
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0.5, t);
    gain.gain.exponentialRampToValueAtTime(0.001, t + 0.07);
    noise.connect(band).connect(gain).connect(audio.destination);
    const osc = audio.createOscillator();
    osc.frequency.setValueAtTime(320, t);
    osc.frequency.exponentialRampToValueAtTime(140, t + 0.05);
    const og = audio.createGain();
    og.gain.setValueAtTime(0.25, t);
    og.gain.exponentialRampToValueAtTime(0.001, t + 0.06);
    osc.connect(og).connect(audio.destination);
    noise.start(t);
    osc.start(t);
    osc.stop(t + 0.07);
  } catch { /* no audio: fine */ }
}

// -- toasts and dialogs -------------------------------------------------------------------

export function toast(text, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div#toasts", { "aria-live": "assertive", role: "status" });
    document.body.appendChild(box);
  }
  const t = h(`div.toast.${kind}`, { dataset: { at: String(Date.now()) } }, text);
  box.appendChild(t);
  setTimeout(() => t.classList.add("out"), kind === "error" ? 4500 : 3200);
  setTimeout(() => t.remove(), kind === "error" ? 5000 : 3700);
}

/** Drop the toasts of the page being left (older than a second). */
export function dismissOldToasts() {
  const now = Date.now();
  for (const t of document.querySelectorAll("#toasts .toast")) if (now - Number(t.dataset.at) > 1000) t.remove();
}

/** A modal yes/no question; resolves true on yes. */
export function confirmDialog(text, { yes = "Yes", no = "Cancel", danger = false } = {}) {
  return new Promise((resolve) => {
    const dlg = h("dialog.dialog", { "aria-label": text });
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    dlg.append(
      h("p", null, text),
      h("div.row.end", null,
        h("button.btn", { type: "button", onclick: () => done(false) }, no),
        h(`button.btn.${danger ? "danger" : "primary"}`, { type: "button", onclick: () => done(true) }, yes)),
    );
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
    dlg.querySelector(`.btn.${danger ? "danger" : "primary"}`).focus();
  });
}

// -- formatting ---------------------------------------------------------------------------

export function fmtClock(ms) {
  if (ms === null || ms === undefined) return "∞";
  const s = Math.max(0, Math.ceil(ms / 1000));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (ms < 10_000 && ms > 0) return (Math.max(0, ms) / 1000).toFixed(1);
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

export function describeTimeControl(tc) {
  if (!tc || tc.system === "none") return "No time limit";
  const m = (s) => (s % 60 === 0 ? `${s / 60}m` : s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`);
  switch (tc.system) {
    case "absolute": return `${m(tc.main_s)} absolute`;
    case "fischer": return `${m(tc.main_s)} + ${tc.increment_s}s${tc.max_s ? ` (max ${m(tc.max_s)})` : ""}`;
    case "byoyomi": return `${m(tc.main_s)} + ${tc.periods}×${tc.period_s}s`;
    case "canadian": return `${m(tc.main_s)} + ${tc.stones}/${m(tc.period_s)}`;
    case "simple": return `${tc.per_move_s}s / move`;
    case "correspondence": return `${tc.days_per_move} day${tc.days_per_move === 1 ? "" : "s"} / move${tc.weekends_off ? ", weekends off" : ""}`;
    default: return tc.system;
  }
}

export function rulesName(r) {
  return { japanese: "Japanese", korean: "Korean", chinese: "Chinese", aga: "AGA", "new-zealand": "New Zealand",
    new_zealand: "New Zealand", "tromp-taylor": "Tromp-Taylor", tromp_taylor: "Tromp-Taylor" }[r] || r;
}

export function ago(iso) {
  if (!iso) return "";
  const d = (Date.now() - new Date(iso).getTime()) / 1000;
  if (d < 60) return "just now";
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function playerName(p) {
  if (!p) return "?";
  return p.name || (p.bot ? `${p.bot} (AI)` : "?");
}
