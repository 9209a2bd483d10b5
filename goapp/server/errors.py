"""One error shape for every way a request can fail.

HTTP answers ``{"error": {"code": "not_your_turn", "message": "..."}}`` with a status; the
WebSocket sends the same object inside an error frame (``{"type": "error", "id": ...,
"error": {...}}``). ``code`` is stable (clients switch on it); ``message`` is for people.
"""

from __future__ import annotations

from typing import Any

from goapp.game.errors import GameError, GameNotFound
from goapp.server.auth import AuthError, ExpiredTokenError, InvalidTokenError
from goapp.store.errors import ConflictError, NotFoundError, StoreUnavailableError


class ApiError(Exception):
    """An error raised by the HTTP or WebSocket layer itself."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def bad_request(message: str, code: str = "bad_request", **details: Any) -> ApiError:
    return ApiError(400, code, message, **details)


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


# GameError codes that are not 400 Bad Request / 409 Conflict.
_GAME_STATUS = {GameNotFound.code: 404, "not_a_player": 403, "conflict": 409}


def describe(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """(HTTP status, error body) for every error the server expects; None for a bug."""
    if isinstance(exc, ApiError):
        return exc.status, error_body(exc.code, exc.message, **exc.details)
    if isinstance(exc, GameError):
        body = exc.to_dict()
        status = _GAME_STATUS.get(exc.code, 409 if exc.code != "bad_action" else 400)
        return status, {"error": body}
    if isinstance(exc, ExpiredTokenError | InvalidTokenError):
        return 401, error_body(exc.code, str(exc))
    if isinstance(exc, AuthError):
        return 400, error_body(exc.code, str(exc))
    if isinstance(exc, StoreUnavailableError):
        return 503, error_body(
            "unavailable", "the database is unavailable; try again shortly", retry_after=5
        )
    if isinstance(exc, NotFoundError):
        return 404, error_body("not_found", str(exc) or "not found")
    if isinstance(exc, ConflictError):
        return 409, error_body("conflict", str(exc) or "conflict; reload and retry")
    return None


INTERNAL_ERROR = error_body("internal", "something went wrong on the server; it was logged")
