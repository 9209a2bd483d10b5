"""goapp.protocol against docs/protocol.md, the clients' reference: every frame type the
module defines is documented, every documented one exists, and each frame's fields are named
in its row. Plus the frames' shapes: the hot path's event body is an :class:`Event`, and
every server frame reads back as itself."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from goapp import protocol as p
from goapp.game.events import Pass, StoredEvent

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _table(heading: str) -> dict[str, str]:
    """The rows of the table under ``### heading``: the first cell's `type` -> the row."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"### {heading}")
    rows: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        match = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if match is not None:
            assert match[1] not in rows, f"{match[1]} documented twice under {heading}"
            rows[match[1]] = line
    return rows


def _named(field: str, row: str) -> bool:
    """Whether ``row`` names ``field`` in backticks (`field`, `field?`, `field: {...}`)."""
    return any(re.match(rf"{field}\b", span) for span in re.findall(r"`([^`]+)`", row))


CLIENT_ROWS = _table("Client → server")
SERVER_ROWS = _table("Server → client")


def test_every_client_message_is_documented_and_no_other() -> None:
    assert set(CLIENT_ROWS) == set(p.CLIENT_TYPES)


def test_every_server_frame_is_documented_and_no_other() -> None:
    assert set(SERVER_ROWS) == set(p.SERVER_TYPES)


@pytest.mark.parametrize("cls", p.CLIENT_MESSAGES, ids=lambda c: c.__name__)
def test_client_fields_are_documented(cls: type[msgspec.Struct]) -> None:
    row = CLIENT_ROWS[str(cls.__struct_config__.tag)]
    missing = [f for f in cls.__struct_fields__ if f != "id" and not _named(f, row)]
    assert not missing, f"{cls.__name__}: {missing} not in docs/protocol.md"


@pytest.mark.parametrize("cls", p.SERVER_FRAMES, ids=lambda c: c.__name__)
def test_server_fields_are_documented(cls: type[msgspec.Struct]) -> None:
    row = SERVER_ROWS[str(cls.__struct_config__.tag)]
    missing = [f for f in cls.__struct_fields__ if not _named(f, row)]
    assert not missing, f"{cls.__name__}: {missing} not in docs/protocol.md"


def test_the_client_examples_decode() -> None:
    """The doc's client examples are messages the server accepts."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("### Client → server", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    examples = [line for line in block.splitlines() if line.strip()]
    assert {json.loads(line)["type"] for line in examples} == set(p.CLIENT_TYPES)
    for line in examples:
        assert p.decode_client(line).__struct_config__.tag == json.loads(line)["type"]


def test_the_event_body_is_an_event_frame() -> None:
    """The hot path builds the event body with orjson; it has exactly the Event's shape."""
    stored = StoredEvent(
        game_id=42,
        seq=7,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        event=Pass(at_ms=1, color="black", move_number=3),
    )
    body = p.event_json(stored)
    frame = p.decode_server(body)
    assert isinstance(frame, p.Event)
    assert (frame.game_id, frame.seq, frame.kind) == (42, 7, "pass")
    assert orjson.loads(p.encode(frame)) == orjson.loads(body)


FRAMES: list[msgspec.Struct] = [
    p.Welcome(
        user=p.UserRef(7, "alice"),
        server_time=1,
        protocol=p.PROTOCOL,
        instance=None,
        limits=p.Limits(
            max_msg_size=4096,
            msg_rate=20.0,
            msg_burst=40.0,
            chat_rate=None,
            chat_burst=None,
            max_chat_chars=500,
            max_subscriptions=64,
        ),
    ),
    p.Ack(id="a1"),
    p.Ack(id=3, game_id=42, seq=None),
    p.Error(id=None, error={"code": "bad_message", "message": "no"}),
    p.State(game_id=42, seq=0, view={"phase": "playing"}),
    p.Event(game_id=42, seq=1, kind="pass", payload={"color": "black"}),
    p.Lobby(kind="challenge_created", payload={"id": 3}),
    p.ChatLine(room="lobby", id=1, user=p.UserRef(7, "alice"), text="hi", created="2026"),
    p.Presence(joined=[p.UserRef(8, "bob")], users=2, guests=0),
    p.Presence(game_id=42, watchers=5),
    p.Pong(id=15, t=None, server_time=2),
    p.Notify(kind="your_move", game_id=44, opponent=None, deadline_ms=None),
    p.Automatch(kind="cancelled", payload={"request_id": 9, "reason": "offline"}),
]


def test_every_frame_type_has_an_example() -> None:
    assert {f.__struct_config__.tag for f in FRAMES} == set(p.SERVER_TYPES)


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_frames_read_back_and_leave_unset_fields_out(frame: Any) -> None:
    data = p.encode(frame)
    assert p.decode_server(data) == frame
    obj = orjson.loads(data)
    assert obj["type"] == frame.__struct_config__.tag
    assert msgspec.UNSET not in obj.values()
    assert set(obj) == {"type"} | {
        f for f in frame.__struct_fields__ if getattr(frame, f) is not msgspec.UNSET
    }
    # None is sent as null, not left out: an action that committed nothing has "seq": null
    if isinstance(frame, p.Ack) and frame.seq is None:
        assert obj["seq"] is None
