"""The stored AI review of a game, one row per turn (migration 0002_analysis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import NotFoundError
from .records import AnalysisTurn
from .schema import cols, decode_json, encode_json, utcnow
from .seam import Backend, Plan, many, one, rows

UPSERT_ANALYSIS = (
    "INSERT INTO game_analysis (game_id, turn, payload, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (game_id, turn) DO UPDATE SET payload = excluded.payload,"
    " created_at = excluded.created_at"
)
LOAD_ANALYSIS = (
    f"SELECT {cols('game_analysis')} FROM game_analysis WHERE game_id = $1 ORDER BY turn"
)


class AnalysisQueries(Backend):
    async def save_analysis(self, game_id: int, turns: Sequence[tuple[int, Any]]) -> int:
        """Store ``(turn, payload)`` rows of a game's review in one transaction, replacing
        rows of the same turns; returns how many were written. NotFoundError when the game
        does not exist."""
        now = utcnow()
        data = [(game_id, int(t), encode_json(p), now) for t, p in turns]

        def plan() -> Plan[int]:
            if (yield from one("SELECT 1 FROM games WHERE id = $1", game_id)) is None:
                raise NotFoundError(f"game {game_id} not found")
            yield from many(UPSERT_ANALYSIS, data)
            return len(data)

        return await self._write(plan(), atomic=True)

    async def load_analysis(self, game_id: int) -> list[AnalysisTurn]:
        """The stored review rows of a game, by turn (empty when there are none)."""
        found = await self._read(rows(LOAD_ANALYSIS, game_id, table="game_analysis"))
        return [
            AnalysisTurn(game_id=r[0], turn=r[1], payload=decode_json(r[2]), created_at=r[3])
            for r in found
        ]
