"""Accounts and tokens: password hashing, names, access tokens (JWT), refresh tokens, secret.

Pure functions over the standard library (and msgspec); no web framework, no database. The
HTTP/WebSocket layer and the store call these. Every function that depends on the time takes
``now`` (integer epoch **seconds**, like JWT's ``iat``/``exp``) so that tests are exact.

Errors
======

Everything a client can cause raises an :class:`AuthError` subclass with a stable ``code``
for the protocol's error frames: :class:`InvalidTokenError` (``"token_invalid"``),
:class:`ExpiredTokenError` (``"token_expired"``: the client should refresh),
:class:`InvalidUsernameError` (``"username_invalid"``) and :class:`WeakPasswordError`
(``"password_invalid"``). The message says what is wrong, for logs; clients get the code.
Misconfiguration (a short secret, a bad secret file) raises ``ValueError`` or
:class:`SecretFileError` instead: that is the operator's problem, not the client's.

Passwords
=========

:func:`hash_password` uses scrypt (``hashlib.scrypt``, memory-hard) with the parameters in the
stored string, ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (salt and hash in unpadded URL-safe base64),
so they can be raised later: :func:`needs_rehash` says when a stored hash is weaker than the
current defaults, and the server rehashes on the next successful login. The defaults
(``n=2**15, r=8, p=1``: 32 MiB and about 0.1 s on one core) are stronger than the classic
interactive-login setting (``n=2**14``) and light enough for a 2 vCPU box. scrypt releases the
GIL, but it is CPU-bound: the server must call it in a thread pool, never on the event loop.

Passwords are NFKC-normalised before hashing (NIST SP 800-63B), so the same password typed on
different keyboards matches. Policy (:func:`validate_password`): at least 8 characters, at
most 1024 bytes in UTF-8 (longer inputs are refused before any hashing: no DoS through huge
passwords), nothing else (no composition rules, as NIST recommends). For unknown users call
``verify_password(password, None)``: it spends the same time as a real check, so the response
time does not reveal which names exist.

Usernames
=========

:func:`validate_username` returns the canonical display form (NFKC) or raises; 3 to 24
characters, letters of any script, ASCII digits and ``_ - .``, starting with a letter or digit.
To keep names from impersonating each other it rejects control, format and zero-width
characters, spaces, mixed scripts (Latin with Cyrillic or Greek, ...; the combinations used
in Japanese, Chinese and Korean names are allowed). :func:`username_key` is the key the store
must keep unique: case-folded, with Cyrillic and Greek look-alikes of Latin letters mapped to
them, so ``"Cope"``, ``"cope"`` and an all-Cyrillic ``"\u0421\u043e\u0440\u0435"`` cannot all be
registered. It is a partial table (one Latin letter per look-alike, after case folding); other
whole-script confusables, and ``l``/``1`` or ``O``/``0``, are not detected.

Access tokens (JWT)
===================

HS256 JWTs (RFC 7519), built and checked here with ``hmac`` and ``base64`` so there is no
algorithm negotiation at all. The header we issue is exactly ``{"alg":"HS256","typ":"JWT"}``;
the claims are ``sub`` (user id, a string), ``name``, ``iat``, ``exp``, ``jti`` (random id),
``typ="access"`` and ``iat_ms`` (``iat`` in milliseconds, for :class:`Revocations`).
:func:`verify_access_token` rejects, as :class:`InvalidTokenError`:

* anything that is not a string of at most 4 KiB, not three dot-separated segments of canonical
  unpadded base64url, or whose header or claims are not JSON objects of the right types;
* any ``alg`` but ``HS256`` (``none``, ``HS512``, ``RS256``: the key is never chosen by the
  token), a header ``typ`` other than ``JWT``, and **every other header parameter**: ``kid``,
  ``jku``, ``jwk``, ``x5u``, ``x5c``, ``crit``, ``cty``... We never issue them, so a token that
  carries one was not made by us;
* a bad signature: HMAC-SHA256 with our secret, whatever the header says, compared with
  ``hmac.compare_digest`` *before* any JSON is parsed (unsigned input never reaches a parser);
* a claims ``typ`` other than ``"access"`` (a refresh or other token used as access);
* ``iat`` (or ``nbf``) more than ``leeway_s`` in the future.

and as :class:`ExpiredTokenError` a token whose ``exp`` has passed (``now >= exp + leeway_s``).
Claims we do not know are ignored (they are signed by us, so they are ours).

Refresh tokens
==============

Opaque random strings (256 bits, :func:`new_refresh_token`); the store keeps only their
SHA-256 (:func:`hash_refresh_token`), so a leaked database does not leak live sessions. The
server implements **rotation with reuse detection** (as in OAuth 2.0 Security BCP, 4.14):

1. Login creates a *family* (a random id) and its first refresh token, stored as
   ``(hash, family_id, user_id, expires_at, revoked_at=NULL)``.
2. ``POST /api/refresh`` with a token: look up its hash. Unknown or expired: ``token_invalid``.
   Active: in one transaction mark it revoked (``revoked_at``, ``replaced_by``), insert a new
   token of the same family, answer a new access token and the new refresh token.
3. A token *rotated away* (revoked with a successor recorded in ``replaced_by``) presented
   again means that it was stolen (or the legitimate client lost a race, which is
   indistinguishable): revoke every session of the user and answer ``token_invalid``; the
   user logs in again and the thief's copy is dead too.
4. Logout revokes the token without a successor: presenting it again is an expected thing
   (a second tab, a retried request) and is simply refused (``token_invalid``); the user's
   other sessions live on. The sessions ended by step 3 are refused the same way, so a
   stale client of the victim does not end the new login as if it were theft again.

Suggested lifetimes: access 15 minutes, refresh 30 days (sliding, each rotation extends it).

The signing secret
==================

:func:`load_or_create_secret` reads the secret file, or creates it with 32 random bytes on
first start. The file holds the secret as hex text (``openssl rand -hex 32 > secret`` makes a
valid one; every instance of a multi-instance deployment needs the same file). An existing
file that the group or others can read or write is **refused** (:class:`SecretFileError`):
a leaked secret lets anyone forge any user's token, and failing at start with a clear message
is better than warning into a log nobody reads. ``allow_insecure=True`` downgrades that to a
logged warning for platforms that cannot set modes (some container secret mounts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import time
import unicodedata
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from goapp.private_files import make_private_dir, write_new_private_file
from goapp.settings import SettingsError

__all__ = [
    "ACCESS_TOKEN_TYP",
    "DEFAULT_LEEWAY_S",
    "MAX_PASSWORD_BYTES",
    "MAX_TOKEN_BYTES",
    "MIN_PASSWORD_CHARS",
    "MIN_SECRET_BYTES",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "USERNAME_MAX",
    "USERNAME_MIN",
    "AccessClaims",
    "AuthError",
    "ExpiredTokenError",
    "InvalidTokenError",
    "InvalidUsernameError",
    "SecretFileError",
    "WeakPasswordError",
    "hash_password",
    "hash_refresh_token",
    "issue_access_token",
    "load_or_create_secret",
    "needs_rehash",
    "new_refresh_token",
    "secret_from_setting",
    "username_key",
    "validate_password",
    "validate_username",
    "verify_access_token",
    "verify_password",
]

log = logging.getLogger(__name__)


# --- errors -----------------------------------------------------------------------------------


class AuthError(Exception):
    """Base of every client-caused authentication error; ``code`` goes into error frames."""

    code: ClassVar[str] = "auth_error"


class InvalidTokenError(AuthError):
    """The token is malformed, forged, of the wrong kind or not yet valid."""

    code = "token_invalid"


class ExpiredTokenError(AuthError):
    """The token was valid but has expired: refresh it."""

    code = "token_expired"


class InvalidUsernameError(AuthError):
    """The username breaks the rules in :func:`validate_username`."""

    code = "username_invalid"


class WeakPasswordError(AuthError):
    """The password breaks the policy in :func:`validate_password`."""

    code = "password_invalid"


class SecretFileError(RuntimeError):
    """The secret file is unusable (unsafe permissions, not a file, bad content)."""


# --- base64url ---------------------------------------------------------------------------------

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    """Strict unpadded base64url: only the alphabet, and only the canonical encoding (so that a
    token has exactly one spelling; otherwise flipping unused low bits of the last character
    would give a different string that still verifies). Raises ``ValueError``."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(data) != text:
        raise ValueError("non-canonical base64url")
    return data


# --- passwords ------------------------------------------------------------------------------

SCRYPT_N = 2**15
"""scrypt CPU/memory cost (a power of two); memory is ``128 * n * r * p`` bytes (32 MiB)."""
SCRYPT_R = 8
"""scrypt block size."""
SCRYPT_P = 1
"""scrypt parallelism."""
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_SCRYPT_MEM = 256 * 1024 * 1024
"""Stored parameters needing more memory than this are refused (a tampered row cannot make a
login allocate gigabytes)."""

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 1024


def _password_bytes(password: str) -> bytes:
    """NFKC-normalised UTF-8; raises :class:`WeakPasswordError` if not encodable or too long."""
    if not isinstance(password, str):
        raise WeakPasswordError("password must be a string")
    if len(password) > MAX_PASSWORD_BYTES:  # cheap bound before normalising
        raise WeakPasswordError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    try:
        data = unicodedata.normalize("NFKC", password).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WeakPasswordError("password is not valid Unicode text") from exc
    if len(data) > MAX_PASSWORD_BYTES:
        raise WeakPasswordError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    return data


def validate_password(password: str) -> None:
    """Enforce the password policy: 8 characters or more, at most 1024 bytes (UTF-8, after
    NFKC). Raises :class:`WeakPasswordError`."""
    _password_bytes(password)
    if len(unicodedata.normalize("NFKC", password)) < MIN_PASSWORD_CHARS:
        raise WeakPasswordError(f"password shorter than {MIN_PASSWORD_CHARS} characters")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=_MAX_SCRYPT_MEM + 1024 * 1024, dklen=dklen
    )


def _check_scrypt_params(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 64:
        raise ValueError(f"bad scrypt parameters n={n} r={r} p={p}")
    if 128 * n * r * p > _MAX_SCRYPT_MEM:
        raise ValueError(f"scrypt parameters n={n} r={r} p={p} need too much memory")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Check ``password`` against the policy and hash it with a fresh salt.

    Returns ``"scrypt$n$r$p$salt$hash"``. Slow on purpose (~0.1 s): call it off the event
    loop. Lower ``n`` only in tests.
    """
    validate_password(password)
    _check_scrypt_params(n, r, p)
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(_password_bytes(password), salt, n, r, p, _HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64e(salt)}${_b64e(digest)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """Split a stored hash; raises ``ValueError`` if it is not one of ours or is unsafe."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not an scrypt hash")
    if not all(part.isascii() and part.isdigit() and len(part) <= 10 for part in parts[1:4]):
        raise ValueError("bad scrypt parameters")
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    _check_scrypt_params(n, r, p)
    salt, digest = _b64d(parts[4]), _b64d(parts[5])
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        raise ValueError("bad salt or hash length")
    return n, r, p, salt, digest


_DUMMY_SALT = b"goapp-dummy-salt"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (from :func:`hash_password`).

    Never raises for bad input: a password that breaks the length limits, a stored string that
    is malformed or tampered with, all give ``False``. Pass ``stored=None`` for an unknown user:
    the same work is done against a dummy, and the answer is ``False``.
    """
    try:
        data = _password_bytes(password)
    except WeakPasswordError:
        return False
    if stored is None:
        _scrypt(data, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
        return False
    try:
        n, r, p, salt, digest = _parse_hash(stored)
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(_scrypt(data, salt, n, r, p, len(digest)), digest)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced by a fresh :func:`hash_password` of the same
    password (after a successful login): its parameters are weaker than the current defaults,
    or it is not a hash this module understands."""
    try:
        n, r, p, salt, digest = _parse_hash(stored)
    except (ValueError, TypeError, AttributeError):
        return True
    return (
        n < SCRYPT_N
        or r < SCRYPT_R
        or p < SCRYPT_P
        or len(salt) < _SALT_BYTES
        or len(digest) < _HASH_BYTES
    )


# --- usernames ------------------------------------------------------------------------------

USERNAME_MIN = 3
USERNAME_MAX = 24
_USERNAME_PUNCT = frozenset("_-.")

_SCRIPT_ALIASES = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "KATAKANA-HIRAGANA": "KATAKANA",
    "HALFWIDTH": "KATAKANA",  # NFKC maps half-width katakana; only odd leftovers reach here
}
_SCRIPT_SETS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),  # Japanese
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),  # Chinese
    frozenset({"LATIN", "HAN", "HANGUL"}),  # Korean
)

# Cyrillic and Greek letters that look like Latin ones (after casefold), for username_key.
# Mapping more than needed only makes the uniqueness check stricter, never weaker.
_LOOKALIKES = str.maketrans(
    "\u0430\u0432\u0435\u0451\u04bb\u0456\u0457\u0458\u043a\u043c\u043d\u043e"
    "\u0440\u0441\u0442\u0443\u0445\u0455\u0501\u051b\u051d\u03b1\u03b2\u03b5"
    "\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03b3\u03b6\u03bc"
    "\u04cf",
    "abeehiijkmhopctyxsdqwabenikvoptuxyzul",
)


def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name (``"LATIN SMALL LETTER A"`` -> LATIN)."""
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(first, first)


def validate_username(name: str) -> str:
    """Check a username and return its canonical (NFKC) form, which the store saves.

    Rules: 3 to 24 characters after NFKC; letters of any script (with their combining marks),
    ASCII digits, ``_``, ``-`` and ``.``; the first character a letter or digit; one script,
    or a combination used in one language (Latin with Han and kana or Hangul or Bopomofo).
    Raises :class:`InvalidUsernameError`.
    """
    if not isinstance(name, str) or len(name) > 4 * USERNAME_MAX:
        raise InvalidUsernameError("username must be a short string")
    canon = unicodedata.normalize("NFKC", name)
    if not USERNAME_MIN <= len(canon) <= USERNAME_MAX:
        raise InvalidUsernameError(
            f"username must be {USERNAME_MIN} to {USERNAME_MAX} characters long"
        )
    scripts: set[str] = set()
    for i, ch in enumerate(canon):
        category = unicodedata.category(ch)
        if ch in _USERNAME_PUNCT or "0" <= ch <= "9":
            if i == 0 and ch in _USERNAME_PUNCT:
                raise InvalidUsernameError("username must start with a letter or digit")
            continue
        if category.startswith("L"):
            scripts.add(_script(ch))
        elif category in ("Mn", "Mc") and i > 0:
            continue  # a combining mark on the previous letter
        else:
            raise InvalidUsernameError(f"character {ch!r} (U+{ord(ch):04X}) is not allowed")
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_SETS):
        raise InvalidUsernameError(f"username mixes scripts: {', '.join(sorted(scripts))}")
    return canon


def username_key(name: str) -> str:
    """The uniqueness key for ``name`` (the store's unique index): NFKC, case-folded, with
    Cyrillic/Greek look-alikes of Latin letters mapped to Latin. Validate first."""
    return unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES)


# --- access tokens -----------------------------------------------------------------------------

MAX_TOKEN_BYTES = 4096
DEFAULT_LEEWAY_S = 30
"""Clock skew tolerated between instances for ``exp`` and ``iat``/``nbf``."""
ACCESS_TOKEN_TYP = "access"
MIN_SECRET_BYTES = 32

_HEADER = {"alg": "HS256", "typ": "JWT"}
_HEADER_B64 = _b64e(msgspec.json.encode(_HEADER))
_ALLOWED_HEADER_KEYS = frozenset(_HEADER)


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The verified claims of an access token. ``sub`` is the user id as a string; ``nbf`` is
    never issued but honoured if present."""

    sub: str
    name: str
    iat: int
    exp: int
    jti: str
    typ: str
    nbf: int | None = None
    #: ``iat`` in milliseconds (revocations compare at this precision; older tokens lack it)
    iat_ms: int | None = None

    @property
    def issued_ms(self) -> int:
        return self.iat_ms if self.iat_ms is not None else self.iat * 1000


_claims_decoder = msgspec.json.Decoder(AccessClaims)
_header_decoder = msgspec.json.Decoder(dict[str, Any])


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")


def _sign(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def issue_access_token(secret: bytes, user_id: int | str, name: str, ttl_s: int, now: int) -> str:
    """A signed HS256 access token for ``user_id`` valid from ``now`` for ``ttl_s`` seconds."""
    _check_secret(secret)
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    wall_ms = time.time_ns() // 1_000_000
    claims = AccessClaims(
        sub=str(user_id),
        name=name,
        iat=now,
        exp=now + ttl_s,
        jti=secrets.token_urlsafe(16),
        typ=ACCESS_TOKEN_TYP,
        iat_ms=wall_ms if wall_ms // 1000 == now else now * 1000,
    )
    payload = msgspec.json.encode(claims)
    signing_input = f"{_HEADER_B64}.{_b64e(payload)}"
    token = f"{signing_input}.{_b64e(_sign(secret, signing_input.encode('ascii')))}"
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError("token too large (name too long?)")
    return token


def verify_access_token(
    secret: bytes, token: str, now: int, leeway_s: int = DEFAULT_LEEWAY_S
) -> AccessClaims:
    """Verify an access token and return its claims.

    Raises :class:`InvalidTokenError` or :class:`ExpiredTokenError` (see the module docstring
    for the exact rules), and nothing else for any token value. ``ValueError`` only for a bad
    ``secret``.
    """
    _check_secret(secret)
    if not isinstance(token, str):
        raise InvalidTokenError("token must be a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidTokenError("token too large")
    if not token.isascii():
        raise InvalidTokenError("token is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("token must have three segments")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header_raw = _b64d(header_b64)
        payload_raw = _b64d(payload_b64)
        signature = _b64d(signature_b64)
    except (ValueError, binascii.Error) as exc:
        raise InvalidTokenError("token is not base64url") from exc

    # Authenticate before parsing: nothing unsigned reaches the JSON decoder. The signature is
    # always HMAC-SHA256 with our secret, whatever the header says; the header is checked after.
    expected = _sign(secret, f"{header_b64}.{payload_b64}".encode("ascii"))
    if not hmac.compare_digest(expected, signature):
        raise InvalidTokenError("token signature does not match")

    try:
        header = _header_decoder.decode(header_raw)
    except ValueError as exc:  # msgspec.DecodeError, or UnicodeDecodeError for bad UTF-8
        raise InvalidTokenError("token header is not a JSON object") from exc
    if header.get("alg") != "HS256":
        raise InvalidTokenError(f"token algorithm {header.get('alg')!r} is not accepted")
    if header.get("typ", "JWT") != "JWT":
        raise InvalidTokenError("token header typ is not JWT")
    extra = set(header) - _ALLOWED_HEADER_KEYS
    if extra:
        raise InvalidTokenError(f"token header has unsupported fields: {sorted(extra)}")

    try:
        claims = _claims_decoder.decode(payload_raw)
    except ValueError as exc:
        raise InvalidTokenError(f"token claims are invalid: {exc}") from exc
    if claims.typ != ACCESS_TOKEN_TYP:
        raise InvalidTokenError(f"token typ {claims.typ!r} is not an access token")
    if not claims.sub:
        raise InvalidTokenError("token has no subject")
    if claims.iat > now + leeway_s or (claims.nbf is not None and claims.nbf > now + leeway_s):
        raise InvalidTokenError("token is not valid yet")
    if now >= claims.exp + leeway_s:
        raise ExpiredTokenError("token has expired")
    return claims


# --- device cookies (the login back-off's known clients) -------------------------------------

_DEVICE_RE = re.compile(r"([1-9][0-9]{0,18})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def issue_device_cookie(secret: bytes, user_id: int, ttl_s: int, now: int) -> str:
    """``USER.EXPIRES.MAC``: proof that this client logged in to ``user_id`` (it grants
    nothing but skipping the per-account login back-off, see goapp.server.ratelimit)."""
    _check_secret(secret)
    body = f"{user_id}.{now + ttl_s}"
    return f"{body}.{_b64e(_sign(secret, b'device:' + body.encode('ascii')))}"


def verify_device_cookie(secret: bytes, value: str, user_id: int, now: int) -> bool:
    """Whether ``value`` is an unexpired device cookie of ``user_id`` signed with
    ``secret``; False for anything else."""
    m = _DEVICE_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None or int(m[1]) != user_id or int(m[2]) <= now:
        return False
    body = f"{m[1]}.{m[2]}"
    expected = _b64e(_sign(secret, b"device:" + body.encode("ascii")))
    return hmac.compare_digest(expected, m[3])


# --- refresh tokens -------------------------------------------------------------------------

_REFRESH_TOKEN_BYTES = 32
_REFRESH_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def hash_refresh_token(token: str) -> str:
    """The SHA-256 (hex) under which the store keeps ``token``.

    Raises :class:`InvalidTokenError` if ``token`` cannot be one of ours (wrong length or
    alphabet), so the server can answer without a database lookup.
    """
    if not isinstance(token, str) or not _REFRESH_TOKEN_RE.fullmatch(token):
        raise InvalidTokenError("malformed refresh token")
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and its hash: ``(token for the client, hash for the store)``."""
    token = secrets.token_urlsafe(_REFRESH_TOKEN_BYTES)
    return token, hash_refresh_token(token)


# --- the secret file -------------------------------------------------------------------------

_SECRET_BYTES = 32
_READ_RETRIES = 50
_READ_RETRY_S = 0.02


def _read_secret(path: Path, *, allow_insecure: bool) -> bytes | None:
    """The secret in ``path``; ``None`` if the file does not exist or is still being written
    (empty or partial: the creator has not finished)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            message = (
                f"{path} is accessible to other users (mode {stat.S_IMODE(info.st_mode):04o});"
                f" anyone who reads it can forge logins. Run: chmod 600 {path}"
            )
            if not allow_insecure:
                raise SecretFileError(message)
            log.warning(message)
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    text = data.strip()
    if len(text) < 2 * MIN_SECRET_BYTES:
        return None  # maybe still being written; the caller retries, then reports
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SecretFileError(
            f"{path} must contain the secret as hex (make one with: openssl rand -hex 32)"
        ) from exc


def _create_secret(path: Path) -> bool:
    """Write a new secret to ``path`` unless it exists; ``True`` if this call created it.
    The file appears complete or not at all (:func:`write_new_private_file`); where hard
    links are not supported it may be empty briefly, and readers retry."""
    text = (secrets.token_bytes(_SECRET_BYTES).hex() + "\n").encode("ascii")
    return write_new_private_file(path, text)


def secret_from_setting(value: str) -> bytes:
    """The secret of the ``jwt_secret`` setting: hex (``openssl rand -hex 32``) or, failing
    that, the text's bytes; at least 32 bytes, else :class:`SettingsError`."""
    try:
        secret = bytes.fromhex(value)
    except ValueError:
        secret = value.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise SettingsError("jwt_secret must be at least 32 bytes (64 hex digits)")
    return secret


def load_or_create_secret(path: str | os.PathLike[str], *, allow_insecure: bool = False) -> bytes:
    """The token-signing secret stored at ``path``, created (32 random bytes) if absent.

    Safe when several processes start at once: exactly one creates the file, the others read
    it. Raises :class:`SecretFileError` if the file is readable or writable by group/others
    (unless ``allow_insecure``, which logs a warning instead), is not a regular file, or does
    not hold at least 32 bytes as hex. The parent directory is created (mode 0700) if needed.
    """
    path = Path(path)
    secret = _read_secret(path, allow_insecure=allow_insecure)
    if secret is not None:
        return secret
    if not path.exists():
        make_private_dir(path.parent)
        _create_secret(path)
    for _ in range(_READ_RETRIES):
        secret = _read_secret(path, allow_insecure=allow_insecure)
        if secret is not None:
            return secret
        time.sleep(_READ_RETRY_S)
    raise SecretFileError(
        f"{path} does not contain a secret of at least {MIN_SECRET_BYTES} bytes as hex"
    )


class Revocations:
    """Users whose access tokens issued before a time are refused (logout, password change).

    Access tokens are stateless, so a logout cannot delete one: instead the user id is kept
    here with a *not-before* time (epoch milliseconds) until every token issued before it has
    expired anyway (``ttl_s``, the access-token lifetime). The store keeps each revocation too
    (table ``access_revocations``), loaded at start, so that a restart does not forget it.
    With several instances the bus delivers each revocation to all of them (and keeps it in
    Redis for instances that start later). A refused token raises :class:`ExpiredTokenError`:
    the client's other sessions refresh and go on; the session that logged out has no refresh
    token left.

    Expired revocations are dropped when the map has doubled since the last purge (at least
    ``PURGE_MIN`` entries): a purge scans the whole map, so purging on every add past a fixed
    size made adding n live revocations O(n^2) (20,000 logouts within one token lifetime:
    3.7 s of scans); doubling keeps it O(1) per add, amortised, and the map at most twice
    the revocations still in force (plus ``PURGE_MIN``)."""

    #: no purge below this many revocations
    PURGE_MIN = 1024

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._not_before: dict[int, int] = {}
        self._purge_at = self.PURGE_MIN

    def __len__(self) -> int:
        return len(self._not_before)

    def add(self, user_id: int, not_before_ms: int) -> None:
        if not_before_ms > self._not_before.get(user_id, 0):
            self._not_before[user_id] = not_before_ms
        if len(self._not_before) > self._purge_at:
            self.purge(time.time_ns() // 1_000_000)

    def horizon_ms(self, now_ms: int) -> int:
        """Revocations older than this refuse only tokens that have expired anyway."""
        return now_ms - self.ttl_s * 1000 - DEFAULT_LEEWAY_S * 1000

    def purge(self, now_ms: int) -> None:
        horizon = self.horizon_ms(now_ms)
        for uid in [u for u, nb in self._not_before.items() if nb < horizon]:
            del self._not_before[uid]
        self._purge_at = max(self.PURGE_MIN, 2 * len(self._not_before))

    def check(self, claims: AccessClaims) -> None:
        """Raise :class:`ExpiredTokenError` when ``claims`` were issued before a revocation."""
        if not self._not_before:
            return
        try:
            uid = int(claims.sub)
        except ValueError:
            return
        nb = self._not_before.get(uid)
        if nb is not None and claims.issued_ms < nb:
            raise ExpiredTokenError("the token was revoked (logout or password change)")
