"""Fetching a wheel from a Python package index without pip.

``goapp engine setup`` must work from the one-file binary, where ``sys.executable -m pip`` is
goapp itself, so it talks to the index directly with the standard library:

* :func:`find_wheel` asks the index's simple API for a project's page: the JSON form of
  PEP 691 (``Accept: application/vnd.pypi.simple.v1+json``), or the HTML page of PEP 503 when
  the index only has that. It returns the wheel's URL and the sha256 the index publishes.
* :func:`download` fetches it into a folder with a progress bar (a terminal) or a line every
  10 % (a log), resumes an interrupted download (HTTP ``Range`` onto ``NAME.part``), checks
  the sha256 and only then renames the file into place. A file already there with the right
  hash is not fetched again.
* :func:`ssl_context`: HTTPS that also works inside the PyInstaller binary, whose OpenSSL may
  look for certificates in a folder of the build machine: ``SSL_CERT_FILE`` when set, else
  OpenSSL's default paths, else the system bundle.

Every failure is a :class:`DownloadError` with a one-line message that says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html.parser
import http.client
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: The index used when neither ``--index-url`` nor ``PIP_INDEX_URL`` names one.
DEFAULT_INDEX_URL = "https://pypi.org/simple/"
#: Certificate bundles tried when OpenSSL's default paths hold none (Debian/Ubuntu, Fedora).
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_ACCEPT = f"{_JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_CHUNK = 1 << 20
_TIMEOUT = 60.0
_ATTEMPTS = 4  # a download cut this many times in one run gives up (a rerun resumes)


class DownloadError(RuntimeError):
    """The file could not be found, fetched or verified; the message says what to do."""


class NetworkError(DownloadError):
    """The index or the file's host could not be reached at all."""


@dataclass(frozen=True)
class WheelLink:
    """A wheel on an index: its file name, absolute URL, published sha256 and size."""

    filename: str
    url: str
    sha256: str
    size: int | None = None


def index_url(explicit: str | None = None) -> str:
    """The index to use: ``explicit``, else ``$PIP_INDEX_URL``, else :data:`DEFAULT_INDEX_URL`."""
    url = explicit or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL
    return url if url.endswith("/") else url + "/"


def ssl_context() -> ssl.SSLContext:
    """A verifying TLS context that finds CA certificates in a frozen binary too."""
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile and Path(cafile).is_file():
        return ssl.create_default_context(cafile=cafile)
    ctx = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    has_file = bool(paths.cafile) and Path(paths.cafile or "").is_file()
    has_dir = bool(paths.capath) and Path(paths.capath or "").is_dir()
    if not has_file and not has_dir:
        for bundle in SYSTEM_CA_BUNDLES:
            if Path(bundle).is_file():
                ctx.load_verify_locations(cafile=bundle)
                break
    return ctx


def _open(url: str, headers: dict[str, str], timeout: float = _TIMEOUT) -> http.client.HTTPResponse:
    """``urlopen`` with our TLS context; network failures become :class:`DownloadError`.
    An HTTP error status is returned to the caller as ``urllib.error.HTTPError``."""
    request = urllib.request.Request(url, headers={"User-Agent": "goapp-engine-setup", **headers})
    context = ssl_context() if url.startswith("https:") else None
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(
            request, timeout=timeout, context=context
        )
        return response
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as exc:
        raise NetworkError(f"cannot reach {host}: {_reason(exc.reason)}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkError(f"cannot reach {host}: {_reason(exc)}") from exc


def _reason(exc: object) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc}); set SSL_CERT_FILE to a CA bundle"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Finding a wheel on the index


class _Anchors(html.parser.HTMLParser):
    """The ``<a href>`` links of a PEP 503 page, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _normalize(name: str) -> str:
    return "".join("-" if c in "-_." else c for c in name.lower())


def _files_from_page(body: bytes, content_type: str, page_url: str) -> list[WheelLink]:
    files: list[WheelLink] = []
    if _JSON_TYPE in content_type:
        try:
            page = json.loads(body)
            entries = page["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DownloadError(f"unreadable index page {page_url}: {exc}") from exc
        for entry in entries:
            hashes = entry.get("hashes") or {}
            size = entry.get("size")
            files.append(
                WheelLink(
                    filename=str(entry.get("filename", "")),
                    url=urllib.parse.urljoin(page_url, str(entry.get("url", ""))),
                    sha256=str(hashes.get("sha256", "")).lower(),
                    size=size if isinstance(size, int) else None,
                )
            )
        return files
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    for href, text in parser.links:
        url = urllib.parse.urljoin(page_url, href)
        base, _, fragment = url.partition("#")
        sha256 = ""
        for part in fragment.split("&"):
            key, _, value = part.partition("=")
            if key == "sha256":
                sha256 = value.lower()
        name = text or urllib.parse.unquote(base.rsplit("/", 1)[-1])
        files.append(WheelLink(filename=name, url=base, sha256=sha256))
    return files


def find_wheel(project: str, version: str, index: str | None = None) -> WheelLink:
    """The pure-Python wheel ``project==version`` on ``index`` (see :func:`index_url`)."""
    page_url = urllib.parse.urljoin(index_url(index), _normalize(project) + "/")
    try:
        with _open(page_url, {"Accept": _ACCEPT}) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"the index {index_url(index)} has no page for {project} (HTTP {exc.code})"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot read {page_url}: {_reason(exc)}") from exc
    prefix = f"{_normalize(project)}-{version}-".replace("-", "_")
    for link in _files_from_page(body, content_type, page_url):
        stem = link.filename.lower().replace("-", "_")
        if stem.startswith(prefix) and link.filename.endswith("-py3-none-any.whl"):
            if len(link.sha256) != 64:
                raise DownloadError(f"the index publishes no sha256 for {link.filename}")
            return link
    raise DownloadError(f"no {project} {version} wheel on the index {index_url(index)}")


# --------------------------------------------------------------------------------------------
# Downloading with progress, resume and hash check

ProgressFactory = Callable[[str, int | None], "Progress"]


class Progress:
    """Download progress: a redrawn bar on a terminal, else a line every 10 %."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, done: int) -> None:
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done != self.total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(done, bar=True))
            self.stream.flush()
            return
        if not self.total:
            return
        decile = min(10, done * 10 // self.total)
        if decile > self._last_decile:
            self._last_decile = decile
            print(self._line(done, bar=False), file=self.stream, flush=True)

    def finish(self, done: int) -> None:
        if self.tty:
            self.stream.write("\r" + self._line(done, bar=True) + "\n")
            self.stream.flush()

    def _line(self, done: int, *, bar: bool) -> str:
        mb = done / 1e6
        rate = mb / max(time.monotonic() - self.started, 1e-3)
        if not self.total:
            return f"{self.label}: {mb:.1f} MB ({rate:.1f} MB/s)"
        frac = done / self.total
        text = f"{self.label}: {frac:4.0%} of {self.total / 1e6:.1f} MB ({rate:.1f} MB/s)"
        if bar:
            width = 30
            filled = int(frac * width)
            text = f"[{'#' * filled}{'.' * (width - filled)}] " + text
        return text


def _sha256_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest


def download(
    link: WheelLink,
    into: Path,
    *,
    progress: ProgressFactory | None = Progress,
) -> Path:
    """Fetch ``link`` into the folder ``into`` and return the file's path.

    The bytes go to ``NAME.part`` first; an interrupted transfer continues from there (HTTP
    ``Range``), within this call (a few attempts) or in a later one. The file is renamed to
    ``NAME`` only once its sha256 matches the index's; a mismatch deletes the ``.part``."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / link.filename
    if target.is_file():
        if _sha256_of(target).hexdigest() == link.sha256:
            return target
        target.unlink()  # a stale or damaged copy
    part = into / (link.filename + ".part")
    shown = progress(link.filename, link.size) if progress is not None else None
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            done = _fetch_into(link, part, shown)
            break
        except _Interrupted as exc:
            if attempt == _ATTEMPTS:
                raise DownloadError(
                    f"download of {link.filename} interrupted {attempt} times ({exc}); run "
                    "again to resume it"
                ) from exc
            time.sleep(min(0.5 * attempt, 2.0))
    if shown is not None:
        shown.finish(done)
    actual = _sha256_of(part).hexdigest()
    if actual != link.sha256:
        part.unlink()
        raise DownloadError(
            f"{link.filename}: sha256 {actual} does not match the index's {link.sha256}; "
            "the download was discarded"
        )
    os.replace(part, target)
    return target


class _Interrupted(Exception):
    """The transfer stopped early; what arrived is in the .part file."""


def _fetch_into(link: WheelLink, part: Path, shown: Progress | None) -> int:
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = _open(link.url, headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is complete
            return have
        raise DownloadError(f"cannot download {link.url}: HTTP {exc.code}") from exc
    except DownloadError as exc:
        if have:  # the network went away in the middle: keep the .part for a rerun
            raise _Interrupted(str(exc)) from exc
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length and length.isdigit() else link.size
        if shown is not None and shown.total is None:
            shown.total = expected
        try:
            with part.open("ab" if have else "wb") as out:
                done = have
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Interrupted(_reason(exc)) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    if shown is not None:
                        shown.update(done)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DownloadError(
                    f"disk full while writing {part}: free some space and run again (the "
                    "download resumes where it stopped)"
                ) from exc
            raise DownloadError(f"cannot write {part}: {exc}") from exc
    if expected is not None and done < expected:
        raise _Interrupted(f"connection closed after {done} of {expected} bytes")
    return done


def fetch_wheel(
    project: str,
    version: str,
    into: Path,
    *,
    index: str | None = None,
    progress: ProgressFactory | None = Progress,
) -> Path:
    """:func:`find_wheel` then :func:`download`; a wheel already in ``into`` whose name
    matches is used as it is (no network)."""
    prefix = f"{_normalize(project)}-{version}-".replace("-", "_")
    with contextlib.suppress(OSError):
        for cached in sorted(into.glob("*.whl")):
            if cached.name.lower().replace("-", "_").startswith(prefix):
                return cached
    return download(find_wheel(project, version, index), into, progress=progress)
