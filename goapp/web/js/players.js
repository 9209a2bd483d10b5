// Players everywhere: a name is a link to the player's page (/user/NAME) with their rank
// next to it. Ranks are on OGS's scale, as goapp.rating.ranks computes them; the rank shown
// comes from the public profile (GET /api/users/NAME: per pool, with the provisional "?"),
// cached for a minute so that a list of games asks for each player once.

import { api } from "./api.js";
import { h, playerName } from "./ui.js";

/** RD at or above which a rank is provisional (goapp.rating.ranks.PROVISIONAL_RD). */
export const PROVISIONAL_RD = 160;
/** Pools of ratings: every rated game counts in "overall", square 9/13/19 in their own. */
export const POOLS = ["overall", "19", "13", "9"];

/** OGS's continuous rank number: ln(rating / 525) * 23.15, rating clamped to [100, 6000]. */
export function rankNumber(rating) {
  const r = Math.min(6000, Math.max(100, rating));
  return Math.log(r / 525) * 23.15;
}

/** "5k", "1d" (30k to 9d), as goapp.rating.ranks.rating_to_rank. */
export function rankLabel(rating) {
  const n = Math.round(rankNumber(rating) * 1e9) / 1e9;
  return n < 30 ? `${Math.min(30, Math.ceil(30 - n))}k` : `${Math.min(9, Math.floor(n - 29))}d`;
}

/** "3k", or "3k?" while provisional (a new player: 1500 / RD 350 is "6k?"). */
export function displayRank(rating = 1500, rd = 350) {
  return rankLabel(rating) + (rd >= PROVISIONAL_RD ? "?" : "");
}

/** The rating pool of a board: "9", "13", "19" for those square boards, else "overall". */
export function poolOf(width, height = width) {
  return width === height && [9, 13, 19].includes(width) ? String(width) : "overall";
}

const TTL_MS = 60_000;
const cache = new Map(); // lower-case name -> {at, promise}

/** A user's public profile (cached for a minute; ``fresh`` asks the server again). */
export function profile(name, { fresh = false } = {}) {
  const key = name.toLowerCase();
  const hit = cache.get(key);
  if (hit && !fresh && Date.now() - hit.at < TTL_MS) return hit.promise;
  const promise = api("GET", `/api/users/${encodeURIComponent(name)}`, undefined, { auth: false });
  cache.set(key, { at: Date.now(), promise });
  promise.catch(() => cache.delete(key));
  return promise;
}

/** Forget cached profiles (a game just ended: ratings moved). */
export function forgetProfiles() { cache.clear(); }

/** The rating of ``pool`` in a profile, {rating, rd, rank, provisional, games}; a player
 * without rated games there is a new player. */
export function poolRating(user, pool = "overall") {
  const r = user && user.ratings && user.ratings[pool];
  return r || { rating: 1500, rd: 350, rank: displayRank(1500, 350), provisional: true, games: 0 };
}

export function userHref(name) { return `/user/${encodeURIComponent(name)}`; }

/** A rank badge for a pool rating: "3k", provisional ones marked. */
export function rankBadge(r) {
  return h(`span.rank${r.provisional ? ".provisional" : ""}`,
    { title: `${r.provisional ? "Provisional rank: " : ""}rating ${Math.round(r.rating)} ± ${Math.round(r.rd)}` }, r.rank);
}

/**
 * A player's name: a link to their page and their rank in ``pool`` (filled in when the
 * profile arrives). Bots and empty seats are plain text.
 */
export function nameTag(p, { you = false, pool = "overall" } = {}) {
  if (!p || !p.name) return h("span.ntag", null, h("span.pname", null, playerName(p)));
  const rank = h("span.rank", { "aria-label": "rank" });
  const tag = h("span.ntag", { dataset: { user: p.name } },
    h("a.pname.plink", { href: userHref(p.name) }, p.name), you ? h("span.you", null, " (you)") : null, rank);
  profile(p.name).then((u) => {
    const r = poolRating(u, pool);
    rank.replaceWith(rankBadge(r));
  }).catch(() => { rank.remove(); });
  return tag;
}
