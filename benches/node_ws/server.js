// Benchmark only (never in CI): the seed's original stack, a minimal Node.js `ws` server
// that speaks enough of goapp's WebSocket protocol (docs/protocol.md) for
// `goapp loadtest --bare`: welcome, subscribe (state or replay since=seq), hello/resume,
// action (move: seq+1, one JSON string per event sent to every subscriber), chat, ping.
// Games live in memory: ids 1..N appear on first use, any client may move, nothing is
// validated or stored. So it measures the fan-out and protocol cost only; goapp also
// validates each move with the rules core and commits it to the database before the ack.
//
//   npm ci && node server.js --port 4700
"use strict";
const http = require("http");
const { WebSocketServer } = require("ws");

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1] || 4700);
const games = new Map(); // id -> {seq, log: [json strings], subs: Set<ws>}

function game(id) {
  let g = games.get(id);
  if (!g) {
    g = { seq: 0, log: [], subs: new Set() };
    games.set(id, g);
  }
  return g;
}

function replay(ws, g, since) {
  for (let i = since; i < g.log.length; i++) ws.send(g.log[i]);
}

const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404, { "Content-Type": "application/json" });
  res.end('{"status":"ok"}');
});
const wss = new WebSocketServer({
  server,
  path: "/ws",
  perMessageDeflate: false,
  maxPayload: 4096,
  handleProtocols: (protocols) => (protocols.has("goapp.v1") ? "goapp.v1" : false),
});

wss.on("connection", (ws) => {
  ws.games = new Set();
  ws.send(JSON.stringify({ type: "welcome", user: null, server_time: Date.now(), protocol: "goapp.v1" }));
  ws.on("message", (data, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      ws.send(JSON.stringify({ type: "error", id: null, error: { code: "bad_message", message: "bad JSON" } }));
      return;
    }
    const id = msg.id;
    switch (msg.type) {
      case "subscribe": {
        const g = game(msg.game_id);
        g.subs.add(ws);
        ws.games.add(msg.game_id);
        if (msg.since === undefined || msg.since === null) {
          ws.send(JSON.stringify({ type: "state", game_id: msg.game_id, seq: g.seq, view: { seq: g.seq } }));
        } else replay(ws, g, msg.since);
        ws.send(JSON.stringify({ type: "ack", id, game_id: msg.game_id, watchers: g.subs.size }));
        break;
      }
      case "hello": {
        const resumed = {};
        for (const [gid, since] of Object.entries(msg.resume || {})) {
          const g = game(Number(gid));
          g.subs.add(ws);
          ws.games.add(Number(gid));
          replay(ws, g, since);
          resumed[gid] = since;
        }
        ws.send(JSON.stringify({ type: "ack", id, resumed }));
        break;
      }
      case "action": {
        const g = game(msg.game_id);
        g.seq += 1;
        const event = {
          game_id: msg.game_id, seq: g.seq, kind: "move",
          payload: { at_ms: Date.now(), color: g.seq % 2 ? "black" : "white", vertex: msg.action.vertex,
                     move_number: g.seq, captures: 0, request_id: msg.request_id || null },
        };
        const frame = JSON.stringify({ type: "event", ...event });
        g.log.push(frame);
        for (const sub of g.subs) sub.send(frame);
        ws.send(JSON.stringify({ type: "ack", id, game_id: msg.game_id, seq: g.seq, events: [event] }));
        break;
      }
      case "chat": {
        const gid = Number(String(msg.room).slice(5));
        const g = game(gid);
        const line = JSON.stringify({ type: "chat", room: msg.room, id, user: null, text: msg.text,
                                      created: new Date().toISOString() });
        ws.send(JSON.stringify({ type: "ack", id, chat_id: id }));
        for (const sub of g.subs) sub.send(line);
        break;
      }
      case "ping":
        ws.send(JSON.stringify({ type: "pong", id, t: msg.t, server_time: Date.now() }));
        break;
      default:
        ws.send(JSON.stringify({ type: "error", id, error: { code: "bad_message", message: "unknown type" } }));
    }
  });
  ws.on("close", () => {
    for (const gid of ws.games) games.get(gid)?.subs.delete(ws);
  });
});

server.listen(port, "127.0.0.1", () => console.log(`node ws bench server is running at http://127.0.0.1:${port}/`));
process.on("SIGTERM", () => process.exit(0));
