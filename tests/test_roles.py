"""People and roles: the users file and its command, what each role may call, sessions that
carry their user, who submitted a task, sign-in throttling and trusted proxies."""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from jobs.errors import ConfigError
from jobs.settings import Settings
from jobs.users import (
    ANONYMOUS_PERMISSIONS,
    ROLE_PERMISSIONS,
    Role,
    UserDirectory,
    UsersFile,
    least_role,
)
from server.access import MAX_SLOWDOWN, SLOW_AFTER, SignInThrottle
from server.app import create_app
from server.auth import OPEN_API_PATHS
from server.commands import anonymous_refusal
from server.keys import SIGN_IN_THROTTLE
from server.permissions import ROUTE_PERMISSIONS
from tests.api import Client, expect_error, upload
from tests.people import (
    API_TOKEN,
    NAMES,
    bearer,
    clean_env,
    make_users,
    session_cookie,
    vidcorrect,
)


@pytest.fixture
def users_path(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "users.json"


@pytest.fixture
def tokens(users_path: Path) -> dict[Role, str]:
    return make_users(users_path)


@pytest.fixture
def people_settings(settings: Settings, users_path: Path, tokens: dict[Role, str]) -> Settings:
    return replace(settings, users_file=users_path, api_token=API_TOKEN)


@pytest.fixture
async def people(aiohttp_client: AiohttpClient, people_settings: Settings) -> Client:
    """The real app with a users file (and the API token)."""
    return await aiohttp_client(create_app(people_settings))


# ---- the users file and its command --------------------------------------------------------


async def test_users_add_prints_a_token_once_and_keeps_only_its_salted_hash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users.json"
    env = clean_env(VIDCORRECT_USERS_FILE=str(path))
    ran = await vidcorrect("users", "add", "ana", "--role", "reviewer", env=env)
    assert ran.code == 0, ran.err
    token = ran.out.strip()
    assert token.startswith("vcu_")
    assert "\n" not in token
    assert "only this once" in ran.err
    text = path.read_text()
    secret = token.rsplit("_", 1)[1]
    assert token not in text
    assert secret not in text
    assert secret[:12] not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (entry,) = json.loads(text)["users"]
    assert (entry["name"], entry["role"]) == ("ana", "reviewer")
    # The stored hash is scrypt of the token with the entry's own salt, checked independently.
    params = entry["scrypt"]
    expected = hashlib.scrypt(
        token.encode(),
        salt=bytes.fromhex(entry["salt"]),
        n=params["n"],
        r=params["r"],
        p=params["p"],
        dklen=32,
    )
    assert entry["hash"] == expected.hex()
    # A second user gets a salt of their own.
    ran = await vidcorrect("users", "add", "bo", "--role", "uploader", env=env)
    assert ran.code == 0, ran.err
    salts = {u["salt"] for u in json.loads(path.read_text())["users"]}
    assert len(salts) == 2

    directory = UserDirectory(path)
    user = directory.authenticate(token)
    assert user is not None
    assert (user.name, user.role) == ("ana", Role.REVIEWER)
    assert directory.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert directory.authenticate("vcu_000000000000_" + secret) is None

    listed = await vidcorrect("users", "list", env=env)
    assert listed.code == 0
    assert [line.split("\t")[:2] for line in listed.out.splitlines()] == [
        ["ana", "reviewer"],
        ["bo", "uploader"],
    ]
    assert token not in listed.out

    # The same name again needs --replace, which gives a new token and ends the old one.
    again = await vidcorrect("users", "add", "ana", "--role", "admin", env=env)
    assert again.code == 2
    assert "--replace" in again.err
    replaced = await vidcorrect("users", "add", "ana", "--role", "admin", "--replace", env=env)
    assert replaced.code == 0, replaced.err
    assert directory.authenticate(token) is None
    user = directory.authenticate(replaced.out.strip())
    assert user is not None
    assert user.role is Role.ADMIN

    removed = await vidcorrect("users", "remove", "ana", env=env)
    assert removed.code == 0
    assert directory.authenticate(replaced.out.strip()) is None


@pytest.mark.parametrize(
    ("args", "env_file", "message"),
    [
        (["add", "x", "--role", "boss"], True, "role must be one of uploader, reviewer, admin"),
        (["add", "no spaces", "--role", "admin"], True, "A user name is"),
        (["remove", "nobody"], True, "There is no user 'nobody'"),
        (["add", "x", "--role", "admin"], False, "set VIDCORRECT_USERS_FILE"),
    ],
)
async def test_users_command_refuses_what_it_cannot_do(
    tmp_path: Path, args: list[str], env_file: bool, message: str
) -> None:
    env = clean_env(**({"VIDCORRECT_USERS_FILE": str(tmp_path / "u.json")} if env_file else {}))
    ran = await vidcorrect("users", *args, env=env)
    assert ran.code == 2
    assert message in ran.err, ran.err
    assert "Traceback" not in ran.err


def test_settings_read_users_proxies_and_approval(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "VIDCORRECT_USERS_FILE": " /etc/vidcorrect/users.json ",
            "VIDCORRECT_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12,::1",
            "VIDCORRECT_REQUIRE_APPROVAL": "true",
        }
    )
    assert settings.users_file == Path("/etc/vidcorrect/users.json")
    assert settings.trusted_proxies == ("10.0.0.1/32", "172.16.0.0/12", "::1/128")
    assert settings.require_approval is True
    assert Settings.from_env({}).require_approval is False
    with pytest.raises(ConfigError, match="VIDCORRECT_TRUSTED_PROXIES"):
        Settings.from_env({"VIDCORRECT_TRUSTED_PROXIES": "proxy.example"})
    with pytest.raises(ConfigError, match="VIDCORRECT_REQUIRE_APPROVAL must be true or false"):
        Settings.from_env({"VIDCORRECT_REQUIRE_APPROVAL": "maybe"})
    missing = replace(Settings(data_dir=tmp_path / "d"), users_file=tmp_path / "none.json")
    with pytest.raises(ConfigError, match="vidcorrect users add"):
        create_app(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"users": "nope"}')
    with pytest.raises(ConfigError, match="not a users file"):
        create_app(replace(missing, users_file=broken))


# ---- what each role may call ------------------------------------------------------------------


def protected_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every protected /api route the app serves."""
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not path.startswith("/api/") or path in OPEN_API_PATHS:
            continue
        found.append((route.method, path))
    return found


def test_every_protected_route_has_a_permission(settings: Settings) -> None:
    routes = protected_routes(create_app(settings))
    assert len(routes) >= 24
    assert [r for r in routes if r not in ROUTE_PERMISSIONS] == []
    assert ROUTE_PERMISSIONS.keys() <= set(routes)
    # The roles nest: each may do all the one before it may.
    assert ROLE_PERMISSIONS[Role.UPLOADER] < ROLE_PERMISSIONS[Role.REVIEWER]
    assert ROLE_PERMISSIONS[Role.REVIEWER] < ROLE_PERMISSIONS[Role.ADMIN]


async def test_each_role_is_allowed_and_denied_per_route(
    people: Client, tokens: dict[Role, str]
) -> None:
    """Every route, as every role: allowed ones get past access (whatever they answer then:
    these ids name nothing), denied ones get 403 forbidden_role naming the role needed."""
    checked = {role: 0 for role in Role}
    for method, path in protected_routes(people.app):
        url = path.format(video_id="999999", task_id="0123456789abcdef", name="acme_9000")
        permission = ROUTE_PERMISSIONS[(method, path)]
        for role, token in tokens.items():
            resp = await people.request(method, url, headers=bearer(token))
            body = await resp.read()
            if permission in ROLE_PERMISSIONS[role]:
                assert resp.status not in (401, 403), (role, method, path, body)
                checked[role] += 1
            else:
                message = await expect_error(resp, 403, "forbidden_role")
                needed = least_role(permission).value
                assert f"needs the {needed} role" in message, message
                assert f"you are signed in as {NAMES[role]} ({role.value})" in message
        # The API token alone is one admin.
        resp = await people.request(method, url, headers=bearer(API_TOKEN))
        await resp.read()
        assert resp.status not in (401, 403), (method, path)
    assert checked[Role.UPLOADER] < checked[Role.REVIEWER] < checked[Role.ADMIN]
    # The uploader may not touch devices, deletion, review, audit or originals.
    uploader = bearer(tokens[Role.UPLOADER])
    for method, url in (
        ("POST", "/api/devices/"),
        ("DELETE", "/api/devices/acme_9000"),
        ("DELETE", "/api/videos/1/"),
        ("DELETE", "/api/tasks/abc/output"),
        ("POST", "/api/tasks/abc/review"),
        ("GET", "/api/audit/"),
        ("GET", "/api/videos/1/file"),
    ):
        await expect_error(await people.request(method, url, headers=uploader), 403)
    # An unknown path is still a 404 for anyone signed in, not a 403.
    await expect_error(await people.get("/api/no-such-thing/", headers=uploader), 404)


async def test_me_tells_who_is_signed_in(
    people: Client, client: Client, tokens: dict[Role, str]
) -> None:
    for role, token in tokens.items():
        me = await (await people.get("/api/me/", headers=bearer(token))).json()
        assert me["name"] == NAMES[role]
        assert me["role"] == role.value
        assert set(me["permissions"]) == {p.value for p in ROLE_PERMISSIONS[role]}
        assert me["auth_required"] is True
    me = await (await people.get("/api/me/", headers=bearer(API_TOKEN))).json()
    assert (me["name"], me["role"]) == ("api-token", "admin")
    # Open mode: nobody, who may do everything (but download unapproved outputs, see
    # test_review).
    me = await (await client.get("/api/me/")).json()
    assert me == {
        "name": None,
        "role": None,
        "permissions": sorted(p.value for p in ANONYMOUS_PERMISSIONS),
        "auth_required": False,
    }


async def test_the_page_session_carries_its_user(
    people: Client, tokens: dict[Role, str], users_path: Path
) -> None:
    resp = await people.post("/api/session/", json={"token": tokens[Role.UPLOADER]})
    assert resp.status == 200
    cookie = session_cookie(resp)
    assert tokens[Role.UPLOADER] not in cookie.value
    me = await (await people.get("/api/me/")).json()  # the cookie, kept by the client's jar
    assert (me["name"], me["role"]) == ("uma", "uploader")
    message = await expect_error(await people.delete("/api/videos/1/"), 403, "forbidden_role")
    assert "needs the admin role" in message
    assert (await people.get("/api/videos/")).status == 200
    # Giving uma a new token ends her sessions, on every server reading the file.
    UsersFile(users_path).add("uma", Role.UPLOADER, replace=True)
    await expect_error(await people.get("/api/me/"), 401, "unauthorized")
    await expect_error(
        await people.get("/api/me/", headers=bearer(tokens[Role.UPLOADER])), 401, "unauthorized"
    )
    # A removed user's token stops working at once (the file is read again when it changes).
    reviewer = bearer(tokens[Role.REVIEWER])
    assert (await people.get("/api/me/", headers=reviewer)).status == 200
    assert UsersFile(users_path).remove("rita")
    await expect_error(await people.get("/api/me/", headers=reviewer), 401, "unauthorized")


async def test_every_task_records_who_submitted_it(
    people: Client, client: Client, tokens: dict[Role, str], clip_odd: Path
) -> None:
    uploader = bearer(tokens[Role.UPLOADER])
    form = aiohttp.FormData()
    form.add_field("file", clip_odd.read_bytes(), filename="a.mp4", content_type="video/mp4")
    resp = await people.post("/api/videos/", data=form, headers=uploader)
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    resp = await people.post(
        f"/api/video-analyze/{video_id}/", json={"sample_every": 50}, headers=uploader
    )
    assert resp.status == 202, await resp.text()
    task_id = (await resp.json())["task_id"]
    task = await (await people.get(f"/api/task-status/{task_id}/", headers=uploader)).json()
    assert task["submitted_by"] == "uma"
    listing = await (await people.get("/api/tasks/", headers=uploader)).json()
    assert [t["submitted_by"] for t in listing["tasks"]] == ["uma"]
    # Open mode: anonymous.
    video = await upload(client, clip_odd)
    resp = await client.post(f"/api/video-analyze/{video['id']}/", json={"sample_every": 50})
    task = await (await client.get(f"/api/task-status/{(await resp.json())['task_id']}/")).json()
    assert task["submitted_by"] is None


# ---- throttling and proxies -------------------------------------------------------------------


def test_wrong_tokens_are_answered_more_and_more_slowly() -> None:
    throttle = SignInThrottle(failures=10, api_failures=30)
    delays = [throttle.failed("198.51.100.1") for _ in range(30)]
    assert delays[:SLOW_AFTER] == [0.0] * SLOW_AFTER
    assert all(a < b for a, b in zip(delays[SLOW_AFTER - 1 :], delays[SLOW_AFTER:12], strict=False))
    assert max(delays) == MAX_SLOWDOWN
    assert throttle.retry_after("198.51.100.1") is not None  # page sign-ins: refused
    assert throttle.retry_after("198.51.100.1", 31) is None
    assert throttle.retry_after("198.51.100.2") is None


async def _with_throttle(
    aiohttp_client: AiohttpClient, settings: Settings, failures: int, api_failures: int
) -> Client:
    app = create_app(settings)
    app[SIGN_IN_THROTTLE] = SignInThrottle(failures=failures, api_failures=api_failures)
    return await aiohttp_client(app)


async def test_wrong_bearer_tokens_are_throttled_per_address(
    aiohttp_client: AiohttpClient, people_settings: Settings, tokens: dict[Role, str]
) -> None:
    guarded = await _with_throttle(aiohttp_client, people_settings, 3, 6)
    wrong = bearer("vcu_0123456789ab_" + "x" * 43)
    for _ in range(6):
        await expect_error(await guarded.get("/api/videos/", headers=wrong), 401, "unauthorized")
    resp = await guarded.get("/api/videos/", headers=wrong)
    await expect_error(resp, 429, "too_many_sign_ins")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # A right token from that address waits too (a 200 would tell a guesser it was right),
    # and so do page sign-ins...
    right = bearer(tokens[Role.ADMIN])
    await expect_error(await guarded.get("/api/videos/", headers=right), 429, "too_many_sign_ins")
    resp = await guarded.post("/api/session/", json={"token": tokens[Role.ADMIN]})
    await expect_error(resp, 429, "too_many_sign_ins")
    # ...while another address gets in at once.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as other,
        other.get(guarded.make_url("/api/videos/"), headers=right) as resp,
    ):
        assert resp.status == 200


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    aiohttp_client: AiohttpClient, people_settings: Settings
) -> None:
    wrong = bearer("not-a-token-at-all-but-long-enough")

    def via(address: str) -> dict[str, str]:
        return {**wrong, "X-Forwarded-For": address}

    # Not trusted: X-Forwarded-For is ignored, every guess counts for the peer (127.0.0.1).
    plain = await _with_throttle(aiohttp_client, people_settings, 3, 3)
    for n in range(3):
        await expect_error(await plain.get("/api/videos/", headers=via(f"198.51.100.{n}")), 401)
    await expect_error(await plain.get("/api/videos/", headers=via("198.51.100.99")), 429)

    # Trusted (127.0.0.1 and 10.0.0.0/8): each forwarded client is counted on its own, the
    # client being the last address of the chain that is no trusted proxy.
    trusted = replace(people_settings, trusted_proxies=("127.0.0.1/32", "10.0.0.0/8"))
    behind = await _with_throttle(aiohttp_client, trusted, 3, 3)
    for _ in range(3):
        resp = await behind.get("/api/videos/", headers=via("203.0.113.9, 10.1.2.3"))
        await expect_error(resp, 401)
    await expect_error(await behind.get("/api/videos/", headers=via("203.0.113.9")), 429)
    await expect_error(await behind.get("/api/videos/", headers=via("203.0.113.10")), 401)
    # A forged first hop does not help: the proxy appended the real one last.
    resp = await behind.get("/api/videos/", headers=via("203.0.113.10, 203.0.113.9"))
    await expect_error(resp, 429)


async def test_forwarded_proto_is_believed_only_from_trusted_proxies(
    aiohttp_client: AiohttpClient, people_settings: Settings, tokens: dict[Role, str]
) -> None:
    body = {"token": tokens[Role.UPLOADER]}
    https = {"X-Forwarded-Proto": "https"}
    plain = await aiohttp_client(create_app(people_settings))
    resp = await plain.post("/api/session/", json=body, headers=https)
    assert resp.status == 200
    assert not session_cookie(resp)["secure"]
    trusted = replace(people_settings, trusted_proxies=("127.0.0.1/32",))
    behind = await aiohttp_client(create_app(trusted))
    resp = await behind.post("/api/session/", json=body, headers=https)
    assert resp.status == 200
    assert session_cookie(resp)["secure"] is True
    resp = await behind.post("/api/session/", json=body)
    assert not session_cookie(resp)["secure"]


def test_a_users_file_lets_serve_listen_beyond_loopback(people_settings: Settings) -> None:
    """Named users protect the API as the token does: serve may listen on any address."""
    users_only = replace(people_settings, api_token=None)
    assert anonymous_refusal(users_only, "0.0.0.0", allow_anonymous=False) is None
    neither = replace(users_only, users_file=None)
    assert "refusing to serve an open API" in (
        anonymous_refusal(neither, "0.0.0.0", allow_anonymous=False) or ""
    )
