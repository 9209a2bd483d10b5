// A chat panel for a room ("lobby" or "game:ID"): history over HTTP, live lines over the
// socket, deduplicated by message id (history and live lines may overlap).

import { api, session } from "./api.js";
import { socket } from "./ws.js";
import { h, clear, toast } from "./ui.js";
import { userHref } from "./players.js";

export function chatPanel(room, { title = "Chat", placeholder = "Say something…" } = {}) {
  const seen = new Set();
  const list = h("ol.chat-lines", { "aria-live": "polite", "aria-label": `${title} messages` });
  const input = h("input.chat-input", { type: "text", maxlength: "500", placeholder, "aria-label": `${title} message`,
    autocomplete: "off" });
  const send = h("button.btn.small", { type: "submit" }, "Send");
  const form = h("form.chat-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      send.disabled = true;
      try {
        await socket.chat(room, text);
        input.value = "";
      } catch (err) {
        toast(err.code === "rate_limited" ? "Slow down a little" : err.message, "error");
      } finally { send.disabled = false; input.focus(); }
    },
  }, input, send);

  function add(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    const who = m.user ? m.user.name : "system";
    const mine = session.user && m.user && m.user.id === session.user.id;
    const when = new Date(m.created || m.created_at);
    const line = h(`li${mine ? ".mine" : ""}`, { dataset: { id: m.id } },
      m.user && m.user.name ? h("a.who.plink", { href: userHref(m.user.name) }, who) : h("span.who", null, who), h("span.text", null, m.text),
      h("time", { datetime: when.toISOString(), title: when.toLocaleString() },
        when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    // Keep order by id (history may arrive after live lines).
    const after = [...list.children].find((li) => Number(li.dataset.id) > m.id);
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.insertBefore(line, after || null);
    if (stick || mine) list.scrollTop = list.scrollHeight;
  }

  const off = socket.onChat(room, add);
  api("GET", `/api/chat/${room}?limit=100`, undefined, { auth: false })
    .then((r) => { for (const m of r.messages) add(m); list.scrollTop = list.scrollHeight; })
    .catch(() => {});

  const root = h("section.card.chat", { "aria-label": title },
    h("h2", null, title), list, session.user ? form : h("p.muted.small", null, h("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, "Log in"), " to chat."));
  root.dispose = off;
  root.refreshAuth = () => clear(root, h("h2", null, title), list, session.user ? form : null);
  return root;
}
