"""Rulesets, following KataGo's rules model (``docs/rules.html`` in lightvector/KataGo).

A :class:`Rules` value is a combination of independent options. The named rulesets that
players know (Japanese, Chinese, AGA, ...) are fixed combinations of them, as KataGo defines
them, so that the server and the AI always agree on what is legal and how a game is scored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class KoRule(enum.IntEnum):
    """Which repetitions are forbidden."""

    SIMPLE = 0  #: only the immediate recapture of a single stone (basic ko)
    POSITIONAL = 1  #: no move may recreate an earlier board position
    SITUATIONAL = 2  #: no move may recreate an earlier position with the same player to move


class ScoringRule(enum.IntEnum):
    AREA = 0  #: stones on the board + surrounded empty points
    TERRITORY = 1  #: surrounded empty points + captured and dead stones


class TaxRule(enum.IntEnum):
    """Which empty points do not count as territory (KataGo's ``taxRule``)."""

    NONE = 0  #: every surrounded empty point counts
    SEKI = 1  #: points in seki are not territory (Japanese and Korean rules)
    ALL = 2  #: additionally, each group pays two points for its two eyes (stone scoring)


class WhiteHandicapBonus(enum.IntEnum):
    """Extra points for White in handicap games, under area scoring."""

    ZERO = 0
    N = 1  #: one point per handicap stone (Chinese)
    N_MINUS_ONE = 2  #: one point per handicap stone after the first (AGA)


@dataclass(frozen=True, slots=True)
class Rules:
    """One combination of rule options. Komi is not part of the rules (it is game info)."""

    ko: KoRule = KoRule.POSITIONAL
    scoring: ScoringRule = ScoringRule.AREA
    tax: TaxRule = TaxRule.NONE
    suicide: bool = True  #: multi-stone suicide legal (single-stone suicide never is)
    button: bool = False  #: the first player to pass collects the button (half a point)
    white_handicap_bonus: WhiteHandicapBonus = WhiteHandicapBonus.ZERO
    friendly_pass_ok: bool = False  #: a pass that ends a game without cleanup is accepted

    @property
    def name(self) -> str:
        """The named ruleset this equals, or ``"custom"``."""
        for name, rules in NAMED_RULES.items():
            if rules == self:
                return name
        return "custom"

    def with_options(self, **changes: object) -> Rules:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """KataGo's JSON form of the rules (as the analysis engine accepts it)."""
        return {
            "ko": self.ko.name,
            "scoring": self.scoring.name,
            "tax": self.tax.name,
            "suicide": self.suicide,
            "hasButton": self.button,
            "whiteHandicapBonus": {
                WhiteHandicapBonus.ZERO: "0",
                WhiteHandicapBonus.N: "N",
                WhiteHandicapBonus.N_MINUS_ONE: "N-1",
            }[self.white_handicap_bonus],
            "friendlyPassOk": self.friendly_pass_ok,
        }

    @classmethod
    def from_name(cls, name: str) -> Rules:
        """Look up a named ruleset (case and punctuation insensitive: ``"New Zealand"``,
        ``"nz"``, ``"tromp-taylor"``, ``"TT"``...). Raises :class:`UnknownRulesError`."""
        key = _normalize(name)
        canonical = _ALIASES.get(key, key)
        try:
            return NAMED_RULES[canonical]
        except KeyError:
            known = ", ".join(sorted(NAMED_RULES))
            raise UnknownRulesError(f"unknown ruleset {name!r}; known rulesets: {known}") from None


class UnknownRulesError(ValueError):
    pass


def _normalize(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


NAMED_RULES: dict[str, Rules] = {
    # KataGo (cpp/game/rules.cpp, parseRulesHelper): japanese and korean are the same
    # combination, with friendlyPassOk false.
    "japanese": Rules(
        ko=KoRule.SIMPLE,
        scoring=ScoringRule.TERRITORY,
        tax=TaxRule.SEKI,
        suicide=False,
        friendly_pass_ok=False,
    ),
    "korean": Rules(
        ko=KoRule.SIMPLE,
        scoring=ScoringRule.TERRITORY,
        tax=TaxRule.SEKI,
        suicide=False,
        friendly_pass_ok=False,
    ),
    "chinese": Rules(
        ko=KoRule.SIMPLE,
        scoring=ScoringRule.AREA,
        suicide=False,
        white_handicap_bonus=WhiteHandicapBonus.N,
        friendly_pass_ok=True,
    ),
    "aga": Rules(
        ko=KoRule.SITUATIONAL,
        scoring=ScoringRule.AREA,
        suicide=False,
        white_handicap_bonus=WhiteHandicapBonus.N_MINUS_ONE,
        friendly_pass_ok=True,
    ),
    "new-zealand": Rules(
        ko=KoRule.SITUATIONAL,
        scoring=ScoringRule.AREA,
        suicide=True,
        friendly_pass_ok=True,
    ),
    "tromp-taylor": Rules(
        ko=KoRule.POSITIONAL,
        scoring=ScoringRule.AREA,
        suicide=True,
    ),
}

#: KataGo's default komi for each named ruleset (komi is game info, not part of Rules).
DEFAULT_KOMI: dict[str, float] = {
    "japanese": 6.5,
    "korean": 6.5,
    "chinese": 7.5,
    "aga": 7.5,
    "new-zealand": 7.5,
    "tromp-taylor": 7.5,
}

_ALIASES = {
    "japanese": "japanese",
    "jp": "japanese",
    "korean": "korean",
    "kr": "korean",
    "chinese": "chinese",
    "cn": "chinese",
    "aga": "aga",
    "newzealand": "new-zealand",
    "nz": "new-zealand",
    "tromptaylor": "tromp-taylor",
    "tt": "tromp-taylor",
}
