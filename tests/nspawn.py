"""A Debian container with a real systemd as PID 1, for tests of the appliance as it runs.

* :func:`debian_rootfs` builds a minimal Debian bookworm tree with ``mmdebstrap`` (from the
  Debian mirror this machine's APT uses) once, and caches it under
  ``~/.cache/goapp-tests/`` keyed by a hash of what goes in; a partial build never counts.
* :class:`Container` boots it with ``systemd-nspawn`` (``--volatile=overlay``: every write
  is thrown away, so the cached tree stays clean) and runs commands inside it with
  ``nsenter``. The recipe is the one that works on hosts whose PID 1 is not systemd (see the
  systemd notes of the project's facts): no machined, no system bus on the host, hence
  ``--register=no --keep-unit``, and nspawn put first into cgroups of its own.

The container shares the host's network: 127.0.0.1 inside is the host's, so whatever it
listens on must use ports that are free on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SUITE = "bookworm"
#: What the tests need inside: systemd as init with its journal and D-Bus, what install.sh
#: uses (Nginx, OpenSSL, runuser from util-linux), KataGo's OpenCL on the CPU, and tools
#: to look inside (ss, ps, curl, sqlite3).
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "procps",
    "curl",
    "ca-certificates",
    "nginx",
    "openssl",
    "ocl-icd-libopencl1",
    "pocl-opencl-icd",
    "sqlite3",
)
#: Debian's Nginx enables a default site on port 80: the container shares the host's
#: network, so it would take the host's port 80. The tests give Nginx free ports instead.
CUSTOMIZE = 'rm -f "$1/etc/nginx/sites-enabled/default"'
CGROUP_ROOT = Path("/sys/fs/cgroup")


class ContainerError(RuntimeError):
    """The container could not be built, booted, or did not do what was asked in time."""


def missing_tools() -> list[str]:
    return [t for t in ("mmdebstrap", "systemd-nspawn", "nsenter") if shutil.which(t) is None]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "goapp-tests"


def debian_mirror() -> str | None:
    """The Debian archive this machine's APT uses for ``SUITE`` (None: mmdebstrap's own)."""
    apt = Path("/etc/apt")
    texts = [p.read_text() for p in [apt / "sources.list"] if p.is_file()]
    if (apt / "sources.list.d").is_dir():
        texts += [p.read_text() for p in sorted((apt / "sources.list.d").glob("*.list"))]
    for text in texts:  # one-line style: deb [opts] URI SUITE COMPONENTS
        found = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.M)
        if found:
            return found.group(1)
    if (apt / "sources.list.d").is_dir():  # deb822 style: URIs: / Suites: stanzas
        for path in sorted((apt / "sources.list.d").glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:(.*)$", stanza, re.M)
                if uris and suites and SUITE in suites.group(1).split():
                    return uris.group(1)
    return None


def debian_rootfs(timeout: float = 1200) -> tuple[Path, float]:
    """The cached Debian tree (built when missing) and the seconds spent building it."""
    key = hashlib.sha256(repr((SUITE, "minbase", PACKAGES, CUSTOMIZE)).encode()).hexdigest()
    root = cache_dir() / f"rootfs-{SUITE}-{key[:12]}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time across concurrent sessions
        if root.is_dir():
            return root, 0.0
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        cmd = [
            *("mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)),
            *("--customize-hook=" + CUSTOMIZE, SUITE, str(partial)),
        ]
        mirror = debian_mirror()
        if mirror:
            cmd.append(mirror)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ContainerError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr[-3000:]}")
        partial.rename(root)  # complete: only now does it count as cached
        return root, time.monotonic() - started


def own_cgroups(name: str) -> list[Path]:
    """Where nspawn gets cgroups of its own: on a cgroup v1 host (as here) in the named
    ``systemd`` hierarchy and the ``unified`` one; on a pure v2 host, in the one tree."""
    if (CGROUP_ROOT / "cgroup.controllers").is_file():
        return [CGROUP_ROOT / name]
    return [CGROUP_ROOT / h / name for h in ("systemd", "unified") if (CGROUP_ROOT / h).is_dir()]


class Container:
    """A booted container: ``run()`` commands inside, ``close()`` always tears it down."""

    def __init__(self, rootfs: Path, binds: dict[str, Path], console_log: Path) -> None:
        """Boot ``rootfs``; ``binds`` maps paths inside to host paths (read-only)."""
        self.name = f"goapp-test-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        self.cgroups = own_cgroups(self.name)
        for cg in self.cgroups:
            cg.mkdir()
        argv = [
            *("systemd-nspawn", "-D", str(rootfs), "--register=no", "--keep-unit", "-b"),
            *("--console=read-only", "--system-call-filter=bpf", "--volatile=overlay"),
            *(f"--bind-ro={host}:{inside}" for inside, host in binds.items()),
        ]
        self.console = console_log.open("w")
        cgroups = self.cgroups

        def into_own_cgroups() -> None:  # in the child, before exec: nspawn starts in them
            for cg in cgroups:
                (cg / "cgroup.procs").write_text(str(os.getpid()))

        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=into_own_cgroups,
            )
        except BaseException:
            self.console.close()
            for cg in self.cgroups:
                self._remove_cgroup(cg)
            raise
        self.pid1 = 0
        self.console_path = console_log

    def boot(self, timeout: float = 60) -> str:
        """Wait for systemd to finish booting; its state (``running`` or ``degraded``)."""
        deadline = time.monotonic() + timeout
        while not self.pid1:
            if self.proc.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited: {self.console_tail()}")
            self.pid1 = self._find_pid1()
            if time.monotonic() > deadline:
                raise ContainerError(f"no systemd in the container: {self.console_tail()}")
            time.sleep(0.1)
        while True:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return state
            if time.monotonic() > deadline:
                raise ContainerError(f"boot did not finish: {state!r}; {self.console_tail()}")
            time.sleep(0.2)

    def _find_pid1(self) -> int:
        """The container's init: the process named systemd among nspawn's children."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid and (entry / "comm").read_text().strip() == "systemd":
                    return int(entry.name)
        return 0

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``cmd`` inside every namespace of the container, as root."""
        proc = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ContainerError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                f"{proc.stderr[-4000:]}"
            )
        return proc

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, **kwargs)  # type: ignore[arg-type]

    def journal(self, unit: str, lines: int = 100) -> str:
        with contextlib.suppress(Exception):
            return self.run(
                "journalctl", "-u", unit, "-n", str(lines), "--no-pager", check=False
            ).stdout
        return "(no journal)"

    def console_tail(self) -> str:
        self.console.flush()
        with contextlib.suppress(OSError):
            return self.console_path.read_text()[-3000:]
        return ""

    def close(self, timeout: float = 30) -> None:
        """Power off; then kill what is left; then remove the cgroups. Never raises."""
        if self.pid1 and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGRTMIN + 4)  # systemd: an orderly poweroff
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        for cg in self.cgroups:
            self._remove_cgroup(cg)
        self.console.close()

    @staticmethod
    def _remove_cgroup(cg: Path) -> None:
        if not cg.is_dir():
            return
        # Whatever still runs in it (or below) is the container's: kill it.
        for _ in range(50):
            pids = []
            for procs in cg.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids += [int(p) for p in procs.read_text().split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            cg.rmdir()


def wait_until(
    check: object, what: str, timeout: float, *, detail: Sequence[object] = (), every: float = 0.5
) -> None:
    """Poll ``check()`` until truthy; fail after ``timeout`` s saying ``what`` and ``detail``
    (callables are called for the message)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            parts = [d() if callable(d) else d for d in detail]
            raise AssertionError(f"{what} within {timeout} s\n" + "\n".join(map(str, parts)))
        time.sleep(every)
