// "Your move" notifications. The server sends {"type": "notify", "kind": "your_move",
// "game_id", ...} to a player when it becomes their turn in a game they do not have open
// (correspondence games above all). The app shows a toast and a header badge, and game
// lists mark those games "Your move" until the player opens the game.

import { session } from "./api.js";
import { toast } from "./ui.js";

const waiting = new Map(); // game_id -> the notify frame
const listeners = new Set();

/** Ids of the games where it is my move (as notified), oldest first. */
export function yourMoveGames() { return [...waiting.keys()]; }

export function onYourMove(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function emit() { for (const fn of listeners) fn(yourMoveGames()); }

function opponentName(m) {
  const o = m.opponent || (m.payload && m.payload.opponent);
  return o ? (typeof o === "string" ? o : o.name) : null;
}

/** A ``notify`` frame from the socket. */
export function handleNotify(m) {
  const p = m.payload || {};
  const kind = m.kind;
  const gameId = m.game_id ?? p.game_id;
  if (kind !== "your_move" || gameId == null) return;
  if (location.pathname === `/game/${gameId}`) return; // already looking at it
  const fresh = !waiting.has(gameId);
  waiting.set(gameId, m);
  const who = opponentName(m);
  const left = m.deadline_ms ? m.deadline_ms - Date.now() : null;
  const hours = left !== null && left > 0 ? Math.floor(left / 3_600_000) : null;
  const when = hours === null ? "" : hours >= 24 ? ` (${Math.floor(hours / 24)}d ${hours % 24}h left)` : ` (${hours}h left)`;
  if (fresh) toast(`Your move in game ${gameId}${who ? ` against ${who}` : ""}${when}`, "notify");
  emit();
}

/** The game is open (or I moved): it no longer waits for me. */
export function seen(gameId) { if (waiting.delete(gameId)) emit(); }

/** Forget everything (log out). */
export function resetNotifications() { if (waiting.size) { waiting.clear(); emit(); } }

/**
 * Whose turn it is in a game summary: {text, mine, left} or null when unknown (``left``: the
 * time the player to move has, in correspondence games; ``meta``: what a list says of it
 * next to a "Your move" tag, or in its place). Uses the list's
 * ``to_move`` (and ``your_turn``, ``deadline`` for correspondence games) and, for lists
 * without them, the notifications.
 */
export function whoseTurn(g) {
  const me = session.user ? session.user.id : null;
  const notified = waiting.has(g.id);
  if (g.to_move === "black" || g.to_move === "white") {
    // A notification is newer than a list read before it.
    const mine = notified || g.your_turn === true || (me !== null && !!g[g.to_move] && g[g.to_move].id === me);
    const text = mine ? "your move" : `${g.to_move === "black" ? "Black" : "White"} to play`;
    const left = g.deadline && g.time_control && g.time_control.system === "correspondence"
      ? `${timeLeft(new Date(g.deadline).getTime() - Date.now())} left` : null;
    const meta = mine ? left : left ? `${text} · ${left}` : text;
    return { text, mine, left, meta };
  }
  return notified && !g.result ? { text: "your move", mine: true, left: null, meta: null } : null;
}

function timeLeft(ms) {
  const h = Math.max(0, Math.floor(ms / 3_600_000));
  return h >= 24 ? `${Math.floor(h / 24)}d ${h % 24}h` : h >= 1 ? `${h}h` : `${Math.max(0, Math.floor(ms / 60_000))}m`;
}
