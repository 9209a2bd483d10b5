"""``goapp engine serve`` as an outsider meets it (issue 15): a weak secret is refused, a
missing one is made and stored, wrong secrets are throttled per address, and every
malformed body is a 400 (never a 500). A real ``goapp engine serve`` process over the real
KataGo with the test model, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from engine_support import until
from services import free_port

from goapp.engine.remote import (
    FREE_FAILURES,
    MAX_TAG_CHARS,
    MIN_SECRET_CHARS,
    AuthThrottle,
    engine_secret,
)
from goapp.engine.setup import KataGoPaths

pytestmark = pytest.mark.timeout(900)  # the session's KataGo fixture may tune OpenCL first

#: Bodies ``POST /v1/analyze`` must refuse with 400: not JSON, wrong shapes, wrong types,
#: unknown fields (at the top and in the query), values out of range.
BAD_ANALYZE = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b"null",
    b'"query"',
    b"{}",
    b'{"query": 5}',
    b'{"query": []}',
    b'{"query": {}}',
    b'{"query": {"moves": []}, "extra": 1}',
    b'{"query": {"moves": [], "maxVisitz": 10}}',
    b'{"query": {"moves": "D4"}}',
    b'{"query": {"moves": [], "maxVisits": "ten"}}',
    b'{"query": {"moves": [], "rules": 5}}',
    b'{"query": {"moves": [], "boardXSize": 1.5}}',
    b'{"query": {"moves": []}, "timeout": -1}',
    b'{"query": {"moves": []}, "timeout": 0}',
    b'{"query": {"moves": []}, "timeout": 1e300}',
    b'{"query": {"moves": []}, "timeout": "5"}',
    b'{"query": {"moves": []}, "tag": 7}',
    b'{"query": {"moves": []}, "tag": ""}',
    b'{"query": {"moves": []}, "tag": "' + b"t" * (MAX_TAG_CHARS + 1) + b'"}',
    b'{"query": {"moves": []}, "timeout": NaN}',
    b"[" * 5000 + b"]" * 5000,
]
#: Bodies ``POST /v1/cancel`` must refuse with 400 (bad JSON was a 500).
BAD_CANCEL = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b'"tag"',
    b"{}",
    b'{"tag": null}',
    b'{"tag": 5}',
    b'{"tag": ""}',
    b'{"tag": ["a"]}',
    b'{"tag": "a", "extra": 1}',
    b'{"tag": "' + b"t" * (MAX_TAG_CHARS + 1) + b'"}',
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value; objects draw their keys from the endpoints' field names and a
    stranger, and never hold a query's ``moves`` (so no value is a valid body)."""
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, 1.5, -1e308])
    if kind == 3:
        return rng.choice(["", "x", "tag", "ü" * 3])
    if kind == 4:
        return []
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["query", "timeout", "tag", "maxVisits", "rules", "bogus"]
    return {k: random_json(rng, depth + 1) for k in rng.sample(keys, rng.randrange(1, 4))}


class EngineServer:
    """``python -m goapp engine serve`` on 127.0.0.1 over the test KataGo."""

    def __init__(
        self, katago: KataGoPaths, data_dir: Path, secret: str | None, port: int | None = None
    ) -> None:
        assert katago.home is not None
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
        env["GOAPP_DATA_DIR"] = str(data_dir)
        if secret is not None:
            env["GOAPP_ENGINE_SECRET"] = secret
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "goapp", "engine", "serve"),
                *("--listen", f"127.0.0.1:{self.port}", "--katago-dir", str(katago.home)),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


@pytest.fixture
def servers() -> Iterator[list[EngineServer]]:
    started: list[EngineServer] = []
    yield started
    for s in started:
        s.stop()


async def test_a_short_secret_is_refused_with_a_clear_message(
    tmp_path: Path, katago: KataGoPaths, servers: list[EngineServer]
) -> None:
    server = EngineServer(katago, tmp_path / "data", "x" * (MIN_SECRET_CHARS - 1))
    servers.append(server)
    try:
        out, _ = await asyncio.to_thread(server.proc.communicate, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("goapp engine serve started with a 15-character secret") from None
    assert server.proc.returncode == 2
    assert f"at least {MIN_SECRET_CHARS}" in out.decode() and "openssl rand" in out.decode()


async def test_an_address_in_use_is_one_clear_line(
    tmp_path: Path, katago: KataGoPaths, servers: list[EngineServer]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EngineServer(katago, tmp_path / "data", "x" * MIN_SECRET_CHARS, port=port)
        servers.append(server)
        try:
            out, _ = await asyncio.to_thread(server.proc.communicate, timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("goapp engine serve ran on an address in use") from None
    text = out.decode()
    assert server.proc.returncode == 2, text
    assert "Traceback" not in text and f"cannot listen on 127.0.0.1:{port}" in text, text


async def test_serve_makes_a_secret_throttles_wrong_ones_and_refuses_bad_bodies(
    tmp_path: Path, katago: KataGoPaths, servers: list[EngineServer]
) -> None:
    data_dir = tmp_path / "data"
    server = EngineServer(katago, data_dir, None)
    servers.append(server)
    secret_file = data_dir / "engine_secret"
    await until(secret_file.exists, 60, "the generated secret")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", secret), secret
    good = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    async with aiohttp.ClientSession() as http:

        async def state_up() -> bool:
            try:
                async with http.get(server.url + "/v1/state", headers=good) as resp:
                    return resp.status == 200 and (await resp.json())["state"] == "up"
            except aiohttp.ClientError:
                return False

        await until(state_up, 300, "the engine server up")

        async def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
            async with http.post(server.url + path, data=body, headers=headers) as resp:
                return resp.status, await resp.read()

        # every malformed body: 400 bad_request (the listed shapes, then random ones)
        rng = random.Random(15)
        analyze = BAD_ANALYZE + [orjson.dumps(random_json(rng)) for _ in range(60)]
        cancel = BAD_CANCEL + [orjson.dumps(random_json(rng)) for _ in range(60)]
        for path, bodies in (("/v1/analyze", analyze), ("/v1/cancel", cancel)):
            for body in bodies:
                status, raw = await post(path, body, good)
                assert status == 400, (path, body[:80], status, raw[:200])
                assert orjson.loads(raw)["error"]["code"] == "bad_request"
        # and well-formed ones still work
        query = {"moves": [["B", "E5"]], "rules": "chinese", "komi": 7.0, "boardXSize": 9,
                 "boardYSize": 9, "maxVisits": 4}  # fmt: skip
        status, raw = await post("/v1/analyze", orjson.dumps({"query": query}), good)
        assert status == 200, raw[:300]
        status, raw = await post("/v1/cancel", b'{"tag": "game-1"}', good)
        assert status == 200 and orjson.loads(raw) == {"cancelled": 0}

        # wrong secrets: 401 a few times, then 429 with Retry-After, even for the right one
        wrong = {**good, "Authorization": "Bearer " + "0" * 64}
        for _ in range(FREE_FAILURES):
            status, raw = await post("/v1/cancel", b'{"tag": "t"}', wrong)
            assert status == 401, raw
        for headers in (wrong, good):
            async with http.get(server.url + "/v1/state", headers=headers) as resp:
                assert resp.status == 429
                assert int(resp.headers["Retry-After"]) >= 1
                assert (await resp.json())["error"]["code"] == "rate_limited"
        # the back-off doubles with each further failure once it has run out
        async with http.get(server.url + "/v1/state", headers=good) as resp:
            first_wait = int(resp.headers["Retry-After"])
        await asyncio.sleep(first_wait + 0.1)
        status, _ = await post("/v1/cancel", b'{"tag": "t"}', wrong)
        assert status == 401
        async with http.get(server.url + "/v1/state", headers=good) as resp:
            assert resp.status == 429 and int(resp.headers["Retry-After"]) == 2 * first_wait
        await asyncio.sleep(2 * first_wait + 0.1)
        assert await state_up()  # the right secret after the back-off: served again

    out = server.stop()
    assert server.proc.returncode == 0, out[-2000:]
    assert str(secret_file) in out and secret not in out  # says where, never the secret


def test_racing_first_starts_share_one_complete_secret(tmp_path: Path) -> None:
    """Engine servers started at once on a new data directory all serve the one secret that
    ends up in DATA_DIR/engine_secret: none reads the file while its creator is still writing
    it (an empty secret, refused as too short)."""
    workers = 8
    for round_ in range(10):
        settings = SimpleNamespace(engine_secret="", data_dir=str(tmp_path / f"data{round_}"))
        barrier = threading.Barrier(workers)

        def first_start(settings: Any, barrier: threading.Barrier) -> str:
            barrier.wait()
            return engine_secret(settings)[0]

        with ThreadPoolExecutor(workers) as pool:
            calls = [pool.submit(first_start, settings, barrier) for _ in range(workers)]
            seen = {call.result(timeout=30) for call in calls}
        stored = (tmp_path / f"data{round_}" / "engine_secret").read_text().strip()
        assert seen == {stored}, (round_, seen)
        assert re.fullmatch(r"[0-9a-f]{64}", stored)


def test_wrong_secrets_back_off_per_address() -> None:
    """The throttle's numbers, on a clock of its own: 5 free failures, then 1 s doubling
    with each further one up to 5 minutes; forgotten 15 minutes after the last, or at a
    success; each address counted apart."""
    now = [1000.0]
    throttle = AuthThrottle(clock=lambda: now[0])
    for _ in range(FREE_FAILURES - 1):
        throttle.failed("a")
        assert throttle.wait("a") == 0
    waits = []
    for _ in range(12):
        throttle.failed("a")
        waits.append(throttle.wait("a"))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert throttle.wait("b") == 0
    throttle.failed("a")
    now[0] += 900.5
    assert throttle.wait("a") == 0  # forgotten: the next failure is a free one again
    throttle.failed("a")
    assert throttle.wait("a") == 0
    for _ in range(FREE_FAILURES):
        throttle.failed("b")
    assert throttle.wait("b") == 1
    throttle.succeeded("b")
    assert throttle.wait("b") == 0
