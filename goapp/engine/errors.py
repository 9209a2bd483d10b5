"""Typed errors of the engine layer (KataGo supervisor).

Callers catch :class:`EngineError` for "the engine could not answer"; the subclasses say why,
so that a bot can retry later (busy, unavailable), give up (crashed), or report a bug
(protocol).
"""

from __future__ import annotations


class EngineError(RuntimeError):
    """Base class: the engine could not answer a query."""


class EngineUnavailableError(EngineError):
    """The engine is stopped, or down and restarting (see ``KataGoEngine.state``)."""


class EngineBusyError(EngineError):
    """The queue of pending queries is full; retry later (back-pressure)."""


class EngineTimeoutError(EngineError):
    """The query did not finish within its timeout; it was terminated in the engine."""


class EngineCrashedError(EngineError):
    """The engine died (or hung and was killed) while the query ran, twice."""


class EngineProtocolError(EngineError):
    """The engine rejected the query (``{"error": ...}``) or answered something unusable."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{message} (field {field!r})")
        self.field = field


class QueryCancelledError(EngineError):
    """The query was cancelled (``cancel()``/``cancel_tag()``) before it finished."""
