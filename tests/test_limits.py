"""Limits: body sizes, selections, ROI sanity, and videos too large to process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from jobs.errors import ConfigError
from jobs.frame_request import MAX_SELECTION_ITEMS
from jobs.settings import Settings
from jobs.video import VideoTooLarge, probe
from server.app import create_app
from server.json_body import MAX_JSON_BODY
from testkit.media import make_video
from tests.api import Client, expect_error, upload


def stored_files(settings: Settings) -> list[Path]:
    return [p for d in ("videos", "tmp") for p in (settings.data_dir / d).rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320x180, 25 fps, 1 s (25 frames), no audio."""
    path = tmp_path_factory.mktemp("limits") / "small.mp4"
    return make_video(path, width=320, height=180, seconds=1.0, audio=False)


async def post_raw(client: Client, path: str, body: bytes | AsyncIterator[bytes]) -> Any:
    return await client.post(path, data=body, headers={"Content-Type": "application/json"})


async def test_json_body_over_the_limit_is_a_json_413(client: Client, small_clip: Path) -> None:
    video = await upload(client, small_clip)
    path = f"/api/video-remove-frames/{video['id']}/"
    big = json.dumps({"frame_ranges": "1," * (MAX_JSON_BODY // 2 + 10)}).encode()
    assert len(big) > MAX_JSON_BODY
    message = await expect_error(await post_raw(client, path, big), 413, "body_too_large")
    assert str(MAX_JSON_BODY) in message

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    await expect_error(await post_raw(client, path, chunked()), 413, "body_too_large")
    login = await client.post(
        "/api/session/", data=big, headers={"Content-Type": "application/json"}
    )
    await expect_error(login, 413, "body_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"frame_list": [' + b"9" * 5000 + b"]}",
        b'{"frame_list": [NaN]}',
        b'{"frame_list": [Infinity]}',
        b'{"frame_list": [1]} trailing',
        b"\xff\xfe{}",
    ],
    ids=["deep", "long-number", "nan", "infinity", "trailing", "not-utf8"],
)
async def test_json_that_python_chokes_on_is_a_400(
    client: Client, small_clip: Path, body: bytes
) -> None:
    video = await upload(client, small_clip)
    resp = await post_raw(client, f"/api/video-remove-frames/{video['id']}/", body)
    await expect_error(resp, 400, "invalid_json")


async def test_selections_have_a_size_limit(client: Client, small_clip: Path) -> None:
    video = await upload(client, small_clip)
    path = f"/api/video-remove-frames/{video['id']}/"
    too_many = [0] * (MAX_SELECTION_ITEMS + 1)
    message = await expect_error(
        await client.post(path, json={"frame_list": too_many}), 400, "invalid_frames"
    )
    assert str(MAX_SELECTION_ITEMS) in message
    ranges = ",".join(["0"] * (MAX_SELECTION_ITEMS + 1))
    message = await expect_error(
        await client.post(path, json={"frame_ranges": ranges}), 400, "invalid_frames"
    )
    assert str(MAX_SELECTION_ITEMS) in message
    mask = {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 9, "height": 9}}
    resp = await client.post(
        f"/api/video-apply-mask/{video['id']}/", json={**mask, "blacken_frames": ranges}
    )
    await expect_error(resp, 400, "invalid_frames")
    huge = await client.post(path, json={"frame_list": [10**30]})
    assert "25 frames" in await expect_error(huge, 400, "frame_out_of_range")


@pytest.mark.parametrize(
    "roi",
    [
        {"x": 0, "y": 0, "width": 10**30, "height": 10},
        {"x": -(10**30), "y": 0, "width": 10, "height": 10},
        {"x": 0, "y": 0, "width": -5, "height": 10},
        {"x": 0, "y": 0, "width": 0, "height": 0},
        {"x": 320, "y": 0, "width": 1, "height": 1},
        {"x": 0, "y": 179, "width": 10, "height": 2},
        {"x": True, "y": 0, "width": 10, "height": 10},
        {"x": "0", "y": 0, "width": 10, "height": 10},
        {"x": 0.5, "y": 0, "width": 10, "height": 10},
        {"x": None, "y": 0, "width": 10, "height": 10},
        {"x": [0], "y": 0, "width": 10, "height": 10},
        {"x": {"v": 0}, "y": 0, "width": 10, "height": 10},
    ],
)
async def test_insane_rois_are_400(client: Client, small_clip: Path, roi: dict[str, Any]) -> None:
    video = await upload(client, small_clip)
    for path in (f"/api/video-apply-mask/{video['id']}/", f"/api/video-reprocess/{video['id']}/"):
        resp = await client.post(path, json={"mask_type": "custom", "roi": roi})
        message = await expect_error(resp, 400, "invalid_roi")
        assert "roi" in message


async def test_frame_number_must_be_ascii_digits(client: Client, small_clip: Path) -> None:
    video = await upload(client, small_clip)
    for n in ("\u00b2", "\u0661", "-1", "1e3", "25", " 1", "99999999999999999999"):
        resp = await client.get(f"/api/videos/{video['id']}/frame", params={"n": n})
        assert "25 frames" in await expect_error(resp, 400, "frame_out_of_range")


async def test_too_wide_a_video_is_refused_at_probe_time(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    wide = make_video(tmp_path / "wide.mp4", width=8200, height=64, seconds=0.08, audio=False)
    form = aiohttp.FormData()
    form.add_field("file", wide.read_bytes(), filename="wide.mp4", content_type="video/mp4")
    resp = await client.post("/api/videos/", data=form)
    message = await expect_error(resp, 415, "video_too_large")
    assert "8200x64" in message
    assert "8192" in message
    assert "VIDCORRECT_MAX_VIDEO_SIDE" in message
    assert stored_files(settings) == []


async def test_video_limits_follow_the_settings(
    aiohttp_client: AiohttpClient, settings: Settings, small_clip: Path, tmp_path: Path
) -> None:
    narrow = replace(settings, max_video_side=300)
    client = await aiohttp_client(create_app(narrow))
    resp = await client.post(
        "/api/videos/", data=small_clip.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    assert "320x180" in await expect_error(resp, 415, "video_too_large")

    short = replace(settings, max_video_frames=24)
    client = await aiohttp_client(create_app(short))
    resp = await client.post(
        "/api/videos/", data=small_clip.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    message = await expect_error(resp, 415, "video_too_large")
    assert "more than 24 frames" in message
    assert "VIDCORRECT_MAX_VIDEO_FRAMES" in message
    assert stored_files(short) == []

    exact = replace(settings, max_video_frames=25, max_video_side=320)
    client = await aiohttp_client(create_app(exact))
    assert (await upload(client, small_clip))["frame_count"] == 25


def test_counting_frames_stops_at_the_limit(tmp_path: Path) -> None:
    # Matroska does not store a frame count: probe counts packets, and stops past the limit.
    mkv = make_video(
        tmp_path / "c.mkv", width=160, height=96, seconds=2.0, audio=False,
        container_format="matroska",
    )  # fmt: skip
    assert probe(mkv).frame_count == 50
    with pytest.raises(VideoTooLarge, match="more than 20 frames"):
        probe(mkv, max_frames=20)
    assert probe(mkv, max_frames=50, max_side=160).frame_count == 50


async def test_streamed_multipart_upload_over_the_limit_is_413_and_removed(
    aiohttp_client: AiohttpClient, settings: Settings, small_clip: Path
) -> None:
    small = replace(settings, max_upload_bytes=small_clip.stat().st_size // 3)
    client = await aiohttp_client(create_app(small))

    async def chunks() -> AsyncIterator[bytes]:
        data = small_clip.read_bytes()
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    with aiohttp.MultipartWriter("form-data") as writer:
        part = writer.append(aiohttp.AsyncIterablePayload(chunks()))
        part.set_content_disposition("form-data", name="file", filename="a.mp4")
    resp = await client.post("/api/videos/", data=writer)
    assert "VIDCORRECT_MAX_UPLOAD_BYTES" in await expect_error(resp, 413, "too_large")
    assert stored_files(small) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\nabc\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"no boundary in here at all"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Length: zz\r\n\r\nabc\r\n--x--"),
        ("multipart/form-data; boundary=x", b"--x\r\nBad\x00Header: 1\r\n\r\nabc\r\n--x--"),
        ("multipart/form-data; boundary=" + "b" * 80, b"--" + b"b" * 80 + b"\r\n"),
    ],
    ids=["no-boundary", "no-parts", "bad-length", "nul-header", "long-boundary"],
)
async def test_malformed_multipart_is_a_400(
    client: Client, settings: Settings, content_type: str, body: bytes
) -> None:
    resp = await client.post("/api/videos/", data=body, headers={"Content-Type": content_type})
    assert (await resp.json())["error"]["code"] in ("invalid_multipart", "missing_file")
    assert resp.status == 400
    assert stored_files(settings) == []


async def test_a_tiny_video_is_refused_at_probe_time(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    tiny = make_video(tmp_path / "tiny.mp4", width=8, height=8, seconds=0.2, audio=False,
                      pix_fmt="yuv444p")  # fmt: skip
    resp = await client.post(
        "/api/videos/", data=tiny.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    message = await expect_error(resp, 415, "not_a_video")
    assert "8x8" in message
    assert "at least 16 pixels" in message
    # Nothing is damaged: no word of where decoding stopped.
    assert "decoded" not in message
    assert "damage" not in message
    assert stored_files(settings) == []


def test_video_limits_come_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.max_video_side, defaults.max_video_frames) == (8192, 2_000_000)
    env = {"VIDCORRECT_MAX_VIDEO_SIDE": "4096", "VIDCORRECT_MAX_VIDEO_FRAMES": "900"}
    configured = Settings.from_env(env)
    assert (configured.max_video_side, configured.max_video_frames) == (4096, 900)
    with pytest.raises(ConfigError, match="VIDCORRECT_MAX_VIDEO_SIDE must be at least 16"):
        Settings.from_env({"VIDCORRECT_MAX_VIDEO_SIDE": "8"})
    with pytest.raises(ConfigError, match="VIDCORRECT_MAX_VIDEO_FRAMES must be a whole number"):
        Settings.from_env({"VIDCORRECT_MAX_VIDEO_FRAMES": "lots"})
