"""Moved: the hub is part of the fan-out layer, :mod:`goapp.bus.hub` (with
:mod:`goapp.bus.conn` and the parts it composes). This module only re-exports it for code
written against the old place; import from :mod:`goapp.bus` instead.
"""

from goapp.bus.conn import WRITE_BUFFER_LIMIT, Conn, Transport
from goapp.bus.frames import event_frame, event_json
from goapp.bus.hub import Hub
from goapp.bus.pinger import PING_FRAME
from goapp.bus.ports import Relay

__all__ = [
    "PING_FRAME",
    "WRITE_BUFFER_LIMIT",
    "Conn",
    "Hub",
    "Relay",
    "Transport",
    "event_frame",
    "event_json",
]
