// The WebSocket client: one socket per tab, authenticated with the access token as a
// subprotocol, reconnecting with backoff after any drop and resuming every game from the
// last seq it processed (events are deduplicated by seq; a gap triggers a resubscribe).
// Actions carry a request_id and are resent with the same id after a reconnect, so a move
// sent just before a drop is never lost nor played twice.

import { accessToken, session } from "./api.js";

const PING_EVERY = 10_000;
const PING_TIMEOUT = 6_000;

function rid() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Socket {
  constructor() {
    this.ws = null;
    this.status = "idle"; // idle | connecting | open | reconnecting
    this.nextId = 1;
    this.pending = new Map(); // message id -> {resolve, reject, msg, timer}
    this.games = new Map(); // game_id -> {seq, handlers:Set}
    this.lobby = new Set(); // lobby handlers
    this.statusHandlers = new Set();
    this.chatHandlers = new Map(); // room -> Set
    this.attempt = 0;
    this.offset = 0; // server time - local time, ms
    this.user = null;
    this.session = rid().slice(0, 6);
    this.actionCount = 0;
    this.wantOpen = false;
    window.addEventListener("offline", () => this._drop("offline"));
    window.addEventListener("online", () => { if (this.wantOpen && this.status !== "open") this._connectSoon(0); });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.wantOpen && this.status !== "open") this._connectSoon(0);
    });
  }

  /** Server time now, in epoch ms. */
  now() { return Date.now() + this.offset; }

  onStatus(fn) { this.statusHandlers.add(fn); fn(this.status); return () => this.statusHandlers.delete(fn); }

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    document.documentElement.dataset.connection = s;
    for (const fn of this.statusHandlers) fn(s);
  }

  start() {
    this.wantOpen = true;
    if (!this.ws) this._connect();
  }

  /** Reconnect with the current identity (after log in or log out). */
  restart() {
    this.wantOpen = true;
    if (this.ws) { const ws = this.ws; this.ws = null; this._detach(ws); ws.close(1000); }
    this._connect();
  }

  async _connect() {
    clearTimeout(this.retryTimer);
    if (this.ws) return;
    this._setStatus(this.attempt === 0 && this.status === "idle" ? "connecting" : "reconnecting");
    let token = null;
    try { token = await accessToken(); } catch { token = session.access; }
    if (this.ws) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["goapp.v1"];
    if (token) protocols.push(`bearer.${token}`);
    let ws;
    try { ws = new WebSocket(`${proto}//${location.host}/ws`, protocols); } catch { this._scheduleRetry(); return; }
    this.ws = ws;
    ws.onmessage = (e) => this._onMessage(e);
    ws.onclose = (e) => { if (this.ws === ws) { this.ws = null; this._onClose(e); } };
    ws.onerror = () => {};
    ws.onopen = () => { if (this.ws === ws) this._onOpen(); };
  }

  _detach(ws) { ws.onmessage = ws.onclose = ws.onopen = ws.onerror = null; }

  _onOpen() {
    // What was in flight on the old socket (answers to it will never come).
    const inflight = [...this.pending.values()];
    this.pending.clear();
    this.attempt = 0;
    this.nextId = 1;
    this.opens = (this.opens || 0) + 1; // connections opened by this page (tests read it)
    this._setStatus("open");
    this._ping();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this._ping(), PING_EVERY);
    if (this.lobby.size) this._send({ type: "subscribe_lobby" });
    for (const [gameId, g] of this.games) {
      const msg = { type: "subscribe", game_id: gameId };
      if (g.seq > 0) msg.since = g.seq;
      this._send(msg);
    }
    // Resend actions and chat lines that were in flight: an action keeps its request_id,
    // so the server never acts twice.
    for (const p of inflight) {
      if (p.msg.type === "action" || p.msg.type === "chat") this._send(p.msg, p);
      else p.reject(Object.assign(new Error("connection lost"), { code: "network" }));
    }
  }

  _onClose(e) {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (!this.wantOpen) { this._setStatus("idle"); return; }
    this._setStatus("reconnecting");
    this._scheduleRetry(e && e.code === 1008);
  }

  _scheduleRetry(authProblem = false) {
    this.attempt++;
    const base = Math.min(8000, 400 * 2 ** Math.min(this.attempt - 1, 5));
    const delay = this.attempt === 1 ? 150 : base * (0.6 + Math.random() * 0.4);
    if (authProblem) session.expiresAt = 0; // the next connect refreshes the token first
    this._connectSoon(delay);
  }

  _connectSoon(delay) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { if (navigator.onLine === false) { this._connectSoon(1000); return; } this._connect(); }, delay);
  }

  /** Close a socket that cannot work any more (offline, no pong) and start over. */
  _drop(why) {
    if (!this.ws) { if (this.wantOpen) this._setStatus("reconnecting"); return; }
    const ws = this.ws;
    this.ws = null;
    this._detach(ws);
    try { ws.close(4000, why); } catch { /* already closed */ }
    this._onClose(null);
  }

  _ping() {
    const t = Date.now();
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => this._drop("no pong"), PING_TIMEOUT);
    this.request({ type: "ping", t }).then((m) => {
      clearTimeout(this.pongTimer);
      const now = Date.now();
      this.offset = m.server_time - (t + now) / 2;
      // One-way lag, sent with actions: the server credits it to the clock up to a quota.
      this.lagMs = Math.min(10_000, Math.max(0, Math.round((now - t) / 2)));
    }).catch(() => {});
  }

  _send(msg, p = null) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const id = `${this.nextId++}`;
    const out = { ...msg, id };
    if (p) this.pending.set(id, p);
    this.ws.send(JSON.stringify(out));
    return true;
  }

  /** Send a message and wait for its ack (resolves) or error (rejects). */
  request(msg, timeoutMs = 15_000) {
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, msg };
      p.timer = setTimeout(() => {
        for (const [k, v] of this.pending) if (v === p) this.pending.delete(k);
        reject(Object.assign(new Error("no answer from the server"), { code: "timeout" }));
      }, timeoutMs);
      const done = (fn) => (v) => { clearTimeout(p.timer); fn(v); };
      p.resolve = done(resolve);
      p.reject = done(reject);
      if (!this._send(msg, p)) {
        if (msg.type === "action" || msg.type === "chat") this.pending.set(`queued-${rid()}`, p); // sent on reconnect
        else p.reject(Object.assign(new Error("not connected"), { code: "network" }));
      }
    });
  }

  /** Act in a game (idempotent across reconnects). */
  action(gameId, action) {
    const request_id = `${this.session}-${++this.actionCount}-${rid().slice(0, 4)}`;
    const lag_ms = this.lagMs || 0;
    return this.request({ type: "action", game_id: gameId, action, request_id, lag_ms }, 30_000);
  }

  chat(room, text) { return this.request({ type: "chat", room, text }); }

  /** Hand the server a renewed access token: the socket lives until it expires. */
  reauth(token) {
    if (this.status !== "open" || !token) return;
    this.request({ type: "auth", token }).catch(() => this._drop("auth refused"));
  }

  /** Follow a game: handler({type: "state"|"event", ...}). Returns an unsubscribe. */
  subscribe(gameId, handler) {
    let g = this.games.get(gameId);
    if (!g) {
      g = { seq: 0, handlers: new Set() };
      this.games.set(gameId, g);
      this._send({ type: "subscribe", game_id: gameId });
    }
    g.handlers.add(handler);
    return () => {
      g.handlers.delete(handler);
      if (!g.handlers.size) { this.games.delete(gameId); this._send({ type: "unsubscribe", game_id: gameId }); }
    };
  }

  /** Ask for the events after ``seq`` again (after a gap). */
  resync(gameId) {
    const g = this.games.get(gameId);
    if (g) this._send({ type: "subscribe", game_id: gameId, since: g.seq });
  }

  subscribeLobby(handler) {
    if (!this.lobby.size) this._send({ type: "subscribe_lobby" });
    this.lobby.add(handler);
    return () => {
      this.lobby.delete(handler);
      if (!this.lobby.size) this._send({ type: "unsubscribe_lobby" });
    };
  }

  onChat(room, fn) {
    if (!this.chatHandlers.has(room)) this.chatHandlers.set(room, new Set());
    this.chatHandlers.get(room).add(fn);
    return () => this.chatHandlers.get(room)?.delete(fn);
  }

  _onMessage(e) {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    switch (m.type) {
      case "welcome":
        this.user = m.user;
        if (typeof m.server_time === "number") this.offset = m.server_time - Date.now();
        break;
      case "ack":
      case "pong": {
        const p = this.pending.get(String(m.id));
        if (p) { this.pending.delete(String(m.id)); p.resolve(m); }
        break;
      }
      case "error": {
        const p = m.id != null ? this.pending.get(String(m.id)) : null;
        if (p) {
          this.pending.delete(String(m.id));
          const err = Object.assign(new Error(m.error?.message || "error"), { code: m.error?.code, details: m.error });
          p.reject(err);
        } else console.warn("server error", m.error);
        break;
      }
      case "state": {
        const g = this.games.get(m.game_id);
        if (!g) break;
        g.seq = m.seq;
        for (const h of g.handlers) h(m);
        break;
      }
      case "event": {
        const g = this.games.get(m.game_id);
        if (!g) break;
        if (m.seq <= g.seq) break; // seen already
        if (m.seq > g.seq + 1 && g.seq > 0) { this.resync(m.game_id); break; } // a gap: replay
        g.seq = m.seq;
        for (const h of g.handlers) h(m);
        break;
      }
      case "lobby":
      case "presence":
        for (const h of this.lobby) h(m);
        if (m.type === "presence" && m.game_id != null) {
          const g = this.games.get(m.game_id);
          if (g) for (const h of g.handlers) h(m);
        }
        if (m.type === "lobby") for (const h of this.lobbyDirect || []) h(m);
        break;
      case "chat": {
        const hs = this.chatHandlers.get(m.room);
        if (hs) for (const h of hs) h(m);
        break;
      }
      default: {
        // Frames addressed to this user: automatch pairings, notifications ("your move").
        const hs = this.typeHandlers && this.typeHandlers.get(m.type);
        if (hs) for (const h of hs) h(m);
        break;
      }
    }
  }

  /** Follow frames of one ``type`` (``automatch``, ``notify``...). Returns an unsubscribe. */
  on(type, fn) {
    this.typeHandlers = this.typeHandlers || new Map();
    if (!this.typeHandlers.has(type)) this.typeHandlers.set(type, new Set());
    this.typeHandlers.get(type).add(fn);
    return () => this.typeHandlers.get(type)?.delete(fn);
  }

  /** Lobby messages addressed to this user arrive even when not subscribed to the lobby. */
  onDirect(fn) {
    this.lobbyDirect = this.lobbyDirect || new Set();
    this.lobbyDirect.add(fn);
    return () => this.lobbyDirect.delete(fn);
  }
}

export const socket = new Socket();
