"""The HTTP layer itself: the error shape for malformed requests, request ids, metrics, rate
limits, internal errors that leak nothing, the OpenAPI document, SGF upload errors, and
hypothesis fuzzing of the JSON bodies (never a 5xx, nothing written on rejection)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from api_support import Api, fast_scrypt, make_api, scrape_metrics
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goapp.server.api import all_routes
from goapp.server.api.common import MAX_JSON_BODY
from goapp.server.openapi import openapi_path
from goapp.server.ratelimit import Limit, RateLimiter


@pytest.fixture
async def api(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    fast_scrypt(monkeypatch)
    async for a in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/api.db"):
        yield a


def assert_error(status: int, body: Any, want_status: int, code: str) -> None:
    assert status == want_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def post_raw(api: Api, path: str, data: bytes, content_type: str | None) -> tuple[int, Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with api.client.post(path, data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_malformed_requests_get_the_error_shape(api: Api) -> None:
    s, b = await post_raw(api, "/api/register", b'{"name": "abc", ', "application/json")
    assert_error(s, b, 400, "bad_json")
    s, b = await post_raw(
        api, "/api/register", b"name=abc&password=x", "application/x-www-form-urlencoded"
    )
    assert_error(s, b, 415, "unsupported_media_type")
    s, b = await post_raw(api, "/api/register", b'{"name": "abc"}', None)
    assert_error(s, b, 415, "unsupported_media_type")
    s, b = await api.call(
        "POST", "/api/register", {"name": "abcd", "password": "long enough", "admin": True}
    )
    assert_error(s, b, 400, "bad_request")
    assert "admin" in b["error"]["message"] and b["error"]["path"] == "$"
    s, b = await api.call("POST", "/api/register", {"name": 5, "password": "long enough"})
    assert_error(s, b, 400, "bad_request")
    assert b["error"]["path"] == "$.name"
    s, b = await api.call("POST", "/api/register", [1, 2])
    assert_error(s, b, 400, "bad_request")
    big = json.dumps({"name": "abcd", "password": "x" * (MAX_JSON_BODY + 1)}).encode()
    s, b = await post_raw(api, "/api/register", big, "application/json")
    assert_error(s, b, 413, "payload_too_large")
    s, b = await api.call("GET", "/api/nothing-here")
    assert_error(s, b, 404, "not_found")
    s, b = await api.call("DELETE", "/api/register")
    assert_error(s, b, 405, "method_not_allowed")
    # nothing was created by any of these
    s, b = await api.call("GET", "/api/users/abcd")
    assert s == 404
    s, b = await api.call("GET", "/api/users/abc")
    assert s == 404


async def test_request_id_metrics_and_internal_errors(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with api.client.get("/api/challenges", headers={"X-Request-Id": "abc-123"}) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-Id"] == "abc-123"
    async with api.client.get("/api/challenges", headers={"X-Request-Id": "bad id\u00e9"}) as resp:
        rid = resp.headers["X-Request-Id"]
        assert rid and rid != "bad id\u00e9"

    from goapp.server.api import challenges

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(api.ctx.store, "list_open_challenges", boom)
    caplog.set_level(logging.ERROR, logger="goapp.api")
    async with api.client.get("/api/challenges", headers={"X-Request-Id": "req-500"}) as resp:
        assert resp.status == 500
        body = await resp.json()
        assert resp.headers["X-Request-Id"] == "req-500"
    assert body == {"error": {"code": "internal", "message": body["error"]["message"]}}
    assert "hunter2" not in json.dumps(body)
    record = next(r for r in caplog.records if r.exc_info)
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])
    assert challenges  # imported for the monkeypatch target's module

    from goapp.obs.logging import REQUEST_ID, JsonFormatter

    token = REQUEST_ID.set("req-xyz")
    try:
        line = JsonFormatter().format(logging.LogRecord("goapp.api", 20, "", 0, "hi", None, None))
    finally:
        REQUEST_ID.reset(token)
    assert json.loads(line)["request_id"] == "req-xyz"

    text = await scrape_metrics(api.ctx)
    assert 'goapp_http_requests_total{route="/api/challenges",status="200"}' in text
    assert 'goapp_http_requests_total{route="/api/challenges",status="500"}' in text
    assert 'route="(unmatched)"' in text or "/api/nothing" not in text


async def _login_statuses(api: Any, forwarded_for: str | None, n: int) -> list[int]:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    out = []
    for _ in range(n):
        async with api.client.post(
            "/api/login", json={"name": "nobody", "password": "whatever1"}, headers=headers
        ) as resp:
            out.append(resp.status)
    return out


@pytest.mark.parametrize("trusted", ["", "127.0.0.1", "10.0.0.0/8, 127.0.0.0/8"])
async def test_per_ip_limits_behind_a_trusted_proxy(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch, trusted: str
) -> None:
    """With ``trusted_proxies`` naming the proxy (the test client connects from 127.0.0.1),
    each address in X-Forwarded-For gets its own login budget; without it the header is
    ignored, so a client cannot buy itself a fresh budget by sending one."""
    fast_scrypt(monkeypatch)
    limiter = RateLimiter({"login:ip": Limit(2, 0.001)})
    async for api in make_api(
        aiohttp_client,
        tmp_path,
        f"sqlite://{tmp_path}/rl.db",
        limiter=limiter,
        settings_overrides={"trusted_proxies": trusted},
    ):
        first = await _login_statuses(api, "203.0.113.7", 3)
        second = await _login_statuses(api, "203.0.113.8", 1)
        # the left part is the client's to forge: only the right-most untrusted hop counts
        forged = await _login_statuses(api, "198.51.100.1, 203.0.113.8", 2)
        if trusted:
            assert first == [401, 401, 429]
            assert second == [401]
            assert forged == [401, 429]  # 203.0.113.8's second and third tries
        else:
            assert first == [401, 401, 429]
            assert second == [429] and forged == [429, 429]  # one bucket: the proxy's


def test_trusted_proxies_setting_is_checked() -> None:
    from goapp.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="not an address"):
        load_settings(env={}, overrides={"trusted_proxies": "127.0.0.1, nginx"})


async def test_rate_limits(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_scrypt(monkeypatch)
    limiter = RateLimiter({"login:ip": Limit(2, 0.001), "action:user": Limit(1, 0.001)})
    async for api in make_api(
        aiohttp_client, tmp_path, f"sqlite://{tmp_path}/rl.db", limiter=limiter
    ):
        for _ in range(2):
            s, b = await api.call("POST", "/api/login", {"name": "nobody", "password": "whatever1"})
            assert s == 401
        async with api.client.post(
            "/api/login", json={"name": "nobody", "password": "whatever1"}
        ) as resp:
            assert resp.status == 429
            body = await resp.json()
            assert body["error"]["code"] == "rate_limited"
            assert int(resp.headers["Retry-After"]) >= 1
            assert body["error"]["retry_after"] == int(resp.headers["Retry-After"])
        await api.register("alice")
        await api.register("bob")
        s, _ = await api.act("alice", 1, {"type": "pass"})
        assert s == 404  # no game: the request got through the limiter
        s, b = await api.act("alice", 1, {"type": "pass"})
        assert_error(s, b, 429, "rate_limited")
        s, b = await api.act("bob", 1, {"type": "pass"})  # per user: bob is not limited
        assert s == 404


def test_rate_limiter_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    rl = RateLimiter({"x": Limit(burst=2, per_s=1)}, max_keys=3, clock=lambda: now[0])
    assert rl.hit("x", "a") == 0 and rl.hit("x", "a") == 0
    assert rl.hit("x", "a") == pytest.approx(1.0)
    now[0] = 0.5
    assert rl.hit("x", "a") == pytest.approx(0.5)
    now[0] = 1.0
    assert rl.hit("x", "a") == 0
    assert rl.hit("unlimited", "a") == 0
    for key in "bcdefg":
        rl.hit("x", key)
    assert len(rl) == 3
    with pytest.raises(ValueError):
        Limit(burst=0, per_s=1)


async def test_openapi_documents_every_route(api: Api) -> None:
    s, doc = await api.call("GET", "/api/openapi.json")
    assert s == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    registered = set()
    app: web.Application = api.client.app
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and route.method != "HEAD":
            registered.add((route.method, openapi_path(path)))
    assert registered == documented
    assert {(r.method, openapi_path(r.path)) for r in all_routes()} == documented
    schemas = doc["components"]["schemas"]
    assert "ActionBody" in schemas and "ChallengeBody" in schemas and "Error" in schemas
    action = doc["paths"]["/api/action"]["post"]
    assert action["security"] == [{"bearer": []}]
    assert action["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ActionBody"
    }
    assert schemas["ChallengeBody"]["properties"]["size"]["minimum"] == 2
    assert schemas["ChallengeBody"]["additionalProperties"] is False
    # a JSON body can be of another type (415), too large (413) or invalid (400)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert {"400", "413", "415"} <= set(op["responses"]), (method, path)


async def test_sgf_upload_errors(api: Api) -> None:
    async def upload(data: bytes, ct: str = "application/x-go-sgf") -> tuple[int, Any]:
        return await post_raw(api, "/api/sgf", data, ct)

    s, b = await upload(b"(;GM[1]SZ[9]\n;B[ee];W[ee])")
    assert_error(s, b, 400, "bad_sgf")
    assert "move 2" in b["error"]["message"]
    s, b = await upload(b"(;GM[1]SZ[9]\n;B[ee]\n;W[e")
    assert_error(s, b, 400, "bad_sgf")
    assert b["error"]["line"] == 3 and b["error"]["message"].startswith("line 3")
    s, b = await upload(b"hello")
    assert_error(s, b, 400, "bad_sgf")
    s, b = await upload(b"(;GM[1]SZ[9];B[ee])", "application/json")
    assert_error(s, b, 415, "unsupported_media_type")
    s, b = await upload(b"(;C[" + b"x" * (1024 * 1024) + b"])")
    assert_error(s, b, 413, "payload_too_large")
    s, b = await upload(b"(;GM[1]FF[4]SZ[9]KM[6.5]RE[W+R]PB[a]PW[b];B[ee];W[];B[cc])", "text/plain")
    assert s == 200, b
    assert [m["vertex"] for m in b["moves"]] == ["E5", "pass", "C7"]
    assert b["result"] == "W+R" and b["info"]["komi"] == 6.5


# -- fuzzing -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
action_like = st.fixed_dictionaries(
    {},
    optional={
        "game_id": st.just("same") | st.integers(-5, 2**64) | json_values,
        "action": st.fixed_dictionaries(
            {"type": st.sampled_from(["move", "pass", "resign", "mark_dead", "abort", "x"])},
            optional={
                "vertex": st.sampled_from(["E5", "D4", "A1", "J9", "T19", "pass"])
                | st.text(max_size=10)
                | json_values
            },
        )
        | json_values,
        "request_id": st.text(max_size=200) | json_values,
        "extra": json_values,
    },
)
challenge_like = st.fixed_dictionaries(
    {},
    optional={
        "size": st.integers(-3, 30) | json_values,
        "rules": st.sampled_from(["japanese", "tt", "aga", "??"]) | json_values,
        "komi": st.floats() | json_values,
        "handicap": st.integers(-2, 12) | json_values,
        "color": st.sampled_from(["black", "white", "random", "blue"]) | json_values,
        "time_control": st.fixed_dictionaries(
            {"system": st.sampled_from(["byoyomi", "fischer", "none", "x"])},
            optional={"main_s": json_values, "periods": json_values, "period_s": json_values},
        )
        | json_values,
        "opponent": st.sampled_from(["bob", "computer", "alice", "nobody"]) | json_values,
    },
)
register_like = st.fixed_dictionaries(
    {}, optional={"name": st.text(max_size=30) | json_values, "password": json_values}
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def game_api(api: Api) -> AsyncIterator[tuple[Api, int]]:
    await api.register("alice")
    await api.register("bob")
    yield api, await api.new_game("alice", "bob")


@FUZZ
@given(body=action_like | json_values, user=st.sampled_from(["alice", "bob"]))
async def test_fuzz_action_bodies(game_api: tuple[Api, int], body: Any, user: str) -> None:
    api, game_id = game_api
    if isinstance(body, dict) and body.get("game_id") == "same":
        body["game_id"] = game_id
    before = await api.event_count(game_id)
    status, answer = await api.call("POST", "/api/action", body, user=user)
    assert status < 500, answer
    if status == 200:
        assert answer["ok"] is True and answer["events"]
    else:
        assert set(answer) == {"error"}
        assert await api.event_count(game_id) == before


@FUZZ
@given(body=challenge_like | json_values)
async def test_fuzz_challenge_bodies(game_api: tuple[Api, int], body: Any) -> None:
    api, _ = game_api
    _, before = await api.call("GET", "/api/challenges", user="alice")
    status, answer = await api.call("POST", "/api/challenges", body, user="alice")
    assert status < 500, answer
    _, after = await api.call("GET", "/api/challenges", user="alice")
    if status == 201:
        assert len(after["challenges"]) == len(before["challenges"]) + 1
    else:
        assert set(answer) == {"error"}
        assert after == before


@FUZZ
@given(body=register_like | json_values)
async def test_fuzz_register_bodies(api: Api, body: Any) -> None:
    status, answer = await api.call("POST", "/api/register", body)
    assert status < 500, answer
    if status != 201:
        assert set(answer) == {"error"}
        name = body.get("name") if isinstance(body, dict) else None
        if isinstance(name, str) and status in (400, 415) and name.isascii() and name.isalnum():
            s, _ = await api.call("GET", f"/api/users/{name}")
            assert s == 404 or status == 409
