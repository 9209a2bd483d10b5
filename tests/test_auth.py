"""Tests for goapp.server.auth: passwords, usernames, JWT access tokens, refresh tokens, secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goapp.server import auth
from goapp.server.auth import (
    DEFAULT_LEEWAY_S,
    MAX_TOKEN_BYTES,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    AccessClaims,
    AuthError,
    ExpiredTokenError,
    InvalidTokenError,
    InvalidUsernameError,
    Revocations,
    SecretFileError,
    WeakPasswordError,
    hash_password,
    hash_refresh_token,
    issue_access_token,
    load_or_create_secret,
    needs_rehash,
    new_refresh_token,
    username_key,
    validate_password,
    validate_username,
    verify_access_token,
    verify_password,
)
from goapp.server.context import REVOCATION_PURGE_INTERVAL_S, ServerContext

FAST = {"n": 2**8, "r": 8, "p": 1}  # cheap scrypt parameters for tests that do not time them
SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
NOW = 1_700_000_000


# --- passwords ----------------------------------------------------------------------------


def test_hash_and_verify_with_default_parameters() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse battery!", stored)
    assert not needs_rehash(stored)


def test_hash_format_and_fresh_salt() -> None:
    a = hash_password("password123", **FAST)
    b = hash_password("password123", **FAST)
    assert a != b
    parts = a.split("$")
    assert parts[:4] == ["scrypt", "256", "8", "1"]
    assert len(base64.urlsafe_b64decode(parts[4] + "==")) == 16
    assert len(base64.urlsafe_b64decode(parts[5] + "=")) == 32
    assert verify_password("password123", a)
    assert verify_password("password123", b)


def test_wrong_password() -> None:
    stored = hash_password("password123", **FAST)
    assert not verify_password("password124", stored)
    assert not verify_password("", stored)
    assert not verify_password("Password123", stored)


def test_password_is_nfkc_normalised() -> None:
    stored = hash_password("password12", **FAST)
    fullwidth = "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11\uff12"
    assert verify_password(fullwidth, stored)


def _tamper(stored: str, index: int, new: str) -> str:
    parts = stored.split("$")
    parts[index] = new
    return "$".join(parts)


def test_tampered_hash_strings_fail_closed() -> None:
    stored = hash_password("password123", **FAST)
    salt, digest = stored.split("$")[4:]
    flipped = ("B" if digest[0] == "A" else "A") + digest[1:]
    candidates = [
        _tamper(stored, 5, flipped),
        _tamper(stored, 4, ("B" if salt[0] == "A" else "A") + salt[1:]),
        _tamper(stored, 1, "512"),
        _tamper(stored, 1, "300"),  # not a power of two
        _tamper(stored, 1, str(2**30)),  # absurd memory
        _tamper(stored, 1, "-256"),
        _tamper(stored, 2, "0"),
        _tamper(stored, 0, "bcrypt"),
        _tamper(stored, 5, digest + "=="),
        _tamper(stored, 5, digest[:-2]),
        _tamper(stored, 5, ""),
        stored + "$extra",
        stored.replace("$", "#"),
        "",
        "scrypt$$$$$",
        "\u0663\u0662$8$1$x$y",
    ]
    for bad in candidates:
        assert not verify_password("password123", bad), bad
        assert needs_rehash(bad), bad


def test_needs_rehash() -> None:
    assert needs_rehash(hash_password("password123", **FAST))
    assert needs_rehash(hash_password("password123", n=SCRYPT_N, r=4, p=1))
    assert not needs_rehash(hash_password("password123", n=SCRYPT_N * 2, r=8, p=1))
    assert needs_rehash("plaintext")


def test_password_policy() -> None:
    with pytest.raises(WeakPasswordError) as info:
        validate_password("short12")
    assert info.value.code == "password_invalid"
    validate_password("12345678")
    validate_password("x" * 1024)
    with pytest.raises(WeakPasswordError):
        validate_password("x" * 1025)
    with pytest.raises(WeakPasswordError):
        validate_password("\u20ac" * 342)  # 1026 bytes in UTF-8, 342 characters
    with pytest.raises(WeakPasswordError):
        validate_password("abcdefgh\ud800")  # a lone surrogate cannot be encoded
    with pytest.raises(WeakPasswordError):
        hash_password("short", **FAST)
    assert isinstance(WeakPasswordError("x"), AuthError)


def test_verify_rejects_oversized_without_raising() -> None:
    stored = hash_password("password123", **FAST)
    assert not verify_password("x" * 100_000, stored)
    assert not verify_password("abc\ud800defgh", stored)
    assert not verify_password(None, stored)  # type: ignore[arg-type]


def test_verify_unknown_user_does_dummy_work() -> None:
    assert not verify_password("password123", None)


def test_bad_hash_parameters_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("password123", n=1000)
    with pytest.raises(ValueError):
        hash_password("password123", n=2**20, r=8, p=4)


# --- usernames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "Lee_Sedol",
        "shin.jinseo",
        "go-player-9",
        "9dan",
        "x" * 24,
        "\uc774\uc138\ub3cc",  # Korean (Hangul)
        "\u4e95\u5c71\u88d5\u592a",  # Japanese (Han)
        "\u4e95\u5c71\u3086\u3046\u305f",  # Han + Hiragana
        "\u30b3\u30fc\u30c9",  # Katakana with the prolonged sound mark
        "Go\u68cb\u58eb",  # Latin + Han
        "\u0418\u0432\u0430\u043d",  # Cyrillic
        "Jos\u00e9",  # Latin with an accent
        "Jose\u0301",  # ... as a combining mark (NFKC composes it)
    ],
)
def test_valid_usernames(name: str) -> None:
    canon = validate_username(name)
    assert 3 <= len(canon) <= 24


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "x" * 25,
        "a b",
        "a\tb",
        "abc\n",
        "a\u200bbc",  # zero width space
        "a\u200dbc",  # zero width joiner
        "\u202eabc",  # right-to-left override
        "_abc",
        ".abc",
        "-abc",
        "abc!",
        "ab/c",
        "abc\U0001f600",  # emoji
        "abc\u0661",  # Arabic-Indic digit
        "pa\u0443l",  # Latin with a Cyrillic u: mixed scripts
        "\u0441ope",  # Cyrillic es + Latin
        "\u03b1bc",  # Greek alpha + Latin
        "\u0301abc",  # starts with a combining mark
        "\u00a0abc",  # no-break space
        "",
    ],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(InvalidUsernameError) as info:
        validate_username(name)
    assert info.value.code == "username_invalid"


def test_username_not_a_string() -> None:
    with pytest.raises(InvalidUsernameError):
        validate_username(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidUsernameError):
        validate_username("a" * 10_000)


def test_username_canonical_form_and_key() -> None:
    assert validate_username("\uff41\uff42\uff43") == "abc"  # full-width letters
    assert validate_username("Jose\u0301") == "Jos\u00e9"
    assert username_key("Alice") == username_key("alice") == username_key("ALICE")
    assert username_key("Stra\u00dfe") == username_key("STRASSE")
    # An all-Cyrillic look-alike of a Latin name collides with it.
    cyrillic = validate_username("\u0421\u043e\u0440\u0435")
    assert username_key(cyrillic) == username_key("Cope")
    assert username_key("bob") != username_key("b0b")


# --- access tokens ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(
    header: dict[str, Any] | bytes,
    claims: dict[str, Any] | bytes,
    secret: bytes = SECRET,
    digest: Any = hashlib.sha256,
) -> str:
    """A token with arbitrary header and claims, signed with HMAC(secret)."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    c = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{_b64(h)}.{_b64(c)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "42",
        "name": "alice",
        "iat": NOW,
        "exp": NOW + 900,
        "jti": "abc",
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


HS256 = {"alg": "HS256", "typ": "JWT"}


def test_issue_and_verify() -> None:
    token = issue_access_token(SECRET, 42, "alice", 900, NOW)
    claims = verify_access_token(SECRET, token, NOW + 10)
    assert claims.sub == "42"
    assert claims.name == "alice"
    assert claims.iat == NOW
    assert claims.exp == NOW + 900
    assert claims.typ == "access"
    assert len(claims.jti) >= 16
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == HS256
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"sub", "name", "iat", "exp", "jti", "typ", "iat_ms"}
    assert issue_access_token(SECRET, 42, "alice", 900, NOW) != token  # fresh jti


def test_forged_helper_matches_real_tokens() -> None:
    verify_access_token(SECRET, _forge(HS256, _claims()), NOW)


def test_expiry_boundary() -> None:
    token = issue_access_token(SECRET, "u1", "alice", 900, NOW)
    exp = NOW + 900
    verify_access_token(SECRET, token, exp - 1, leeway_s=0)
    with pytest.raises(ExpiredTokenError) as info:
        verify_access_token(SECRET, token, exp, leeway_s=0)
    assert info.value.code == "token_expired"
    verify_access_token(SECRET, token, exp + DEFAULT_LEEWAY_S - 1)
    with pytest.raises(ExpiredTokenError):
        verify_access_token(SECRET, token, exp + DEFAULT_LEEWAY_S)


def test_not_yet_valid() -> None:
    token = issue_access_token(SECRET, "u1", "alice", 900, NOW)
    verify_access_token(SECRET, token, NOW - DEFAULT_LEEWAY_S)
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, token, NOW - DEFAULT_LEEWAY_S - 1)
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge(HS256, _claims(nbf=NOW + 100)), NOW)
    verify_access_token(SECRET, _forge(HS256, _claims(nbf=NOW)), NOW)


def test_forged_signature() -> None:
    with pytest.raises(InvalidTokenError) as info:
        verify_access_token(SECRET, _forge(HS256, _claims(), secret=OTHER_SECRET), NOW)
    assert info.value.code == "token_invalid"
    token = issue_access_token(SECRET, 42, "alice", 900, NOW)
    head, body, _ = token.split(".")
    # Someone else's claims under our signature.
    other = _b64(json.dumps(_claims(sub="1")).encode())
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, f"{head}.{other}.{token.split('.')[2]}", NOW)
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, f"{head}.{body}.", NOW)


def test_alg_none_rejected() -> None:
    claims = _b64(json.dumps(_claims()).encode())
    for alg in ("none", "None", "NONE", ""):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        for signature in ("", _b64(b"x" * 32)):
            with pytest.raises(InvalidTokenError):
                verify_access_token(SECRET, f"{header}.{claims}.{signature}", NOW)
    # A correct HS256 signature does not make alg=none acceptable either.
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge({"alg": "none", "typ": "JWT"}, _claims()), NOW)
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge({"typ": "JWT"}, _claims()), NOW)


def test_other_algorithms_rejected() -> None:
    hs512 = _forge({"alg": "HS512", "typ": "JWT"}, _claims(), digest=hashlib.sha512)
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_access_token(SECRET, hs512, NOW)
    for alg in ("RS256", "ES256", "PS256", "hs256", "HS384"):
        with pytest.raises(InvalidTokenError, match="algorithm"):
            verify_access_token(SECRET, _forge({"alg": alg, "typ": "JWT"}, _claims()), NOW)


@pytest.mark.parametrize(
    "extra",
    [
        {"kid": "../../dev/null"},
        {"jku": "https://evil.example/jwks.json"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"x5u": "https://evil.example/cert"},
        {"crit": ["exp"]},
        {"cty": "JWT"},
    ],
)
def test_extra_header_fields_rejected(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenError, match="unsupported"):
        verify_access_token(SECRET, _forge({**HS256, **extra}, _claims()), NOW)


def test_header_typ_checked() -> None:
    verify_access_token(SECRET, _forge({"alg": "HS256"}, _claims()), NOW)  # typ is optional
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge({"alg": "HS256", "typ": "at+jwt"}, _claims()), NOW)


@pytest.mark.parametrize("typ", ["refresh", "Access", "", None, 1])
def test_claims_typ_must_be_access(typ: Any) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge(HS256, _claims(typ=typ)), NOW)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(sub=None),
        _claims(sub=""),
        _claims(sub=42),
        _claims(exp=None),
        _claims(exp="2030-01-01"),
        _claims(exp=True),
        _claims(exp=float(NOW + 900)),
        _claims(iat=None),
        _claims(name=None),
        _claims(jti=None),
        b"[1, 2, 3]",
        b"null",
        b"{",
        b"",
        b"\xff\xfe",
    ],
)
def test_bad_claims_rejected(claims: dict[str, Any] | bytes) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge(HS256, claims), NOW)


@pytest.mark.parametrize("header", [b"[]", b"\xff", b"null", b'"HS256"', b"{", b"", b'{"alg": 1}'])
def test_bad_headers_rejected(header: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(SECRET, _forge(header, _claims()), NOW)


def test_truncated_and_garbage_tokens() -> None:
    token = issue_access_token(SECRET, 42, "alice", 900, NOW)
    for end in range(len(token)):
        with pytest.raises(InvalidTokenError):
            verify_access_token(SECRET, token[:end], NOW)
    garbage = [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        token + ".",
        token + "=",
        token.replace(".", "=.", 1),
        " " + token,
        token + "\n",
        token.replace("-", "+").replace("_", "/"),
        "\u00e9" + token,
        "eyJhbGciOiJIUzI1NiJ9",
    ]
    for bad in garbage:
        if bad == token:
            continue
        with pytest.raises(InvalidTokenError):
            verify_access_token(SECRET, bad, NOW)
    for not_str in (None, b"a.b.c", 123, ["a", "b"]):
        with pytest.raises(InvalidTokenError):
            verify_access_token(SECRET, not_str, NOW)  # type: ignore[arg-type]


def test_oversized_token_rejected() -> None:
    big = _forge(HS256, _claims(name="x" * MAX_TOKEN_BYTES))
    assert len(big) > MAX_TOKEN_BYTES
    with pytest.raises(InvalidTokenError, match="large"):
        verify_access_token(SECRET, big, NOW)
    with pytest.raises(InvalidTokenError, match="large"):
        verify_access_token(SECRET, "a" * (10 * 1024 * 1024), NOW)
    with pytest.raises(ValueError):
        issue_access_token(SECRET, 1, "x" * MAX_TOKEN_BYTES, 900, NOW)


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        issue_access_token(b"short", 1, "alice", 900, NOW)
    token = issue_access_token(SECRET, 1, "alice", 900, NOW)
    with pytest.raises(ValueError):
        verify_access_token(b"", token, NOW)
    with pytest.raises(ValueError):
        issue_access_token(SECRET, 1, "alice", 0, NOW)


def test_error_codes() -> None:
    assert AuthError.code == "auth_error"
    assert InvalidTokenError.code == "token_invalid"
    assert ExpiredTokenError.code == "token_expired"
    assert not issubclass(ExpiredTokenError, InvalidTokenError)


VALID_TOKEN = issue_access_token(SECRET, 42, "alice", 900, NOW)
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def mutated_tokens(draw: st.DrawFn) -> str:
    token = VALID_TOKEN
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "swap"]))
        pos = draw(st.integers(0, max(0, len(token) - 1)))
        char = draw(st.sampled_from(B64_ALPHABET + ".=+/ \x00\u00e9") | st.characters())
        if kind == "replace":
            token = token[:pos] + char + token[pos + 1 :]
        elif kind == "insert":
            token = token[:pos] + char + token[pos:]
        elif kind == "delete":
            token = token[:pos] + token[pos + 1 :]
        elif pos + 1 < len(token):
            token = token[:pos] + token[pos + 1] + token[pos] + token[pos + 2 :]
    return token


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=mutated_tokens())
def test_mutated_tokens_never_verify(token: str) -> None:
    if token == VALID_TOKEN:
        return
    with pytest.raises(AuthError):
        verify_access_token(SECRET, token, NOW)


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: _b64(b)))
def test_arbitrary_text_only_raises_auth_errors(token: str) -> None:
    with pytest.raises(AuthError):
        verify_access_token(SECRET, token, NOW)


@settings(max_examples=200, deadline=None)
@given(
    header=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    claims=st.dictionaries(
        st.sampled_from(["sub", "name", "iat", "exp", "jti", "typ", "nbf", "x"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    ),
)
def test_arbitrary_signed_json_only_raises_auth_errors(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    try:
        verify_access_token(SECRET, _forge(header, claims), NOW)
    except AuthError:
        return
    # Only a well-formed HS256 access token can pass.
    assert header.get("alg") == "HS256"
    assert claims.get("typ") == "access"


# --- refresh tokens ----------------------------------------------------------------------


def test_new_refresh_token() -> None:
    token, digest = new_refresh_token()
    assert len(token) == 43
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert hash_refresh_token(token) == digest
    assert len({new_refresh_token()[0] for _ in range(100)}) == 100


@pytest.mark.parametrize("bad", ["", "abc", "a" * 44, "a" * 42 + "!", "a" * 42 + "\u00e9", None])
def test_malformed_refresh_token(bad: Any) -> None:
    with pytest.raises(InvalidTokenError):
        hash_refresh_token(bad)


def test_access_token_is_not_a_refresh_token() -> None:
    with pytest.raises(InvalidTokenError):
        hash_refresh_token(VALID_TOKEN)


# --- secret file -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert _mode(path) == 0o600
    assert path.read_text().strip() == secret.hex()
    assert load_or_create_secret(path) == secret
    assert load_or_create_secret(str(path)) == secret
    assert not [p for p in path.parent.iterdir() if p.name != "secret"]  # no temp files left


def test_secret_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        load_or_create_secret(tmp_path / "secret")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "secret") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_insecure_secret_file_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_text("ab" * 32 + "\n")
    path.chmod(mode)
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_or_create_secret(path)


def test_insecure_secret_allowed_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="goapp.server.auth"):
        assert load_or_create_secret(path, allow_insecure=True) == bytes([0xAB]) * 32
    assert "chmod 600" in caplog.text


def test_operator_provided_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  " + "0123456789abcdef" * 6 + "\n")
    path.chmod(0o600)
    assert load_or_create_secret(path) == bytes.fromhex("0123456789abcdef" * 6)
    link = tmp_path / "link"
    link.symlink_to(path)  # container secret mounts are symlinks
    assert load_or_create_secret(link) == bytes.fromhex("0123456789abcdef" * 6)


@pytest.mark.parametrize("content", ["not hex at all, but long enough" * 3, "abcd\n"])
def test_bad_secret_content_refused(
    tmp_path: Path, content: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "_READ_RETRY_S", 0)
    path = tmp_path / "secret"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="hex"):
        load_or_create_secret(path)


def test_secret_path_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="regular file"):
        load_or_create_secret(path)


def _race_worker(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(load_or_create_secret(path).hex())


def test_racing_processes_get_the_same_secret(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        path = str(tmp_path / f"secret{round_}")
        workers = 4
        barrier = ctx.Barrier(workers)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_race_worker, args=(path, barrier, results)) for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        seen = {results.get(timeout=30) for _ in range(workers)}
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == 0
        assert len(seen) == 1
        assert seen == {Path(path).read_text().strip()}


def _race_threads(path: Path, workers: int = 8) -> set[bytes]:
    barrier = threading.Barrier(workers)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(load_or_create_secret(path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(results) == workers
    return set(results)


def test_racing_threads_get_the_same_secret(tmp_path: Path) -> None:
    for round_ in range(10):
        path = tmp_path / f"secret{round_}"
        assert _race_threads(path) == {load_or_create_secret(path)}


def test_racing_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the file system has no hard links, O_EXCL on the path itself decides the race and
    losers wait until the winner's file is complete."""

    def no_link(src: Any, dst: Any) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    for round_ in range(10):
        path = tmp_path / f"secret{round_}"
        assert _race_threads(path) == {load_or_create_secret(path)}
        assert _mode(path) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def _issued(user_id: int, issued_ms: int) -> AccessClaims:
    iat = issued_ms // 1000
    return AccessClaims(
        sub=str(user_id), name="u", iat=iat, exp=iat + 900, jti="j", typ="access", iat_ms=issued_ms
    )


def test_many_revocations_are_all_honoured_and_purges_are_amortised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5,000 live revocations: every one still refuses older tokens, and the map is scanned
    a handful of times (it was scanned on every add past 1,024: quadratic); expired ones
    are dropped once the map has grown enough."""
    scans = 0
    real_purge = Revocations.purge

    def counting_purge(self: Revocations, now_ms: int) -> None:
        nonlocal scans
        scans += 1
        real_purge(self, now_ms)

    monkeypatch.setattr(Revocations, "purge", counting_purge)
    now = time.time_ns() // 1_000_000
    revocations = Revocations(900)
    expired = revocations.horizon_ms(now) - 1
    for uid in range(1000):  # logouts longer ago than any token lives
        revocations.add(uid, expired - uid)
    n = 5_000
    for uid in range(1000, 1000 + n):
        revocations.add(uid, now)
    assert scans <= 5, scans
    assert len(revocations) == n  # the expired ones are gone, the live ones all kept
    for uid in range(1000, 1000 + n):
        with pytest.raises(ExpiredTokenError):
            revocations.check(_issued(uid, now - 1))
        revocations.check(_issued(uid, now))  # issued after the logout: accepted


async def test_logouts_purge_the_stores_expired_revocations_now_and_then(
    ctx: ServerContext,
) -> None:
    """A logout drops the expired rows of ``access_revocations`` (so they do not pile up),
    but at most once per interval: the DELETE scans the table, and ran on every logout."""
    store = ctx.store
    users = [(await store.create_user(f"u{i}", None)).id for i in range(5)]
    now = time.time_ns() // 1_000_000
    old = ctx.revocations.horizon_ms(now) - 60_000
    await store.revoke_access_tokens(users[0], old)
    await ctx.revoke_user(users[1])  # the first logout purges
    assert set(await store.access_revocations(0)) == {users[1]}
    await store.revoke_access_tokens(users[2], old)
    await ctx.revoke_user(users[3])  # within the interval: no scan
    assert set(await store.access_revocations(0)) == {users[1], users[2], users[3]}
    ctx._revocations_purged_at -= REVOCATION_PURGE_INTERVAL_S  # the interval has passed
    await ctx.revoke_user(users[4])
    assert set(await store.access_revocations(0)) == {users[1], users[3], users[4]}
    for uid in (users[1], users[3], users[4]):
        with pytest.raises(ExpiredTokenError):
            ctx.revocations.check(_issued(uid, now - 1))
