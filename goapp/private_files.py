"""Directories and files that only goapp's own user may open, whatever the umask.

The data directory holds the database (every account's password hash, every game), the
token-signing secret and backups. Under the usual umask (022: ``make serve``, Docker) new
files would be readable by every local user; systemd's ``UMask=0077`` protects only that
case. So goapp creates its directories 0700 and its files 0600 itself: the mode is set
explicitly (``chmod``/``fchmod``), since the mode given to ``mkdir``/``open`` is only an
upper bound that the umask lowers.

SQLite creates the database's ``-wal`` and ``-shm`` files with the mode of the database file
itself, so creating the database file 0600 (:func:`create_private_file`, before SQLite
opens it) covers them too.

Existing directories and files keep their modes (an operator may have chosen them); see
docs/storage.md for tightening those of an older installation.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "make_private_dir",
    "write_new_private_file",
]


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """Create the directory ``path`` (and missing parents, with the usual modes) and, when
    this call created it, make it 0700. An existing directory is left as it is."""
    path = Path(path)
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        return  # made by another process meanwhile: its creator set the mode
    os.chmod(path, PRIVATE_DIR_MODE)


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; ``True`` if this call created
    it. Its directory must exist."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return True


def write_new_private_file(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write ``data`` to ``path`` (mode 0600) unless it exists; ``True`` if this call
    created it. Its directory must exist.

    The data goes to a private temporary file first (synced), then is hard-linked to
    ``path``: the file appears complete or not at all, and a process racing to create it
    gets ``False`` and reads the winner's whole file. Where hard links are not supported,
    ``O_EXCL`` on ``path`` itself decides the race (readers may then see it empty briefly).
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")

    def write(target: Path) -> None:
        fd = os.open(target, flags, PRIVATE_FILE_MODE)
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    write(tmp)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        try:
            write(path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the new name durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return True
