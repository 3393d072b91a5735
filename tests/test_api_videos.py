"""Uploading and reading videos through the real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from server.app import create_app
from testkit.media import (
    CodeRow,
    iter_frames,
    make_empty,
    make_not_a_video,
    make_numbered_video,
    truncate_copy,
)
from tests.api import Client, expect_error, upload


def stored_files(settings: Settings) -> list[Path]:
    """Every file under the data dir's videos/ and tmp/ folders."""
    return [p for d in ("videos", "tmp") for p in (settings.data_dir / d).rglob("*") if p.is_file()]


async def test_upload_multipart_probes_and_stores(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p, filename="Doe^Jane 1970-01-01.mp4")
    assert isinstance(video["id"], int)
    assert video["filename"] == "Doe^Jane 1970-01-01.mp4"
    assert video["size_bytes"] == clip_720p.stat().st_size
    assert (video["width"], video["height"]) == (1280, 720)
    assert video["fps"] == 25.0
    assert video["frame_count"] == 50
    assert abs(video["duration"] - 2.0) < 0.1
    assert video["codec"] == "h264"
    assert video["has_audio"] is True
    assert video["created_at"].endswith("Z")
    assert "stored_name" not in video

    resp = await client.get(f"/api/videos/{video['id']}/")
    assert resp.status == 200
    assert await resp.json() == {**video, "tasks": [], "outputs": [], "more_tasks_url": None}
    resp = await client.get("/api/videos/")
    assert [v["id"] for v in (await resp.json())["videos"]] == [video["id"]]


async def test_original_downloads_byte_for_byte(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p)
    resp = await client.get(f"/api/videos/{video['id']}/file")
    assert resp.status == 200
    assert await resp.read() == clip_720p.read_bytes()


async def test_upload_raw_body_with_filename(client: Client, clip_odd: Path) -> None:
    resp = await client.post(
        "/api/videos/",
        params={"filename": "../../etc/odd clip.mp4"},
        data=clip_odd.read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    video = await resp.json()
    assert resp.status == 201, video
    assert video["filename"] == "odd clip.mp4"  # display only: no path survives
    assert (video["width"], video["height"], video["has_audio"]) == (642, 362, False)
    assert abs(video["fps"] - 29.97) < 0.01


async def test_text_file_is_rejected_and_nothing_kept(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    fake = make_not_a_video(tmp_path / "report.mp4")
    form = aiohttp.FormData()
    form.add_field("file", fake.read_bytes(), filename="report.mp4", content_type="video/mp4")
    resp = await client.post("/api/videos/", data=form)
    message = await expect_error(resp, 415, "not_a_video")
    assert "not a usable video" in message
    assert stored_files(settings) == []
    assert (await (await client.get("/api/videos/")).json())["videos"] == []


async def test_truncated_video_is_rejected(
    client: Client, settings: Settings, clip_720p: Path, tmp_path: Path
) -> None:
    cut = truncate_copy(clip_720p, tmp_path / "cut.mp4", 0.3)
    resp = await client.post(
        "/api/videos/", data=cut.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    await expect_error(resp, 415, "not_a_video")
    assert stored_files(settings) == []


async def test_empty_upload_is_rejected(client: Client, settings: Settings, tmp_path: Path) -> None:
    empty = make_empty(tmp_path / "empty.mp4")
    resp = await client.post(
        "/api/videos/", data=empty.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    await expect_error(resp, 415, "empty_upload")
    assert stored_files(settings) == []


async def test_multipart_without_file_field(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("video", b"x" * 10, filename="a.mp4")
    resp = await client.post("/api/videos/", data=form)
    await expect_error(resp, 400, "missing_file")


async def test_wrong_content_type(client: Client) -> None:
    resp = await client.post("/api/videos/", json={"file": "a.mp4"})
    message = await expect_error(resp, 415)
    assert "multipart/form-data" in message


async def test_upload_over_limit_is_413_and_removed(
    aiohttp_client: AiohttpClient, settings: Settings, clip_720p: Path
) -> None:
    small = replace(settings, max_upload_bytes=clip_720p.stat().st_size // 2)
    client = await aiohttp_client(create_app(small))

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit must hold while streaming
        data = clip_720p.read_bytes()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    resp = await client.post("/api/videos/", data=chunks(), headers={"Content-Type": "video/mp4"})
    message = await expect_error(resp, 413, "too_large")
    assert "VIDCORRECT_MAX_UPLOAD_BYTES" in message
    assert stored_files(small) == []

    form = aiohttp.FormData()  # with a Content-Length: refused before reading
    form.add_field("file", clip_720p.read_bytes(), filename="a.mp4")
    await expect_error(await client.post("/api/videos/", data=form), 413, "too_large")


async def test_unknown_video_and_route_are_json_404(client: Client) -> None:
    await expect_error(await client.get("/api/videos/999/"), 404, "video_not_found")
    await expect_error(await client.get("/api/videos/999/file"), 404, "video_not_found")
    await expect_error(await client.get("/api/nothing-here/"), 404, "not_found")
    await expect_error(await client.delete("/api/videos/"), 405, "method_not_allowed")


async def test_index_page_is_served(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert "vidcorrect" in await resp.text()


async def test_still_frame_is_the_requested_frame_as_jpeg(client: Client, tmp_path: Path) -> None:
    clip = make_numbered_video(tmp_path / "numbered.mp4", width=640, height=360, frames=40)
    video = await upload(client, clip)
    for n in (0, 23, 39):
        resp = await client.get(f"/api/videos/{video['id']}/frame", params={"n": str(n)})
        assert resp.status == 200
        assert resp.content_type == "image/jpeg"
        picture = tmp_path / f"frame{n}.jpg"
        picture.write_bytes(await resp.read())
        frame = next(iter_frames(picture))
        assert frame.y.shape == (360, 640)
        assert CodeRow.for_size(640, 360).read(frame.y) == n
    resp = await client.get(f"/api/videos/{video['id']}/frame", params={"n": "40"})
    assert "40 frames" in await expect_error(resp, 400, "frame_out_of_range")
