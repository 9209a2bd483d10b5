"""Run a command under the part of a systemd unit's sandbox that a process can impose on
itself, for tests on machines where systemd is not PID 1:

* ``SystemCallFilter=`` (allow-lists, ``~`` deny-lists, groups expanded by
  ``systemd-analyze syscall-filter`` exactly as systemd expands them) with
  ``SystemCallErrorNumber=`` -> a seccomp filter (libseccomp's Python binding, Debian
  package python3-seccomp);
* ``MemoryDenyWriteExecute=yes`` -> ``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)``
  (Linux 6.3+), which systemd itself uses where the kernel has it.

Usage: ``/usr/bin/python3 sandbox_exec.py UNIT_FILE PROGRAM [ARGS...]`` (exec()s PROGRAM).
Exit status 3 when the sandbox cannot be built here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import subprocess
import sys

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if not line[0].isspace() and item.startswith("@"):
            current = groups.setdefault(item, [])
        elif current is not None:
            current.append(item)
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= expand(groups[name], groups) if name.startswith("@") else {name}
    return out


def unit_settings(path: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        found = re.match(r"^(\w+)=(.*)$", line.strip())
        if found:
            settings.setdefault(found.group(1), []).append(found.group(2).strip())
    return settings


def main() -> None:
    unit, argv = sys.argv[1], sys.argv[2:]
    settings = unit_settings(unit)
    if settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            print("sandbox_exec: PR_SET_MDWE unsupported by this kernel", file=sys.stderr)
            sys.exit(3)
    filters = settings.get("SystemCallFilter", [])
    if filters:
        try:
            import seccomp
        except ImportError:
            print("sandbox_exec: no seccomp module (python3-seccomp)", file=sys.stderr)
            sys.exit(3)
        groups = syscall_groups()
        allowed: set[str] | None = None
        for value in filters:
            names = value.split()
            if names[0].startswith("~"):
                names[0] = names[0][1:]
                assert allowed is not None, "a deny-list first is not emulated"
                allowed -= expand(names, groups)
            else:
                allowed = (allowed or set()) | expand(names, groups)
        error = settings.get("SystemCallErrorNumber", ["EPERM"])[-1]
        flt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, error)))
        for name in sorted(allowed or ()):
            # A name this libseccomp or architecture does not know is skipped.
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                flt.add_rule(seccomp.ALLOW, name)
        flt.load()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
