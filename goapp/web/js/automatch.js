// The automatch panel of the lobby: choose board sizes, a speed and rated or not, press
// Automatch, and the server pairs you with a waiting player of a close rating
// (POST /api/automatch: 200 "paired" or 202 "waiting"). While waiting the panel shows the
// elapsed time and Cancel (DELETE /api/automatch); when someone is found, a socket frame
// {"type": "automatch", "kind": "paired", "payload": {"game_id", ...}} takes both players
// to the game (app.js handles it on every page). A reload finds the request again
// (GET /api/automatch, 404 when there is none).

import { api } from "./api.js";
import { navigate } from "./nav.js";
import { socket } from "./ws.js";
import { h, toast } from "./ui.js";

const SPEEDS = [["blitz", "Blitz"], ["live", "Live"], ["correspondence", "Correspondence"]];
const STORE_KEY = "goapp.automatch";

function elapsedText(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function saved() {
  try { return JSON.parse(localStorage.getItem(STORE_KEY) || "{}"); } catch { return {}; }
}

/** The panel (a <section>); ``dispose()`` stops its timer. */
export function automatchPanel() {
  const prefs = { sizes: [19], speed: "live", rated: true, ...saved() };
  const sizes = [9, 13, 19].map((n) => h("label.seg", null,
    h("input", { type: "checkbox", name: "am-size", value: String(n), id: `am-size-${n}`, checked: prefs.sizes.includes(n) }),
    h("span", null, `${n}×${n}`)));
  const speed = h("select#am-speed", { name: "speed" }, SPEEDS.map(([v, t]) => h("option", { value: v, selected: v === prefs.speed }, t)));
  const rated = h("input#am-rated", { type: "checkbox", name: "rated", checked: prefs.rated !== false });
  const error = h("p.form-error", { role: "alert" });
  const start = h("button.btn.primary.wide#automatch-start", { type: "submit" }, "Automatch");
  const form = h("form#automatch-form", { onsubmit: (e) => { e.preventDefault(); begin(); } },
    h("fieldset.segmented", null, h("legend", null, "Boards"), sizes),
    h("div.grid2", null,
      h("div", null, h("label", { for: "am-speed" }, "Speed"), speed),
      h("div", null, h("label.check.am-rated", null, rated, "Rated"))),
    error, start);
  const elapsed = h("span#automatch-elapsed", { "aria-live": "off" }, "0:00");
  const waitText = h("p.am-wait-text");
  const waiting = h("div#automatch-waiting", { hidden: true },
    h("p.am-searching", null, h("span.spinner", { "aria-hidden": "true" }), "Looking for an opponent… ", elapsed),
    waitText,
    h("button.btn.wide#automatch-cancel", { type: "button", onclick: () => cancel() }, "Cancel"));
  const root = h("section.card.automatch#automatch", { "aria-labelledby": "am-title" },
    h("h2#am-title", null, "Quick game"), form, waiting);
  let since = 0, timer = null, disposed = false;

  function showWaiting(req) {
    since = req && req.created_at ? new Date(req.created_at).getTime() : Date.now();
    if (!Number.isFinite(since) || since > Date.now()) since = Date.now();
    form.hidden = true;
    waiting.hidden = false;
    root.dataset.state = "waiting";
    const sz = (req && req.sizes) || [];
    waitText.textContent = `${sz.map((n) => `${n}×${n}`).join(", ")}${req && req.speed ? ` · ${req.speed}` : ""}${req && req.rated === false ? " · unrated" : req ? " · rated" : ""}`;
    const tick = () => { elapsed.textContent = elapsedText(Date.now() - since); };
    tick();
    clearInterval(timer);
    timer = setInterval(tick, 500);
  }

  function showForm() {
    clearInterval(timer);
    form.hidden = false;
    waiting.hidden = true;
    root.dataset.state = "idle";
  }

  async function begin() {
    error.textContent = "";
    const chosen = [...form.querySelectorAll("input[name=am-size]:checked")].map((i) => Number(i.value));
    if (!chosen.length) { error.textContent = "Choose at least one board size."; return; }
    const body = { sizes: chosen, speed: speed.value, rated: rated.checked };
    try { localStorage.setItem(STORE_KEY, JSON.stringify(body)); } catch { /* private mode */ }
    start.disabled = true;
    try {
      const r = await api("POST", "/api/automatch", body);
      if (r && r.status === "paired" && r.game_id != null) { navigate(`/game/${r.game_id}`); return; }
      showWaiting((r && r.request) || body);
    } catch (err) {
      error.textContent = err.message;
    } finally { start.disabled = false; }
  }

  async function cancel() {
    try {
      await api("DELETE", "/api/automatch");
      toast("Automatch cancelled");
    } catch (err) {
      if (err.status !== 404) { toast(err.message, "error"); return; }
    }
    showForm();
  }

  // A request left waiting (another tab, a reload).
  api("GET", "/api/automatch").then((r) => {
    if (disposed || !r) return;
    const req = r.request || r;
    if (r.status === "paired" && r.game_id != null) return;
    showWaiting(req);
  }).catch(() => {});
  // Cancelled elsewhere (another tab, or the request expired): back to the form. A request
  // "replaced" by a newer one of mine keeps waiting.
  const off = socket.on("automatch", (m) => {
    const p = m.payload || {};
    if (m.kind === "cancelled" && p.reason !== "replaced") showForm();
    if (m.kind === "paired") showForm();
  });
  root.dataset.state = "idle";
  root.dispose = () => { disposed = true; clearInterval(timer); off(); };
  return root;
}


