"""Reprocess without a mask: a recognised device's mask, the trusted suggested ROI, or a
refusal (roi_uncertain) - through the service, on realistic recordings (testkit.realistic)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

from jobs.device_catalogue import builtin_devices
from jobs.settings import Settings
from jobs.video import Roi
from testkit.realistic import (
    OLYMPUS,
    RealisticScene,
    RealisticTruth,
    Stretch,
    centred_layout,
    make_realistic_video,
    olympus_layout,
)
from testkit.scenes import Scene, make_scene_video
from tests.api import Client, download, expect_error, follow_task, upload
from tests.checks import ref_keep
from tests.oracle import Region, judge, removal_truth


@pytest.fixture(scope="session")
def olympus(media_dir: Path) -> RealisticTruth:
    """A short recording laid out as the Olympus CV-1500 draws it, 640x360."""
    scene = RealisticScene(
        "olympus_short",
        olympus_layout(640),
        (Stretch("live", 40, "fast"), Stretch("registration", 10), Stretch("live", 20, "slow")),
        seed=11,
    )
    return make_realistic_video(scene, media_dir / "olympus_short.mp4")


async def submit(client: Client, path: str, body: Any) -> str:
    resp = await client.post(path, json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    return str(answer["task_id"])


async def test_analysis_names_the_device_and_reprocess_uses_its_mask(
    client: Client, worker: Worker, settings: Settings, olympus: RealisticTruth
) -> None:
    video = await upload(client, olympus.path)
    analysis = (
        await follow_task(client, await submit(client, f"/api/video-analyze/{video['id']}/", {}))
    )[-1]
    assert analysis["state"] == "SUCCESS", analysis
    assert analysis["result"]["suggested_device"] == OLYMPUS
    assert analysis["result"]["suggested_roi"]["confidence"] >= 0.5

    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", {})
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    result = final["result"]
    device = builtin_devices()[OLYMPUS]
    area = device.roi_for(640, 360)
    assert result["mask"] == {
        **area.to_dict(),
        "shape": "rect",
        "source": "device",
        "device_name": OLYMPUS,
    }
    assert result["analysis"]["suggested_device"] == OLYMPUS
    checked = {field["name"] for field in result["verification"]["text_fields"]}
    assert checked == {field.name for field in device.text_fields}
    assert result["removed_ranges"] == "40-49"  # the registration screen
    output = await download(client, final, settings.data_dir / "out.mp4")
    # The oracle (ffmpeg): the registration screen's frames gone, the rest the source's inside
    # the device's image area and black outside it, where the patient data was.
    truth = removal_truth(range(40, 50), olympus.frames, Region(area, "rect"))
    judge(output, olympus.path, truth, audio=False)


async def test_reprocess_refuses_to_guess_the_live_image(
    client: Client, worker: Worker, settings: Settings, media_dir: Path
) -> None:
    """No live image at all (a registration screen, then black): the reprocess ends FAILURE
    roi_uncertain on its worker; once an analysis says so, the next submission gets 409."""
    truth = make_scene_video(
        media_dir / "no_image.mp4",
        width=320,
        height=240,
        script=(Scene("text_screen", 12), Scene("blank", 12)),
    )
    video = await upload(client, truth.path)
    final = (
        await follow_task(client, await submit(client, f"/api/video-reprocess/{video['id']}/", {}))
    )[-1]
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "roi_uncertain"
    assert "mask" in final["error"]["message"]
    assert "device_name" in final["error"]["message"]
    assert list((settings.data_dir / "outputs").iterdir()) == []

    analysis = (
        await follow_task(client, await submit(client, f"/api/video-analyze/{video['id']}/", {}))
    )[-1]
    assert analysis["state"] == "SUCCESS", analysis
    assert analysis["result"]["suggested_roi"] is None
    assert analysis["result"]["suggested_device"] is None
    resp = await client.post(f"/api/video-reprocess/{video['id']}/", json={})
    message = await expect_error(resp, 409, "roi_uncertain")
    assert "device_name" in message
    # A different sample_every is another analysis: the worker decides (and refuses).
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", {"sample_every": 2})
    final = (await follow_task(client, task_id))[-1]
    assert final["error"]["code"] == "roi_uncertain", final


async def test_reprocess_keeps_an_octagonal_image_as_an_octagon(
    client: Client, worker: Worker, settings: Settings, media_dir: Path
) -> None:
    """A centred octagonal image (corners cut by a quarter of its height), no device: the
    reprocess masks to the suggested octagon, so the cut corners come out black, and what it
    keeps is the live image (IoU >= 0.95 with the drawn one)."""
    layout = replace(centred_layout(640, "octagon"), corner=0.25)
    truth = make_realistic_video(
        RealisticScene(
            "octagon_short",
            layout,
            (Stretch("live", 40, "fast"), Stretch("registration", 10), Stretch("live", 20, "slow")),
            seed=12,
        ),
        media_dir / "octagon_short.mp4",
    )
    video = await upload(client, truth.path)
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", {})
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    mask = final["result"]["mask"]
    assert mask["source"] == "analysis"
    assert mask["shape"] == "octagon", mask
    assert final["result"]["analysis"]["suggested_roi"]["corner"] == mask["corner"]
    roi = Roi(mask["x"], mask["y"], mask["width"], mask["height"])
    kept = ref_keep(640, 360, roi, "octagon", mask["corner"])
    image = layout.image_mask()
    assert (kept & image).sum() / (kept | image).sum() >= 0.95
    assert final["result"]["removed_ranges"] == "40-49"  # the registration screen
    output = await download(client, final, settings.data_dir / "out.mp4")
    # The oracle (ffmpeg): the kept frames are the source's inside the octagon, black outside.
    judge(
        output,
        truth.path,
        removal_truth(range(40, 50), truth.frames, Region(roi, "octagon", corner=mask["corner"])),
        audio=False,
    )


async def test_reprocess_refuses_a_short_clip_with_a_lit_bar(
    client: Client, worker: Worker, settings: Settings, media_dir: Path
) -> None:
    """A second of slow inspection beside a lit grey bar with text: too few frames moved to
    tell the bar from the picture, so reprocess without a mask refuses (roi_uncertain) and
    writes nothing, where it kept the image and the bar, text and all, before."""
    layout = replace(centred_layout(640, "rect", bar=True), bar_level=30.0)
    truth = make_realistic_video(
        RealisticScene(
            "short_lit_bar", layout, (Stretch("live", 24, "slow"),), seed=13, vignetting=(0.6, 0.05)
        ),
        media_dir / "short_lit_bar.mp4",
    )
    video = await upload(client, truth.path)
    task_id = await submit(client, f"/api/video-reprocess/{video['id']}/", {})
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "roi_uncertain", final
    assert "device_name" in final["error"]["message"]
    assert list((settings.data_dir / "outputs").iterdir()) == []
