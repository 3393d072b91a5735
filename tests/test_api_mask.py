"""Masking through the whole service: HTTP request, arq worker, progress, output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from arq.worker import Worker

from jobs.settings import Settings
from jobs.video import Roi
from testkit.media import make_video, sha256, summarize
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.checks import assert_masked
from tests.oracle import judge_mask


@pytest.mark.parametrize(("shape", "corner"), [("rect", 0), ("ellipse", 0), ("octagon", 150)])
async def test_custom_mask_end_to_end(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path, shape: str, corner: int
) -> None:
    video = await upload(client, clip_720p)
    roi = {"x": 300, "y": 40, "width": 700, "height": 640}
    body: dict[str, object] = {"mask_type": "custom", "roi": roi, "shape": shape, "audio": "keep"}
    if corner:
        body["corner"] = corner
    task_id = await submit_mask(client, video["id"], body)
    seen = await follow_task(client, task_id)
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    assert final["progress"] == 100
    assert final["error"] is None
    assert final["video_id"] == video["id"]
    assert final["operation"] == "mask"
    assert final["started_at"]
    assert final["finished_at"]
    result = final["result"]
    assert result["frames"] == 50
    assert result["output_url"] == f"/api/tasks/{task_id}/output"
    assert result["output_file"] == f"outputs/{task_id}.mp4"
    assert result["processing_time"] > 0

    resp = await client.get(result["output_url"])
    assert resp.status == 200
    output = settings.data_dir / "downloaded.mp4"
    output.write_bytes(await resp.read())
    assert output.read_bytes() == (settings.data_dir / result["output_file"]).read_bytes()
    assert_masked(clip_720p, output, Roi(**roi), shape, corner)  # type: ignore[arg-type]
    judge_mask(output, clip_720p, body, numbered=True)
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_device_mask_is_scaled_to_the_video(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    original_sha = sha256(clip_720p)
    video = await upload(client, clip_720p)
    stored = next((settings.data_dir / "videos").rglob("original.*"))
    body = {"mask_type": "device", "device_name": "olympus_cv_1500"}
    task_id = await submit_mask(client, video["id"], body)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    judge_mask(
        await download(client, final, settings.data_dir / "out.mp4"), clip_720p, body, numbered=True
    )
    # 550..1900 x 0..1080 on 1920x1080, times 2/3, rounded inwards: 366.7 -> 367, 1266.7 -> 1266.
    expected = {"x": 367, "y": 0, "width": 899, "height": 720}
    assert final["params"]["roi"] == expected
    assert_masked(
        clip_720p, settings.data_dir / final["result"]["output_file"], Roi(**expected), "rect"
    )
    assert sha256(stored) == original_sha


async def test_progress_climbs_monotonically_to_100(
    client: Client, worker: Worker, media_dir: Path
) -> None:
    long_clip = make_video(media_dir / "clip_8s.mp4", width=1280, height=720, seconds=8.0)
    video = await upload(client, long_clip)
    body = {"mask_type": "device", "device_name": "olympus_cv_1500", "shape": "ellipse"}
    task_id = await submit_mask(client, video["id"], body)
    seen = await follow_task(client, task_id, interval=0.02)
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)
    assert progress[-1] == 100
    running = [s for s in seen if s["state"] == "PROGRESS"]
    assert running, "no PROGRESS state was ever published"
    stage = re.compile(r"(Encoding|Verifying) frame (\d+)/(\d+)( \(\d+ fps\))?")
    # Last, before publishing, the output and the original are hashed (provenance).
    hashing = [s["status"] for s in running if s["status"].startswith("Checking the ")]
    assert set(hashing) <= {"Checking the output", "Checking the original"}, hashing
    assert all(s["status"] in hashing for s in running[len(running) - len(hashing) :])
    for status in running[: len(running) - len(hashing)]:
        match = stage.fullmatch(status["status"])
        assert match, status["status"]
        done, total = int(match[2]), int(match[3])
        assert total == 200
        if match[1] == "Encoding":
            assert abs(status["progress"] - done * 100 / total) <= 5
        else:  # the output's own check, after every frame was encoded
            assert 95 <= status["progress"] <= 99
    states = [s["state"] for s in seen]
    order = ["PENDING", "STARTED", "PROGRESS", "SUCCESS"]
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)
    judge_mask(await download(client, seen[-1], media_dir / f"{task_id}.mp4"), long_clip, body)


async def test_odd_size_ntsc_rate_keeps_size_rate_and_count(
    client: Client, worker: Worker, settings: Settings, clip_odd: Path
) -> None:
    video = await upload(client, clip_odd)
    roi = {"x": 101, "y": 33, "width": 401, "height": 299}
    body = {"mask_type": "custom", "roi": roi, "shape": "ellipse"}
    task_id = await submit_mask(client, video["id"], body)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_odd, body, numbered=True)
    summary = summarize(output)
    assert (summary.width, summary.height) == (642, 362)
    assert summary.audio_codec is None
    assert_masked(clip_odd, output, Roi(**roi), "ellipse")


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"mask_type": "device", "device_name": "acme_9000"}, "unknown_device", "olympus_cv_1500"),
        ({"mask_type": "device"}, "unknown_device", "olympus_cv_1500"),
        (
            {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 1281, "height": 720}},
            "invalid_roi",
            "1280x720",
        ),
        (
            {"mask_type": "custom", "roi": {"x": -1, "y": 0, "width": 10, "height": 10}},
            "invalid_roi",
            ">= 0",
        ),
        (
            {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 0, "height": 10}},
            "invalid_roi",
            "> 0",
        ),
        (
            {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 10.5, "height": 10}},
            "invalid_roi",
            "whole number",
        ),
        ({"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 10}}, "invalid_roi", "height"),
        ({"mask_type": "custom"}, "invalid_request", "roi"),
        (
            {
                "mask_type": "custom",
                "roi": {"x": 0, "y": 0, "width": 9, "height": 9},
                "shape": "star",
            },
            "invalid_request",
            "rect, ellipse, octagon",
        ),
        (
            {
                "mask_type": "custom",
                "roi": {"x": 0, "y": 0, "width": 100, "height": 80},
                "shape": "octagon",
            },
            "invalid_roi",
            '"corner"',
        ),
        (
            {
                "mask_type": "custom",
                "roi": {"x": 0, "y": 0, "width": 100, "height": 80},
                "shape": "octagon",
                "corner": 41,
            },
            "invalid_roi",
            "1 to 40 pixels",
        ),
        (
            {
                "mask_type": "custom",
                "roi": {"x": 0, "y": 0, "width": 100, "height": 80},
                "shape": "ellipse",
                "corner": 10,
            },
            "invalid_roi",
            'shape "octagon" only',
        ),
        (
            {
                "mask_type": "device",
                "device_name": "olympus_cv_1500",
                "shape": "octagon",
                "corner": "big",
            },
            "invalid_roi",
            "whole number of pixels",
        ),
        ({"mask_type": "paint"}, "invalid_request", "custom"),
        ({}, "invalid_request", "mask_type"),
        (
            {"mask_type": "device", "device_name": "olympus_cv_1500", "colour": "red"},
            "invalid_request",
            "colour",
        ),
        ([1, 2], "invalid_request", "JSON object"),
    ],
)
async def test_bad_mask_requests_are_400(
    client: Client, clip_720p: Path, body: object, code: str, words: str
) -> None:
    video = await upload(client, clip_720p)
    resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=body)
    message = await expect_error(resp, 400, code)
    assert words in message


async def test_device_file_keys_are_accepted(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p)
    body = {
        "mask_type": "custom",
        "endoscope_image_x": 10,
        "endoscope_image_y": 20,
        "endoscope_image_width": 30,
        "endoscope_image_height": 40,
    }
    task_id = await submit_mask(client, video["id"], body)
    status = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert status["params"]["roi"] == {"x": 10, "y": 20, "width": 30, "height": 40}


async def test_body_that_is_not_json(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p)
    resp = await client.post(
        f"/api/video-apply-mask/{video['id']}/",
        data=b"{mask",
        headers={"Content-Type": "application/json"},
    )
    await expect_error(resp, 400, "invalid_json")


async def test_mask_of_unknown_video_is_404(client: Client) -> None:
    resp = await client.post(
        "/api/video-apply-mask/12345/",
        json={"mask_type": "device", "device_name": "olympus_cv_1500"},
    )
    await expect_error(resp, 404, "video_not_found")


async def test_unknown_task_is_404(client: Client) -> None:
    await expect_error(await client.get("/api/task-status/no-such-task/"), 404, "task_not_found")
    await expect_error(await client.get("/api/tasks/no-such-task/output"), 404, "task_not_found")


async def test_queued_task_is_pending_and_has_no_output_yet(
    client: Client, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)  # no worker in this test: the task stays queued
    task_id = await submit_mask(
        client, video["id"], {"mask_type": "device", "device_name": "olympus_cv_1500"}
    )
    status = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert status["state"] == "PENDING"
    assert status["progress"] == 0
    assert status["result"] is None
    assert status["eta_seconds"] is None
    message = await expect_error(
        await client.get(f"/api/tasks/{task_id}/output"), 409, "output_not_ready"
    )
    assert "PENDING" in message


async def test_job_on_a_vanished_original_fails_cleanly(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    stored = next((settings.data_dir / "videos").rglob("original.*"))
    stored.write_bytes(b"damaged on disk")
    task_id = await submit_mask(
        client, video["id"], {"mask_type": "device", "device_name": "olympus_cv_1500"}
    )
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == "invalid_video"
    assert final["result"] is None
    assert list((settings.data_dir / "tmp").iterdir()) == []
    assert list((settings.data_dir / "outputs").iterdir()) == []


async def test_devices_are_listed(client: Client) -> None:
    body = await (await client.get("/api/devices/")).json()
    assert body["devices"] == [
        {
            "name": "olympus_cv_1500",
            "frame_width": 1920,
            "frame_height": 1080,
            "roi": {"x": 550, "y": 0, "width": 1350, "height": 1080},
            **{key: body["devices"][0][key] for key in ("description", "text_fields", "builtin")},
        }
    ]
