"""Access with VIDCORRECT_API_TOKEN: bearer tokens, the page's session cookie, open routes."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.errors import ConfigError
from jobs.keys import Keys
from jobs.settings import Settings
from server.access import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGN_IN_FAILURES,
    SIGN_IN_WINDOW,
    Access,
    Revocations,
)
from server.app import create_app
from server.auth import OPEN_API_PATHS, OPEN_OPS_PATHS
from server.embedded_redis import EmbeddedRedis
from testkit.sse import read_events
from tests.api import Client, expect_error, submit_mask, upload

TOKEN = "s3cret-token-for-the-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ROI = {"x": 0, "y": 0, "width": 32, "height": 32}


@pytest.fixture
def token_settings(settings: Settings) -> Settings:
    return replace(settings, api_token=TOKEN)


@pytest.fixture
async def guarded(aiohttp_client: AiohttpClient, token_settings: Settings) -> Client:
    """The real app with an API token."""
    return await aiohttp_client(create_app(token_settings))


def api_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path with ids filled in) of every protected /api route the app serves."""
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not path.startswith("/api/") or path in OPEN_API_PATHS:
            continue
        found.append((route.method, path.format(video_id="1", task_id="abc", name="acme_9000")))
    return found


async def expect_unauthorized(resp: aiohttp.ClientResponse, code: str = "unauthorized") -> str:
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    return await expect_error(resp, 401, code)


async def test_every_api_route_needs_the_token(guarded: Client) -> None:
    routes = api_routes(guarded.app)
    assert len(routes) >= 14, routes
    for method, path in routes:
        resp = await guarded.request(method, path)
        message = await expect_unauthorized(resp)
        assert "Authorization: Bearer" in message, (method, path)
        wrong = {"Authorization": f"Bearer {TOKEN}x"}
        await expect_unauthorized(await guarded.request(method, path, headers=wrong))
    # An unknown /api path does not tell strangers whether it exists.
    await expect_unauthorized(await guarded.get("/api/no-such-thing/"))


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN} extra",
        "Bearer",
        "",
        TOKEN,
    ],
)
async def test_wrong_authorization_headers_are_401(guarded: Client, header: str) -> None:
    await expect_unauthorized(await guarded.get("/api/videos/", headers={"Authorization": header}))


async def test_the_token_opens_the_api(guarded: Client, clip_odd: Path) -> None:
    resp = await guarded.get("/api/videos/", headers=BEARER)
    assert resp.status == 200, await resp.text()
    resp = await guarded.get("/api/videos/", headers={"Authorization": f"bearer  {TOKEN}"})
    assert resp.status == 200
    form = aiohttp.FormData()
    form.add_field("file", clip_odd.read_bytes(), filename="a.mp4", content_type="video/mp4")
    resp = await guarded.post("/api/videos/", data=form, headers=BEARER)
    assert resp.status == 201, await resp.text()


async def test_open_routes_answer_without_the_token(guarded: Client) -> None:
    for path in ("/", "/static/app.js", "/static/js/api.js", "/api/session/"):
        resp = await guarded.get(path)
        assert resp.status == 200, path
    session = await (await guarded.get("/api/session/")).json()
    assert session == {"auth_required": True, "authenticated": False}
    # Probes and metrics are other parts' routes, open by design: never a 401 here.
    for path in OPEN_OPS_PATHS:
        assert (await guarded.get(path)).status != 401, path


async def test_no_token_means_an_open_api(client: Client) -> None:
    assert (await client.get("/api/videos/")).status == 200
    session = await (await client.get("/api/session/")).json()
    assert session == {"auth_required": False, "authenticated": True}
    resp = await client.post("/api/session/", json={"token": "anything"})
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers


def session_cookie(resp: aiohttp.ClientResponse) -> SimpleCookie:
    cookies = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie"):
        cookies.load(header)
    assert SESSION_COOKIE in cookies, resp.headers
    return cookies


async def test_sign_in_sets_a_session_cookie_that_is_not_the_token(
    guarded: Client, clip_odd: Path
) -> None:
    resp = await guarded.post("/api/session/", json={"token": "not-the-token-at-all"})
    await expect_unauthorized(resp, "bad_token")
    assert "Set-Cookie" not in resp.headers
    await expect_unauthorized(await guarded.get("/api/videos/"))

    resp = await guarded.post("/api/session/", json={"token": TOKEN})
    assert resp.status == 200
    assert await resp.json() == {"auth_required": True, "authenticated": True}
    morsel = session_cookie(resp)[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # plain http here: a Secure cookie would never come back
    assert int(morsel["max-age"]) == SESSION_SECONDS
    assert TOKEN not in morsel.value
    assert TOKEN[:8] not in morsel.value

    # The cookie (kept by the client's jar) opens the API, downloads and events included.
    assert (await guarded.get("/api/videos/")).status == 200
    video = await upload(guarded, clip_odd)
    assert (await guarded.get(f"/api/videos/{video['id']}/file")).status == 200
    session = await (await guarded.get("/api/session/")).json()
    assert session == {"auth_required": True, "authenticated": True}

    resp = await guarded.delete("/api/session/")
    assert resp.status == 200
    gone = session_cookie(resp)[SESSION_COOKIE]
    assert gone.value == ""
    assert gone["max-age"] == "0"
    await expect_unauthorized(await guarded.get("/api/videos/"))
    session = await (await guarded.get("/api/session/")).json()
    assert session == {"auth_required": True, "authenticated": False}


@pytest.mark.parametrize("body", [{}, {"token": 5}, {"token": TOKEN, "user": "x"}, [TOKEN]])
async def test_sign_in_needs_the_token_as_json(guarded: Client, body: object) -> None:
    resp = await guarded.post("/api/session/", json=body)
    assert "token" in await expect_error(resp, 400, "invalid_request")


async def test_forged_expired_and_foreign_cookies_are_refused(guarded: Client) -> None:
    access = Access(TOKEN)
    good = access.new_session()
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = access.new_session(now=time.time() - SESSION_SECONDS - 5)
    foreign = Access(TOKEN + "-rotated").new_session()
    payload = good.rpartition(".")[0]
    stretched = f"{payload.rpartition('.')[0]}.99999999999.{good.rpartition('.')[2]}"
    for value in (forged, expired, foreign, stretched, "", TOKEN, "a.b.c"):
        guarded.session.cookie_jar.clear()
        resp = await guarded.get("/api/videos/", cookies={SESSION_COOKIE: value})
        await expect_unauthorized(resp)
    guarded.session.cookie_jar.clear()
    assert (await guarded.get("/api/videos/", cookies={SESSION_COOKIE: good})).status == 200


async def test_the_cookie_is_secure_over_https(token_settings: Settings) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    server = TestServer(create_app(token_settings))
    await server.start_server(ssl=server_ctx)
    try:
        async with aiohttp.ClientSession() as session:
            url = server.make_url("/api/session/")
            assert url.scheme == "https"
            async with session.post(url, json={"token": TOKEN}, ssl=client_ctx) as resp:
                assert resp.status == 200
                morsel = session_cookie(resp)[SESSION_COOKIE]
    finally:
        await server.close()
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"


def test_token_is_read_from_the_environment_and_checked() -> None:
    assert Settings.from_env({"VIDCORRECT_API_TOKEN": f" {TOKEN} "}).api_token == TOKEN
    assert Settings.from_env({}).api_token is None
    assert TOKEN not in repr(Settings.from_env({"VIDCORRECT_API_TOKEN": TOKEN}))
    with pytest.raises(ConfigError, match="at least 16 characters"):
        Settings.from_env({"VIDCORRECT_API_TOKEN": "short"})
    with pytest.raises(ConfigError, match="printable ASCII"):
        Settings.from_env({"VIDCORRECT_API_TOKEN": "a token with spaces in it"})


async def test_sign_out_revokes_the_session_in_every_server_process(
    aiohttp_client: AiohttpClient, token_settings: Settings
) -> None:
    """A copy of the cookie (a shared computer, a proxy's log) stops working at sign-out, on
    every server process on the same Redis, not 12 hours later."""
    one = await aiohttp_client(create_app(token_settings))
    two = await aiohttp_client(create_app(token_settings))
    resp = await one.post("/api/session/", json={"token": TOKEN})
    copied = session_cookie(resp)[SESSION_COOKIE].value
    for client in (one, two):
        resp = await client.get("/api/videos/", cookies={SESSION_COOKIE: copied})
        assert resp.status == 200
    assert (await one.delete("/api/session/")).status == 200
    for client in (one, two):
        client.session.cookie_jar.clear()
        resp = await client.get("/api/videos/", cookies={SESSION_COOKIE: copied})
        await expect_unauthorized(resp)
        resp = await client.get("/api/session/", cookies={SESSION_COOKIE: copied})
        assert await resp.json() == {"auth_required": True, "authenticated": False}
    # Signing in again gives a new session that works.
    resp = await two.post("/api/session/", json={"token": TOKEN})
    assert (await two.get("/api/videos/")).status == 200
    assert session_cookie(resp)[SESSION_COOKIE].value != copied


async def test_revocations_are_kept_while_redis_is_away(tmp_path: Path) -> None:
    access = Access(TOKEN)
    signed_out, other = (access.session_of(access.new_session()) for _ in range(2))
    assert signed_out is not None
    assert other is not None
    keys = Keys("revocation-test")
    here, elsewhere = Revocations(keys), Revocations(keys)  # two server processes
    with EmbeddedRedis(tmp_path / "redis", persist=False) as server:
        redis = Redis.from_url(server.url)
        await here.revoke(redis, signed_out)
        assert await elsewhere.revoked(redis, signed_out)
        assert not await elsewhere.revoked(redis, other)
    # Redis is gone: each process still refuses what it saw signed out, and judges the rest by
    # the signature (the page keeps working, as the degraded mode does).
    assert await here.revoked(redis, signed_out)
    assert await elsewhere.revoked(redis, signed_out)
    assert not await here.revoked(redis, other)
    await here.revoke(redis, other)
    assert await here.revoked(redis, other)
    await redis.aclose()


async def _sign_in(client: Client, token: str) -> aiohttp.ClientResponse:
    return await client.post("/api/session/", json={"token": token})


async def test_failed_sign_ins_are_throttled_per_address(
    guarded: Client, token_settings: Settings
) -> None:
    started = time.monotonic()
    statuses = []
    for attempt in range(200):
        resp = await _sign_in(guarded, f"guess-{attempt:04d}-{'x' * 20}")
        statuses.append(resp.status)
        if resp.status == 429:
            body = await resp.json()
            assert body["error"]["code"] == "too_many_sign_ins"
            assert 1 <= int(resp.headers["Retry-After"]) <= SIGN_IN_WINDOW
    assert time.monotonic() - started < SIGN_IN_WINDOW  # so the window never slid
    assert statuses == [401] * SIGN_IN_FAILURES + [429] * (200 - SIGN_IN_FAILURES)
    # The right token from that address waits too (a 200 would tell a guesser it was right)...
    assert (await _sign_in(guarded, TOKEN)).status == 429
    # ...while another client address signs in at once.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        url = guarded.make_url("/api/session/")
        async with other.post(url, json={"token": TOKEN}) as resp:
            assert resp.status == 200


async def test_successful_sign_ins_are_not_slowed(guarded: Client) -> None:
    for _ in range(3):
        for _ in range(SIGN_IN_FAILURES - 1):
            assert (await _sign_in(guarded, "a-wrong-token-of-some-length")).status == 401
        started = time.monotonic()
        for _ in range(30):
            assert (await _sign_in(guarded, TOKEN)).status == 200
        assert time.monotonic() - started < 10


async def test_signing_out_ends_the_sessions_open_event_streams(
    aiohttp_client: AiohttpClient, token_settings: Settings, clip_odd: Path
) -> None:
    """An event stream opened with the cookie ends within about a second of the session's
    sign-out, on another server process too (before, the check ran only when a request began,
    so a stream kept delivering events after sign-out)."""
    one = await aiohttp_client(create_app(token_settings))
    two = await aiohttp_client(create_app(token_settings))
    resp = await one.post("/api/session/", json={"token": TOKEN})
    cookie = session_cookie(resp)[SESSION_COOKIE].value
    video = await upload(one, clip_odd)
    task_id = await submit_mask(one, video["id"], {"mask_type": "custom", "roi": ROI})
    streams = [  # the task stays queued (no worker): the streams stay open
        await client.get(f"/api/task-status/{task_id}/events", cookies={SESSION_COOKIE: cookie})
        for client in (one, two)
    ]
    for stream in streams:
        assert stream.status == 200
        assert len(await read_events(stream, limit=1)) == 1
    bearer = await one.get(f"/api/task-status/{task_id}/events", headers=BEARER)
    assert len(await read_events(bearer, limit=1)) == 1
    resp = await two.delete("/api/session/", cookies={SESSION_COOKIE: cookie})
    assert resp.status == 200
    started = time.monotonic()
    async with asyncio.timeout(5):
        for stream in streams:
            assert await read_events(stream) == []  # the server closed it, no event after
    assert time.monotonic() - started < 2.5
    assert not bearer.content.at_eof()  # the token cannot be signed out: its stream stays
    bearer.close()
