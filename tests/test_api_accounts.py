"""Accounts over HTTP: register, login, refresh rotation and reuse detection, logout, tokens
(expired, forged, alg=none) refused, profiles. Real app, real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from api_support import Api

from goapp.server import auth
from goapp.server.api.common import MAX_JSON_BODY


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_register_login_me_and_profile(api: Api) -> None:
    body = await api.register("Alice")
    assert body["user"]["name"] == "Alice"
    assert body["user"]["rating"] == 1500
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.ctx.settings.access_token_ttl
    assert len(body["refresh_token"]) == 43

    status, me = await api.call("GET", "/api/me", user="Alice")
    assert status == 200 and me["name"] == "Alice" and me["id"] == body["user"]["id"]

    # names are unique ignoring case (and look-alikes)
    status, err = await api.call("POST", "/api/register", {"name": "alice", "password": "x" * 9})
    assert status == 409 and err["error"]["code"] == "name_taken"

    status, login = await api.call(
        "POST", "/api/login", {"name": "ALICE", "password": "correct horse"}
    )
    assert status == 200, login
    assert login["user"]["id"] == body["user"]["id"]
    assert login["refresh_token"] != body["refresh_token"]

    status, prof = await api.call("GET", "/api/users/alice")
    assert status == 200 and prof["name"] == "Alice"
    status, err = await api.call("GET", "/api/users/nobody")
    assert status == 404 and err["error"]["code"] == "user_not_found"


async def test_register_validation(api: Api) -> None:
    status, err = await api.call("POST", "/api/register", {"name": "a", "password": "long enough"})
    assert status == 400 and err["error"]["code"] == "username_invalid"
    status, err = await api.call("POST", "/api/register", {"name": "bob", "password": "short"})
    assert status == 400 and err["error"]["code"] == "password_invalid"
    status, err = await api.call("POST", "/api/register", {"name": "bob"})
    assert status == 400 and err["error"]["code"] == "bad_request"
    assert "password" in err["error"]["message"]


async def test_login_failures_look_the_same(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    await api.register("carol")
    calls: list[str | None] = []
    real = auth.verify_password

    def spy(password: str, stored: str | None) -> bool:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", spy)
    wrong_pw = await api.call("POST", "/api/login", {"name": "carol", "password": "wrong pass"})
    no_user = await api.call("POST", "/api/login", {"name": "nobody", "password": "wrong pass"})
    bad_name = await api.call("POST", "/api/login", {"name": "!!", "password": "wrong pass"})
    for status, err in (wrong_pw, no_user, bad_name):
        assert status == 401
        assert err == {"error": {"code": "bad_credentials", "message": "wrong name or password"}}
    # the password was hashed every time: for unknown names against the dummy (None)
    assert len(calls) == 3
    assert calls[0] is not None and calls[1] is None and calls[2] is None


async def test_refresh_rotates_and_reuse_revokes_everything(api: Api) -> None:
    first = await api.register("dave")
    status, second = await api.call(
        "POST", "/api/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["user"]["name"] == "dave"
    # the new access token works
    status, _ = await api.call(
        "GET", "/api/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert status == 200

    # a separate session (another device)
    status, other = await api.call(
        "POST", "/api/login", {"name": "dave", "password": "correct horse"}
    )
    assert status == 200

    # the first token again: reuse -> refused, and every session of dave is revoked
    status, err = await api.call("POST", "/api/refresh", {"refresh_token": first["refresh_token"]})
    assert status == 401 and err["error"]["code"] == "token_invalid"
    for token in (second["refresh_token"], other["refresh_token"]):
        status, err = await api.call("POST", "/api/refresh", {"refresh_token": token})
        assert status == 401 and err["error"]["code"] == "token_invalid"

    status, err = await api.call("POST", "/api/refresh", {"refresh_token": "x" * 43})
    assert status == 401 and err["error"]["code"] == "token_invalid"
    status, err = await api.call("POST", "/api/refresh", {"refresh_token": "short"})
    assert status == 401 and err["error"]["code"] == "token_invalid"


async def test_a_logged_out_refresh_token_is_refused_not_taken_for_theft(api: Api) -> None:
    """Logout retires a token without a successor: presenting it again (a second tab, a
    retried request) is refused with 401, and the user's other sessions live on. Only a
    token that a rotation replaced counts as reuse (the test above)."""
    laptop = await api.register("gail")
    status, phone = await api.call(
        "POST", "/api/login", {"name": "gail", "password": "correct horse"}
    )
    assert status == 200
    status, _ = await api.call("POST", "/api/logout", {"refresh_token": laptop["refresh_token"]})
    assert status == 200
    status, err = await api.call("POST", "/api/refresh", {"refresh_token": laptop["refresh_token"]})
    assert status == 401 and err["error"]["code"] == "token_invalid", err
    # the phone's session was not ended
    status, renewed = await api.call(
        "POST", "/api/refresh", {"refresh_token": phone["refresh_token"]}
    )
    assert status == 200, renewed
    status, _ = await api.call(
        "GET", "/api/me", headers={"Authorization": f"Bearer {renewed['access_token']}"}
    )
    assert status == 200


async def test_after_a_theft_stale_sessions_do_not_end_the_new_login(api: Api) -> None:
    """Reuse of a rotated token ends every session; a token ended that way, presented later
    by the owner's other device, is refused without ending the owner's fresh login."""
    first = await api.register("hugo")
    status, other = await api.call(
        "POST", "/api/login", {"name": "hugo", "password": "correct horse"}
    )
    assert status == 200
    status, second = await api.call(
        "POST", "/api/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200
    status, _ = await api.call("POST", "/api/refresh", {"refresh_token": first["refresh_token"]})
    assert status == 401  # theft: every session ended
    status, fresh = await api.call(
        "POST", "/api/login", {"name": "hugo", "password": "correct horse"}
    )
    assert status == 200
    for stale in (second["refresh_token"], other["refresh_token"]):
        status, err = await api.call("POST", "/api/refresh", {"refresh_token": stale})
        assert status == 401 and err["error"]["code"] == "token_invalid", err
    status, renewed = await api.call(
        "POST", "/api/refresh", {"refresh_token": fresh["refresh_token"]}
    )
    assert status == 200, renewed


async def test_logout_revokes_and_closes_sockets(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    s = await api.register("erin")
    closed: list[tuple[int, int]] = []

    def disconnect_user(user_id: int, code: int = 1008, reason: str = "") -> int:
        closed.append((user_id, code))
        return 0

    monkeypatch.setattr(api.ctx.hub, "disconnect_user", disconnect_user, raising=False)
    status, body = await api.call("POST", "/api/logout", {"refresh_token": s["refresh_token"]})
    assert status == 200 and body == {"ok": True}
    assert closed == [(s["user"]["id"], 1008)]
    status, _ = await api.call("POST", "/api/refresh", {"refresh_token": s["refresh_token"]})
    assert status == 401
    # logging out twice is fine
    status, body = await api.call("POST", "/api/logout", {"refresh_token": s["refresh_token"]})
    assert status == 200


async def test_bad_access_tokens_are_refused(api: Api) -> None:
    s = await api.register("frank")
    secret = api.ctx.secret
    uid = s["user"]["id"]
    now = int(time.time())

    async def me(token: str) -> tuple[int, Any]:
        return await api.call("GET", "/api/me", headers={"Authorization": f"Bearer {token}"})

    status, err = await api.call("GET", "/api/me")
    assert status == 401 and err["error"]["code"] == "auth_required"

    expired = auth.issue_access_token(secret, uid, "frank", 60, now - 3600)
    status, err = await me(expired)
    assert status == 401 and err["error"]["code"] == "token_expired"

    forged = auth.issue_access_token(b"k" * 32, uid, "frank", 600, now)
    status, err = await me(forged)
    assert status == 401 and err["error"]["code"] == "token_invalid"

    claims = {
        "sub": str(uid),
        "name": "frank",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "typ": "access",
    }
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{b64(json.dumps(claims).encode())}."
    status, err = await me(unsigned)
    assert status == 401 and err["error"]["code"] == "token_invalid"

    # a valid token whose signature was tampered with
    good = s["access_token"]
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    status, err = await me(tampered)
    assert status == 401 and err["error"]["code"] == "token_invalid"

    status, err = await api.call("GET", "/api/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert status == 401 and err["error"]["code"] == "token_invalid"
    status, err = await me("garbage")
    assert status == 401 and err["error"]["code"] == "token_invalid"
    # a refresh token is not an access token
    status, err = await me(s["refresh_token"])
    assert status == 401 and err["error"]["code"] == "token_invalid"


async def test_logout_answers_only_the_statuses_its_spec_lists(api: Api) -> None:
    """Every kind of logout request, against the real app: each status it answers is one
    the OpenAPI document lists for POST /api/logout, and each listed client error is
    answered by some request (the spec and the handler agree both ways)."""
    s, doc = await api.call("GET", "/api/openapi.json")
    assert s == 200
    listed = {int(k) for k in doc["paths"]["/api/logout"]["post"]["responses"]}
    session = await api.register("gina")
    good = session["refresh_token"]
    unknown = auth.new_refresh_token()[0]  # well formed, never issued
    raw = [
        ("good token", json.dumps({"refresh_token": good}), "application/json", 200),
        ("again (already revoked)", json.dumps({"refresh_token": good}), "application/json", 200),
        ("unknown token", json.dumps({"refresh_token": unknown}), "application/json", 200),
        ("malformed token", json.dumps({"refresh_token": "x"}), "application/json", 401),
        ("token not a string", json.dumps({"refresh_token": 7}), "application/json", 400),
        ("no token", "{}", "application/json", 400),
        ("unknown field", json.dumps({"refresh_token": good, "x": 1}), "application/json", 400),
        ("empty body", "", "application/json", 400),
        ("not JSON", "{", "application/json", 400),
        ("not an object", "[]", "application/json", 400),
        ("form body", "refresh_token=x", "application/x-www-form-urlencoded", 415),
        ("no body at all", None, None, 415),
        ("too large", json.dumps({"refresh_token": "x" * MAX_JSON_BODY}), "application/json", 413),
    ]
    answered: dict[int, list[str]] = {}
    for what, body, content_type, expected in raw:
        headers = {} if content_type is None else {"Content-Type": content_type}
        async with api.client.post("/api/logout", data=body, headers=headers) as resp:
            assert resp.status == expected, (what, resp.status, await resp.text())
            assert resp.content_type == "application/json", what
            if resp.status != 200:
                code = (await resp.json())["error"]["code"]
                assert code != "token_invalid" or expected == 401, (what, code)
        answered.setdefault(resp.status, []).append(what)
    assert set(answered) <= listed, {s: answered[s] for s in set(answered) - listed}
    # 500 (a bug) and 503 (the store is down) cannot be caused by a request
    assert listed - set(answered) == {500, 503}, listed - set(answered)
