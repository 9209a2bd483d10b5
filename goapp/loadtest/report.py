"""The human-readable summary of a load-test report (the JSON report has everything)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_report"]


def _lat(name: str, s: dict[str, Any]) -> str:
    if not s["count"]:
        return f"  {name:<15} (no samples)"
    return (
        f"  {name:<15} p50 {s['p50']:8.2f}  p99 {s['p99']:8.2f}  p99.9 {s['p999']:8.2f}  "
        f"max {s['max']:8.2f} ms  (n={s['count']:,})"
    )


def format_report(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    lines = [
        f"clients {r['clients']:,} ({r['players']:,} players, {r['spectator_clients']:,} "
        f"spectators) in {r['games']:,} games; connected in {r['connect_s']:.1f} s",
        f"ran {r['duration_s']:.1f} s: {r['moves_acked']:,} moves acked "
        f"({r['moves_per_s']:,.1f}/s), {r['messages_per_s']:,.0f} messages/s received, "
        f"{r['chats_acked']:,} chats, {r['reconnects']:,} reconnects",
        "latency (ms):",
        _lat("action->ack", lat["action_ack"]),
        _lat("move->broadcast", lat["move_broadcast"]),
        _lat("chat->ack", lat["chat_ack"]),
        _lat("connect", lat["connect"]),
        f"lost {r['lost']}, duplicated {r['duplicated']}, gaps {r['gaps']}, "
        f"unanswered {r['unanswered']}, unexpected closes {r['unexpected_closes']}, "
        f"starved {r['starved']}",
        f"errors: {r['errors'] or 'none'}",
        "OK" if r["ok"] else "FAILED: events were lost or duplicated, or errors occurred",
    ]
    return "\n".join(lines)
