"""Getting KataGo: download, unpack and lay out a KataGo binary and a model, then tune it.

KataGo has no Debian package and its releases are zip files of CUDA/OpenCL/Eigen builds.
The easiest portable build to fetch is the OpenCL AppImage of KataGo v1.18.1 that the
``katrain`` wheel on PyPI carries (``katrain/KataGo/katago``). ``goapp engine setup`` (or
``python -m goapp.engine.setup``; one set of options, :func:`add_arguments`)::

    goapp engine setup --dest /var/lib/goapp/katago

1. fetches the katrain wheel from the package index itself (:mod:`goapp.engine.download`: no
   pip, so it works from the one-file binary), sha256 checked, into ``DEST/downloads/``
   (kept: a rerun needs no network), unless ``--wheel`` names one already downloaded,
2. extracts the AppImage from the wheel and unpacks it with ``katago --appimage-extract``
   into ``DEST/squashfs-root`` (``usr/bin/katago`` and the libraries it needs in ``usr/lib``),
3. writes ``DEST/katago``, a wrapper script that sets ``LD_LIBRARY_PATH`` (for humans; goapp
   runs the real binary with that variable set, see :meth:`KataGoPaths.env`),
4. places the model: the one given with ``--model`` (a hard link when it can), else the one
   already in ``DEST/models/``, else the default model (:data:`DEFAULT_MODEL`, from the
   KaTrain 1.9.3 wheel on the index, sha256 checked),
5. runs ``katago version`` (a missing OpenCL library fails here, clearly), then
6. tunes OpenCL for the model (:func:`tune`; minutes on a CPU, skipped with ``--no-tune``).

Everything KataGo writes stays under DEST (:class:`KataGoPaths`): its OpenCL tuning in
``DEST/home`` (KataGo's ``homeDataDir``), PoCL's kernel cache in ``DEST/pocl-cache``
(``POCL_CACHE_DIR``), other drivers' caches in ``DEST/cache`` (``XDG_CACHE_HOME``,
``CUDA_CACHE_PATH``). Nothing goes to ``$HOME``, so a sandboxed service (``ProtectHome``)
works once DEST is writable. The server runs KataGo with the same layout.

Every step is skipped when its result is already there, so running it again is cheap.
``DEST/.gitignore`` ignores the whole folder, so it can live inside a git checkout.

The OpenCL build needs ``libOpenCL.so.1`` (Debian: ``ocl-icd-libopencl1``) and an OpenCL
driver; on a machine without a GPU that is PoCL (Debian: ``pocl-opencl-icd``).

A binary or model of your own always wins: goapp's settings name them, and this module is
only one way of getting them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from goapp.engine.download import (
    DownloadError,
    NetworkError,
    Progress,
    ProgressFactory,
    fetch_wheel,
)
from goapp.engine.errors import EngineUnavailableError

if TYPE_CHECKING:
    from goapp.settings import Settings

KATRAIN_VERSION = "1.20.0"
WHEEL_MEMBER = "katrain/KataGo/katago"
DEBIAN_PACKAGES = ("ocl-icd-libopencl1", "pocl-opencl-icd")
MODEL_SUFFIXES = (".bin.gz", ".txt.gz", ".bin", ".onnx")
#: How long :func:`tune` waits for KataGo's first start (b15c192 on 2 busy cores: ~15 min).
TUNE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ModelSource:
    """A KataGo model inside a wheel on the package index."""

    project: str
    version: str
    member: str

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


#: The model installed when none is given: KataGo's g170e b15c192 net (15 blocks, 192
#: channels) from the KaTrain 1.9.3 wheel. It runs on PoCL (about 10 visits/s on 2 CPU
#: cores) and on GPUs. The 1.20 wheel's b10c384h6nbttflrs (a 384-channel net with
#: transformer attention) is far too heavy for a CPU and crashed PoCL while tuning.
DEFAULT_MODEL = ModelSource(
    "katrain", "1.9.3", "katrain/models/g170e-b15c192-s1672170752-d466197061.bin.gz"
)

# The layout of DEST (see the module documentation).
SQUASHFS = "squashfs-root"
MODELS = "models"
DOWNLOADS = "downloads"
KATAGO_HOME = "home"  # KataGo's homeDataDir: opencltuning/
POCL_CACHE = "pocl-cache"
DRIVER_CACHE = "cache"

_WRAPPER = """#!/bin/sh
# KataGo unpacked by goapp.engine.setup: runs the binary with its bundled libraries.
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/squashfs-root/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
POCL_CACHE_DIR="${POCL_CACHE_DIR:-$here/pocl-cache}"
export LD_LIBRARY_PATH POCL_CACHE_DIR
exec "$here/squashfs-root/usr/bin/katago" "$@"
"""

Say = Callable[[str], None]


class KataGoSetupError(RuntimeError):
    """KataGo could not be downloaded, unpacked or run."""


@dataclass(frozen=True)
class KataGoPaths:
    """Where a KataGo installation lives.

    ``binary`` is the real executable; ``lib_dir`` (when not ``None``) must be on
    ``LD_LIBRARY_PATH`` to run it (:meth:`env`). ``model`` is ``None`` when none is known yet.
    ``home`` is the folder KataGo may write to (DEST): its tuning goes to ``home/home``
    (:meth:`config_overrides`), driver caches to ``home/pocl-cache`` and ``home/cache``
    (:meth:`env`); ``None`` leaves KataGo's own defaults (``~/.katago``, ``~/.cache``).
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
        if self.home is not None:
            # OpenCL drivers compile kernels and cache them under $HOME by default.
            env["POCL_CACHE_DIR"] = str(self.home / POCL_CACHE)
            env["XDG_CACHE_HOME"] = str(self.home / DRIVER_CACHE)
            env["CUDA_CACHE_PATH"] = str(self.home / DRIVER_CACHE / "nv")
        return env

    def config_overrides(self) -> dict[str, str]:
        """KataGo config entries of this layout (``-override-config``)."""
        if self.home is None:
            return {}
        return {"homeDataDir": str(self.home / KATAGO_HOME)}

    def make_dirs(self) -> None:
        """Create the folders KataGo and its driver write to (they must exist)."""
        if self.home is None:
            return
        for name in (KATAGO_HOME, POCL_CACHE, DRIVER_CACHE):
            (self.home / name).mkdir(parents=True, exist_ok=True)

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
    binary = dest_dir / SQUASHFS / "usr" / "bin" / "katago"
    if not binary.is_file():
        return None
    return KataGoPaths(
        binary=binary,
        model=find_model(dest_dir / MODELS),
        lib_dir=dest_dir / SQUASHFS / "usr" / "lib",
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


def default_config(kind: Literal["analysis", "gtp"] = "analysis") -> Path:
    """Path of a config shipped inside the package (``goapp/engine/configs/KIND.cfg``).

    Works from a source tree, a wheel, and a PyInstaller bundle (package data on disk). When
    the package is in a zip, the file is copied to the temp folder first."""
    res = importlib.resources.files("goapp.engine").joinpath("configs", f"{kind}.cfg")
    if isinstance(res, Path):
        return res
    data = res.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"goapp-katago-{kind}-{digest}.cfg"
    if not out.exists():
        out.write_bytes(data)
    return out


def configured_paths(settings: Settings, search_cwd: bool = True) -> KataGoPaths:
    """The configured KataGo (binary, model, writable home), or
    :class:`EngineUnavailableError` saying what is missing. A binary of your own
    (``katago_binary``) writes its tuning and caches under DATA_DIR/katago too."""
    if settings.katago_binary:
        binary = Path(settings.katago_binary)
        model = (
            Path(settings.katago_model)
            if settings.katago_model
            else find_model(binary.parent / "models")
        )
        paths = KataGoPaths(binary=binary, model=model, home=settings.data_dir / "katago")
    else:
        found = None
        homes = [settings.data_dir / "katago"] + ([Path(".katago")] if search_cwd else [])
        for home in homes:
            found = installed_paths(home)
            if found is not None:
                break
        if found is None:
            raise EngineUnavailableError(
                "no KataGo: set katago_binary, or run `goapp engine setup --dest "
                f"{settings.data_dir / 'katago'}`"
            )
        paths = found
        if settings.katago_model:
            paths = replace(paths, model=Path(settings.katago_model))
    if not paths.binary.exists():
        raise EngineUnavailableError(f"KataGo binary {paths.binary} not found")
    if paths.model is None or not paths.model.exists():
        raise EngineUnavailableError(f"KataGo model {paths.model} not found (set katago_model)")
    return paths


def install_katago(
    dest_dir: Path,
    model: Path | None = None,
    *,
    wheel: Path | None = None,
    index: str | None = None,
    fetch_model: bool = True,
    check: bool = True,
    progress: ProgressFactory | None = Progress,
) -> KataGoPaths:
    """Install KataGo into ``dest_dir`` (idempotent) and return its paths.

    ``model``: a model file to place in ``dest_dir/models/``; without one, a model already
    there is used, else (``fetch_model``) :data:`DEFAULT_MODEL` is downloaded
    (``KataGoPaths.model`` is ``None`` when there is none). ``wheel``: a katrain wheel already
    downloaded (no network). ``index``: the package index (see
    :func:`goapp.engine.download.index_url`). ``check``: run ``katago version`` at the end,
    which fails clearly when the OpenCL library is missing. Does not tune (:func:`tune`).
    """
    dest_dir = Path(dest_dir).absolute()
    if model is not None and not Path(model).is_file():
        raise KataGoSetupError(f"model file not found: {model}")
    if wheel is not None and not Path(wheel).is_file():
        raise KataGoSetupError(f"wheel file not found: {wheel}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    gitignore = dest_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Downloaded by goapp.engine.setup; never committed.\n*\n")

    root = dest_dir / SQUASHFS
    binary = root / "usr" / "bin" / "katago"
    try:
        if not binary.is_file():
            if wheel is None:
                try:
                    wheel = fetch_wheel(
                        "katrain", KATRAIN_VERSION, dest_dir / DOWNLOADS, index=index,
                        progress=progress,
                    )  # fmt: skip
                except NetworkError as exc:
                    raise NetworkError(
                        f"{exc}; without network, pass katrain-{KATRAIN_VERSION}-py3-none-any.whl "
                        "(downloaded elsewhere) with --wheel FILE"
                    ) from exc
            _unpack(dest_dir, Path(wheel))
        wrapper = dest_dir / "katago"
        if not wrapper.is_file() or wrapper.read_text() != _WRAPPER:
            wrapper.write_text(_WRAPPER)
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

        models_dir = dest_dir / MODELS
        if model is not None:
            model = Path(model)
            models_dir.mkdir(exist_ok=True)
            target = models_dir / model.name
            if not target.is_file() or target.stat().st_size != model.stat().st_size:
                _place_file(model, target)
            chosen: Path | None = target
        else:
            chosen = find_model(models_dir)
            if chosen is None and fetch_model:
                try:
                    chosen = _fetch_default_model(dest_dir, index, progress)
                except NetworkError as exc:
                    raise NetworkError(
                        f"{exc}; without network, pass a model file with --model FILE"
                    ) from exc
    except DownloadError as exc:
        raise KataGoSetupError(str(exc)) from exc
    except OSError as exc:
        raise KataGoSetupError(f"cannot install into {dest_dir}: {exc}") from exc

    paths = KataGoPaths(binary=binary, model=chosen, lib_dir=root / "usr" / "lib", home=dest_dir)
    paths.make_dirs()
    if check:
        katago_version(paths)
    return paths


def _fetch_default_model(
    dest_dir: Path, index: str | None, progress: ProgressFactory | None
) -> Path:
    source = DEFAULT_MODEL
    whl = fetch_wheel(
        source.project, source.version, dest_dir / DOWNLOADS, index=index, progress=progress
    )
    target = dest_dir / MODELS / source.filename
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with zipfile.ZipFile(whl) as zf, zf.open(source.member) as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise KataGoSetupError(f"cannot extract {source.member} from {whl}: {exc}") from exc
    os.replace(tmp, target)
    return target


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
        if "libOpenCL" in proc.stderr:
            raise KataGoSetupError(
                "KataGo cannot start: libOpenCL.so.1 is missing; install an OpenCL loader and "
                "driver (Debian/Ubuntu: apt-get install " + " ".join(DEBIAN_PACKAGES) + ")"
            )
        raise KataGoSetupError(
            f"{paths.binary} version failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""


def _opencl_hint(stderr: str) -> str:
    if "platform" not in stderr.lower() and "libOpenCL" not in stderr:
        return ""
    return (
        "; KataGo needs an OpenCL driver (Debian/Ubuntu without a GPU: apt-get install "
        + " ".join(DEBIAN_PACKAGES)
        + ")"
    )


# --------------------------------------------------------------------------------------------
# Tuning

#: KataGo's stderr lines while it tunes OpenCL kernels (cpp/neuralnet/opencltuner.cpp).
TUNING_LINE = re.compile(
    r"Beginning GPU tuning|Starting fresh tuning|^Tuning |Performing autotuning"
)
_TUNING_STEP = re.compile(r"^Tuning (\d+)/(\d+)")


def tune(
    paths: KataGoPaths,
    config: Path | None = None,
    *,
    timeout: float = TUNE_TIMEOUT,
    say: Say | None = None,
) -> float:
    """Start ``katago analysis`` once with goapp's config, exactly as the server will, so that
    KataGo tunes OpenCL for this model now (into ``DEST/home``) instead of at the server's
    first start; stop it once it answers. Returns the seconds it took. A model already tuned
    starts in seconds. ``say`` gets the tuning progress lines."""
    if paths.model is None:
        raise KataGoSetupError("no model to tune for")
    paths.make_dirs()
    argv = [
        str(paths.binary), "analysis", "-config", str(config or default_config()),
        "-model", str(paths.model), "-quit-without-waiting",
    ]  # fmt: skip
    overrides = paths.config_overrides()
    if overrides:
        argv += ["-override-config", ",".join(f"{k}={v}" for k, v in overrides.items())]
    out = say or (lambda _line: None)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            env=paths.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise KataGoSetupError(f"cannot run {paths.binary}: {exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=20)
    # KataGo may go silent for minutes while it tunes: a timer enforces the deadline.
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        proc.stdin.write('{"id":"tune","action":"query_version"}\n')
        proc.stdin.flush()
        proc.stdin.close()  # KataGo answers, then exits (-quit-without-waiting)
        for raw in proc.stderr:
            line = raw.rstrip()
            tail.append(line)
            if TUNING_LINE.search(line):
                out("tuning: " + line)
        answer = proc.stdout.read()
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    if elapsed >= timeout:
        raise KataGoSetupError(f"KataGo did not finish tuning in {timeout:.0f} s")
    if rc != 0 or '"version"' not in answer:
        text = " | ".join(list(tail)[-5:])
        raise KataGoSetupError(
            f"KataGo failed to start (exit {rc}): {text[-1500:]}{_opencl_hint(text)}"
        )
    return elapsed


def _place_file(src: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def _unpack(dest_dir: Path, whl: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="goapp-katago-", dir=dest_dir) as tmp_name:
        tmp = Path(tmp_name)
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
        extracted = tmp / SQUASHFS
        if proc.returncode != 0 or not (extracted / "usr" / "bin" / "katago").is_file():
            raise KataGoSetupError(
                f"katago --appimage-extract failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-2000:]}"
            )
        target = dest_dir / SQUASHFS
        if target.exists():  # a half-unpacked tree from an interrupted run
            shutil.rmtree(target)
        os.replace(extracted, target)  # same filesystem: atomic


# --------------------------------------------------------------------------------------------
# The command line: `goapp engine setup` and `python -m goapp.engine.setup` share these


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``goapp engine setup`` (one definition for both entry points)."""
    parser.add_argument(
        "--dest",
        type=Path,
        help="install folder (default: DATA_DIR/katago from the settings, for example "
        "/var/lib/goapp/katago under systemd; the server looks there)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (for DATA_DIR)")
    parser.add_argument(
        "--model",
        type=Path,
        metavar="FILE",
        help="KataGo model (.bin.gz) to copy into DEST/models/ (default: the model already "
        f"there, else {DEFAULT_MODEL.filename} from the {DEFAULT_MODEL.project} "
        f"{DEFAULT_MODEL.version} wheel on the index)",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        metavar="FILE",
        help=f"katrain-{KATRAIN_VERSION} wheel already downloaded (no network for KataGo)",
    )
    parser.add_argument(
        "--index-url",
        metavar="URL",
        help="Python package index (default: $PIP_INDEX_URL, else https://pypi.org/simple/)",
    )
    parser.add_argument(
        "--no-tune",
        action="store_true",
        help="do not tune OpenCL now (the server then tunes on its first start, for minutes)",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="do not run `katago version` (nor tune)"
    )


def run(args: argparse.Namespace, default_dest: Path | None = None) -> int:
    """Carry out ``goapp engine setup`` for parsed ``args``; print the paths as JSON."""
    dest = args.dest
    if dest is None:
        if default_dest is None:
            from goapp.settings import load_settings

            default_dest = load_settings(args.config).data_dir / "katago"
        dest = default_dest

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        paths = install_katago(
            dest, args.model, wheel=args.wheel, index=args.index_url, check=not args.no_check
        )
        if paths.model is not None and not (args.no_tune or args.no_check):
            say(f"starting KataGo once to tune OpenCL for {paths.model.name} (minutes on a CPU)")
            seconds = tune(paths, say=say)
            say(f"KataGo is ready ({seconds:.0f} s)")
    except KataGoSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(paths.to_dict(), indent=2))
    if paths.model is None:
        say(f"note: no model yet; pass --model or put one in {dest}/models/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goapp.engine.setup",
        description="The same as `goapp engine setup`: download, unpack and tune KataGo.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
