// The SVG board: wood, grid, star points, coordinates, shaded stones, last-move mark, ko
// mark, dead stones and territory in scoring, a ghost stone under the pointer, a keyboard
// cursor (arrow keys + Enter) for people who do not use a pointer.

import { BLACK, WHITE, EMPTY, LETTERS, starPoints, vertex } from "./go.js";

const NS = "http://www.w3.org/2000/svg";
const C = 32; // units between two lines
let uid = 0;

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export class BoardView {
  /** host: an element; options: onPlay(x, y), onCursor(x, y), onHover(x, y | null), label. */
  constructor(host, { onPlay = null, onCursor = null, onHover = null, label = "Go board", focusable = true } = {}) {
    this.host = host;
    this.onPlay = onPlay;
    this.onCursor = onCursor;
    this.onHover = onHover;
    this.id = `b${++uid}`;
    this.w = 0;
    this.h = 0;
    this.state = { position: null, last: null, ko: null, dead: new Set(), owner: null, toPlay: null,
      interactive: false, markMode: false, pending: null, coords: true, labels: null,
      ownership: null, pv: null };
    this.cursor = null;
    this.hover = null;
    this.svg = el("svg", { class: "board", role: "application", tabindex: "0", "aria-label": label,
      "aria-roledescription": "Go board" });
    this.svg.setAttribute("aria-describedby", `${this.id}-live`);
    this.live = document.createElement("div");
    this.live.id = `${this.id}-live`;
    this.live.className = "sr-only";
    this.live.setAttribute("aria-live", "polite");
    host.replaceChildren(this.svg, this.live);
    if (!focusable) { this.svg.removeAttribute("tabindex"); this.svg.setAttribute("role", "img"); }
    this._bind();
  }

  _defs() {
    const d = el("defs", {}, this.svg);
    const id = this.id;
    const bg = el("radialGradient", { id: `${id}-bs`, cx: "35%", cy: "30%", r: "75%" }, d);
    el("stop", { offset: "0%", "stop-color": "#6a6a6a" }, bg);
    el("stop", { offset: "35%", "stop-color": "#2a2a2a" }, bg);
    el("stop", { offset: "100%", "stop-color": "#050505" }, bg);
    const wg = el("radialGradient", { id: `${id}-ws`, cx: "38%", cy: "32%", r: "80%" }, d);
    el("stop", { offset: "0%", "stop-color": "#ffffff" }, wg);
    el("stop", { offset: "60%", "stop-color": "#eeeae2" }, wg);
    el("stop", { offset: "100%", "stop-color": "#b9b4aa" }, wg);
    const wood = el("linearGradient", { id: `${id}-wood`, x1: "0", y1: "0", x2: "1", y2: "1" }, d);
    el("stop", { offset: "0%", class: "wood-1" }, wood);
    el("stop", { offset: "55%", class: "wood-2" }, wood);
    el("stop", { offset: "100%", class: "wood-3" }, wood);
    const f = el("filter", { id: `${id}-grain`, x: "0", y: "0", width: "100%", height: "100%" }, d);
    el("feTurbulence", { type: "fractalNoise", baseFrequency: "0.004 0.09", numOctaves: "3", seed: "7" }, f);
    el("feColorMatrix", { type: "matrix", values: "0 0 0 0 0.35  0 0 0 0 0.2  0 0 0 0 0.05  0 0 0 0.9 -0.28" }, f);
    el("feComposite", { operator: "in", in2: "SourceGraphic" }, f);
  }

  setSize(w, h) {
    if (w === this.w && h === this.h) return;
    this.w = w;
    this.h = h;
    this.cursor = null;
    this._build();
  }

  _build() {
    const { w, h } = this;
    const svg = this.svg;
    svg.replaceChildren();
    const M = C * 1.15;
    this.margin = M;
    svg.setAttribute("viewBox", `${-M} ${-M} ${(w - 1) * C + 2 * M} ${(h - 1) * C + 2 * M}`);
    this._defs();
    const W = (w - 1) * C + 2 * M, H = (h - 1) * C + 2 * M;
    el("rect", { x: -M, y: -M, width: W, height: H, rx: 6, fill: `url(#${this.id}-wood)`, class: "wood" }, svg);
    el("rect", { x: -M, y: -M, width: W, height: H, rx: 6, fill: "#fff", filter: `url(#${this.id}-grain)`, class: "grain" }, svg);
    const grid = el("g", { class: "grid" }, svg);
    for (let x = 0; x < w; x++) el("line", { x1: x * C, y1: 0, x2: x * C, y2: (h - 1) * C }, grid);
    for (let y = 0; y < h; y++) el("line", { x1: 0, y1: y * C, x2: (w - 1) * C, y2: y * C }, grid);
    el("rect", { x: 0, y: 0, width: (w - 1) * C, height: (h - 1) * C, class: "edge" }, grid);
    for (const [x, y] of starPoints(w, h)) el("circle", { cx: x * C, cy: y * C, r: 3.2, class: "star" }, grid);
    this.coordsG = el("g", { class: "coords", "aria-hidden": "true" }, svg);
    for (let x = 0; x < w; x++) {
      for (const y of [-M * 0.55, (h - 1) * C + M * 0.55]) {
        const t = el("text", { x: x * C, y, "dominant-baseline": "central", "text-anchor": "middle" }, this.coordsG);
        t.textContent = LETTERS[x];
      }
    }
    for (let y = 0; y < h; y++) {
      for (const x of [-M * 0.55, (w - 1) * C + M * 0.55]) {
        const t = el("text", { x, y: y * C, "dominant-baseline": "central", "text-anchor": "middle" }, this.coordsG);
        t.textContent = String(h - y);
      }
    }
    this.terrG = el("g", { class: "territory" }, svg);
    this.stonesG = el("g", { class: "stones" }, svg);
    this.ownG = el("g", { class: "ownership" }, svg);
    this.marksG = el("g", { class: "marks" }, svg);
    this.pvG = el("g", { class: "pv" }, svg);
    this.ghostG = el("g", { class: "ghost" }, svg);
    this.cursorG = el("g", { class: "cursor" }, svg);
    this.hit = el("rect", { x: -M, y: -M, width: W, height: H, fill: "transparent", class: "hit" }, svg);
    this._render();
  }

  update(partial) {
    Object.assign(this.state, partial);
    const p = this.state.position;
    if (p) this.setSize(p.w, p.h);
    this._render();
  }

  _stone(g, x, y, color, cls = "") {
    const cx = x * C, cy = y * C;
    el("circle", { cx: cx + 1.2, cy: cy + 1.8, r: C * 0.47, class: "shadow " + cls }, g);
    el("circle", { cx, cy, r: C * 0.475, fill: `url(#${this.id}-${color === BLACK ? "bs" : "ws"})`,
      class: `stone ${color === BLACK ? "black" : "white"} ${cls}` }, g);
  }

  _render() {
    if (!this.w) return;
    const s = this.state, p = s.position;
    this.coordsG.style.display = s.coords ? "" : "none";
    this.terrG.replaceChildren();
    this.stonesG.replaceChildren();
    this.ownG.replaceChildren();
    this.marksG.replaceChildren();
    this.pvG.replaceChildren();
    this.svg.classList.toggle("interactive", !!s.interactive);
    this.svg.classList.toggle("marking", !!s.markMode);
    if (!p) return;
    let count = 0;
    for (let y = 0; y < this.h; y++) {
      for (let x = 0; x < this.w; x++) {
        const c = p.at(x, y);
        const key = `${x},${y}`;
        if (c !== EMPTY) {
          count++;
          const dead = s.dead.has(key);
          this._stone(this.stonesG, x, y, c, dead ? "dead" : "");
          this.stonesG.lastChild.dataset.vertex = vertex(x, y, this.h);
          if (dead) {
            el("path", { d: `M${x * C - 7} ${y * C - 7}L${x * C + 7} ${y * C + 7}M${x * C + 7} ${y * C - 7}L${x * C - 7} ${y * C + 7}`,
              class: `deadmark on-${c === BLACK ? "black" : "white"}` }, this.marksG);
          }
        }
        if (s.ownership) {
          // The engine's ownership (+1 Black, -1 White): a square sized by its certainty, on
          // empty points and on stones the other colour owns (dead).
          const o = s.ownership[y * this.w + x];
          const mine = c === BLACK ? o > 0 : c === WHITE ? o < 0 : false;
          if (typeof o === "number" && Math.abs(o) >= 0.15 && !mine) {
            const side = 5 + 9 * Math.min(1, Math.abs(o));
            el("rect", { x: x * C - side / 2, y: y * C - side / 2, width: side, height: side, rx: 1.5,
              class: `own ${o > 0 ? "black" : "white"}`, "data-vertex": vertex(x, y, this.h) }, this.ownG);
          }
        }
        if (s.owner) {
          const o = s.owner[y * this.w + x];
          if ((o === BLACK || o === WHITE) && (c === EMPTY || s.dead.has(key))) {
            el("rect", { x: x * C - 5.5, y: y * C - 5.5, width: 11, height: 11, rx: 1.5,
              class: `terr ${o === BLACK ? "black" : "white"}` }, this.terrG);
          }
        }
      }
    }
    this.svg.dataset.stones = String(count);
    if (s.last) {
      const [x, y] = s.last;
      const c = p.at(x, y);
      if (c !== EMPTY) el("circle", { cx: x * C, cy: y * C, r: C * 0.2, class: `lastmark on-${c === BLACK ? "black" : "white"}` }, this.marksG);
    }
    if (s.ko && p.at(s.ko[0], s.ko[1]) === EMPTY) {
      const [x, y] = s.ko;
      el("rect", { x: x * C - 8, y: y * C - 8, width: 16, height: 16, class: "komark" }, this.marksG);
    }
    if (s.labels) {
      for (const { x, y, text, cls } of s.labels) {
        const c = p.at(x, y);
        if (c === EMPTY) el("circle", { cx: x * C, cy: y * C, r: C * 0.34, class: "labelbg" }, this.marksG);
        const t = el("text", { x: x * C, y: y * C, "dominant-baseline": "central", "text-anchor": "middle",
          class: `label ${cls || ""} on-${c === BLACK ? "black" : c === WHITE ? "white" : "empty"}` }, this.marksG);
        t.textContent = text;
      }
    }
    if (s.pv) {
      // A principal variation: translucent stones numbered in order (a point played twice
      // shows its first number).
      const seen = new Set();
      for (const { x, y, color, n } of s.pv) {
        const key = `${x},${y}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const g = el("g", { class: "pvmove", "data-n": String(n) }, this.pvG);
        el("circle", { cx: x * C, cy: y * C, r: C * 0.475, class: `stone pvstone ${color === BLACK ? "black" : "white"}` }, g);
        const t = el("text", { x: x * C, y: y * C, "dominant-baseline": "central", "text-anchor": "middle",
          class: `pvnum on-${color === BLACK ? "black" : "white"}` }, g);
        t.textContent = String(n);
      }
    }
    this._renderGhost();
    this._renderCursor();
  }

  _renderGhost() {
    this.ghostG.replaceChildren();
    const s = this.state, p = s.position;
    if (!p) return;
    const pt = s.pending || (s.interactive && !s.markMode ? this.hover : null);
    if (pt && s.toPlay && p.at(pt[0], pt[1]) === EMPTY) {
      this._stone(this.ghostG, pt[0], pt[1], s.toPlay, s.pending ? "pending" : "ghoststone");
      if (s.pending) el("circle", { cx: pt[0] * C, cy: pt[1] * C, r: C * 0.2, class: "pendingmark" }, this.ghostG);
    }
  }

  _renderCursor() {
    this.cursorG.replaceChildren();
    if (!this.cursor || !this.focused) return;
    const [x, y] = this.cursor;
    el("rect", { x: x * C - C / 2 + 1, y: y * C - C / 2 + 1, width: C - 2, height: C - 2, rx: 4, class: "kbcursor" }, this.cursorG);
  }

  _point(evt) {
    const ctm = this.svg.getScreenCTM();
    if (!ctm) return null;
    const pt = new DOMPoint(evt.clientX, evt.clientY).matrixTransform(ctm.inverse());
    const x = Math.round(pt.x / C), y = Math.round(pt.y / C);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return null;
    if (Math.hypot(pt.x - x * C, pt.y - y * C) > C * 0.62) return null;
    return [x, y];
  }

  describe(x, y) {
    const p = this.state.position;
    const c = p ? p.at(x, y) : EMPTY;
    const what = c === BLACK ? "black stone" : c === WHITE ? "white stone" : "empty";
    const dead = this.state.dead.has(`${x},${y}`) ? ", marked dead" : "";
    return `${vertex(x, y, this.h)}: ${what}${dead}`;
  }

  _bind() {
    const svg = this.svg;
    svg.addEventListener("pointermove", (e) => {
      if (e.pointerType === "touch") return;
      const pt = this._point(e);
      const same = pt && this.hover && pt[0] === this.hover[0] && pt[1] === this.hover[1];
      if (same || (!pt && !this.hover)) return;
      this.hover = pt;
      this._renderGhost();
      if (this.onHover) this.onHover(pt);
    });
    svg.addEventListener("pointerleave", () => {
      this.hover = null;
      this._renderGhost();
      if (this.onHover) this.onHover(null);
    });
    svg.addEventListener("click", (e) => {
      const pt = this._point(e);
      if (!pt || !this.onPlay) return;
      this.cursor = pt;
      this.onPlay(pt[0], pt[1], { touch: this._lastPointer === "touch" });
    });
    svg.addEventListener("pointerdown", (e) => { this._lastPointer = e.pointerType; });
    svg.addEventListener("focus", () => {
      this.focused = svg.matches(":focus-visible"); // the cursor is for the keyboard only
      if (!this.cursor && this.w) {
        const last = this.state.last;
        this.cursor = last ? [...last] : [Math.floor(this.w / 2), Math.floor(this.h / 2)];
      }
      this._renderCursor();
      if (this.cursor) this.live.textContent = this.describe(...this.cursor);
    });
    svg.addEventListener("blur", () => { this.focused = false; this._renderCursor(); });
    svg.addEventListener("keydown", (e) => {
      if (!this.w) return;
      const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
      if (d) {
        e.preventDefault();
        this.focused = true;
        e.stopPropagation();
        const [x, y] = this.cursor || [0, 0];
        this.cursor = [Math.min(this.w - 1, Math.max(0, x + d[0])), Math.min(this.h - 1, Math.max(0, y + d[1]))];
        this._renderCursor();
        this.live.textContent = this.describe(...this.cursor);
        if (this.onCursor) this.onCursor(...this.cursor);
      } else if ((e.key === "Enter" || e.key === " ") && this.cursor && this.onPlay) {
        e.preventDefault();
        this.onPlay(this.cursor[0], this.cursor[1], { keyboard: true });
      }
    });
  }
}
