"""The automatch service: runs the pairing policy (:mod:`goapp.match.policy`) against the
store, creates the games and tells the players.

Pairing is a database decision, never an in-memory one, so it is exactly-once across
instances: :meth:`Store.claim_automatch_pair` marks two waiting requests paired in one
transaction, conditionally on both still waiting (PostgreSQL: ``SELECT ... FOR UPDATE SKIP
LOCKED``; SQLite: the single writer). Whoever wins the claim creates the game with
:meth:`GameService.create_game` and records its id on both requests; a loser simply tries
its next candidate or leaves the request waiting.

A request is examined when it is posted (against the requests already waiting), and again
by :meth:`AutomatchService.sweep`, which every instance runs every
``automatch_interval_s`` seconds: ranges widen as requests wait, so two requests that
could not be paired at first may be later. Several instances sweeping at once is safe:
their claims are conditional.

Players hear of it on every connection through ``send`` (``Hub.send_user``, which reaches
other instances over Redis)::

    {"type": "automatch", "kind": "paired", "payload": {"game_id", "request_id",
     "opponent": {"id", "name"}, "color", "size", "speed"}}
    {"type": "automatch", "kind": "cancelled", "payload": {"request_id", "reason"}}

``reason`` is ``cancelled`` (the player cancelled), ``replaced`` (a newer request took its
place), ``offline`` (a blitz or live request whose player had no connection for
``automatch_offline_cancel_s``) or ``error`` (the game could not be created).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from goapp.game.service import GameService
from goapp.match import policy
from goapp.protocol import Automatch
from goapp.store import Store
from goapp.store.base import utcnow
from goapp.store.errors import ConflictError, StoreError
from goapp.store.records import AutomatchRequest

log = logging.getLogger("goapp.match")

#: How many candidates one claim offers the store (best first).
CLAIM_CANDIDATES = 20
#: Claims tried when a request is posted before it is left to the sweeper.
POST_ATTEMPTS = 3
#: How long a POST whose request another claimer paired waits for that game's id.
PARTNER_GAME_WAIT_S = 2.0
#: Speeds whose requests are cancelled when their player has gone (not correspondence).
LIVE_SPEEDS = frozenset({"blitz", "live"})

Send = Callable[[int, Automatch], Any]
#: Whether a user has a connection anywhere; None when that cannot be known (several
#: instances and Redis down: only this instance's connections are visible).
Online = Callable[[int], "bool | None"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a posted request: ``paired`` (with the game) or ``waiting``."""

    status: Literal["paired", "waiting"]
    request: AutomatchRequest
    game_id: int | None = None


class AutomatchService:
    def __init__(
        self,
        store: Store,
        games: GameService,
        *,
        send: Send | None = None,
        online: Online | None = None,
        offline_cancel_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.games = games
        self.send = send
        self.online = online
        self.offline_cancel_s = offline_cancel_s
        self.rng = rng or random.Random()
        self._offline_since: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        user_id: int,
        *,
        sizes: Sequence[int],
        speed: str,
        rated: bool = True,
        now: datetime | None = None,
    ) -> Outcome:
        """Post the user's request (replacing a waiting one) and try to pair it at once.
        NotFoundError when the user does not exist; ValueError for a bad speed or size."""
        user = await self.store.get_user(user_id)
        try:
            req, old = await self.store.create_automatch_request(
                user_id, speed=speed, sizes=sizes, rated=rated, rating=user.rating, now=now
            )
        except ConflictError:
            # the same player posted twice at once (PostgreSQL): the later one replaces
            req, old = await self.store.create_automatch_request(
                user_id, speed=speed, sizes=sizes, rated=rated, rating=user.rating, now=now
            )
        if old is not None:
            self._notify_cancelled(old, "replaced")
        for _ in range(POST_ATTEMPTS):
            when = now or utcnow()
            waiting = await self.store.waiting_automatch_requests(req.speed)
            candidates = policy.rank_candidates(
                req, waiting, when, limit=CLAIM_CANDIDATES, rng=self.rng
            )
            if not candidates:
                break
            claim = await self.store.claim_automatch_pair(
                req.id, [c.id for c in candidates], now=when
            )
            if claim is not None:
                mine, partner = claim
                game_id = await self._start(mine, partner)
                if game_id is None:
                    return Outcome("waiting", await self.store.get_automatch_request(req.id))
                return Outcome("paired", mine, game_id)
            current = await self.store.get_automatch_request(req.id)
            if current.status != "waiting":
                return await self._claimed_by_other(current)
        return Outcome("waiting", req)

    async def _claimed_by_other(self, req: AutomatchRequest) -> Outcome:
        """Another claimer paired ``req`` meanwhile: wait (briefly) for its game's id."""
        deadline = time.monotonic() + PARTNER_GAME_WAIT_S
        while req.status == "paired" and req.game_id is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            req = await self.store.get_automatch_request(req.id)
        if req.status == "paired":
            return Outcome("paired", req, req.game_id)
        return Outcome("waiting", req)

    async def current(self, user_id: int) -> AutomatchRequest | None:
        """The user's waiting request, if any."""
        return await self.store.waiting_automatch_request(user_id)

    async def cancel(self, user_id: int) -> AutomatchRequest | None:
        """Cancel the user's waiting request; None when there was none."""
        req = await self.store.cancel_automatch_request(user_id)
        if req is not None:
            self._notify_cancelled(req, "cancelled")
        return req

    # -- pairing ---------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Pair what can be paired among the waiting requests (their ranges widen as they
        wait) and cancel live requests whose players have gone; returns the games made."""
        when = now or utcnow()
        waiting = await self.store.waiting_automatch_requests()
        waiting = await self._drop_offline(waiting)
        made = 0
        for speed in policy.SPEEDS:
            group = [w for w in waiting if w.speed == speed]
            for a, b in policy.greedy_pairs(group, when):
                claim = await self.store.claim_automatch_pair(a.id, [b.id], now=when)
                if claim is not None and await self._start(*claim) is not None:
                    made += 1
        return made

    async def _start(self, a: AutomatchRequest, b: AutomatchRequest) -> int | None:
        """Create the game of a claimed pair, record it, tell both players."""
        size = policy.common_size(a.sizes, b.sizes) or max(a.sizes)
        color_a = policy.nigiri(self.rng)
        try:
            state = await self.games.create_game(
                a.user_id,
                b.user_id,
                user_color=color_a,
                size=size,
                rules=policy.RULES,
                time_control=policy.time_control(a.speed),
            )
            if not a.rated:
                await self.store.set_game_rated(state.game_id, False)
        except Exception:
            log.exception(
                "automatch pair claimed but the game could not be created",
                extra={"requests": [a.id, b.id]},
            )
            with contextlib.suppress(StoreError):
                await self.store.set_automatch_game([a.id, b.id], None)
            self._notify_cancelled(a, "error")
            self._notify_cancelled(b, "error")
            return None
        game_id = state.game_id
        await self.store.set_automatch_game([a.id, b.id], game_id)
        color_b = "white" if color_a == "black" else "black"
        names = {a.user_id: "", b.user_id: ""}
        for uid in names:
            with contextlib.suppress(StoreError):
                names[uid] = (await self.store.get_user(uid)).name
        self._notify_paired(a, b, game_id, color_a, size, names[b.user_id])
        self._notify_paired(b, a, game_id, color_b, size, names[a.user_id])
        log.info(
            "automatch paired",
            extra={"game_id": game_id, "users": [a.user_id, b.user_id], "speed": a.speed},
        )
        return game_id

    async def _drop_offline(self, waiting: list[AutomatchRequest]) -> list[AutomatchRequest]:
        """Cancel live requests whose player has had no connection for
        ``offline_cancel_s`` (as seen by this instance's sweeps); the rest go on. While
        presence is unknown nobody is cancelled and the clocks start again afterwards."""
        if self.online is None or self.offline_cancel_s <= 0:
            return waiting
        mono = time.monotonic()
        keep: list[AutomatchRequest] = []
        seen: set[int] = set()
        for req in waiting:
            if req.speed not in LIVE_SPEEDS or self.online(req.user_id) is not False:
                keep.append(req)
                continue
            seen.add(req.id)
            since = self._offline_since.setdefault(req.id, mono)
            if mono - since < self.offline_cancel_s:
                keep.append(req)
                continue
            gone = await self.store.cancel_automatch_request(req.user_id, request_id=req.id)
            if gone is not None:
                self._notify_cancelled(gone, "offline")
        self._offline_since = {k: v for k, v in self._offline_since.items() if k in seen}
        return keep

    # -- the background task ---------------------------------------------------------------

    def start(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` seconds in the background (0 or less: never)."""
        if interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(interval_s), name="automatch")

    async def _run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("automatch sweep failed", extra={"error": str(exc)})
            except Exception:
                log.exception("automatch sweep crashed; retrying")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    # -- notifications ---------------------------------------------------------------------

    def _send(
        self, user_id: int, payload: dict[str, Any], kind: Literal["paired", "cancelled"]
    ) -> None:
        if self.send is None:
            return
        try:
            self.send(user_id, Automatch(kind=kind, payload=payload))
        except Exception:
            log.exception("sending an automatch frame failed", extra={"user_id": user_id})

    def _notify_paired(
        self,
        req: AutomatchRequest,
        other: AutomatchRequest,
        game_id: int,
        color: str,
        size: int,
        other_name: str,
    ) -> None:
        payload = {
            "game_id": game_id,
            "request_id": req.id,
            "opponent": {"id": other.user_id, "name": other_name},
            "color": color,
            "size": size,
            "speed": req.speed,
        }
        self._send(req.user_id, payload, "paired")

    def _notify_cancelled(self, req: AutomatchRequest, reason: str) -> None:
        self._send(req.user_id, {"request_id": req.id, "reason": reason}, "cancelled")
