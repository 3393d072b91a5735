"""Boxes blackened inside the kept area (``blacken_regions``): in mask requests, and in
reprocess for the text the analysis finds printed over the image; each judged by the oracle
(ffmpeg) and checked by the output's own check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

from jobs.settings import Settings
from jobs.video import EditPlan, Roi, edit_video, verify_output
from testkit.media import make_video
from testkit.realistic import (
    RealisticScene,
    RealisticTruth,
    Stretch,
    centred_layout,
    inside_text_box,
    make_realistic_video,
)
from tests.api import Client, download, expect_error, follow_task, upload
from tests.oracle import Region, judge, judge_mask, removal_truth

ROI = {"x": 40, "y": 20, "width": 240, "height": 140}
REGIONS = [
    {"x": 60, "y": 30, "width": 50, "height": 30},
    {"x": 200, "y": 120, "width": 60, "height": 30},
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320x180, 1 s, bright and colourful everywhere (testkit.media)."""
    return make_video(
        tmp_path_factory.mktemp("regions") / "clip.mp4",
        width=320,
        height=180,
        seconds=1.0,
        audio=False,
    )


@pytest.fixture(scope="module")
def printed_over(tmp_path_factory: pytest.TempPathFactory) -> RealisticTruth:
    """A rectangular image with a line of text printed over it, moving fast, 640x360."""
    scene = RealisticScene(
        "printed_over",
        centred_layout(640, "rect", inside_text=True),
        (Stretch("live", 40, "fast"),),
        seed=12,
    )
    return make_realistic_video(scene, tmp_path_factory.mktemp("regions") / "printed.mp4")


def test_the_check_sees_a_region_left_unblackened(tmp_path: Path, clip: Path) -> None:
    roi = Roi(**ROI)
    boxes = tuple(Roi(**box) for box in REGIONS)
    blackened, plain = tmp_path / "blackened.mp4", tmp_path / "plain.mp4"
    edit_video(clip, blackened, EditPlan(roi=roi, blacken_regions=boxes))
    edit_video(clip, plain, EditPlan(roi=roi))
    good = verify_output(blackened, expected_frames=25, roi=roi, blacken_regions=boxes)
    assert good.passed, good.problems
    bad = verify_output(plain, expected_frames=25, roi=roi, blacken_regions=boxes)
    assert not bad.passed
    assert "Outside the region" in bad.problems[0]


async def test_mask_with_blacken_regions(
    client: Client, worker: Worker, settings: Settings, clip: Path
) -> None:
    video = await upload(client, clip)
    body = {"mask_type": "custom", "roi": ROI, "blacken_regions": REGIONS}
    resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=body)
    assert resp.status == 202, await resp.json()
    final = (await follow_task(client, (await resp.json())["task_id"]))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["params"]["blacken_regions"] == REGIONS
    assert final["result"]["verification"]["passed"] is True
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip, body)


@pytest.mark.parametrize(
    ("regions", "words"),
    [
        ("10,10,5,5", "list"),
        ([{"x": 0, "y": 0, "width": 10}], "exactly x, y, width and height"),
        ([{"x": 0, "y": 0, "width": 10, "height": True}], "whole numbers"),
        ([{"x": 300, "y": 0, "width": 40, "height": 10}], "outside"),
        ([{"x": 0, "y": 0, "width": 0, "height": 10}], "width and height > 0"),
        ([{"x": 0, "y": 0, "width": 1, "height": 1}] * 33, "at most 32"),
    ],
)
async def test_bad_blacken_regions_are_400(
    client: Client, clip: Path, regions: Any, words: str
) -> None:
    video = await upload(client, clip)
    for path in ("video-apply-mask", "video-reprocess"):
        body = {"mask_type": "custom", "roi": ROI, "blacken_regions": regions}
        resp = await client.post(f"/api/{path}/{video['id']}/", json=body)
        assert words in await expect_error(resp, 400, "invalid_blacken_regions")


async def test_reprocess_blackens_text_printed_over_the_image(
    client: Client, worker: Worker, settings: Settings, printed_over: RealisticTruth
) -> None:
    video = await upload(client, printed_over.path)
    resp = await client.post(f"/api/video-reprocess/{video['id']}/", json={})
    final = (await follow_task(client, (await resp.json())["task_id"], timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    mask = final["result"]["mask"]
    assert mask["source"] == "analysis"
    inside = [r for r in final["result"]["analysis"]["overlay_regions"] if r["inside_roi"]]
    assert len(inside) == 1
    found = {k: inside[0][k] for k in ("x", "y", "width", "height")}
    assert mask["blacken_regions"] == [found]
    text = inside_text_box(printed_over.scene)  # the printed glyphs lie in the blackened box
    assert text is not None
    assert found["x"] <= text.x
    assert found["y"] <= text.y
    assert found["x"] + found["width"] >= text.x + text.width
    assert found["y"] + found["height"] >= text.y + text.height
    output = await download(client, final, settings.data_dir / "out.mp4")
    roi = Roi(mask["x"], mask["y"], mask["width"], mask["height"])
    region = Region(roi, mask["shape"], (Roi(**found),))
    judge(output, printed_over.path, removal_truth((), printed_over.frames, region), audio=False)

    # Told not to, it keeps them.
    body = {"blacken_found_regions": False}
    resp = await client.post(f"/api/video-reprocess/{video['id']}/", json=body)
    final = (await follow_task(client, (await resp.json())["task_id"], timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert "blacken_regions" not in final["result"]["mask"]
    output = await download(client, final, settings.data_dir / "kept.mp4")
    region = Region(roi, final["result"]["mask"]["shape"])
    judge(output, printed_over.path, removal_truth((), printed_over.frames, region), audio=False)
