"""Automatch: a player asks for a game by board sizes and speed and is paired with another
player of a similar rating (see docs/api.md, "Automatch").

:mod:`goapp.match.policy` is the pairing policy (pure: who may play whom, on what board,
with what clock); :mod:`goapp.match.service` runs it against the store, creates the games
and tells the players.
"""

from goapp.match.policy import SPEEDS, rating_range
from goapp.match.service import AutomatchService, Outcome

__all__ = ["SPEEDS", "AutomatchService", "Outcome", "rating_range"]
