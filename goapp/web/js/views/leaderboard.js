// The leaderboard (/leaderboard?pool=19): the highest ratings of a pool (overall or one
// board size), with rank, provisional mark and games played (GET /api/leaderboard).

import { api, session } from "../api.js";
import { h, clear } from "../ui.js";
import { POOLS, rankBadge, userHref } from "../players.js";

const POOL_NAMES = { overall: "Overall", 19: "19×19", 13: "13×13", 9: "9×9" };

export function leaderboardView(main) {
  const q = new URLSearchParams(location.search);
  const pool = POOLS.includes(q.get("pool")) ? q.get("pool") : "overall";
  const body = h("div#leaderboard", { dataset: { pool } }, h("p.muted", null, "Loading…"));
  main.append(h("section.card.leaderboard", { "aria-labelledby": "lb-title" },
    h("h1#lb-title", null, "Leaderboard"),
    h("nav.pool-tabs#lb-pools", { "aria-label": "Rating pool" },
      POOLS.map((p) => h("a.btn.small.ghost", { href: p === "overall" ? "/leaderboard" : `/leaderboard?pool=${p}`,
        dataset: { pool: p }, "aria-current": p === pool ? "true" : null }, POOL_NAMES[p]))),
    body,
    h("p.muted.small", null, "Ratings are Glicko-2; a rank with ? is provisional (not enough games yet). Only rated games between people count.")));
  document.title = "Leaderboard · goapp";

  api("GET", `/api/leaderboard?pool=${pool}&limit=100`, undefined, { auth: false }).then((r) => {
    if (!r.players.length) { clear(body, h("p.muted#lb-empty", null, "Nobody has played a rated game in this pool yet.")); return; }
    clear(body, h("table.table", null,
      h("thead", null, h("tr", null, h("th.num", null, "#"), h("th", null, "Player"), h("th", null, "Rank"), h("th.num", null, "Rating"), h("th.num", null, "Games"))),
      h("tbody", null, r.players.map((p) => h(`tr${session.user && session.user.name === p.name ? ".me-row" : ""}`, { dataset: { name: p.name, place: p.place } },
        h("td.num", null, String(p.place)),
        h("td", null, h("a.pname.plink", { href: userHref(p.name) }, p.name)),
        h("td", null, rankBadge(p)),
        h("td.num", null, `${Math.round(p.rating)}`, h("span.muted", null, ` ± ${Math.round(p.rd)}`)),
        h("td.num", null, String(p.games)))))));
  }).catch((err) => clear(body, h("p.form-error", null, err.message)));
  return null;
}
