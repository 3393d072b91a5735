"""Host names and other sites' pages (issue 14, point 1): DNS rebinding and cross-site writes.

A page of ``evil.example`` that re-resolves its name to 127.0.0.1 reaches the API with
``Host: evil.example``: 421. Another site's page (or another port of this host) writing to the
API sends its ``Origin`` or ``Sec-Fetch-Site``: 403. JSON routes read only JSON bodies: 415.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from jobs.errors import ConfigError
from jobs.settings import Settings
from server.app import create_app
from tests.api import Client, expect_error, upload
from tests.served import Served

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}
REMOTE_PAGE = "https://evil.example"


def host_of(client: Client) -> str:
    return f"127.0.0.1:{client.port}"


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil"]
)
async def test_a_foreign_host_is_421(client: Client, host: str) -> None:
    headers = {"Host": host.format(port=client.port)}
    for path in ("/api/videos/", "/api/session/", "/", "/api/openapi.json"):
        message = await expect_error(await client.get(path, headers=headers), 421, "unknown_host")
        assert "VIDCORRECT_ALLOWED_HOSTS" in message
    form = aiohttp.FormData()
    form.add_field("file", b"x" * 100, filename="a.mp4", content_type="video/mp4")
    resp = await client.post("/api/videos/", data=form, headers=headers)
    await expect_error(resp, 421, "unknown_host")


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.", "[::1]:{port}", "127.0.0.2"]
)
async def test_loopback_hosts_are_answered(client: Client, host: str) -> None:
    resp = await client.get("/api/videos/", headers={"Host": host.format(port=client.port)})
    assert resp.status == 200, await resp.text()


async def test_probes_and_metrics_answer_any_host(client: Client) -> None:
    """Monitoring scrapes them by address; they hold no patient data."""
    for path in ("/healthz", "/metrics"):
        resp = await client.get(path, headers={"Host": "10.1.2.3:8080"})
        assert resp.status == 200, path


async def test_a_request_without_host_is_421(client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /api/videos/ HTTP/1.0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.0 421") or answer.startswith(b"HTTP/1.1 421"), answer
    assert b'"unknown_host"' in answer


async def test_configured_hosts_are_answered(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    configured = replace(settings, allowed_hosts=("vid.example", "proxy.example:8443"))
    client = await aiohttp_client(create_app(configured))
    for host in ("vid.example", "VID.example:9000", "proxy.example:8443", "localhost"):
        resp = await client.get("/api/videos/", headers={"Host": host})
        assert resp.status == 200, host
    for host in ("proxy.example", "proxy.example:80", "x.vid.example", "vid.example.evil"):
        resp = await client.get("/api/videos/", headers={"Host": host})
        await expect_error(resp, 421, "unknown_host")


def test_allowed_hosts_are_read_from_the_environment_and_checked() -> None:
    settings = Settings.from_env(
        {"VIDCORRECT_ALLOWED_HOSTS": " Vid.Example , [2001:DB8::1]:8443,10.0.0.5:80,vid.example"}
    )
    assert settings.allowed_hosts == ("vid.example", "[2001:db8::1]:8443", "10.0.0.5:80")
    assert Settings.from_env({}).allowed_hosts == ()
    for bad in ("http://vid.example", "vid.example:0", "vid.example:99999", "a b", "::1", "*"):
        with pytest.raises(ConfigError, match="VIDCORRECT_ALLOWED_HOSTS"):
            Settings.from_env({"VIDCORRECT_ALLOWED_HOSTS": bad})


def test_serve_answers_to_the_concrete_address_it_listens_on() -> None:
    assert Settings().with_listen_host("192.0.2.7").allowed_hosts == ("192.0.2.7",)
    assert Settings().with_listen_host("vid.example").allowed_hosts == ("vid.example",)
    assert Settings().with_listen_host("::1").allowed_hosts == ("[::1]",)
    for wildcard in ("0.0.0.0", "::", "[::]"):
        assert Settings().with_listen_host(wildcard).allowed_hosts == ()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": REMOTE_PAGE},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port of this host: same-site
        {"Origin": "http://localhost:{port}"},  # another name than the Host's: another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_other_sites_cannot_write(
    client: Client, clip_odd: Path, headers: dict[str, str]
) -> None:
    video = await upload(client, clip_odd)
    sent = {k: v.format(port=client.port) for k, v in headers.items()}

    # What a form or a no-cors fetch of another page can send without a preflight:
    plain = {**sent, "Content-Type": "text/plain"}
    path = f"/api/video-apply-mask/{video['id']}/"
    resp = await client.post(path, data='{"mask_type": "custom"}', headers=plain)
    message = await expect_error(resp, 403, "cross_site_request")
    assert "another site" in message
    form = aiohttp.FormData()
    form.add_field("file", clip_odd.read_bytes(), filename="a.mp4", content_type="video/mp4")
    await expect_error(await client.post("/api/videos/", data=form, headers=sent), 403)
    empty_form = {**sent, "Content-Type": "application/x-www-form-urlencoded"}
    resp = await client.post(f"/api/video-reprocess/{video['id']}/", headers=empty_form)
    await expect_error(resp, 403, "cross_site_request")
    resp = await client.post("/api/session/", json={"token": "x"}, headers=sent)
    await expect_error(resp, 403, "cross_site_request")
    await expect_error(await client.delete("/api/session/", headers=sent), 403)
    # Nothing of it was done.
    listed = await (await client.get("/api/videos/")).json()
    assert [v["id"] for v in listed["videos"]] == [video["id"]]
    assert (await (await client.get("/api/tasks/")).json())["tasks"] == []


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_other_sites_cannot_read_the_api(client: Client, site: str) -> None:
    headers = {"Sec-Fetch-Site": site}
    for path in ("/api/videos/", "/api/tasks/", "/api/openapi.json"):
        await expect_error(await client.get(path, headers=headers), 403, "cross_site_request")
    # The page itself may be linked to from anywhere.
    assert (await client.get("/", headers=headers)).status == 200


async def test_the_page_its_own_origin_and_plain_clients_pass(
    client: Client, clip_odd: Path
) -> None:
    video = await upload(client, clip_odd)
    own = f"http://{host_of(client)}"
    path = f"/api/video-analyze/{video['id']}/"
    for headers in (
        {"Origin": own, "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"https://{host_of(client)}"},  # a TLS proxy in front
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {},  # curl, the CLI client
    ):
        resp = await client.post(path, json={"sample_every": 50}, headers=headers)
        assert resp.status in (200, 202), (headers, await resp.text())
        resp = await client.get("/api/videos/", headers=headers)
        assert resp.status == 200, headers


async def test_json_routes_read_only_json(client: Client, clip_odd: Path) -> None:
    video = await upload(client, clip_odd)
    path = f"/api/video-analyze/{video['id']}/"
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        resp = await client.post(path, data="{}", headers={"Content-Type": content_type})
        message = await expect_error(resp, 415, "json_required")
        assert "application/json" in message
    resp = await client.post(path, data=b"{}", skip_auto_headers=["Content-Type"])
    await expect_error(resp, 415, "json_required")
    resp = await client.post("/api/session/", data='{"token": "x"}')
    await expect_error(resp, 415, "json_required")
    # curl -X POST: no body, no Content-Type, means {}.
    resp = await client.post(path, skip_auto_headers=["Content-Type"])
    assert resp.status == 202, await resp.text()
    typed = {"Content-Type": "application/json; charset=utf-8"}
    resp = await client.post(path, data='{"sample_every": 7}', headers=typed)
    assert resp.status == 202, await resp.text()


async def test_a_served_process_refuses_foreign_hosts(tmp_path: Path) -> None:
    """``curl -H 'Host: evil.example:PORT' 127.0.0.1:PORT/api/videos/``, on ``vidcorrect serve``;
    ``VIDCORRECT_ALLOWED_HOSTS`` adds names."""
    served = Served(tmp_path / "data", {"VIDCORRECT_ALLOWED_HOSTS": "vid.example"})
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session)
            url = f"{served.base}/api/videos/"
            async with session.get(url, headers={"Host": f"evil.example:{served.port}"}) as resp:
                assert resp.status == 421
                assert (await resp.json())["error"]["code"] == "unknown_host"
            for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}", "vid.example"):
                async with session.get(url, headers={"Host": host}) as resp:
                    assert resp.status == 200, host
    finally:
        assert served.stop() == 0
