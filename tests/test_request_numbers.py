"""Numbers and text a client makes up (issue 14, point 6): never a 500, never another video.

Ids in routes and frame numbers in bodies are ASCII digits of bounded length (``\\d`` also takes
other scripts' digits, which int() reads, and int() of thousands of digits raises); a token
that is not ASCII is simply not the token.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from server.access import SESSION_COOKIE
from server.app import create_app
from tests.api import Client, expect_error, upload
from tests.served import Served

TOKEN = "numbers-token-0123456789abcdef"
HUGE = "9" * 5000
ARABIC_ONE = "\u0661"  # ARABIC-INDIC DIGIT ONE: \d matches it and int() reads it as 1
VIDEO_PATHS = ("/api/videos/{}/", "/api/videos/{}/file", "/api/videos/{}/frame")
SUBMIT_PATHS = (
    "/api/video-apply-mask/{}/",
    "/api/video-remove-frames/{}/",
    "/api/video-analyze/{}/",
    "/api/video-reprocess/{}/",
)


async def test_a_huge_video_id_is_404(client: Client) -> None:
    for path in VIDEO_PATHS:
        await expect_error(await client.get(path.format(HUGE)), 404, "not_found")
    for path in SUBMIT_PATHS:
        await expect_error(await client.post(path.format(HUGE), json={}), 404, "not_found")


async def test_a_huge_video_id_is_401_before_authentication(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    guarded = await aiohttp_client(create_app(replace(settings, api_token=TOKEN)))
    for path in VIDEO_PATHS:
        await expect_error(await guarded.get(path.format(HUGE)), 401, "unauthorized")


async def test_other_scripts_digits_name_no_video(client: Client, clip_odd: Path) -> None:
    video = await upload(client, clip_odd)
    assert video["id"] == 1
    for path in VIDEO_PATHS:
        await expect_error(await client.get(path.format(ARABIC_ONE)), 404, "not_found")
    for path in SUBMIT_PATHS:
        resp = await client.post(path.format(ARABIC_ONE), json={})
        await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize("ranges", [HUGE, f"0-{HUGE}", f"{ARABIC_ONE}-2", f"1-{'1' * 19}"])
async def test_frame_numbers_are_bounded_ascii_digits(
    client: Client, clip_odd: Path, ranges: str
) -> None:
    video = await upload(client, clip_odd)
    path = f"/api/video-remove-frames/{video['id']}/"
    resp = await client.post(path, json={"frame_ranges": ranges})
    await expect_error(resp, 400, "invalid_frames")
    mask = {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 64, "height": 48}}
    resp = await client.post(
        f"/api/video-apply-mask/{video['id']}/", json={**mask, "blacken_frames": ranges}
    )
    await expect_error(resp, 400, "invalid_frames")
    assert (await (await client.get("/api/tasks/")).json())["tasks"] == []


async def test_a_token_that_is_not_ascii_is_just_wrong(
    aiohttp_client: AiohttpClient, settings: Settings, client: Client
) -> None:
    guarded = await aiohttp_client(create_app(replace(settings, api_token=TOKEN)))
    json_type = {"Content-Type": "application/json"}
    for raw in ('{"token": "\\ud800"}', '{"token": "\\udcff\\u00e9"}', '{"token": "\u00e9"}'):
        resp = await guarded.post("/api/session/", data=raw, headers=json_type)
        await expect_error(resp, 401, "bad_token")
    # Without a token, signing in needs nothing, whatever is sent.
    resp = await client.post("/api/session/", data='{"token": "\\ud800"}', headers=json_type)
    assert resp.status == 200


async def _raw_get(port: int, header: bytes) -> bytes:
    """A request with a header value that is not UTF-8 (aiohttp's client refuses to send one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /api/videos/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s\r\n\r\n"
        % (port, header)
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_credentials_that_are_not_utf8_are_401(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    guarded = await aiohttp_client(create_app(replace(settings, api_token=TOKEN)))
    assert guarded.port is not None
    for header in (
        b"Authorization: Bearer \xff\xfe" + TOKEN.encode(),
        b"Cookie: " + SESSION_COOKIE.encode() + b"=\xff.1.x",
    ):
        answer = await _raw_get(guarded.port, header)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"unauthorized"' in answer


async def test_a_served_process_answers_a_huge_id_without_a_traceback(tmp_path: Path) -> None:
    served = Served(tmp_path / "data")
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session)
            async with session.get(f"{served.base}/api/videos/{HUGE}/") as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == "not_found"
    finally:
        assert served.stop() == 0
    log = served.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert '"status": 404' in log
