"""The self-hoster's journey, under a real systemd: a Debian container with systemd as PID 1
(tests/nspawn.py) in which, as a self-hoster would:

1. ``appliance/install.sh`` installs the freshly built binary: the user, the units, the
   Nginx TLS site (self-signed; the test trusts that certificate) and KataGo with the test
   model, from the katrain wheel given with ``--engine-wheel`` (no network needed);
2. the unit is active, the system is ``running``, the journal shows the start;
3. over ``https://`` through the container's Nginx two users register, one plays a 9x9 game
   against the KataGo bot over ``wss://`` to the end, scores it, and gets the AI review;
4. ``systemctl kill -s SIGKILL``: systemd restarts goapp, game and review intact; SIGSTOP:
   the watchdog restarts it;
5. ``systemctl start goapp-backup`` makes a backup that passes ``PRAGMA integrity_check``,
   and the timer is listed;
6. an upgrade to a second build with a player connected (the client resumes over wss, no
   acknowledged move is lost), ``--rollback``, then ``--uninstall`` leaves no unit and no
   Nginx site.

The Debian tree is built once by mmdebstrap and cached (~/.cache/goapp-tests/); the binary
comes from the session's ``binary`` fixture. Ports are free ones of the host, since the
container shares its network.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from engine_support import KATAGO_MODEL
from nspawn import Container, ContainerError, debian_rootfs, missing_tools
from services import free_port, unavailable

from goapp.engine.setup import KATAGO_HOME, KataGoPaths

ROOT = Path(__file__).resolve().parent.parent
STATE = "/var/lib/goapp"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the appliance is built for Linux"),
]


# -- what goes into the container ---------------------------------------------------------------


def host_tuning_dir(katago: KataGoPaths) -> Path:
    """The OpenCL tuning the session's ``katago`` fixture made for the test model."""
    tuning = (katago.home or Path()) / KATAGO_HOME / "opencltuning"
    assert any(tuning.glob("tune*.txt")), f"the katago fixture left no OpenCL tuning in {tuning}"
    return tuning


def second_build(binary: Path, into: Path) -> Path:
    """A second, different build at no cost: the same binary with a trailer (PyInstaller's
    bootloader finds its archive from the cookie before it, so it still runs)."""
    out = into / "goapp-2"
    shutil.copy2(binary, out)
    with out.open("ab") as f:
        f.write(b"\ngoapp journey test: build 2\n")
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- over HTTPS and WSS, through the container's Nginx ---------------------------------------


class Site:
    """A client of the installed site: JSON over https://, WebSockets over wss://."""

    def __init__(self, url: str, ca: Path) -> None:
        self.url = url
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self.tokens: dict[str, str] = {}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Site:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def call(
        self, method: str, path: str, body: Any = None, user: str | None = None
    ) -> tuple[int, Any]:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers, timeout=aiohttp.ClientTimeout(30)
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def get(self, path: str) -> Any:
        status, body = await self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    async def register(self, name: str) -> None:
        status, body = await self.call(
            "POST", "/api/register", {"name": name, "password": f"{name} journey pw"}
        )
        assert status == 201, body
        self.tokens[name] = body["access_token"]

    @asynccontextmanager
    async def socket(self, user: str) -> AsyncIterator[Player]:
        assert self.session is not None
        ws = await self.session.ws_connect(
            self.url.replace("https://", "wss://") + "/ws",
            protocols=["goapp.v1", f"bearer.{self.tokens[user]}"],
            origin=self.url,
        )
        try:
            yield Player(ws)
        finally:
            await ws.close()


class Player:
    """One WebSocket: requests with ids, and the game events seen so far (by seq)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: dict[int, dict[str, Any]] = {}
        self.next_id = 0

    async def frame(self, timeout: float) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
        frame: dict[str, Any] = json.loads(msg.data)
        if frame["type"] == "event":
            self.events[frame["seq"]] = frame
        return frame

    async def request(self, timeout: float = 30, **message: Any) -> dict[str, Any]:
        """Send ``message`` with a fresh id; its ack (an error frame fails)."""
        self.next_id += 1
        await self.ws.send_json({**message, "id": self.next_id})
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.frame(max(0.1, deadline - time.monotonic()))
            if frame["type"] in ("ack", "error") and frame.get("id") == self.next_id:
                assert frame["type"] == "ack", (message, frame)
                return frame  # an action's own events came as frames, just before its ack

    async def act(self, game_id: int, action: dict[str, Any]) -> int:
        """An action; the seq of its (acknowledged, so committed) event."""
        ack = await self.request(
            type="action", game_id=game_id, action=action, request_id=f"j{time.monotonic_ns()}"
        )
        return int(ack["seq"])

    async def until(
        self, check: Callable[[], bool], what: str, timeout: float, diag: Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what}: not within {timeout} s\n{diag()}")
            try:
                await self.frame(left)
            except TimeoutError:
                continue

    def last_seq(self) -> int:
        return max(self.events, default=0)

    async def wait_closed(self, timeout: float) -> None:
        """Read until the server closes the socket."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return


# -- the journey --------------------------------------------------------------------------------


class Journey:
    """The container with goapp installed, and the steps of the journey."""

    def __init__(self, box: Container, ports: dict[str, int], builds: dict[str, Path]) -> None:
        self.box = box
        self.ports = ports
        self.builds = builds
        self.url = f"https://localhost:{ports['https']}"
        self.timings: dict[str, float] = {}

    def diag(self) -> str:
        return (
            "--- journalctl -u goapp -n 100 ---\n"
            + self.box.journal("goapp.service")
            + "\n--- systemctl status goapp ---\n"
            + self.box.run("systemctl", "status", "goapp", "--no-pager", check=False).stdout
        )

    def install(self, build: str, *extra: str) -> str:
        started = time.monotonic()
        proc = self.box.run(
            "/mnt/goapp/appliance/install.sh",
            *("--binary", f"/mnt/builds/{build}", "--site-url", self.url),
            *("--http-port", str(self.ports["http"]), "--https-port", str(self.ports["https"])),
            *("--engine-wheel", f"/mnt/wheel/{self.builds['wheel'].name}"),
            *("--engine-model", f"/mnt/model/{KATAGO_MODEL.name}"),
            *extra,
            check=False,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr + self.diag()
        self.timings[f"install.sh ({build})"] = time.monotonic() - started
        return proc.stdout

    def show(self, prop: str, unit: str = "goapp.service") -> str:
        return self.box.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def running_binary_sha(self) -> str:
        pid = self.show("MainPID")
        return self.box.run("sha256sum", f"/proc/{pid}/exe").stdout.split()[0]

    def wait_restarted(self, old_pid: str, restarts: int, timeout: float) -> None:
        """Wait until systemd started goapp again (a new main PID, NRestarts grown, active)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, active = self.show("MainPID"), self.show("ActiveState")
            grown = int(self.show("NRestarts")) > restarts
            if pid not in ("0", old_pid) and active == "active" and grown:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"goapp was not restarted within {timeout} s (MainPID {pid}, {active})\n"
                    + self.diag()
                )
            time.sleep(0.5)

    async def wait_ready(self, site: Site, timeout: float = 180) -> dict[str, Any]:
        """/readyz through Nginx: 200 with the engine up."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                status, last = await site.call("GET", "/readyz")
                if status == 200 and last.get("engine") == "up":
                    return dict(last)
            except aiohttp.ClientError as exc:
                last = repr(exc)
            await asyncio.sleep(0.5)
        raise AssertionError(f"not ready with the engine up in {timeout} s: {last}\n{self.diag()}")


async def play_the_bot(journey: Journey, site: Site) -> int:
    """Alice (Black) against KataGo over wss: a few moves, then passes to the end; both
    accept the bot's marking; the game is scored. Returns the game id."""
    status, game = await site.call(
        "POST",
        "/api/challenges",
        {"size": 9, "rules": "chinese", "color": "black", "opponent": "computer"},
        user="alice",
    )
    assert status == 201, game
    assert game["white"] == {"bot": game["bot"]} and game["bot"].startswith("katago:"), game
    game_id = int(game["game_id"])

    async with site.socket("alice") as alice:
        await alice.request(type="subscribe", game_id=game_id)
        # A few moves, then passes until the bot passes too (it first settles its area;
        # bounded: 9x9 has 81 points).
        for vertex in ("E5", "C3", "G7", *["pass"] * 60):
            view = await site.get(f"/api/games/{game_id}")
            if view["phase"] != "playing":
                break
            action = {"type": "pass"} if vertex == "pass" else {"type": "move", "vertex": vertex}
            if vertex in view["moves"] and vertex != "pass":
                action = {"type": "pass"}  # the bot took the point
            seq = await alice.act(game_id, action)

            def answered(seq: int = seq) -> bool:  # the bot's move or pass, or scoring began
                return any(
                    (s > seq and e["kind"] in ("move", "pass")) or e["kind"] == "scoring_started"
                    for s, e in alice.events.items()
                )

            await alice.until(answered, "the bot's answer", 120, journey.diag)
        view = await site.get(f"/api/games/{game_id}")
        assert view["phase"] == "scoring", view
        bot_moves = view["moves"][1::2]  # White's: Alice is Black, no handicap
        assert any(v != "pass" for v in bot_moves), view["moves"]

        async def bot_accepted() -> bool:
            return "white" in (await site.get(f"/api/games/{game_id}"))["accepted"]

        deadline = time.monotonic() + 120
        while not await bot_accepted():
            assert time.monotonic() < deadline, (
                "the bot did not accept the score\n" + journey.diag()
            )
            await asyncio.sleep(0.5)
        await alice.act(game_id, {"type": "accept_score"})
    view = await site.get(f"/api/games/{game_id}")
    assert view["phase"] == "finished" and view["result"], view
    return game_id


async def review(journey: Journey, site: Site, game_id: int) -> dict[str, Any]:
    status, body = await site.call("POST", f"/api/games/{game_id}/review", user="alice")
    assert status in (200, 202), body
    deadline = time.monotonic() + 300
    while True:
        body = await site.get(f"/api/games/{game_id}/review")
        if body["status"] == "done":
            return dict(body)
        assert body["status"] in ("queued", "running"), body
        assert time.monotonic() < deadline, f"review not done: {body}\n{journey.diag()}"
        await asyncio.sleep(1)


async def the_journey(journey: Journey, ca: Path) -> None:
    box = journey.box
    async with Site(journey.url, ca) as site:
        started = time.monotonic()
        await journey.wait_ready(site)
        journey.timings["first start to ready (engine up)"] = time.monotonic() - started

        # 3. Two users; Alice plays the bot to the end and asks for the review.
        started = time.monotonic()
        await site.register("alice")
        await site.register("bob")
        game_id = await play_the_bot(journey, site)
        journey.timings["bot game"] = time.monotonic() - started
        started = time.monotonic()
        reviewed = await review(journey, site, game_id)
        journey.timings["review"] = time.monotonic() - started
        finished = await site.get(f"/api/games/{game_id}")
        assert len(reviewed["turns"]) >= len(finished["moves"]), reviewed
        kept = ("phase", "moves", "board", "result", "captures", "dead")

        async def intact() -> None:
            now = await site.get(f"/api/games/{game_id}")
            assert {k: now[k] for k in kept} == {k: finished[k] for k in kept}, now
            assert await site.get(f"/api/games/{game_id}/review") == reviewed

        # 4. SIGKILL: systemd restarts it. SIGSTOP of the service's processes: the keep-alives
        # stop, and the watchdog (WatchdogSec=30) has it killed and restarted. (All its
        # processes: the main PID is the one-file binary's bootloader, and the server that
        # feeds the watchdog is its child.)
        for sig, timeout in (("SIGKILL", 60), ("SIGSTOP", 30 + 60)):
            pid, restarts = journey.show("MainPID"), int(journey.show("NRestarts"))
            started = time.monotonic()
            box.run("systemctl", "kill", "-s", sig, "goapp.service")
            journey.wait_restarted(pid, restarts, timeout)
            await journey.wait_ready(site)
            journey.timings[f"{sig} to ready again"] = time.monotonic() - started
            await intact()
        assert "Watchdog timeout" in box.journal("goapp.service", 300), journey.diag()

        # 5. The backup service makes a sound copy; the timer is there.
        box.run("systemctl", "start", "goapp-backup.service", timeout=120)
        [backup] = box.run("sh", "-c", f"ls {STATE}/backups/goapp-*.db").stdout.split()
        check = box.run("sqlite3", backup, "PRAGMA integrity_check;").stdout.strip()
        assert check == "ok", check
        count = box.run(
            "sqlite3", backup, f"SELECT count(*) FROM game_events WHERE game_id = {game_id};"
        ).stdout.strip()
        assert int(count) > len(finished["moves"]), count  # every move, and more events
        assert "goapp-backup.timer" in box.run("systemctl", "list-timers", "--all").stdout

        # 6. An upgrade while Alice is connected to a game with Bob; she resumes over wss.
        await upgrade_with_a_player_connected(journey, site)
        await intact()


async def upgrade_with_a_player_connected(journey: Journey, site: Site) -> None:
    box = journey.box
    status, challenge = await site.call(
        "POST",
        "/api/challenges",
        {"size": 9, "rules": "japanese", "color": "black", "opponent": "bob"},
        user="alice",
    )
    assert status == 201, challenge
    status, body = await site.call("POST", f"/api/challenges/{challenge['id']}/accept", user="bob")
    assert status == 200, body
    game_id = int(body["game_id"])
    acked: dict[int, str] = {}  # seq -> vertex of every acknowledged move

    async def bob_moves(vertex: str) -> None:
        action = {"game_id": game_id, "action": {"type": "move", "vertex": vertex}}
        status, out = await site.call("POST", "/api/action", action, user="bob")
        assert status == 200, out
        acked[int(out["seq"])] = vertex

    async with site.socket("alice") as alice:
        await alice.request(type="subscribe", game_id=game_id)
        acked[await alice.act(game_id, {"type": "move", "vertex": "E5"})] = "E5"
        await bob_moves("C3")
        await alice.until(lambda: max(acked) in alice.events, "Bob's move", 30, journey.diag)
        acked[await alice.act(game_id, {"type": "move", "vertex": "G7"})] = "G7"
        seen = alice.last_seq()

        # The upgrade: install.sh puts build 2 in place and restarts goapp (systemctl
        # restart waits for READY=1). Alice's socket is closed by the stopping server.
        old = journey.show("MainPID")
        journey.install("goapp-2")
        assert journey.show("MainPID") != old
        assert journey.running_binary_sha() == sha256(journey.builds["goapp-2"])
        prev = box.run("sha256sum", "/usr/local/bin/goapp.prev").stdout.split()[0]
        assert prev == sha256(journey.builds["goapp-1"])
        await alice.wait_closed(30)
    await journey.wait_ready(site)
    await bob_moves("G3")  # while Alice is away

    # Alice reconnects and resumes from the last event she saw: she gets exactly the rest.
    async with site.socket("alice") as alice:
        ack = await alice.request(type="hello", resume={str(game_id): seen})
        assert ack.get("resumed") is not None, ack
        assert max(acked) in alice.events, (acked, alice.events.keys())
        assert min(alice.events) > seen
        acked[await alice.act(game_id, {"type": "move", "vertex": "C7"})] = "C7"

    async def moves_in_the_log() -> dict[int, str]:
        events = (await site.get(f"/api/games/{game_id}/events"))["events"]
        return {e["seq"]: e["vertex"] for e in events if e["kind"] == "move"}

    assert await moves_in_the_log() == acked

    # Rollback: build 1 runs again, with the same game.
    box.run("/mnt/goapp/appliance/install.sh", "--rollback", timeout=300)
    assert journey.running_binary_sha() == sha256(journey.builds["goapp-1"])
    await journey.wait_ready(site)
    assert await moves_in_the_log() == acked


@pytest.mark.timeout(2400)
def test_the_self_hosters_journey_under_systemd(
    binary: Path, katago: KataGoPaths, katrain_wheel: Path, tmp_path: Path
) -> None:
    missing = missing_tools()
    if missing:
        unavailable(f"missing {', '.join(missing)} (Debian: systemd-container, mmdebstrap)")
    if os.geteuid() != 0:
        unavailable("booting a container needs root")
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        rootfs, built = debian_rootfs()
    except (ContainerError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot build the Debian tree: {exc}")
    timings["rootfs (build, else cache lookup)"] = built or time.monotonic() - started

    builds_dir = tmp_path / "builds"
    builds_dir.mkdir()
    shutil.copy2(binary, builds_dir / "goapp-1")
    wheel = katrain_wheel  # the one `make katago` downloaded: no second download
    builds = {
        "goapp-1": builds_dir / "goapp-1",
        "goapp-2": second_build(binary, builds_dir),
        "wheel": wheel,
    }
    tuning = host_tuning_dir(katago)
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 5:
        ports = {k: free_port() for k in ("app", "ws", "metrics", "http", "https")}

    box = Container(
        rootfs,
        {
            "/mnt/goapp": ROOT,
            "/mnt/builds": builds_dir,
            "/mnt/wheel": wheel.parent,
            "/mnt/model": KATAGO_MODEL.parent,
            "/mnt/tuning": tuning,
        },
        tmp_path / "console.log",
    )
    journey = Journey(box, ports, builds)
    try:
        started = time.monotonic()
        assert box.boot() == "running", box.run("systemctl", "--failed", check=False).stdout
        timings["boot"] = time.monotonic() - started

        # goapp's own ports (and its metrics listener's), free on the host, in the settings
        # written before the install (install.sh keeps goapp.toml and points the Nginx site
        # at goapp's ports).
        box.sh(
            "mkdir -p /etc/goapp && cat > /etc/goapp/goapp.toml",
            input=(
                f"port = {ports['app']}\nws_port = {ports['ws']}\n"
                f'metrics_listen = "127.0.0.1:{ports["metrics"]}"\n'
            ),
        )
        # KataGo's OpenCL tuning, copied from the host's already-tuned one to where
        # `goapp engine setup` and the service's KataGo look for it (its homeDataDir,
        # DEST/home): it spares the 5-7 minute tuning on a CPU that setup would start
        # (tuning itself is tested by test_engine_setup.py and test_katago.py).
        tuning_dir = f"{STATE}/katago/{KATAGO_HOME}/opencltuning"
        box.sh(f"mkdir -p {tuning_dir} && cp /mnt/tuning/tune*.txt {tuning_dir}/")

        # 1. The install, with KataGo and its model from files (no network).
        out = journey.install("goapp-1")
        assert "installed /usr/local/bin/goapp" in out, out
        assert box.run("id", "-u", "goapp").returncode == 0
        box.run("test", "-x", f"{STATE}/katago/squashfs-root/usr/bin/katago")
        box.run("test", "-f", f"{STATE}/katago/models/{KATAGO_MODEL.name}")
        owner = box.run("stat", "-c", "%U", f"{STATE}/katago/squashfs-root").stdout.strip()
        assert owner == "goapp", owner

        # 2. Active, the system running, the journal shows the start.
        assert journey.show("ActiveState") == "active", journey.diag()
        assert box.run("systemctl", "is-system-running", check=False).stdout.strip() == (
            "running"
        ), box.run("systemctl", "--failed", "--no-pager", check=False).stdout
        journal = box.journal("goapp.service")
        assert "Started goapp.service" in journal and '"msg":"listening"' in journal, journal

        ca = tmp_path / "ca.crt"
        ca.write_text(box.run("cat", "/etc/goapp/tls/goapp.crt").stdout)
        asyncio.run(the_journey(journey, ca))

        # Uninstall: no unit, no site left; Nginx still runs; the data stays.
        box.run("/mnt/goapp/appliance/install.sh", "--uninstall", timeout=300)
        left = box.sh(
            "ls /etc/systemd/system/ /etc/nginx/sites-enabled/ /etc/nginx/sites-available/"
        )
        assert "goapp" not in left.stdout, left.stdout
        units = box.run("systemctl", "list-units", "--all", "--no-legend", "goapp*").stdout
        assert units.strip() == "", units
        assert journey.show("ActiveState", "nginx.service") == "active"
        box.run("test", "-f", f"{STATE}/goapp.db")
    except AssertionError:
        raise
    except Exception as exc:  # anything else: with the service's journal
        raise AssertionError(f"{exc!r}\n{journey.diag()}") from exc
    finally:
        box.close()
        timings["journey"] = time.monotonic() - started
        timings.update(journey.timings)
        print("journey timings (s): " + json.dumps({k: round(v, 1) for k, v in timings.items()}))
