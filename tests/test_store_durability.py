"""Durability and availability of both backends: kill -9 after an ack loses nothing; an
unreachable, read-only or full database gives StoreUnavailableError (never a crash), and
the store works again when the database comes back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import PgCluster, free_port, unavailable, with_query

from goapp.store import (
    NewEvent,
    NewGame,
    Store,
    StoreUnavailableError,
    open_store,
)

# writer processes killed mid-write
pytestmark = [pytest.mark.server]

ROOT = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).with_name("store_writer.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


# -- kill -9 -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite-full", "sqlite-normal", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_schema_url")
        return url
    sync = request.param.split("-")[1]
    return f"sqlite://{tmp_path}/goapp.db?synchronous={sync}"


async def test_kill_9_after_ack_loses_nothing(durable_url: str) -> None:
    """A writer process prints each acknowledged event; SIGKILL it mid-stream; every
    acknowledged event is in the database and every log is gap-free."""
    store = await open_store(durable_url)
    try:
        games = [(await store.create_game(NewGame(status="playing"))).id for _ in range(4)]
    finally:
        await store.close()
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), durable_url, *map(str, games)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    acked: list[tuple[int, int]] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == b"ready\n", first + proc.stderr.read() if proc.stderr else first
        deadline = time.monotonic() + 60
        while len(acked) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            gid, seq = map(int, line.split())
            acked.append((gid, seq))
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: writes are in flight right now
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for line in rest.splitlines():  # acks printed before the kill landed
        gid, seq = map(int, line.split())
        acked.append((gid, seq))
    assert len(acked) >= 300, err.decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL

    store = await open_store(durable_url)
    try:
        for gid in games:
            log = await store.events_since(gid)
            seqs = [e.seq for e in log]
            assert seqs == list(range(1, len(seqs) + 1))  # gap-free
            assert (await store.get_game(gid)).last_seq == len(seqs)
            assert all(e.payload == {"game": gid, "seq": e.seq} for e in log)
            mine = [s for g, s in acked if g == gid]
            assert set(mine) <= set(seqs), f"acknowledged but lost: {set(mine) - set(seqs)}"
    finally:
        await store.close()


# -- PostgreSQL unreachable / restarted --------------------------------------------------------


async def test_postgres_unreachable_is_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/goapp?connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        await open_store(url)
    assert time.monotonic() - started < 10


async def test_postgres_restart_then_reconnect(pg_cluster: PgCluster) -> None:
    store = await open_store(with_query(pg_cluster.url, connect_timeout="3", pool_max="4"))
    try:
        gid = (await store.create_game(NewGame(status="playing"))).id
        await asyncio.gather(*(store.events_since(gid) for _ in range(4)))  # fill the pool
        await store.append_event(gid, 1, "move", {"n": 1})

        await asyncio.to_thread(pg_cluster.stop)
        with pytest.raises(StoreUnavailableError):
            await store.append_event(gid, 2, "move", {"n": 2})
        with pytest.raises(StoreUnavailableError):
            await store.get_game(gid)
        with pytest.raises(StoreUnavailableError):
            await store.ping()

        await asyncio.to_thread(pg_cluster.start)
        # the dead pooled connections are replaced: the first calls after the restart work
        assert (await store.get_game(gid)).last_seq == 1
        await store.append_event(gid, 2, "move", {"n": 2})
        await asyncio.gather(*(store.events_since(gid) for _ in range(8)))

        # a restart while the store is idle (connections die without the store noticing)
        await asyncio.to_thread(pg_cluster.restart)
        assert [e.seq for e in await store.events_since(gid)] == [1, 2]
        await store.ping()
        await store.append_event(gid, 3, "move", {"n": 3})
        assert (await store.get_game(gid)).last_seq == 3
    finally:
        await store.close()


async def test_postgres_read_only_is_unavailable(pg_schema_url: str) -> None:
    """A read-only server (a standby after failover, or default_transaction_read_only):
    writes give StoreUnavailableError, reads keep working."""
    store = await open_store(pg_schema_url)
    gid = (await store.create_game(NewGame())).id
    await store.close()
    ro = await open_store(with_query(pg_schema_url, default_transaction_read_only="on"))
    try:
        with pytest.raises(StoreUnavailableError):
            await ro.append_event(gid, 1, "move", {})
        with pytest.raises(StoreUnavailableError):
            await ro.create_user("x", None)
        assert (await ro.get_game(gid)).last_seq == 0
    finally:
        await ro.close()


# -- SQLite read-only and disk full ------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make a directory (and its files) read-only for this process, even as root (a
    read-only bind mount over it, like a filesystem remounted read-only)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    try:
        _mount("--bind", str(directory), str(directory))
    except (OSError, subprocess.CalledProcessError) as e:
        unavailable(f"cannot bind-mount (needed for a read-only directory as root): {e}")
    try:
        _mount("-o", "remount,bind,ro", str(directory))
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=False, capture_output=True)


async def test_sqlite_read_only_is_unavailable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite://{data}/goapp.db"
    store = await open_store(url)
    gid = (await store.create_game(NewGame())).id
    await store.append_event(gid, 1, "move", {})
    await store.close()
    with read_only(data):
        with pytest.raises(StoreUnavailableError):
            await open_store(url)  # existing database
        with pytest.raises(StoreUnavailableError):
            await open_store(f"sqlite://{data}/other.db")  # new database in the directory
        with pytest.raises(StoreUnavailableError):
            await open_store(f"sqlite://{data}/sub/dir/new.db")  # cannot create the directory
    store = await open_store(url)  # writable again: works, nothing lost
    try:
        await store.append_event(gid, 2, "move", {})
        assert [e.seq for e in await store.events_since(gid)] == [1, 2]
    finally:
        await store.close()


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs (root only), to fill up."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    mnt = Path(tempfile.mkdtemp(prefix="goapp-full-"))
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt))
    except (OSError, subprocess.CalledProcessError) as e:
        mnt.rmdir()
        unavailable(f"cannot mount tmpfs: {e}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            mnt.rmdir()


async def test_sqlite_disk_full_is_unavailable_then_recovers(tiny_disk: Path) -> None:
    store: Store = await open_store(f"sqlite://{tiny_disk}/goapp.db")
    try:
        gid = (await store.create_game(NewGame(status="playing"))).id
        blob = "x" * 20_000
        seq = 0
        with pytest.raises(StoreUnavailableError):
            for _ in range(1000):  # 20 MB into 1 MiB
                await store.append_events(gid, [NewEvent(seq + 1, "move", blob)])
                seq += 1
        assert seq > 0
        # reads still work and show exactly the acknowledged events
        assert [e.seq for e in await store.events_since(gid)] == list(range(1, seq + 1))
        assert (await store.get_game(gid)).last_seq == seq
        # free space: writing works again on the same store
        _mount("-o", "remount,size=64m", str(tiny_disk))
        await store.append_event(gid, seq + 1, "move", "after")
        assert (await store.get_game(gid)).last_seq == seq + 1
    finally:
        await store.close()
