// A game, played or watched live: board, players and clocks, pass/undo/resign, the scoring
// phase (click chains to mark them dead, accept or resume), the result, and the game chat.
//
// The page first reads the game over HTTP (it shows at once, with the players' names), then
// follows it over the socket. Every event has a seq; the view applies an event only when its
// seq is the next one, so replays after a reconnect never apply anything twice.

import { api, session } from "../api.js";
import { socket } from "../ws.js";
import { navigate } from "../nav.js";
import { BoardView } from "../board.js";
import { chatPanel } from "../chat.js";
import { clockFace } from "../clock.js";
import {
  BLACK, WHITE, EMPTY, Position, Record, colorOf, colorName, other, parseVertex, vertex,
  estimateScore, scoringOf, handicapBonus, formatResult, scoreText, handicapPoints,
} from "../go.js";
import { h, clear, add, toast, confirmDialog, settings, onSettings, confirmMoves, playStoneSound, rulesName, playerName, fmtClock } from "../ui.js";
import { nameTag, poolOf, forgetProfiles, profile, poolRating } from "../players.js";
import { seen } from "../notify.js";

const ERRORS = {
  occupied: "That point is occupied.",
  suicide: "Suicide is not allowed.",
  ko: "Ko: you cannot retake at once. Play elsewhere first.",
  superko: "That would repeat an earlier position (superko).",
};

export function gameView(main, { id }) {
  const disposers = [];
  const g = {
    id, loaded: false, seq: 0, phase: "loading", w: 19, h: 19, position: null, turns: [], last: null,
    toMove: "black", dead: new Set(), accepted: [], undoBy: null, result: null, clock: null, players: {},
    rules: "japanese", komi: 6.5, handicap: 0, blackId: null, whiteId: null, watchers: 0, finish: null,
    periodFull: 0, busy: false, pending: null, away: {}, scoringEndsAt: null,
  };

  // -- layout -----------------------------------------------------------------------------------
  const boardHost = h("div.board-host#board");
  const board = new BoardView(boardHost, { onPlay: (x, y, how) => onBoardClick(x, y, how), label: "Game board" });
  const cards = { black: playerCard("black"), white: playerCard("white") };
  const status = h("div.status#status", { role: "status", "aria-live": "polite" });
  const banner = h("div.banner#banner", { hidden: true });
  const controls = h("div.controls#controls");
  const info = h("p.game-info.muted#game-info");
  const watchers = h("span.watchers#watchers");
  const chat = chatPanel(`game:${id}`, { title: "Game chat" });
  main.append(h("div.game", { dataset: { gameId: id } },
    h("div.board-col", null, boardHost),
    h("aside.side", { "aria-label": "Game" },
      h("div.players", null, cards.black.root, cards.white.root),
      status, banner, controls,
      h("div.row.small.spread", null, info, watchers),
      chat)));

  function playerCard(color) {
    const name = h("span.pname");
    const rating = h("span.rating");
    const caps = h("span.caps", { "aria-label": "captures" });
    const clk = h("span.clock", { "aria-label": `${color} clock` });
    const sub = h("span.clock-sub");
    const mark = h("span.accepted-mark", { hidden: true }, "✓ accepted");
    const root = h(`div.pcard.${color}#card-${color}`, null,
      h(`span.stone-icon.${color}`, { role: "img", "aria-label": color }),
      h("div.pinfo", null, h("div.pline", null, name), h("div.pline.small.sub", null, rating, mark, caps)),
      h("div.pclock", null, clk, sub));
    return { root, name, rating, caps, clk, sub, mark };
  }

  // -- who am I ---------------------------------------------------------------------------------
  const myColor = () => {
    if (!session.user) return null;
    if (g.blackId === session.user.id) return "black";
    if (g.whiteId === session.user.id) return "white";
    return null;
  };

  // -- state ------------------------------------------------------------------------------------
  function firstColor() { return g.handicap >= 2 ? "white" : "black"; }

  function applyView(v) {
    g.loaded = true;
    g.seq = v.seq;
    g.phase = v.phase;
    g.w = v.width;
    g.h = v.height;
    g.rules = v.rules;
    g.komi = v.komi;
    g.handicap = v.handicap;
    g.blackId = v.black_id;
    g.whiteId = v.white_id;
    g.toMove = v.to_move;
    g.position = Position.fromRows(v.board);
    g.position.captures = { ...v.captures };
    g.position.ko = parseVertex(v.ko, v.height);
    let c = firstColor();
    g.turns = v.moves.map((mv) => { const t = { color: c, vertex: mv }; c = other(colorOf(c)) === BLACK ? "black" : "white"; return t; });
    const lastTurn = g.turns[g.turns.length - 1];
    g.last = lastTurn ? parseVertex(lastTurn.vertex, g.h) : null;
    g.dead = new Set(v.dead.map((vx) => parseVertex(vx, g.h)).filter(Boolean).map(([x, y]) => `${x},${y}`));
    g.accepted = v.accepted || [];
    g.undoBy = v.undo_requested_by;
    g.result = v.result;
    g.away = { ...(v.away || {}) };
    g.scoringEndsAt = v.scoring_ends_at_ms ?? null;
    setClock(v.clock);
    render();
  }

  function setClock(clock) {
    if (!clock) return;
    g.clock = clock;
    for (const c of ["black", "white"]) if (clock[c]) g.periodFull = Math.max(g.periodFull, clock[c].period_ms || 0);
  }

  function replayTurns() {
    const rec = new Record(g.w, g.h, { handicapStones: handicapPoints(g.handicap, g.w, g.h).map(([x, y]) => vertex(x, y, g.h)), moves: g.turns });
    const { position, last } = rec.positionAt(g.turns.length);
    g.position = position;
    g.last = last;
  }

  function applyEvent(e) {
    if (e.seq <= g.seq) return;
    if (e.seq !== g.seq + 1) { reload(); return; } // a gap (should not happen): read the whole state
    g.seq = e.seq;
    const p = e.payload || {};
    if (p.clock) setClock(p.clock);
    const name = (c) => (c === "black" ? "Black" : "White");
    switch (e.kind) {
      case "move": {
        if (g.position.play(p.x, p.y, colorOf(p.color)) === null) { reload(); return; } // out of step: re-read
        g.turns.push({ color: p.color, vertex: p.vertex });
        g.last = [p.x, p.y];
        g.toMove = p.color === "black" ? "white" : "black";
        g.undoBy = null;
        g.pending = null;
        playStoneSound();
        break;
      }
      case "pass":
        g.position.pass();
        g.turns.push({ color: p.color, vertex: "pass" });
        g.last = null;
        g.toMove = p.color === "black" ? "white" : "black";
        g.undoBy = null;
        g.pending = null;
        if (p.color !== myColor()) toast(`${name(p.color)} passed`);
        break;
      case "scoring_started":
        g.scoringEndsAt = p.ends_at_ms ?? null;
        g.phase = "scoring";
        g.dead = toKeys(p.dead || []);
        g.accepted = [];
        break;
      case "dead_stones_marked":
        g.dead = toKeys(p.marking || []);
        g.accepted = [];
        break;
      case "score_accepted":
        if (!g.accepted.includes(p.color)) g.accepted = [...g.accepted, p.color];
        if (p.color !== myColor()) toast(`${name(p.color)} accepted the score (${p.result})`);
        break;
      case "play_resumed":
        g.phase = "playing";
        g.dead = new Set();
        g.accepted = [];
        g.toMove = p.to_move;
        toast(`${name(p.color)} resumed play`);
        break;
      case "undo_requested":
        g.undoBy = p.color;
        break;
      case "undo_accepted":
        g.turns.splice(g.turns.length - (p.undone || []).length, (p.undone || []).length);
        replayTurns();
        g.toMove = p.to_move;
        g.undoBy = null;
        toast("The move was taken back");
        break;
      case "undo_declined":
        g.undoBy = null;
        if (p.color !== myColor()) toast("Undo declined");
        break;
      case "resign":
        toast(`${name(p.color)} resigned`);
        break;
      case "timeout":
        toast(`${name(p.color)} ran out of time`);
        break;
      case "player_left":
        g.away = { ...g.away, [p.color]: p.claim_at_ms };
        break;
      case "player_returned": {
        const { [p.color]: _gone, ...rest } = g.away;
        g.away = rest;
        if (p.color !== myColor()) toast(`${name(p.color)} is back`);
        break;
      }
      case "aborted":
        g.phase = "aborted";
        break;
      case "game_finished":
        g.phase = "finished";
        g.away = {};
        g.scoringEndsAt = null;
        g.result = p.result;
        g.finish = p;
        if (p.dead) g.dead = toKeys(p.dead);
        if (g.clock) g.clock = { ...g.clock, state: "stopped" };
        break;
      default:
        break;
    }
    render();
  }

  const toKeys = (vs) => new Set(vs.map((vx) => parseVertex(vx, g.h)).filter(Boolean).map(([x, y]) => `${x},${y}`));

  async function reload() {
    try {
      const v = await api("GET", `/api/games/${id}`, undefined, { auth: false });
      g.players = v.players || g.players;
      if (v.phase === "finished" && !g.finish) {
        // The view has the result but not how it was reached (score breakdown, reason).
        try {
          const r = await api("GET", `/api/games/${id}/events?since=${Math.max(0, v.seq - 2)}`, undefined, { auth: false });
          const fin = r.events.find((e) => e.kind === "game_finished");
          if (fin) g.finish = fin;
        } catch { /* the result alone is enough */ }
      }
      if (v.seq >= g.seq) applyView(v);
    } catch (err) {
      if (err.status === 404) { clear(main, h("section.card.narrow", null, h("h1", null, "No such game"), h("p", null, h("a", { href: "/" }, "Back to the lobby")))); }
      else toast(err.message, "error");
    }
  }

  // -- acting -----------------------------------------------------------------------------------
  async function act(action, { quiet = false } = {}) {
    try {
      await socket.action(id, action);
      return true;
    } catch (err) {
      const reason = err.details && err.details.reason;
      if (!quiet) toast(ERRORS[reason] || err.message, "error");
      return false;
    }
  }

  async function onBoardClick(x, y, how = {}) {
    const me = myColor();
    if (!me || !g.position) return;
    if (g.phase === "scoring") {
      if (g.position.at(x, y) === EMPTY) return;
      await act({ type: "mark_dead", vertex: vertex(x, y, g.h) });
      return;
    }
    if (g.phase !== "playing" || g.toMove !== me || g.busy) return;
    if (g.position.at(x, y) !== EMPTY) return;
    if (!g.position.looksLegal(x, y, colorOf(me))) {
      toast(g.position.ko && g.position.ko[0] === x && g.position.ko[1] === y ? ERRORS.ko : ERRORS.suicide, "error");
      return;
    }
    const needConfirm = !how.keyboard && (how.touch ? settings.confirmMove !== "off" && confirmMoves() : settings.confirmMove === "on");
    if (needConfirm && !(g.pending && g.pending[0] === x && g.pending[1] === y)) {
      g.pending = [x, y];
      render();
      return;
    }
    await playAt(x, y);
  }

  async function playAt(x, y) {
    g.pending = [x, y];
    g.busy = true;
    render();
    const ok = await act({ type: "move", vertex: vertex(x, y, g.h) });
    g.busy = false;
    if (!ok) g.pending = null;
    render();
  }

  // -- rendering --------------------------------------------------------------------------------
  function render() {
    if (!g.loaded) return;
    const me = myColor();
    const playing = g.phase === "playing";
    const scoring = g.phase === "scoring";
    const over = g.phase === "finished" || g.phase === "aborted";
    document.title = `${playerName(g.players.black)} vs ${playerName(g.players.white)} · goapp`;
    main.querySelector(".game").dataset.phase = g.phase;
    main.querySelector(".game").dataset.moves = String(g.turns.length);
    main.querySelector(".game").dataset.seq = String(g.seq);

    let owner = null, est = null;
    if (scoring || (g.phase === "finished" && g.finish && g.finish.reason === "score")) {
      est = estimateScore(g.position, g.dead, { scoring: scoringOf(g.rules), komi: g.komi, handicapBonus: handicapBonus(g.rules, g.handicap) });
      owner = est.owner;
    }
    board.update({
      position: g.position, last: g.last, ko: playing ? g.position.ko : null, dead: g.dead, owner,
      toPlay: me && playing && g.toMove === me ? colorOf(me) : null,
      interactive: !!me && ((playing && g.toMove === me && !g.busy) || scoring),
      markMode: !!me && scoring, pending: playing ? g.pending : null, coords: settings.coords,
    });
    boardHost.dataset.toMove = g.toMove;

    for (const c of ["black", "white"]) {
      const card = cards[c], p = g.players[c];
      // The name links to the player's page, with the rank in this board's pool.
      const key = `${playerName(p)}|${me === c}|${g.w}x${g.h}|${g.ranksVersion || 0}`;
      if (card.key !== key) {
        card.key = key;
        clear(card.name, nameTag(p, { you: me === c, pool: poolOf(g.w, g.h) }));
        // The rating of this board's pool (the list's rating is the overall one).
        if (p && p.name) profile(p.name).then((u) => { card.poolRating = Math.round(poolRating(u, poolOf(g.w, g.h)).rating); render(); }).catch(() => {});
      }
      const caps = g.position.captures[c] || 0;
      card.rating.textContent = card.poolRating ? `${card.poolRating}` : p && p.rating ? `${Math.round(p.rating)}` : p && p.bot ? "computer" : "";
      card.caps.textContent = String(caps);
      card.caps.title = `${caps} stone${caps === 1 ? "" : "s"} captured by ${c}`;
      card.root.classList.toggle("to-move", playing && g.toMove === c);
      card.mark.hidden = !(scoring && g.accepted.includes(c));
    }
    tickClocks();

    // status line
    const moveNo = g.turns.length;
    let text;
    if (g.phase === "finished") text = "Game over";
    else if (g.phase === "aborted") text = "The game was aborted";
    else if (scoring) text = "Counting: mark dead stones, then accept";
    else if (me && g.toMove !== me && botToMove()) text = botWaitText();
    else if (me) text = g.toMove === me ? (g.pending && !g.busy ? "Tap again or confirm to play" : "Your move") : "Waiting for your opponent…";
    else text = `${g.toMove === "black" ? "Black" : "White"} to play`;
    clear(status, h("span.status-text", null, text), h("span.move-no", null, moveNo ? `Move ${moveNo}` : "No moves yet"));
    status.dataset.phase = g.phase;

    // banners: undo request, scoring, result
    clear(banner);
    banner.hidden = true;
    if (playing && g.undoBy && me && g.undoBy !== me) {
      banner.hidden = false;
      add(banner, h("p", null, `${g.undoBy === "black" ? "Black" : "White"} asks to take back their last move.`),
        h("div.row", null,
          h("button.btn.primary#undo-accept", { type: "button", onclick: () => act({ type: "undo_accept" }) }, "Allow"),
          h("button.btn#undo-decline", { type: "button", onclick: () => act({ type: "undo_decline" }) }, "Decline")));
    } else if (playing && g.undoBy && g.undoBy === me) {
      banner.hidden = false;
      add(banner, h("p", null, "Undo requested: waiting for your opponent."));
    }
    // A player's connection is gone: a countdown, then the opponent may claim the win.
    const awayColor = playing || scoring ? ["black", "white"].find((c) => g.away[c] != null) : null;
    banner.classList.toggle("abandon", !!awayColor);
    if (awayColor) {
      banner.hidden = false;
      const who = awayColor === "black" ? "Black" : "White";
      const mine = me && me !== awayColor;
      const canClaim = socket.now() >= g.away[awayColor];
      // Before two moves, a claim annuls the game (the server aborts it) instead of winning it.
      const early = g.turns.length < 2;
      const what = early ? "call the game off" : "claim the win";
      add(banner, h("p#abandon", { dataset: { color: awayColor, claimable: String(canClaim) } },
        mine ? "Your opponent disconnected. " : `${who} disconnected. `,
        canClaim
          ? (mine ? `You may ${what}.` : `The opponent may ${what}.`)
          : h("span", null, mine ? `You may ${what} in ` : `The opponent may ${what} in `, h("span.countdown#abandon-countdown", null, fmtClock(g.away[awayColor] - socket.now())), ".")),
        mine && canClaim ? h("div.row", null, h("button.btn.primary#claim-victory", { type: "button", onclick: async () => {
          const question = early ? "Call the game off? Your opponent left before it began; it will not count." : "Claim the win? Your opponent has left the game.";
          if (await confirmDialog(question, { yes: early ? "Call it off" : "Claim victory" })) act({ type: "claim_victory" });
        } }, early ? "Call the game off" : "Claim victory")) : null);
    }
    if (scoring) {
      banner.hidden = false;
      banner.classList.add("scoring");
      const acc = g.accepted.length ? ` · accepted by ${g.accepted.join(" and ")}` : "";
      add(banner, 
        h("p.score-line#score", null, h("strong", null, scoreText(est.margin)),
          h("span.muted", null, ` · Black ${est.black} – White ${est.white} (${scoringOf(g.rules)} scoring, estimate)${acc}`)),
        me ? h("p.muted.small", null, "Click a group to mark it dead or alive. When you agree, accept. To dispute, resume play.") : null,
        g.scoringEndsAt ? h("p.muted.small#scoring-ends", null, "Counting ends by itself in ", h("span.countdown", null, fmtClock(g.scoringEndsAt - socket.now())), " with this marking.") : null);
    } else banner.classList.remove("scoring");
    if (over) {
      banner.hidden = false;
      banner.classList.add("result");
      const score = g.finish && g.finish.score;
      add(banner, h("p.result-line#result", null, g.phase === "aborted" ? "Game aborted" : formatResult(g.result)),
        score && typeof score.black === "number" ? h("p.muted.small", null, `Black ${score.black} – White ${score.white}`) : null,
        g.ratingChange ? h("p.small#rating-change", null, g.ratingChange.map((r, i) => {
          const d = Math.round(r.after - r.before);
          return [i ? " · " : "", h("strong", null, r.name), ` ${Math.round(r.after)} `,
            h(`span.delta.${d >= 0 ? "up" : "down"}`, null, `(${d >= 0 ? "+" : "−"}${Math.abs(d)})`), ` ${r.rank}`];
        })) : null);
      if (g.phase === "finished" && !g.ratingAsked) { g.ratingAsked = true; ratingChange(); }
    } else banner.classList.remove("result");

    // controls
    clear(controls);
    if (me && playing) {
      const myTurn = g.toMove === me;
      const n = g.turns.length;
      const lastMine = n && g.turns[n - 1].color === me;
      // A bot answers at once: against it, undo takes back its reply and your move before it.
      const opponent = g.players[me === "black" ? "white" : "black"];
      const botReplied = opponent && opponent.bot && n >= 2 && g.turns[n - 2].color === me;
      const canUndo = lastMine || botReplied;
      if (g.pending && !g.busy && myTurn) {
        add(controls, h("button.btn.primary.wide#confirm-move", { type: "button", onclick: () => playAt(...g.pending) }, "Confirm move"),
          h("button.btn#cancel-move", { type: "button", onclick: () => { g.pending = null; render(); } }, "Cancel"));
      }
      add(controls, ...[
        h("button.btn#pass", { type: "button", disabled: !myTurn, onclick: async () => {
          if (await confirmDialog("Pass this turn?", { yes: "Pass" })) act({ type: "pass" });
        } }, "Pass"),
        h("button.btn#undo", { type: "button", disabled: !canUndo || !!g.undoBy, onclick: () => act({ type: "undo_request" }) }, "Undo"),
        g.turns.length < 2
          ? h("button.btn.ghost#abort", { type: "button", onclick: async () => { if (await confirmDialog("Abort this game? It will not count.", { yes: "Abort", danger: true })) act({ type: "abort" }); } }, "Abort")
          : null,
        h("button.btn.danger#resign", { type: "button", onclick: async () => {
          if (await confirmDialog("Resign this game?", { yes: "Resign", danger: true })) act({ type: "resign" });
        } }, "Resign")].filter(Boolean));
    } else if (me && scoring) {
      const mineAccepted = g.accepted.includes(me);
      add(controls, 
        h("button.btn.primary#accept-score", { type: "button", disabled: mineAccepted, onclick: () => act({ type: "accept_score" }) }, mineAccepted ? "Accepted" : "Accept score"),
        h("button.btn#resume", { type: "button", onclick: () => act({ type: "resume" }) }, "Resume play"),
        h("button.btn.danger#resign", { type: "button", onclick: async () => {
          if (await confirmDialog("Resign this game?", { yes: "Resign", danger: true })) act({ type: "resign" });
        } }, "Resign"));
    } else if (over) {
      add(controls, 
        h("a.btn.primary#to-review", { href: `/review/${id}` }, "Review"),
        h("a.btn#sgf", { href: `/api/games/${id}/sgf`, download: `goapp-${id}.sgf` }, "Download SGF"),
        h("a.btn.ghost", { href: "/" }, "Lobby"));
    } else if (!me) {
      add(controls, h("span.muted.small", null, "You are watching."));
    }
    info.textContent = `${g.w}×${g.h} · ${rulesName(g.rules)} · komi ${g.komi}${g.handicap ? ` · handicap ${g.handicap}` : ""}`;
    watchers.textContent = g.watchers ? `${g.watchers} following` : "";
    watchers.title = "People with this game open (players included)";
  }

  // After a rated game: each player's rating before and after it, in the board's pool (the
  // rating service runs just after the end: look a few times).
  async function ratingChange(tries = 0) {
    const players = ["black", "white"].map((c) => g.players[c]);
    if (!players.every((p) => p && p.name)) return; // a bot game is never rated
    const pool = poolOf(g.w, g.h);
    try {
      const hist = await Promise.all(players.map((p) =>
        api("GET", `/api/users/${encodeURIComponent(p.name)}/ratings?pool=${pool}&limit=100`, undefined, { auth: false })));
      const points = hist.map((r) => r.points.find((pt) => pt.game_id === id));
      if (points.some((pt) => !pt)) { if (tries < 6) setTimeout(() => ratingChange(tries + 1), 700); return; }
      g.ratingChange = players.map((p, i) => ({ name: p.name, before: points[i].rating_before, after: points[i].rating, rank: points[i].rank }));
      // The cards show the new ranks and ratings too.
      forgetProfiles();
      g.ranksVersion = (g.ranksVersion || 0) + 1;
      render();
    } catch { /* unrated or offline: no line */ }
  }

  // Countdowns of the banners (abandonment, end of counting); a claim becoming possible
  // redraws the banner with its button. (Called by the timer only, never from render.)
  function tickBanners() {
    const cd = banner.querySelector("#abandon-countdown");
    if (cd) {
      const claimAt = g.away[banner.querySelector("#abandon").dataset.color];
      if (claimAt == null) return; // the player came back: render() has been called
      const left = claimAt - socket.now();
      if (left <= 0) { render(); return; }
      cd.textContent = fmtClock(left);
    }
    const se = banner.querySelector("#scoring-ends .countdown");
    if (se && g.scoringEndsAt) se.textContent = fmtClock(Math.max(0, g.scoringEndsAt - socket.now()));
  }

  function tickClocks() {
    if (!g.clock) return;
    const now = socket.now();
    for (const c of ["black", "white"]) {
      const f = clockFace(g.clock, c, now, g.periodFull);
      const card = cards[c];
      if (card.clk.textContent !== f.text) card.clk.textContent = f.text;
      if (card.sub.textContent !== f.sub) card.sub.textContent = f.sub;
      card.root.classList.toggle("low", !!f.low && f.running);
      card.root.classList.toggle("clock-running", !!f.running);
    }
  }
  const clockTimer = setInterval(() => { tickClocks(); tickBanners(); }, 100);

  // -- the computer's turn: say when the AI is warming up (KataGo tunes itself on its first
  // start, for minutes) or down, instead of waiting silently (GET /api/bots: state)
  function botToMove() {
    const p = g.players[g.toMove];
    return g.phase === "playing" && !!(p && p.bot);
  }
  function botWaitText() {
    if (g.engineState === "tuning" || g.engineState === "starting") {
      return "The AI is warming up (on its first start it tunes itself for this machine, which takes a few minutes); it will reply as soon as it is ready…";
    }
    if (g.engineState === "degraded") return "The AI is restarting; it will reply once it is back…";
    return "The computer is thinking…";
  }
  async function pollEngine() {
    if (!botToMove()) return;
    try {
      const r = await api("GET", "/api/bots", undefined, { auth: false });
      if (r && r.state !== g.engineState) { g.engineState = r.state; render(); }
    } catch { /* the next poll tries again */ }
  }
  const engineTimer = setInterval(pollEngine, 3000);

  // -- wiring -----------------------------------------------------------------------------------
  seen(id); // a "your move" notification of this game is answered by opening it
  disposers.push(onSettings(() => render()));
  reload().then(() => {
    pollEngine();
    disposers.push(socket.subscribe(id, (m) => {
      if (m.type === "state") {
        if (m.seq >= g.seq) { applyView(m.view); }
      } else if (m.type === "event") {
        applyEvent(m);
      } else if (m.type === "presence") {
        g.watchers = m.watchers;
        render();
      }
    }));
  });
  const onKey = (e) => {
    if (e.target.closest && e.target.closest("input, textarea, select")) return;
    if (e.key === "Escape" && g.pending) { g.pending = null; render(); }
  };
  document.addEventListener("keydown", onKey);
  return () => {
    for (const d of disposers) d();
    chat.dispose();
    clearInterval(clockTimer);
    clearInterval(engineTimer);
    document.removeEventListener("keydown", onKey);
  };
}

export { BLACK, WHITE, colorName };
