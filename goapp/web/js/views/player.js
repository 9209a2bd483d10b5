// A player's page (/user/NAME): ratings per pool (overall, 19, 13, 9) with rank and the
// provisional mark, a rating graph per pool drawn from the history endpoint, the games in
// progress, and the finished games filtered by result and board size (server-side:
// GET /api/games?user=NAME&status=finished&result=win|loss|draw&size=N).

import { api, session } from "../api.js";
import { socket } from "../ws.js";
import { h, clear, ago, rulesName, describeTimeControl } from "../ui.js";
import { POOLS, nameTag, poolRating, rankBadge, poolOf, forgetProfiles, profile } from "../players.js";
import { onYourMove, whoseTurn } from "../notify.js";

const SVG = "http://www.w3.org/2000/svg";
const POOL_NAMES = { overall: "Overall", 19: "19×19", 13: "13×13", 9: "9×9" };

function svgEl(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of children) if (c) e.append(c);
  return e;
}

/**
 * The rating graph of one pool: the rating after each rated game (a line with a dot per
 * game, its RD as a band around it), the first point being the rating before the first
 * game. Dots link to the game's review; their title says date, rating and rank.
 */
export function ratingGraph(points) {
  const W = 640, H = 220, L = 46, R = 12, T = 12, B = 26;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "rating-graph", role: "img", "data-points": points.length });
  if (!points.length) return svg;
  const series = [{ rating: points[0].rating_before, rd: null, at: null }, ...points];
  const lo = Math.min(...series.map((p) => p.rating - (p.rd || 0)));
  const hi = Math.max(...series.map((p) => p.rating + (p.rd || 0)));
  const pad = Math.max(20, (hi - lo) * 0.08);
  const y0 = Math.floor((lo - pad) / 50) * 50, y1 = Math.ceil((hi + pad) / 50) * 50;
  const x = (i) => L + (series.length === 1 ? 0 : (i * (W - L - R)) / (series.length - 1));
  const y = (r) => T + ((y1 - r) * (H - T - B)) / (y1 - y0);
  svg.setAttribute("aria-label", `Rating after each of ${points.length} rated games, from ${Math.round(series[0].rating)} to ${Math.round(points[points.length - 1].rating)}`);
  // Horizontal grid lines with labels.
  const step = Math.max(50, Math.ceil((y1 - y0) / 4 / 50) * 50);
  for (let r = y0; r <= y1; r += step) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(r), y2: y(r), class: "rg-grid" }),
      svgEl("text", { x: L - 6, y: y(r) + 4, class: "rg-label", "text-anchor": "end" }, document.createTextNode(String(r))));
  }
  // The RD band (after each game).
  const band = points.map((p, i) => [x(i + 1), y(p.rating + p.rd)])
    .concat(points.map((p, i) => [x(i + 1), y(p.rating - p.rd)]).reverse());
  if (points.length > 1) svg.append(svgEl("path", { d: "M" + band.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join("L") + "Z", class: "rg-band" }));
  svg.append(svgEl("path", { d: "M" + series.map((p, i) => `${x(i).toFixed(1)},${y(p.rating).toFixed(1)}`).join("L"), class: "rg-line" }));
  svg.append(svgEl("circle", { cx: x(0), cy: y(series[0].rating), r: 3, class: "rg-start" },
    svgEl("title", {}, document.createTextNode(`Before the first game: ${Math.round(series[0].rating)}`))));
  points.forEach((p, i) => {
    const up = p.rating >= p.rating_before;
    const dot = svgEl("circle", { cx: x(i + 1), cy: y(p.rating), r: 4.5, class: `rg-point ${up ? "up" : "down"}`, "data-game-id": p.game_id },
      svgEl("title", {}, document.createTextNode(
        `${new Date(p.at).toLocaleDateString()} · game ${p.game_id}: ${Math.round(p.rating)} (${up ? "+" : ""}${Math.round(p.rating - p.rating_before)}) · ${p.rank}`)));
    const link = svgEl("a", { href: `/review/${p.game_id}` }, dot);
    svg.append(link);
  });
  svg.append(svgEl("text", { x: L, y: H - 8, class: "rg-label" }, document.createTextNode("rated games →")));
  return svg;
}

function outcomeOf(g, userId) {
  const r = (g.result || "").toUpperCase();
  if (r === "0") return "draw";
  const winner = r.startsWith("B+") ? g.black : r.startsWith("W+") ? g.white : null;
  if (!winner) return null;
  return winner.id === userId ? "win" : "loss";
}

function gameRow(g, { userId = null, action = null, pool = null } = {}) {
  const out = userId !== null ? outcomeOf(g, userId) : null;
  const mark = out ? h(`span.outcome.${out}`, { title: { win: "won", loss: "lost", draw: "jigo" }[out] }, { win: "W", loss: "L", draw: "D" }[out]) : null;
  const p = pool || poolOf(g.width, g.height);
  const turn = whoseTurn(g);
  return h("li.game-row", { dataset: { gameId: g.id, outcome: out || "" } },
    mark,
    h("span.ch-main", null,
      h("span.players", null,
        h("span.stone-icon.black", { role: "img", "aria-label": "black" }), nameTag(g.black, { pool: p }),
        h("span.vs", null, "vs"),
        h("span.stone-icon.white", { role: "img", "aria-label": "white" }), nameTag(g.white, { pool: p })),
      h("span.meta", null, `${g.width}×${g.height} · ${rulesName(g.rules)}${g.handicap ? ` · H${g.handicap}` : ""} · ${describeTimeControl(g.time_control)}`,
        g.finished_at ? ` · ${ago(g.finished_at)}` : turn && turn.meta ? ` · ${turn.meta}` : "")),
    turn && turn.mine ? h("span.your-move-tag", null, "Your move") : null,
    g.result ? h("span.result", null, g.result) : null,
    action);
}

export function playerView(main, [rawName]) {
  const name = decodeURIComponent(rawName);
  const disposers = [];
  let user = null;
  let pool = null;
  const header = h("section.card.player-head#player-head", null, h("h1", null, name), h("p.muted", null, "Loading…"));
  const ratingsBox = h("div.ratings#ratings");
  const poolTabs = h("div.pool-tabs#graph-pools", { role: "tablist", "aria-label": "Rating pool" });
  const graphBox = h("div.graph-box#rating-graph");
  const activeList = h("ul.list#player-active", { "aria-label": "Games in progress" });
  const finishedList = h("ul.list#player-finished", { "aria-label": "Finished games" });
  const resultSel = h("select#filter-result", { "aria-label": "Result" },
    h("option", { value: "" }, "All results"), h("option", { value: "win" }, "Won"), h("option", { value: "loss" }, "Lost"), h("option", { value: "draw" }, "Jigo"));
  const sizeSel = h("select#filter-size", { "aria-label": "Board size" },
    h("option", { value: "" }, "All sizes"), [19, 13, 9].map((n) => h("option", { value: String(n) }, `${n}×${n}`)));
  resultSel.addEventListener("change", loadFinished);
  sizeSel.addEventListener("change", loadFinished);

  main.append(h("div.player-page", null,
    header,
    h("div.player-grid", null,
      h("section.card", { "aria-labelledby": "ratings-title" }, h("h2#ratings-title", null, "Ratings"), ratingsBox,
        h("h2.graph-title", null, "Rating history"), poolTabs, graphBox),
      h("div.col", null,
        h("section.card", { "aria-labelledby": "pa-title" }, h("h2#pa-title", null, "Current games"), activeList),
        h("section.card", { "aria-labelledby": "pf-title" },
          h("div.row.spread", null, h("h2#pf-title", null, "Finished games"), h("div.row.filters", null, resultSel, sizeSel)),
          finishedList)))));

  function renderHead() {
    const me = session.user && session.user.id === user.id;
    const overall = poolRating(user, "overall");
    clear(header,
      h("div.row.spread", null,
        h("h1", null, user.name, " ", rankBadge(overall)),
        session.user && !me ? h("a.btn.primary#challenge-player", { href: `/?opponent=${encodeURIComponent(user.name)}` }, "Challenge") : null),
      h("p.muted", null, `${user.games_count} rated game${user.games_count === 1 ? "" : "s"} · joined ${new Date(user.created_at).toLocaleDateString()}`));
    document.title = `${user.name} · goapp`;
  }

  function renderRatings() {
    const rows = POOLS.filter((p) => user.ratings && user.ratings[p]);
    if (!rows.length) {
      const r = poolRating(user);
      clear(ratingsBox, h("p.muted#no-ratings", null, `No rated games yet: a new player starts at ${Math.round(r.rating)} (${r.rank}).`));
      return;
    }
    clear(ratingsBox, h("table.table", null,
      h("thead", null, h("tr", null, h("th", null, "Pool"), h("th", null, "Rank"), h("th.num", null, "Rating"), h("th.num", null, "Games"))),
      h("tbody", null, rows.map((p) => {
        const r = user.ratings[p];
        return h("tr", { dataset: { pool: p } },
          h("th", { scope: "row" }, POOL_NAMES[p]), h("td", null, rankBadge(r)),
          h("td.num", null, `${Math.round(r.rating)}`, h("span.muted", null, ` ± ${Math.round(r.rd)}`)), h("td.num", null, String(r.games)));
      }))));
  }

  async function showPool(p) {
    pool = p;
    for (const b of poolTabs.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.pool === p));
    graphBox.dataset.pool = p;
    try {
      const r = await api("GET", `/api/users/${encodeURIComponent(user.name)}/ratings?pool=${p}`, undefined, { auth: false });
      if (pool !== p) return;
      clear(graphBox, r.points.length ? ratingGraph(r.points) : h("p.muted", null, "No rated games in this pool yet."));
    } catch (err) { clear(graphBox, h("p.form-error", null, err.message)); }
  }

  function renderPools() {
    const pools = POOLS.filter((p) => user.ratings && user.ratings[p]);
    clear(poolTabs, pools.map((p) => h("button.btn.small.ghost", { type: "button", role: "tab", dataset: { pool: p }, onclick: () => showPool(p) }, POOL_NAMES[p])));
    poolTabs.hidden = pools.length < 2;
    if (!pools.length) { clear(graphBox, h("p.muted", null, "The graph appears after the first rated game.")); return; }
    showPool(pools.includes(pool) ? pool : pools[0]);
  }

  async function loadActive() {
    try {
      const r = await api("GET", `/api/games?user=${encodeURIComponent(name)}&status=active`, undefined, { auth: false });
      if (!r.games.length) { clear(activeList, h("li.empty", null, "No games in progress.")); return; }
      const mine = (g) => session.user && [g.black?.id, g.white?.id].includes(session.user.id);
      clear(activeList, r.games.map((g) => gameRow(g, { action: h(`a.btn.small${mine(g) ? ".primary" : ""}`, { href: `/game/${g.id}` }, mine(g) ? "Play" : "Watch") })));
    } catch { /* offline */ }
  }

  let finishedSeq = 0;
  async function loadFinished() {
    const n = ++finishedSeq;
    const q = new URLSearchParams({ user: name, status: "finished", limit: "50" });
    if (resultSel.value) q.set("result", resultSel.value);
    if (sizeSel.value) q.set("size", sizeSel.value);
    finishedList.setAttribute("aria-busy", "true");
    try {
      const r = await api("GET", `/api/games?${q}`, undefined, { auth: false });
      if (n !== finishedSeq) return;
      finishedList.dataset.filter = `${resultSel.value}/${sizeSel.value}`;
      if (!r.games.length) { clear(finishedList, h("li.empty", null, resultSel.value || sizeSel.value ? "No games match." : "No finished games yet.")); return; }
      clear(finishedList, r.games.map((g) => gameRow(g, { userId: user.id, action: h("a.btn.small.ghost", { href: `/review/${g.id}` }, "Review") })));
    } catch { /* offline */ } finally { if (n === finishedSeq) finishedList.removeAttribute("aria-busy"); }
  }

  async function load({ fresh = false } = {}) {
    try {
      user = await profile(name, { fresh });
    } catch (err) {
      clear(main, h("section.card.narrow", null, h("h1", null, err.status === 404 ? "No such player" : "Cannot load this player"),
        h("p", null, err.status === 404 ? `Nobody is called ${name}.` : err.message), h("p", null, h("a", { href: "/" }, "Back to the lobby"))));
      return;
    }
    main.querySelector(".player-page").dataset.user = user.name;
    renderHead();
    renderRatings();
    renderPools();
    loadActive();
    loadFinished();
  }

  load();
  // A game of this player ended (their rating moved) or started: read everything again.
  disposers.push(socket.subscribeLobby((m) => {
    if (m.type === "lobby" && m.kind === "challenge_accepted" && user && [m.payload?.black_id, m.payload?.white_id].includes(user.id)) loadActive();
  }));
  disposers.push(onYourMove(() => loadActive()));
  const timer = setInterval(() => { if (user && document.visibilityState === "visible") { forgetProfiles(); load({ fresh: true }); } }, 60_000);
  return () => { for (const d of disposers) d(); clearInterval(timer); };
}
