// The rules the browser needs: coordinates, a board with captures (to replay moves for
// live play and review), chains, and a score estimate for the scoring phase. The server
// is the authority on legality and results; this only mirrors it for display.

export const LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ";
export const EMPTY = 0, BLACK = 1, WHITE = 2;

export const colorOf = (name) => (name === "black" || name === "B" ? BLACK : name === "white" || name === "W" ? WHITE : EMPTY);
export const colorName = (c) => (c === BLACK ? "black" : c === WHITE ? "white" : null);
export const other = (c) => (c === BLACK ? WHITE : BLACK);

/** GTP vertex ("D4") of (x, y), y from the top. */
export function vertex(x, y, height) {
  return LETTERS[x] + String(height - y);
}

/** [x, y] (y from the top) of a GTP vertex, or null for a pass or a bad vertex. */
export function parseVertex(v, height) {
  if (!v || typeof v !== "string") return null;
  const s = v.trim().toUpperCase();
  if (s === "PASS" || s === "") return null;
  const x = LETTERS.indexOf(s[0]);
  const n = parseInt(s.slice(1), 10);
  if (x < 0 || !(n >= 1)) return null;
  return [x, height - n];
}

/** Star points (hoshi) of a board, as [x, y]. */
export function starPoints(w, h) {
  if (w !== h || w < 7) return w === h && w >= 5 && w % 2 === 1 ? [[(w - 1) / 2, (h - 1) / 2]] : [];
  const e = w >= 13 ? 3 : 2;
  const pts = [[e, e], [w - 1 - e, e], [e, h - 1 - e], [w - 1 - e, h - 1 - e]];
  if (w % 2 === 1) {
    const m = (w - 1) / 2;
    pts.push([m, m]);
    if (w >= 15) pts.push([m, e], [m, h - 1 - e], [e, m], [w - 1 - e, m]);
  }
  return pts;
}

/** Fixed handicap stones as [x, y], as the server places them
 * (goapp.rules.game.fixed_handicap_xy). */
export function handicapPoints(n, w, h = w) {
  if (n < 2 || w !== h || w < 7) return [];
  const e = w >= 13 ? 3 : 2, lo = e, hi = w - 1 - e, mid = Math.floor(w / 2);
  let out = [[lo, hi], [hi, lo], [lo, lo], [hi, hi]].slice(0, Math.min(n, 4));
  if (n >= 6) out = out.concat([[lo, mid], [hi, mid]]);
  if (n >= 8) out = out.concat([[mid, hi], [mid, lo]]);
  if (n % 2 === 1 && n >= 5) out.push([mid, mid]);
  return out;
}

export class Position {
  constructor(w, h) {
    this.w = w;
    this.h = h;
    this.cells = new Uint8Array(w * h);
    this.captures = { black: 0, white: 0 }; // stones captured BY black / white
    this.ko = null; // [x, y] point that may not be retaken at once, or null
  }

  static fromRows(rows) {
    const h = rows.length, w = rows[0]?.length || 0;
    const p = new Position(w, h);
    rows.forEach((row, y) => {
      for (let x = 0; x < w; x++) p.cells[y * w + x] = row[x] === "X" ? BLACK : row[x] === "O" ? WHITE : EMPTY;
    });
    return p;
  }

  clone() {
    const p = new Position(this.w, this.h);
    p.cells.set(this.cells);
    p.captures = { ...this.captures };
    p.ko = this.ko;
    return p;
  }

  at(x, y) { return this.cells[y * this.w + x]; }
  set(x, y, c) { this.cells[y * this.w + x] = c; }
  onBoard(x, y) { return x >= 0 && y >= 0 && x < this.w && y < this.h; }

  neighbours(x, y) {
    const out = [];
    if (x > 0) out.push([x - 1, y]);
    if (x < this.w - 1) out.push([x + 1, y]);
    if (y > 0) out.push([x, y - 1]);
    if (y < this.h - 1) out.push([x, y + 1]);
    return out;
  }

  /** The chain at (x, y) and its liberty count. */
  chain(x, y) {
    const c = this.at(x, y);
    const seen = new Set([y * this.w + x]);
    const stones = [[x, y]];
    const libs = new Set();
    for (let i = 0; i < stones.length; i++) {
      const [sx, sy] = stones[i];
      for (const [nx, ny] of this.neighbours(sx, sy)) {
        const k = ny * this.w + nx, v = this.cells[k];
        if (v === EMPTY) libs.add(k);
        else if (v === c && !seen.has(k)) { seen.add(k); stones.push([nx, ny]); }
      }
    }
    return { color: c, stones, liberties: libs.size };
  }

  /** Play ``color`` at (x, y): captures, suicide, simple ko. Returns the captured stones,
   * or null when the move is plainly illegal (occupied, ko, single-stone suicide). */
  play(x, y, color) {
    if (!this.onBoard(x, y) || this.at(x, y) !== EMPTY) return null;
    if (this.ko && this.ko[0] === x && this.ko[1] === y) return null;
    this.set(x, y, color);
    const opp = other(color);
    const captured = [];
    for (const [nx, ny] of this.neighbours(x, y)) {
      if (this.at(nx, ny) !== opp) continue;
      const ch = this.chain(nx, ny);
      if (ch.liberties === 0) for (const [sx, sy] of ch.stones) { this.set(sx, sy, EMPTY); captured.push([sx, sy]); }
    }
    const own = this.chain(x, y);
    if (own.liberties === 0) {
      if (own.stones.length === 1) { this.set(x, y, EMPTY); return null; }
      for (const [sx, sy] of own.stones) this.set(sx, sy, EMPTY); // multi-stone suicide
      this.captures[colorName(opp)] += own.stones.length;
      this.ko = null;
      return [];
    }
    this.captures[colorName(color)] += captured.length;
    this.ko = captured.length === 1 && own.stones.length === 1 && own.liberties === 1 ? captured[0] : null;
    return captured;
  }

  pass() { this.ko = null; }

  /** Would a move at (x, y) look legal (empty, not the ko point, not suicide)? */
  looksLegal(x, y, color) {
    if (!this.onBoard(x, y) || this.at(x, y) !== EMPTY) return false;
    return this.clone().play(x, y, color) !== null;
  }
}

/** A game record: setup stones plus [{color, vertex}], replayable to any move. */
export class Record {
  /** ``setup``: position edits of an uploaded SGF (AB/AW/AE), each
   * ``{move, black, white, empty}`` (vertices), applied before move ``move`` (0-based). */
  constructor(w, h, { handicapStones = [], moves = [], setup = [] } = {}) {
    this.w = w; this.h = h;
    this.handicapStones = handicapStones; // vertices
    this.moves = moves; // [{color: "black"|"white", vertex: "D4"|"pass"}]
    this.setup = setup;
  }

  /** The position after ``n`` moves, with the last move's point. */
  positionAt(n) {
    const p = new Position(this.w, this.h);
    for (const v of this.handicapStones) {
      const xy = parseVertex(v, this.h);
      if (xy) p.set(xy[0], xy[1], BLACK);
    }
    const edit = (i) => {
      for (const s of this.setup) {
        if (s.move !== i) continue;
        for (const [list, c] of [[s.black, BLACK], [s.white, WHITE], [s.empty, EMPTY]]) {
          for (const v of list || []) {
            const xy = parseVertex(v, this.h);
            if (xy) p.set(xy[0], xy[1], c);
          }
        }
      }
    };
    let last = null;
    const upto = Math.min(n, this.moves.length);
    for (let i = 0; i < upto; i++) {
      edit(i);
      const m = this.moves[i];
      const xy = parseVertex(m.vertex, this.h);
      if (xy) { p.play(xy[0], xy[1], colorOf(m.color)); last = xy; } else { p.pass(); last = null; }
    }
    edit(upto);
    return { position: p, last };
  }
}

/** Ownership and a score estimate of ``pos`` with ``dead`` (a Set of "x,y" keys) removed,
 * under area or territory scoring. Seki tax is ignored: the server's count decides. */
export function estimateScore(pos, dead, { scoring = "territory", komi = 0, handicapBonus = 0 } = {}) {
  const { w, h } = pos;
  const board = new Uint8Array(pos.cells);
  let deadB = 0, deadW = 0;
  for (const key of dead) {
    const [x, y] = key.split(",").map(Number);
    const c = board[y * w + x];
    if (c === BLACK) deadB++;
    if (c === WHITE) deadW++;
    board[y * w + x] = EMPTY;
  }
  const owner = new Uint8Array(w * h);
  const seen = new Uint8Array(w * h);
  let terrB = 0, terrW = 0, stonesB = 0, stonesW = 0;
  for (let i = 0; i < w * h; i++) {
    if (board[i] === BLACK) { stonesB++; owner[i] = BLACK; }
    else if (board[i] === WHITE) { stonesW++; owner[i] = WHITE; }
  }
  for (let i = 0; i < w * h; i++) {
    if (board[i] !== EMPTY || seen[i]) continue;
    const region = [i];
    seen[i] = 1;
    let touches = 0;
    for (let k = 0; k < region.length; k++) {
      const j = region[k], x = j % w, y = (j / w) | 0;
      for (const [nx, ny] of pos.neighbours(x, y)) {
        const n = ny * w + nx;
        if (board[n] === EMPTY) { if (!seen[n]) { seen[n] = 1; region.push(n); } }
        else touches |= board[n];
      }
    }
    if (touches === BLACK || touches === WHITE) {
      for (const j of region) owner[j] = touches;
      if (touches === BLACK) terrB += region.length; else terrW += region.length;
    }
  }
  let black, white;
  if (scoring === "area") {
    black = stonesB + terrB;
    white = stonesW + terrW + komi + handicapBonus;
  } else {
    black = terrB + pos.captures.black + deadW;
    white = terrW + pos.captures.white + deadB + komi;
  }
  return { black, white, margin: black - white, owner, terrB, terrW };
}

export const AREA_RULES = new Set(["chinese", "aga", "new_zealand", "new-zealand", "tromp_taylor", "tromp-taylor"]);

export function scoringOf(rules) {
  return AREA_RULES.has(String(rules || "").toLowerCase()) ? "area" : "territory";
}

export function handicapBonus(rules, handicap) {
  if (handicap < 2) return 0;
  const r = String(rules || "").toLowerCase();
  if (r === "chinese") return handicap;
  if (r === "aga") return handicap - 1;
  return 0;
}

export function formatResult(result) {
  if (!result) return "";
  if (result === "0" || result === "Draw" || result === "Jigo") return "Jigo (draw)";
  const m = /^([BW])\+(.*)$/.exec(result);
  if (!m) return result;
  const who = m[1] === "B" ? "Black" : "White";
  const how = m[2];
  if (how === "R" || how === "Resign") return `${who} wins by resignation`;
  if (how === "T" || how === "Time") return `${who} wins on time`;
  if (how === "F" || how === "Forfeit") return `${who} wins by forfeit`;
  if (how === "" ) return `${who} wins`;
  return `${who} wins by ${how} point${how === "1" ? "" : "s"}`;
}

export function scoreText(margin) {
  if (margin === 0) return "Jigo";
  return margin > 0 ? `B+${margin}` : `W+${-margin}`;
}
