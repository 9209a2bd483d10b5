// Review a finished game (or an uploaded SGF): move navigation with buttons, a slider and
// the keyboard, SGF download, and, when the server has an engine, the AI review: a graph
// of the score lead per move (click to jump) with the mistakes marked by size, the list of
// those mistakes, the engine's preferred moves as letters on the board (hover or click one
// to see its principal variation as numbered stones) and its ownership of the final
// position as small squares.

import { api, session } from "../api.js";
import { navigate } from "../nav.js";
import { BoardView } from "../board.js";
import { Record, parseVertex, vertex, handicapPoints, formatResult, other, colorOf, BLACK, WHITE } from "../go.js";
import { h, clear, add, toast, settings, rulesName, playerName } from "../ui.js";
import { userHref } from "../players.js";

const SGF_KEY = "goapp.review.sgf";
// A move that loses its player this many points of score lead (the engine's view before and
// after it) is a mistake / a blunder.
export const MISTAKE = 2;
export const BLUNDER = 5;

/** Each played move's loss for its player, from the review's turns (Black's point of view):
 * [{n, color, vertex, loss, severity}] for moves 1..turns.length - 1. */
export function moveLosses(turns) {
  const out = [];
  for (let i = 0; i + 1 < turns.length; i++) {
    const a = turns[i], b = turns[i + 1];
    if (typeof a.score_lead !== "number" || typeof b.score_lead !== "number" || !a.color) continue;
    const loss = a.color === "B" ? a.score_lead - b.score_lead : b.score_lead - a.score_lead;
    const severity = loss >= BLUNDER ? "blunder" : loss >= MISTAKE ? "mistake" : null;
    out.push({ n: i + 1, color: a.color, vertex: a.move || "pass", loss, severity });
  }
  return out;
}
const NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function reviewView(main, { id }) {
  if (id === null && location.pathname === "/review") return uploadView(main);
  const disposers = [];
  const st = { record: null, n: 0, title: "", analysis: null, meta: null, losses: new Map(),
    pvHover: null, pvPinned: null, showOwnership: false };

  const boardHost = h("div.board-host#review-board");
  const board = new BoardView(boardHost, { label: "Review board (arrow keys step through the moves)", focusable: false,
    onHover: (pt) => { const i = bestAt(pt); if (i !== st.pvHover) { st.pvHover = i; draw(); } },
    onPlay: (x, y) => { const i = bestAt([x, y]); st.pvPinned = i === st.pvPinned ? null : i; draw(); } });
  const counter = h("span.move-counter#move-counter", { "aria-live": "polite" });
  const slider = h("input#move-slider", { type: "range", min: "0", max: "0", value: "0", "aria-label": "Move" });
  const icon = (d) => { const s = svgEl("svg", { viewBox: "0 0 16 16", "aria-hidden": "true" }); svgEl("path", { d }, s); return s; };
  const navBtn = (label, d, fn, bid) => h("button.btn.nav-btn", { type: "button", "aria-label": label, title: label, id: bid, onclick: fn }, icon(d));
  const nav = h("div.review-nav", { role: "toolbar", "aria-label": "Move navigation" },
    navBtn("First move (Home)", "M3 3h2v10H3zM13 3v10L6 8z", () => go(0), "nav-first"),
    navBtn("Back 10 (Page Up)", "M8 3v10L2 8zM15 3v10L9 8z", () => go(st.n - 10), "nav-back10"),
    navBtn("Previous move (←)", "M11 3v10L4 8z", () => go(st.n - 1), "nav-prev"),
    navBtn("Next move (→)", "M5 3v10l7-5z", () => go(st.n + 1), "nav-next"),
    navBtn("Forward 10 (Page Down)", "M1 3v10l6-5zM8 3v10l6-5z", () => go(st.n + 10), "nav-fwd10"),
    navBtn("Last move (End)", "M3 3v10l7-5zM11 3h2v10h-2z", () => go(Infinity), "nav-last"));
  const heading = h("h1.review-title#review-title");
  const infoEl = h("p.muted.small#review-info");
  const capsEl = h("p.small#review-caps");
  const resultEl = h("p.result-line#review-result");
  const actions = h("div.row");
  const aiBox = h("section.card.ai#ai-review", { "aria-label": "AI review" });
  main.append(h("div.game.review", null,
    h("div.board-col", null, boardHost),
    h("aside.side", { "aria-label": "Review" },
      h("section.card", null, heading, infoEl, resultEl, capsEl, counter, slider, nav, actions),
      aiBox)));
  slider.addEventListener("input", () => go(Number(slider.value)));

  function go(n) {
    if (!st.record) return;
    const to = Math.max(0, Math.min(st.record.moves.length, n));
    if (to !== st.n) { st.pvHover = null; st.pvPinned = null; }
    st.n = to;
    draw();
  }

  const currentTurn = () => (st.analysis && st.analysis.turns ? st.analysis.turns[st.n] : null);
  // The index of the suggested move at a board point (null when none).
  function bestAt(pt) {
    const turn = currentTurn();
    if (!pt || !turn || !turn.best || !st.record) return null;
    const i = turn.best.slice(0, 3).findIndex((b) => {
      const xy = parseVertex(b.move, st.record.h);
      return xy && xy[0] === pt[0] && xy[1] === pt[1];
    });
    return i < 0 ? null : i;
  }
  // A suggested move's principal variation as numbered stones.
  function pvStones(turn, i) {
    const b = turn && turn.best && turn.best[i];
    if (!b) return null;
    let color = turn.to_move === "W" ? WHITE : BLACK;
    const out = [];
    (b.pv && b.pv.length ? b.pv : [b.move]).forEach((m, k) => {
      const xy = parseVertex(m, st.record.h);
      if (xy) out.push({ x: xy[0], y: xy[1], color, n: k + 1 });
      color = color === BLACK ? WHITE : BLACK;
    });
    return out;
  }

  function draw() {
    const rec = st.record;
    const { position, last } = rec.positionAt(st.n);
    const mv = rec.moves[st.n - 1];
    let labels = null;
    const turn = currentTurn();
    const pvIndex = st.pvHover ?? st.pvPinned;
    const pv = pvIndex === null ? null : pvStones(turn, pvIndex);
    if (turn && turn.best && turn.best.length && !pv) {
      labels = turn.best.slice(0, 3).map((b, i) => {
        const xy = parseVertex(b.move, rec.h);
        return xy ? { x: xy[0], y: xy[1], text: String.fromCharCode(65 + i), cls: i === 0 ? "best" : "alt" } : null;
      }).filter(Boolean);
    }
    const ownership = st.showOwnership && turn && Array.isArray(turn.ownership) ? turn.ownership : null;
    board.update({ position, last, ko: null, dead: new Set(), owner: null, toPlay: null, interactive: false, coords: settings.coords,
      labels, pv, ownership });
    boardHost.dataset.pv = pv ? String(pvIndex) : "";
    slider.max = String(rec.moves.length);
    slider.value = String(st.n);
    const moveText = st.n === 0 ? "Start" : `Move ${st.n}${mv ? ` · ${mv.color === "black" ? "B" : "W"} ${mv.vertex === "pass" ? "pass" : mv.vertex}` : ""}`;
    counter.textContent = `${moveText} / ${rec.moves.length}`;
    counter.dataset.n = String(st.n);
    main.querySelector(".review").dataset.n = String(st.n);
    capsEl.textContent = `Captures: Black ${position.captures.black} · White ${position.captures.white}`;
    drawGraphCursor();
    drawTurnInfo(turn);
  }

  const onKey = (e) => {
    if (e.target.closest && e.target.closest("input, textarea, select")) return;
    const k = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 }[e.key];
    if (k) { e.preventDefault(); go(st.n + k); }
    else if (e.key === "Home") { e.preventDefault(); go(0); }
    else if (e.key === "End") { e.preventDefault(); go(Infinity); }
  };
  document.addEventListener("keydown", onKey);
  disposers.push(() => document.removeEventListener("keydown", onKey));

  // -- loading ----------------------------------------------------------------------------------
  async function loadGame() {
    try {
      const v = await api("GET", `/api/games/${id}`, undefined, { auth: false });
      const first = v.handicap >= 2 ? "white" : "black";
      let c = first;
      const moves = v.moves.map((m) => { const t = { color: c, vertex: m }; c = other(colorOf(c)) === BLACK ? "black" : "white"; return t; });
      const hs = handicapPoints(v.handicap, v.width, v.height).map(([x, y]) => vertex(x, y, v.height));
      st.record = new Record(v.width, v.height, { handicapStones: hs, moves });
      st.meta = v;
      const named = (p) => (p && p.name ? h("a.plink", { href: userHref(p.name) }, p.name) : playerName(p));
      clear(heading, named(v.players.black), " vs ", named(v.players.white));
      infoEl.textContent = `${v.width}×${v.height} · ${rulesName(v.rules)} · komi ${v.komi}${v.handicap ? ` · handicap ${v.handicap}` : ""} · game ${id}`;
      resultEl.textContent = v.phase === "finished" ? formatResult(v.result) : v.phase === "aborted" ? "Aborted" : "In progress";
      clear(actions,
        h("a.btn#sgf-download", { href: `/api/games/${id}/sgf`, download: `goapp-${id}.sgf` }, "Download SGF"),
        v.phase === "finished" || v.phase === "aborted" ? null : h("a.btn.primary", { href: `/game/${id}` }, "Watch live"));
      document.title = `Review: ${heading.textContent} · goapp`;
      go(Infinity);
      loadAnalysis();
    } catch (err) {
      clear(main, h("section.card.narrow", null, h("h1", null, err.status === 404 ? "No such game" : "Cannot load the game"), h("p", null, err.message)));
    }
  }

  function loadUploaded() {
    let data = null;
    try { data = JSON.parse(sessionStorage.getItem(SGF_KEY) || "null"); } catch { data = null; }
    if (!data) { navigate("/review", { replace: true }); return; }
    const info = data.info;
    st.record = new Record(info.width, info.height, { handicapStones: data.handicap_stones, moves: data.moves, setup: data.setup || [] });
    heading.textContent = `${info.black || "Black"} vs ${info.white || "White"}`;
    infoEl.textContent = [`${info.width}×${info.height}`, rulesName(info.rules_name || info.rules), `komi ${info.komi}`,
      info.handicap ? `handicap ${info.handicap}` : null, info.date, info.event].filter(Boolean).join(" · ");
    resultEl.textContent = data.result ? formatResult(data.result) : "";
    clear(actions, h("a.btn", { href: "/review" }, "Open another SGF"));
    if (data.warnings && data.warnings.length) add(actions, h("p.muted.small", null, `Notes: ${data.warnings.join("; ")}`));
    aiBox.hidden = true;
    document.title = `Review: ${heading.textContent} · goapp`;
    go(0);
  }

  // -- AI review --------------------------------------------------------------------------------
  let pollTimer = null;
  let graph = null;
  async function loadAnalysis() {
    let r;
    try { r = await api("GET", `/api/games/${id}/review`, undefined, { auth: false }); }
    catch (err) {
      if (err.status === 404 && err.code === "not_found") { aiBox.hidden = true; return; } // no review endpoint
      clear(aiBox, h("h2", null, "AI review"), h("p.muted.small", null, err.message));
      return;
    }
    renderAnalysis(r);
  }

  // Parts of the AI box that follow the current move (made by renderAnalysis).
  const ai = { verdict: null, best: null, moves: null, own: null, ownNote: null };

  function renderAnalysis(r) {
    st.analysis = r.status === "done" ? r : null;
    clearTimeout(pollTimer);
    clear(aiBox, h("h2", null, "AI review"));
    aiBox.dataset.status = r.status;
    if (r.status === "done" && r.turns && r.turns.length) {
      const losses = moveLosses(r.turns);
      st.losses = new Map(losses.map((l) => [l.n, l]));
      const bad = losses.filter((l) => l.severity);
      graph = drawGraph(r.turns, bad);
      ai.bestFor = null;
      ai.verdict = h("p.small.ai-verdict#ai-verdict", { "aria-live": "polite" });
      ai.best = h("ul.ai-best#ai-best", { "aria-label": "The engine's preferred moves" });
      ai.moves = h("ul.ai-moves#ai-moves", { "aria-label": "Mistakes" }, bad.length
        ? bad.map((l) => h(`li.${l.severity}`, { dataset: { n: l.n } },
          h("button", { type: "button", title: `Move ${l.n}: ${l.severity}, ${l.loss.toFixed(1)} points lost`, onclick: () => go(l.n) },
            h("span.sev", { "aria-hidden": "true" }), `${l.n}. ${l.color} ${l.vertex} −${l.loss.toFixed(1)}`)))
        : h("li.muted.small", null, "No mistakes of 2 points or more."));
      const last = r.turns[r.turns.length - 1];
      const hasOwnership = Array.isArray(last.ownership);
      ai.own = h("input#ai-ownership", { type: "checkbox", checked: st.showOwnership, disabled: !hasOwnership });
      ai.own.addEventListener("change", () => {
        st.showOwnership = ai.own.checked;
        if (st.showOwnership && st.n !== r.turns.length - 1) go(Infinity); // stored for the final position only
        else draw();
      });
      ai.ownNote = h("span.muted.small#ai-ownership-note");
      add(aiBox, graph.root,
        h("p.muted.small.legend", null, "Score lead for Black (above the line: Black ahead); click to jump.",
          h("span.key", null, h("span.dot.mistake", { "aria-hidden": "true" }), ` mistake (${MISTAKE}+ points)`),
          h("span.key", null, h("span.dot.blunder", { "aria-hidden": "true" }), ` blunder (${BLUNDER}+)`)),
        ai.verdict,
        h("h3", null, "Mistakes"), ai.moves,
        h("h3", null, "Engine suggestions"), ai.best,
        h("p.muted.small", null, "Letters on the board: the engine's preferred moves. Hover or click one to see how it would go on."),
        h("label.check", { for: "ai-ownership" }, ai.own, "Show territory (ownership)"), ai.ownNote);
      draw();
      return;
    }
    graph = null;
    if (r.status === "queued" || r.status === "running") {
      add(aiBox, h("p.muted", null, r.status === "queued" ? "Waiting for the engine…" : "The engine is reviewing this game…"));
      pollTimer = setTimeout(loadAnalysis, 1500);
      return;
    }
    if (r.status === "failed") add(aiBox, h("p.form-error", null, `The review failed: ${r.error || "unknown error"}`));
    if (st.meta && st.meta.phase === "finished") {
      if (session.user) {
        add(aiBox, h("button.btn#ai-request", { type: "button", onclick: async (e) => {
          e.target.disabled = true;
          try { renderAnalysis(await api("POST", `/api/games/${id}/review`)); }
          catch (err) { toast(err.code === "engine_unavailable" ? "This server has no AI engine." : err.message, "error"); e.target.disabled = false; }
        } }, "Ask the AI for a review"));
      } else add(aiBox, h("p.muted.small", null, "Log in to ask the AI for a review."));
    } else add(aiBox, h("p.muted.small", null, "The AI reviews finished games."));
  }

  function drawGraph(turns, bad) {
    const W = 300, H = 110, pad = 5;
    const n = turns.length - 1 || 1;
    const leads = turns.map((t) => (typeof t.score_lead === "number" ? t.score_lead : null));
    const maxAbs = Math.max(5, ...leads.filter((v) => v !== null).map((v) => Math.abs(v)));
    const xOf = (i) => pad + (i / n) * (W - 2 * pad);
    const yOf = (v) => H / 2 - (v / maxAbs) * (H / 2 - pad);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "graph", role: "img", "aria-label": "Score lead per move" });
    svgEl("rect", { x: 0, y: 0, width: W, height: H / 2, class: "graph-black" }, svg);
    svgEl("rect", { x: 0, y: H / 2, width: W, height: H / 2, class: "graph-white" }, svg);
    svgEl("line", { x1: 0, x2: W, y1: H / 2, y2: H / 2, class: "graph-axis" }, svg);
    let d = "";
    leads.forEach((v, i) => { if (v !== null) d += `${d ? "L" : "M"}${xOf(i).toFixed(1)} ${yOf(v).toFixed(1)}`; });
    svgEl("path", { d, class: "graph-line" }, svg);
    const wr = turns.map((t) => (typeof t.winrate === "number" ? t.winrate : null));
    let d2 = "";
    wr.forEach((v, i) => { if (v !== null) d2 += `${d2 ? "L" : "M"}${xOf(i).toFixed(1)} ${(H - pad - v * (H - 2 * pad)).toFixed(1)}`; });
    if (d2) svgEl("path", { d: d2, class: "graph-winrate" }, svg);
    const cursor = svgEl("line", { y1: 0, y2: H, class: "graph-cursor" }, svg);
    // Mistakes: a dot where the lead landed after the move, bigger for a blunder.
    for (const l of bad) {
      const m = svgEl("circle", { cx: xOf(l.n).toFixed(1), cy: yOf(leads[l.n]).toFixed(1), r: l.severity === "blunder" ? 4.2 : 2.8,
        class: `graph-mark ${l.severity}`, "data-n": String(l.n) }, svg);
      svgEl("title", {}, m).textContent = `Move ${l.n} (${l.color} ${l.vertex}): ${l.severity}, −${l.loss.toFixed(1)}`;
    }
    svg.addEventListener("click", (e) => {
      const r = svg.getBoundingClientRect();
      const x = ((e.clientX - r.left) / r.width) * W;
      go(Math.round(((x - pad) / (W - 2 * pad)) * n));
    });
    const label = h("p.small#ai-lead");
    const root = h("div.graph-box", null, svg, label);
    return { root, cursor, xOf, leads, label, turns };
  }

  function drawGraphCursor() {
    if (!graph) return;
    const x = graph.xOf(Math.min(st.n, graph.turns.length - 1)).toFixed(1);
    graph.cursor.setAttribute("x1", x);
    graph.cursor.setAttribute("x2", x);
    const t = graph.turns[st.n];
    if (t && typeof t.score_lead === "number") {
      const lead = t.score_lead;
      graph.label.textContent = `${lead >= 0 ? "Black" : "White"} leads by ${Math.abs(lead).toFixed(1)}` +
        (typeof t.winrate === "number" ? ` · Black win ${(t.winrate * 100).toFixed(0)}%` : "");
    } else graph.label.textContent = "";
  }

  // The verdict on the move that led here, the suggestions for this position, the mistakes
  // list's current entry, and the ownership note.
  function drawTurnInfo(turn) {
    if (!graph || !ai.verdict) return;
    const l = st.losses.get(st.n);
    ai.verdict.className = `small ai-verdict ${l && l.severity ? l.severity : ""}`;
    ai.verdict.textContent = !l ? "" : l.severity
      ? `Move ${l.n} (${l.color} ${l.vertex}): ${l.severity === "blunder" ? "a blunder" : "a mistake"}, ${l.loss.toFixed(1)} points lost.`
      : `Move ${l.n} (${l.color} ${l.vertex}): ${l.loss > 0 ? `${l.loss.toFixed(1)} points lost` : "fine"}.`;
    for (const li of ai.moves.children) li.classList.toggle("current", li.dataset.n === String(st.n));
    if (ai.bestFor === st.n) {
      for (const [i, li] of [...ai.best.children].entries()) li.firstChild?.setAttribute("aria-pressed", String(st.pvPinned === i));
    } else {
      ai.bestFor = st.n;
      const best = turn && turn.best ? turn.best.slice(0, 3) : [];
      clear(ai.best, best.length ? best.map((b, i) => h("li", null,
      h("button", { type: "button", "aria-pressed": String(st.pvPinned === i), dataset: { move: b.move },
        onmouseenter: () => { st.pvHover = i; draw(); }, onmouseleave: () => { st.pvHover = null; draw(); },
        onfocus: () => { st.pvHover = i; draw(); }, onblur: () => { st.pvHover = null; draw(); },
        onclick: () => { st.pvPinned = st.pvPinned === i ? null : i; draw(); } },
      h("span.letter", null, String.fromCharCode(65 + i)), ` ${b.move}`,
      typeof b.score_lead === "number" ? h("span.muted", null, ` ${b.score_lead >= 0 ? "B" : "W"}+${Math.abs(b.score_lead).toFixed(1)}`) : null)))
      : h("li.muted.small", null, "None here (the game is over)."));
    }
    const lastTurn = st.analysis.turns.length - 1;
    ai.ownNote.textContent = !ai.own.disabled && st.showOwnership && st.n !== lastTurn
      ? " The engine's ownership is stored for the final position only."
      : !ai.own.disabled ? " (final position)" : " Not in this review.";
  }

  if (id === null) loadUploaded(); else loadGame();
  return () => { for (const d of disposers) d(); clearTimeout(pollTimer); };
}

function uploadView(main) {
  const error = h("p.form-error#sgf-error", { role: "alert" });
  const file = h("input#sgf-file", { type: "file", accept: ".sgf,application/x-go-sgf,text/plain", "aria-label": "SGF file" });
  const text = h("textarea#sgf-text", { rows: "6", placeholder: "…or paste an SGF here: (;GM[1]FF[4]SZ[19];B[pd];W[dp]…)", "aria-label": "SGF text" });
  const submit = h("button.btn.primary#sgf-submit", { type: "submit" }, "Review");
  const drop = h("label.dropzone", { for: "sgf-file" }, h("strong", null, "Choose an SGF file"), h("span.muted", null, " or drop it here"), file);
  async function send(body) {
    error.textContent = "";
    submit.disabled = true;
    try {
      const r = await api("POST", "/api/sgf", undefined, { raw: body, contentType: "application/x-go-sgf", auth: false });
      sessionStorage.setItem(SGF_KEY, JSON.stringify(r));
      navigate("/review/sgf");
    } catch (err) {
      error.textContent = err.code === "bad_sgf" && err.details.line ? `${err.message} (line ${err.details.line}, column ${err.details.column})` : err.message;
    } finally { submit.disabled = false; }
  }
  file.addEventListener("change", async () => { if (file.files[0]) send(await file.files[0].text()); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) send(await f.text());
  });
  const form = h("form.stack", { onsubmit: (e) => { e.preventDefault(); if (text.value.trim()) send(text.value); } }, drop, text, error, submit);
  main.append(h("section.card.narrow", null, h("h1", null, "Review an SGF"),
    h("p.muted", null, "Open a game record to step through it. To review a game played here, open it from the lobby's recent games."),
    form));
  return null;
}
