"""Analysis, automatic removal and reprocess through the service, on scenes with ground truth."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

import jobs.operations
from jobs.settings import Settings
from jobs.video.checked import analyze_and_write_checked, write_checked
from testkit.media import iter_frames
from testkit.scenes import Scene, SceneTruth, make_scene_video
from tests.api import Client, download, expect_error, follow_task, upload
from tests.oracle import Region, judge_scene_removal, region_of


@pytest.fixture(scope="session")
def scenes(media_dir: Path) -> SceneTruth:
    """The default script: endoscopy, blanks, text screens and an office, 640x360."""
    return make_scene_video(media_dir / "scenes.mp4")


SENSITIVE = {"text_screen", "non_endoscopic"}  # what automatic removal removes by default


async def submit(client: Client, path: str, body: Any) -> str:
    resp = await client.post(path, json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    return str(answer["task_id"])


async def test_analysis_finds_the_live_image_and_sensitive_frames(
    client: Client, worker: Worker, scenes: SceneTruth
) -> None:
    video = await upload(client, scenes.path)
    task_id = await submit(client, f"/api/video-analyze/{video['id']}/", {})
    seen = await follow_task(client, task_id)
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    assert any(s["status"].startswith("Analyzing frame") for s in seen)
    result = final["result"]
    assert result["total_frames"] == scenes.frames
    assert result["sample_every"] == 1
    labels = {s["label"] for s in result["segments"]}
    assert labels == {"blank", "text_screen", "non_endoscopic"}
    flagged = sum(1 for label in scenes.labels if label in ("text_screen", "non_endoscopic"))
    assert abs(result["sensitive_frame_count"] - flagged) <= 0.05 * scenes.frames
    assert result["sensitive_ratio"] == pytest.approx(
        result["sensitive_frame_count"] / scenes.frames, abs=1e-3
    )
    roi = result["suggested_roi"]
    assert roi["ellipse"] is True
    for key in ("x", "width"):
        assert abs(roi[key] - getattr(scenes.disc, key)) <= 0.02 * scenes.width
    for key in ("y", "height"):
        assert abs(roi[key] - getattr(scenes.disc, key)) <= 0.02 * scenes.height
    assert result["overlay_regions"], "the burned-in text strip was not found"


async def test_automatic_removal_cuts_what_the_analysis_flagged(
    client: Client, worker: Worker, settings: Settings, scenes: SceneTruth
) -> None:
    video = await upload(client, scenes.path)
    analysis_id = await submit(client, f"/api/video-analyze/{video['id']}/", {"sample_every": 2})
    analysis = (await follow_task(client, analysis_id))[-1]
    assert analysis["state"] == "SUCCESS", analysis
    assert analysis["result"]["sample_every"] == 2
    task_id = await submit(
        client, f"/api/video-remove-frames/{video['id']}/", {"detection_method": "automatic"}
    )
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["params"]["analysis_task_id"] == analysis_id
    flagged = analysis["result"]["sensitive_frame_ids"]
    assert final["result"]["removed_ranges"] == flagged
    assert final["result"]["frames"] == scenes.frames - final["result"]["removed_frames"]
    assert final["result"]["verification"]["passed"] is True
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_scene_removal(output, scenes, SENSITIVE)


async def test_reprocess_masks_and_removes_in_one_encode_pass(
    client: Client,
    worker: Worker,
    settings: Settings,
    scenes: SceneTruth,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodes: list[Path] = []
    real_in_child = jobs.operations._in_child

    def counting_in_child(run: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn in (write_checked, analyze_and_write_checked):  # encodes, in a frame process
            encodes.append(args[0])
        return real_in_child(run, fn, *args, **kwargs)

    monkeypatch.setattr(jobs.operations, "_in_child", counting_in_child)
    video = await upload(client, scenes.path)
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", {})
    seen = await follow_task(client, task_id, interval=0.02)
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    assert len(encodes) == 1
    assert encodes[0].name.startswith("original")  # encoded once, from the original

    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)
    stages = [m[1] for s in seen if (m := re.match(r"(\w+) frame", s["status"]))]
    assert "Analyzing" in stages
    assert stages == sorted(stages, key=["Analyzing", "Encoding", "Verifying"].index)

    result = final["result"]
    assert result["mask"]["source"] == "analysis"
    assert result["mask"]["shape"] == "ellipse"
    flagged = result["analysis"]["sensitive_frame_ids"]
    assert result["removed_ranges"] == flagged
    assert result["verification"]["passed"] is True
    output = settings.data_dir / result["output_file"]
    frames = list(iter_frames(output))
    assert len(frames) == result["frames"] == scenes.frames - result["removed_frames"]
    overlay = scenes.overlay
    for frame in frames:  # the text strip is gone everywhere
        strip = frame.y[
            overlay.y : overlay.y + overlay.height, overlay.x : overlay.x + overlay.width
        ]
        assert int(strip.max()) <= 24
    # The oracle: black outside the true live image (whatever ROI the analysis suggested),
    # and no frame the ground truth calls sensitive.
    downloaded = await download(client, final, settings.data_dir / "out.mp4")
    margin = round(0.03 * scenes.width)  # the suggested ROI may be 2 % off the true disc
    judge_scene_removal(downloaded, scenes, SENSITIVE, Region(scenes.disc, "ellipse"), margin)


@pytest.mark.parametrize("shape", [{"shape": "rect"}, {"shape": "octagon", "corner": 60}])
async def test_reprocess_with_a_given_mask_and_labels(
    client: Client, worker: Worker, settings: Settings, scenes: SceneTruth, shape: dict[str, Any]
) -> None:
    video = await upload(client, scenes.path)
    body = {
        "mask_type": "custom",
        "roi": {"x": 0, "y": 0, "width": 320, "height": 360},
        **shape,
        "remove_labels": ["blank", "text_screen", "non_endoscopic"],
    }
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", body)
    seen = await follow_task(client, task_id, interval=0.02)
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    # With the mask given, the analysis and the encode share one decoding pass.
    stages = {m[1] for s in seen if (m := re.match(r"(.+) frame", s["status"]))}
    assert stages == {"Analyzing and encoding"}, stages
    assert final["result"]["removed_frames"] == scenes.frames - final["result"]["frames"] > 0
    assert final["result"]["verification"]["passed"] is True
    assert final["result"]["mask"] == {
        "x": 0,
        "y": 0,
        "width": 320,
        "height": 360,
        **shape,
        "source": "request",
    }
    flagged = {s["label"] for s in final["result"]["analysis"]["segments"]}
    assert "blank" in flagged
    output = await download(client, final, settings.data_dir / "out.mp4")
    region = region_of(body, scenes.width, scenes.height)
    judge_scene_removal(output, scenes, {"blank", "text_screen", "non_endoscopic"}, region)


async def test_reprocess_that_would_remove_everything_fails_clearly(
    client: Client, worker: Worker, settings: Settings, media_dir: Path
) -> None:
    only_text = make_scene_video(
        media_dir / "only_text.mp4", script=(Scene("text_screen", 20), Scene("office", 15))
    )
    video = await upload(client, only_text.path)
    body = {"mask_type": "device", "device_name": "olympus_cv_1500"}
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", body)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == "removes_everything"
    assert "empty video" in final["error"]["message"]
    assert list((settings.data_dir / "outputs").iterdir()) == []


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("video-analyze", {"sample_every": 0}, "sample_every"),
        ("video-analyze", {"sample_every": "2"}, "sample_every"),
        ("video-analyze", {"every": 2}, "sample_every"),
        ("video-reprocess", {"remove_labels": ["faces"]}, "text_screen"),
        ("video-reprocess", {"mask_type": "device", "device_name": "x"}, "olympus_cv_1500"),
        ("video-reprocess", {"blacken_frames": "1"}, "remove_labels"),
    ],
)
async def test_bad_analysis_and_reprocess_requests_are_400(
    client: Client, scenes: SceneTruth, path: str, body: Any, words: str
) -> None:
    video = await upload(client, scenes.path)
    resp = await client.post(f"/api/{path}/{video['id']}/", json=body)
    assert words in await expect_error(resp, 400)
