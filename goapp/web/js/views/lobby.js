// The lobby: offer a game (open or to one player), open and direct challenges, live games
// to watch, recent results, who is online, and the lobby chat.

import { api, session } from "../api.js";
import { socket } from "../ws.js";
import { navigate, onPresence, onlineList } from "../nav.js";
import { chatPanel } from "../chat.js";
import { h, add, clear, toast, describeTimeControl, rulesName, ago } from "../ui.js";
import { formatResult } from "../go.js";
import { nameTag, poolOf } from "../players.js";
import { whoseTurn, onYourMove } from "../notify.js";
import { features } from "../features.js";
import { automatchPanel } from "../automatch.js";

const TIME_PRESETS = [
  ["none", "No time limit", null],
  ["blitz", "5m + 3×20s byo-yomi", { system: "byoyomi", main_s: 300, periods: 3, period_s: 20 }],
  ["live", "10m + 5×30s byo-yomi", { system: "byoyomi", main_s: 600, periods: 5, period_s: 30 }],
  ["long", "30m + 5×30s byo-yomi", { system: "byoyomi", main_s: 1800, periods: 5, period_s: 30 }],
  ["fischer", "5m + 10s Fischer", { system: "fischer", main_s: 300, increment_s: 10, max_s: 600 }],
  ["canadian", "10m + 15 stones / 5m", { system: "canadian", main_s: 600, stones: 15, period_s: 300 }],
  ["absolute", "20m absolute", { system: "absolute", main_s: 1200 }],
];
// Correspondence games (days per move), offered when the server has them.
const CORRESPONDENCE_PRESETS = [
  ["corr-1", "Correspondence: 1 day / move", { system: "correspondence", days_per_move: 1 }],
  ["corr-3", "Correspondence: 3 days / move, weekends off", { system: "correspondence", days_per_move: 3, weekends_off: true }],
];
const RULES = [["japanese", "Japanese"], ["chinese", "Chinese"], ["korean", "Korean"], ["aga", "AGA"],
  ["new_zealand", "New Zealand"], ["tromp_taylor", "Tromp-Taylor"]];
const DEFAULT_KOMI = { japanese: 6.5, korean: 6.5, chinese: 7.5, aga: 7.5, new_zealand: 7.5, tromp_taylor: 7.5 };

function stoneIcon(color) {
  return h(`span.stone-icon.${color}`, { "aria-label": color, role: "img" });
}

function gameLine(g, action) {
  const size = `${g.width}×${g.height}`;
  const pool = poolOf(g.width, g.height);
  const turn = g.finished_at ? null : whoseTurn(g);
  return h(`li.game-row${turn && turn.mine ? ".your-move" : ""}`, { dataset: { gameId: g.id } },
    h("span.ch-main", null,
      h("span.players", null,
        stoneIcon("black"), nameTag(g.black, { pool }),
        h("span.vs", null, "vs"),
        stoneIcon("white"), nameTag(g.white, { pool })),
      h("span.meta", null, `${size} · ${rulesName(g.rules)}${g.handicap ? ` · H${g.handicap}` : ""}`,
        g.finished_at ? ` · ${ago(g.finished_at)}` : turn && turn.meta ? ` · ${turn.meta}` : "")),
    turn && turn.mine ? h("span.your-move-tag", null, "Your move") : null,
    g.result ? h("span.result", { title: formatResult(g.result) }, g.result) : null,
    action);
}

export function lobbyView(main) {
  const disposers = [];
  const challengesList = h("ul.list#challenges", { "aria-label": "Open challenges" });
  const liveList = h("ul.list#live-games", { "aria-label": "Games in progress" });
  const recentList = h("ul.list#recent-games", { "aria-label": "Finished games" });
  const onlineListEl = h("ul.list.people#online", { "aria-label": "Players online" });
  const opponentInput = h("input#ch-opponent", { name: "opponent", placeholder: "anyone (open challenge)", list: "online-names",
    autocomplete: "off", maxlength: "24" });
  const datalist = h("datalist#online-names");
  let challenges = [];
  const liveGames = new Map();

  // -- the new game form ---------------------------------------------------------------------
  let form = null;
  if (session.user) {
    const sizeRadios = [9, 13, 19].map((n) => h("label.seg", null,
      h("input", { type: "radio", name: "size", value: String(n), id: `ch-size-${n}`, checked: n === 19 }), h("span", null, `${n}×${n}`)));
    const rules = h("select#ch-rules", { name: "rules" }, RULES.map(([v, t]) => h("option", { value: v }, t)));
    const komi = h("input#ch-komi", { name: "komi", type: "number", step: "0.5", min: "-150", max: "150", inputmode: "decimal" });
    const handicap = h("select#ch-handicap", { name: "handicap" }, [0, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => h("option", { value: String(n) }, n ? `${n} stones` : "None")));
    const color = h("select#ch-color", { name: "color" },
      h("option", { value: "random" }, "Random"), h("option", { value: "black" }, "Black"), h("option", { value: "white" }, "White"));
    const time = h("select#ch-time", { name: "time" }, TIME_PRESETS.map(([v, t]) => h("option", { value: v, selected: v === "live" }, t)));
    // Rated or not (games against the computer never are).
    const rated = h("input#ch-rated", { type: "checkbox", name: "rated", checked: true });
    const ratedRow = h("label.check#rated-row", { hidden: true }, rated, "Rated game");
    features().then((f) => {
      if (f.correspondence) time.append(...CORRESPONDENCE_PRESETS.map(([v, t]) => h("option", { value: v }, t)));
      if (f.ratedChallenges) ratedRow.hidden = false;
    });
    const updateKomi = () => {
      const hc = Number(handicap.value);
      komi.placeholder = String(hc ? 0.5 : DEFAULT_KOMI[rules.value] ?? 6.5);
    };
    rules.addEventListener("change", updateKomi);
    handicap.addEventListener("change", updateKomi);
    updateKomi();
    // Against the computer, when the server has an engine (GET /api/bots).
    const bot = h("select#ch-bot", { name: "bot" }, h("option", { value: "" }, "A person"));
    // KataGo's first start tunes it for this machine (minutes): say so rather than wait silently.
    const warming = h("p.hint#bot-warming", { hidden: true },
      "The AI is warming up: it tunes itself for this machine on its first start (a few minutes). You can start a game now; it replies once it is ready.");
    const botRow = h("div#bot-row", { hidden: true }, h("label", { for: "ch-bot" }, "Play against"), bot, warming);
    api("GET", "/api/bots", undefined, { auth: false }).then((r) => {
      if (!r || r.engine === "none") return;
      for (const lv of r.levels) bot.append(h("option", { value: lv.name, title: lv.description }, `Computer: ${lv.name}`));
      botRow.hidden = false;
      warming.hidden = !(r.state === "tuning" || r.state === "starting");
    }).catch(() => {});
    bot.addEventListener("change", () => {
      opponentInput.disabled = !!bot.value;
      submit.textContent = bot.value ? "Start game" : "Offer game";
    });
    const error = h("p.form-error", { role: "alert" });
    const submit = h("button.btn.primary.wide#ch-submit", { type: "submit" }, "Offer game");
    form = h("form.card.newgame#new-game", {
      "aria-labelledby": "newgame-title",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        const size = Number(form.querySelector("input[name=size]:checked").value);
        const body = { size, rules: rules.value, handicap: Number(handicap.value), color: color.value };
        if (komi.value !== "") body.komi = Number(komi.value);
        const tc = [...TIME_PRESETS, ...CORRESPONDENCE_PRESETS].find(([v]) => v === time.value)[2];
        if (tc) body.time_control = tc;
        if (!ratedRow.hidden && !rated.checked && !bot.value) body.rated = false;
        const opp = opponentInput.value.trim();
        if (bot.value) { body.opponent = "computer"; body.level = bot.value; }
        else if (opp) body.opponent = opp;
        submit.disabled = true;
        try {
          const r = await api("POST", "/api/challenges", body);
          if (r.game_id && !r.status) { navigate(`/game/${r.game_id}`); return; } // against the computer
          toast(opp ? `Challenge sent to ${opp}` : "Your game is in the lobby: waiting for an opponent");
          opponentInput.value = "";
          upsertChallenge(r);
        } catch (err) {
          error.textContent = err.message;
        } finally { submit.disabled = false; }
      },
    },
    h("h2#newgame-title", null, "New game"),
    h("fieldset.segmented", null, h("legend", null, "Board"), sizeRadios),
    h("div.grid2", null,
      h("div", null, h("label", { for: "ch-rules" }, "Rules"), rules),
      h("div", null, h("label", { for: "ch-komi" }, "Komi"), komi),
      h("div", null, h("label", { for: "ch-handicap" }, "Handicap"), handicap),
      h("div", null, h("label", { for: "ch-color" }, "I play"), color)),
    h("label", { for: "ch-time" }, "Time"), time,
    botRow, ratedRow,
    h("label", { for: "ch-opponent" }, "Opponent"), opponentInput, datalist,
    error, submit);
  }

  // -- challenges -----------------------------------------------------------------------------
  function renderChallenges() {
    const open = challenges.filter((c) => c.status === "open");
    if (!open.length) { clear(challengesList, h("li.empty", null, "No open challenges. Offer one!")); return; }
    clear(challengesList, open.map((c) => {
      const mine = session.user && c.challenger && c.challenger.id === session.user.id;
      const toMe = session.user && c.target && c.target.id === session.user.id;
      const colorText = c.color === "random" ? "random colours" : `${c.challenger?.name} plays ${c.color}`;
      let actions;
      if (mine) {
        actions = h("button.btn.small.ghost", { type: "button", "data-action": "cancel", onclick: () => closeChallenge(c, "cancel") }, "Cancel");
      } else if (session.user) {
        actions = h("span.actions", null,
          h("button.btn.small.primary", { type: "button", "data-action": "accept", id: `accept-${c.id}`, onclick: () => accept(c) }, "Accept"),
          toMe ? h("button.btn.small.ghost", { type: "button", "data-action": "decline", onclick: () => closeChallenge(c, "decline") }, "Decline") : null);
      } else actions = h("a.btn.small", { href: "/login" }, "Log in to play");
      return h(`li.challenge${toMe ? ".to-me" : ""}${mine ? ".mine" : ""}`, { dataset: { challengeId: c.id } },
        h("span.size-badge", { "aria-label": `${c.size} by ${c.size}` }, `${c.size}`),
        h("span.ch-main", null,
          nameTag(c.challenger, { pool: poolOf(c.size) }),
          c.target ? h("span.direct", null, toMe ? " challenges you" : ` → ${c.target.name}`) : null,
          h("span.meta", null, `${rulesName(c.rules)} · komi ${c.komi}${c.handicap ? ` · H${c.handicap}` : ""} · ${describeTimeControl(c.time_control)} · ${colorText}${c.rated === false ? " · unrated" : ""}`)),
        actions);
    }));
  }

  function upsertChallenge(c) {
    if (!c || !c.id) return;
    if (!c.status) c = { ...c, status: "open" };
    const me = session.user && session.user.id;
    if (c.target && c.target.id !== me && (!c.challenger || c.challenger.id !== me)) return; // someone else's
    challenges = challenges.filter((x) => x.id !== c.id);
    challenges.unshift(c);
    renderChallenges();
  }

  async function accept(c) {
    try {
      const r = await api("POST", `/api/challenges/${c.id}/accept`);
      navigate(`/game/${r.game_id}`);
    } catch (err) {
      toast(err.code === "challenge_unavailable" ? "Someone else was faster: that game has started" : err.message, "error");
      loadChallenges();
    }
  }

  async function closeChallenge(c, what) {
    try {
      await api("DELETE", `/api/challenges/${c.id}`);
      challenges = challenges.filter((x) => x.id !== c.id);
      renderChallenges();
      toast(what === "cancel" ? "Challenge withdrawn" : "Challenge declined");
    } catch (err) { toast(err.message, "error"); }
  }

  async function loadChallenges() {
    try { challenges = (await api("GET", "/api/challenges")).challenges; renderChallenges(); } catch { /* offline */ }
  }

  // -- games ----------------------------------------------------------------------------------
  function renderLive() {
    const games = [...liveGames.values()].sort((a, b) => b.id - a.id);
    if (!games.length) { clear(liveList, h("li.empty", null, "No games in progress.")); return; }
    clear(liveList, games.map((g) => {
      const mine = session.user && [g.black?.id, g.white?.id].includes(session.user.id);
      return gameLine(g, h(`a.btn.small${mine ? ".primary" : ""}`, { href: `/game/${g.id}` }, mine ? "Play" : "Watch"));
    }));
  }

  // There is no "all games in progress" endpoint: the live list is the games of the
  // players online (and of anyone who just started one).
  let liveTimer = null;
  async function loadLive() {
    const names = new Set(onlineList().map((u) => u.name));
    if (session.user) names.add(session.user.name);
    const found = new Map();
    await Promise.all([...names].map(async (n) => {
      try {
        const r = await api("GET", `/api/games?user=${encodeURIComponent(n)}&status=active`, undefined, { auth: false });
        for (const g of r.games) found.set(g.id, g);
      } catch { /* a user may have just left */ }
    }));
    liveGames.clear();
    for (const [id, g] of found) liveGames.set(id, g);
    renderLive();
  }
  const loadLiveSoon = () => { clearTimeout(liveTimer); liveTimer = setTimeout(loadLive, 300); };

  async function loadRecent() {
    try {
      const r = await api("GET", "/api/games?status=finished&limit=15", undefined, { auth: false });
      if (!r.games.length) { clear(recentList, h("li.empty", null, "No finished games yet.")); return; }
      clear(recentList, r.games.map((g) => gameLine(g, h("a.btn.small.ghost", { href: `/review/${g.id}` }, "Review"))));
    } catch { /* offline */ }
  }

  function renderOnline(users) {
    clear(datalist, users.map((u) => h("option", { value: u.name })));
    if (!users.length) { clear(onlineListEl, h("li.empty", null, "Nobody else is here yet.")); return; }
    clear(onlineListEl, users.map((u) => {
      const me = session.user && u.id === session.user.id;
      return h("li.person", { dataset: { user: u.name } }, h("span.dot.online-dot"), nameTag(u, { you: me }),
        !me && session.user ? h("button.btn.small.ghost", { type: "button", title: `Challenge ${u.name}`,
          onclick: () => { opponentInput.value = u.name; form?.querySelector("#ch-rules")?.focus(); form?.scrollIntoView({ behavior: "smooth" }); } }, "Challenge") : null);
    }));
  }

  // -- layout ---------------------------------------------------------------------------------
  const welcome = session.user ? null : h("section.card.welcome", null,
    h("h2", null, "Play Go with friends"),
    h("p", null, "Watch any game as a guest. To play, log in or create an account: it takes ten seconds."),
    h("div.row", null, h("a.btn.primary", { href: "/register" }, "Create an account"), h("a.btn", { href: "/login" }, "Log in")));
  const chat = chatPanel("lobby", { title: "Lobby chat" });
  // Automatch, where the server has it.
  const leftCol = h("div.col.col-left");
  let am = null;
  if (session.user) {
    features().then((f) => {
      if (!f.automatch || !leftCol.isConnected) return;
      am = automatchPanel();
      leftCol.prepend(am);
    });
  }
  // "Challenge" on a player's page comes here with ?opponent=NAME.
  const wanted = new URLSearchParams(location.search).get("opponent");
  if (wanted && form) { opponentInput.value = wanted; }
  main.append(h("div.lobby", null,
    add(leftCol, form || welcome,
      h("section.card", { "aria-labelledby": "online-title" }, h("h2#online-title", null, "Online"), onlineListEl)),
    h("div.col.col-main", null,
      h("section.card", { "aria-labelledby": "ch-title" }, h("h2#ch-title", null, "Challenges"), challengesList),
      h("section.card", { "aria-labelledby": "live-title" }, h("h2#live-title", null, "Live games"), liveList),
      h("section.card", { "aria-labelledby": "recent-title" }, h("h2#recent-title", null, "Recent games"), recentList)),
    h("div.col.col-right", null, chat)));

  renderChallenges();
  renderLive();
  renderOnline(onlineList());
  loadChallenges();
  loadLive();
  loadRecent();
  disposers.push(onPresence((users) => { renderOnline(users); loadLiveSoon(); }));
  disposers.push(onYourMove(() => { renderLive(); loadLiveSoon(); }));
  disposers.push(socket.subscribeLobby((m) => {
    if (m.type !== "lobby") return;
    const p = m.payload || {};
    if (m.kind === "challenge_created") upsertChallenge(p);
    else if (m.kind === "challenge_accepted") {
      challenges = challenges.filter((c) => c.id !== p.challenge_id);
      renderChallenges();
      loadLiveSoon();
    } else if (m.kind === "challenge_cancelled" || m.kind === "challenge_declined") {
      challenges = challenges.filter((c) => c.id !== p.challenge_id);
      renderChallenges();
    }
  }));
  // After a reconnect, catch up with what happened meanwhile.
  disposers.push(socket.onStatus((s) => { if (s === "open") { loadChallenges(); loadLiveSoon(); } }));
  const recentTimer = setInterval(loadRecent, 30_000);
  return () => { for (const d of disposers) d(); chat.dispose(); if (am) am.dispose(); clearInterval(recentTimer); clearTimeout(liveTimer); };
}
