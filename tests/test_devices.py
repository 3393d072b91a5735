"""The device catalogue over HTTP (list, get, add, delete, kept across restarts) and device
masks' text fields: proven dark by name in the output's check, and judged by the oracle."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

import jobs.operations
from jobs.settings import Settings
from jobs.video import FieldCheck, Roi, TextField, verify_output
from jobs.video.field_check import FieldProbe
from jobs.video.verify import LUMA_LIMIT
from server.app import create_app
from testkit.media import make_video
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.oracle import decode_video, judge_mask, probe
from tests.test_api_edit import leaky_write_checked

#: The Olympus CV-1500's public data at 1920x1080: (x, y, width, height).
CV_1500_FIELDS = {
    "examination_date": (0, 0, 390, 40),
    "examination_time": (240, 7, 115, 35),
    "first_name": (70, 75, 440, 33),
    "last_name": (70, 120, 450, 27),
    "date_of_birth": (70, 180, 160, 50),
    "endoscope_type": (70, 630, 280, 35),
    "endoscope_serial": (70, 670, 280, 35),
}
WIDTH, HEIGHT = 640, 360  # a third of the CV-1500's frame


def box(x: int, y: int, width: int, height: int) -> dict[str, int]:
    return {"x": x, "y": y, "width": width, "height": height}


def new_device(name: str = "acme_9000", **changes: Any) -> dict[str, Any]:
    """A valid device on a 1280x720 frame: the image on the right, two fields on the left."""
    device: dict[str, Any] = {
        "name": name,
        "description": "Acme 9000, 720p",
        "frame_width": 1280,
        "frame_height": 720,
        "roi": box(400, 0, 880, 720),
        "text_fields": [
            {"name": "patient_name", **box(10, 10, 300, 30)},
            {"name": "patient_id", **box(10, 50, 200, 30)},
        ],
    }
    device.update(changes)
    return device


async def test_the_catalogue_lists_the_cv_1500_with_its_text_fields(client: Client) -> None:
    resp = await client.get("/api/devices/")
    assert resp.status == 200
    devices = {device["name"]: device for device in (await resp.json())["devices"]}
    cv = devices["olympus_cv_1500"]
    assert (cv["frame_width"], cv["frame_height"]) == (1920, 1080)
    assert cv["roi"] == box(550, 0, 1350, 1080)
    assert cv["builtin"] is True
    assert {f["name"]: (f["x"], f["y"], f["width"], f["height"]) for f in cv["text_fields"]} == (
        CV_1500_FIELDS
    )
    one = await client.get("/api/devices/olympus_cv_1500")
    assert one.status == 200
    assert await one.json() == cv


@pytest.mark.parametrize("name", ["acme_9000", "Bad-Name", "x" * 65])
async def test_an_unknown_device_is_404(client: Client, name: str) -> None:
    await expect_error(await client.get(f"/api/devices/{name}"), 404, "device_not_found")
    await expect_error(await client.delete(f"/api/devices/{name}"), 404, "device_not_found")


async def test_an_added_device_is_listed_kept_private_and_survives_a_restart(
    client: Client, aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    resp = await client.post("/api/devices/", json=new_device())
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == "/api/devices/acme_9000"
    added = await resp.json()
    expected = {**new_device(), "builtin": False}
    assert added == expected
    assert await (await client.get("/api/devices/acme_9000")).json() == expected
    names = [d["name"] for d in (await (await client.get("/api/devices/")).json())["devices"]]
    assert names == ["acme_9000", "olympus_cv_1500"]

    kept = settings.data_dir / "devices" / "acme_9000.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [p.name for p in kept.parent.iterdir()] == ["acme_9000.json"]  # no temp file left

    restarted = await aiohttp_client(create_app(settings))
    assert await (await restarted.get("/api/devices/acme_9000")).json() == expected


async def test_a_taken_name_is_409(client: Client) -> None:
    assert (await client.post("/api/devices/", json=new_device())).status == 201
    again = await client.post("/api/devices/", json=new_device(description="another"))
    assert "acme_9000" in await expect_error(again, 409, "device_exists")
    builtin = await client.post("/api/devices/", json=new_device("olympus_cv_1500"))
    await expect_error(builtin, 409, "device_exists")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "Acme-9000"}, "lowercase letters"),
        ({"name": ""}, "lowercase letters"),
        ({"frame_width": 0}, "frame_width must be a whole number from 1"),
        ({"frame_height": 1.5}, "frame_height"),
        ({"frame_width": True}, "frame_width"),
        ({"roi": box(400, 0, 881, 720)}, "outside the 1280x720 frame"),
        ({"roi": box(400, 0, 0, 720)}, "roi.width"),
        ({"roi": {"x": 400, "y": 0, "width": 880}}, "exactly x, y, width, height"),
        ({"text_fields": [{"name": "a", **box(1200, 700, 100, 30)}]}, "text_fields[0]"),
        ({"text_fields": [{"name": "a", **box(10, 10, 0, 30)}]}, "text_fields[0].width"),
        ({"text_fields": [{"name": "a", **box(390, 10, 20, 30)}]}, "overlaps the image area"),
        (
            {"text_fields": [{"name": "a", **box(0, 0, 9, 9)}, {"name": "a", **box(0, 20, 9, 9)}]},
            "already a text field named a",
        ),
        ({"text_fields": [box(0, 0, 9, 9)]}, "text_fields[0].name"),
        ({"text_fields": {"a": box(0, 0, 9, 9)}}, "text_fields must be a list"),
        ({"description": "x" * 201}, "description"),
        ({"colour": "red"}, "Unknown field(s) colour"),
    ],
)
async def test_an_invalid_device_is_400_saying_what_to_fix(
    client: Client, settings: Settings, changes: dict[str, Any], words: str
) -> None:
    resp = await client.post("/api/devices/", json=new_device(**changes))
    assert words in await expect_error(resp, 400, "invalid_device")
    assert list(settings.data_dir.glob("devices/*")) == []


@pytest.mark.parametrize("missing", ["name", "frame_width", "frame_height", "roi"])
async def test_a_device_needs_its_frame_and_image_area(client: Client, missing: str) -> None:
    body = {k: v for k, v in new_device().items() if k != missing}
    resp = await client.post("/api/devices/", json=body)
    assert missing in await expect_error(resp, 400, "invalid_device")


async def test_delete_removes_an_added_device_and_refuses_a_builtin_one(client: Client) -> None:
    assert (await client.post("/api/devices/", json=new_device())).status == 201
    resp = await client.delete("/api/devices/acme_9000")
    assert resp.status == 204
    await expect_error(await client.get("/api/devices/acme_9000"), 404, "device_not_found")
    await expect_error(await client.delete("/api/devices/acme_9000"), 404, "device_not_found")
    builtin = await client.delete("/api/devices/olympus_cv_1500")
    assert "built-in" in await expect_error(builtin, 409, "builtin_device")
    assert (await client.get("/api/devices/olympus_cv_1500")).status == 200


# -------------------------------------------------------------------- device masks' fields


def _scaled_inside(x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A 1920x1080 box at WIDTH x HEIGHT, rounded inwards (the text drawn inside the field)."""
    x0, y0 = -(-x * WIDTH // 1920), -(-y * HEIGHT // 1080)
    x1, y1 = (x + w) * WIDTH // 1920, (y + h) * HEIGHT // 1080
    return (x0, y0, x1 - x0, y1 - y0)


def _scaled_outside(x: int, y: int, w: int, h: int) -> tuple[slice, slice]:
    """A 1920x1080 box at WIDTH x HEIGHT, rounded outwards, as luma rows and columns."""
    x0, y0 = x * WIDTH // 1920, y * HEIGHT // 1080
    x1, y1 = -(-(x + w) * WIDTH // 1920), -(-(y + h) * HEIGHT // 1080)
    return slice(y0, y1), slice(x0, x1)


@pytest.fixture(scope="module")
def burned_in_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CV-1500-like clip at a third of its size, with white boxes where its fields are."""
    boxes = tuple(_scaled_inside(*field) for field in CV_1500_FIELDS.values())
    path = tmp_path_factory.mktemp("devices") / "cv1500.mp4"
    return make_video(path, width=WIDTH, height=HEIGHT, seconds=1.0, burned_in=boxes)


async def test_a_device_mask_proves_every_text_field_dark(
    client: Client, worker: Worker, settings: Settings, burned_in_clip: Path
) -> None:
    # The source does show the burned-in text, bright, in every field.
    for planes in decode_video(burned_in_clip, probe(burned_in_clip)):
        for field in CV_1500_FIELDS.values():
            assert planes.y[_scaled_outside(*field)].max() > 200
    video = await upload(client, burned_in_clip)
    body = {"mask_type": "device", "device_name": "olympus_cv_1500"}
    task_id = await submit_mask(client, video["id"], body)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    fields = final["result"]["verification"]["text_fields"]
    assert [f["name"] for f in fields] == list(CV_1500_FIELDS)
    assert all(f["dark"] is True and f["max_luma"] <= LUMA_LIMIT for f in fields), fields
    assert final["params"]["text_fields"][2] == {"name": "first_name", **box(23, 25, 147, 11)}

    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, burned_in_clip, body)
    # ffmpeg's own decoding: every field box, rounded outwards, is black in every frame.
    for planes in decode_video(output, probe(output)):
        for field in CV_1500_FIELDS.values():
            assert planes.y[_scaled_outside(*field)].max() <= 24


async def test_an_added_device_masks_and_a_later_delete_leaves_the_task_as_submitted(
    client: Client, worker: Worker, settings: Settings, burned_in_clip: Path
) -> None:
    device = {
        "name": "cv_1500_copy",
        "frame_width": 1920,
        "frame_height": 1080,
        "roi": box(550, 0, 1350, 1080),
        "text_fields": [{"name": "last_name", **box(70, 120, 450, 27)}],
    }
    assert (await client.post("/api/devices/", json=device)).status == 201
    video = await upload(client, burned_in_clip)
    body = {"mask_type": "device", "device_name": "cv_1500_copy"}
    task_id = await submit_mask(client, video["id"], body)
    assert (await client.delete("/api/devices/cv_1500_copy")).status == 204
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    # 550 / 3 = 183.3 -> 184, 1900 / 3 = 633.3 -> 633 (inwards); the field outwards.
    kept = box(184, 0, 449, 360)
    assert final["params"]["roi"] == kept
    assert final["params"]["text_fields"] == [{"name": "last_name", **box(23, 40, 151, 9)}]
    assert final["result"]["verification"]["text_fields"] == [
        {
            "name": "last_name",
            "dark": True,
            "max_luma": pytest.approx(16, abs=8),
            "box": box(23, 40, 151, 9),
        }
    ]
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, burned_in_clip, {"mask_type": "custom", "roi": kept})
    again = await client.post(f"/api/video-apply-mask/{video['id']}/", json=body)
    assert "cv_1500_copy" in await expect_error(again, 400, "unknown_device")


async def test_a_device_mask_whose_encoder_forgets_the_mask_fails_on_its_text_fields(
    client: Client,
    worker: Worker,
    settings: Settings,
    burned_in_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs.operations, "write_checked", leaky_write_checked)
    video = await upload(client, burned_in_clip)
    body = {"mask_type": "device", "device_name": "olympus_cv_1500"}
    final = (await follow_task(client, await submit_mask(client, video["id"], body)))[-1]
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == "verification_failed"
    for name in CV_1500_FIELDS:
        assert f"Text field {name} is not dark" in final["error"]["message"]
    assert list((settings.data_dir / "outputs").iterdir()) == []


# ------------------------------------------------------- the field check on its own frames

LAST_NAME = TextField("last_name", Roi(23, 40, 151, 9))  # CV-1500's, at 640x360


def test_the_field_check_fails_on_a_bright_field(burned_in_clip: Path) -> None:
    # No mask at all: the area check has nothing to say, the field check alone fails.
    result = verify_output(burned_in_clip, expected_frames=25, text_fields=(LAST_NAME,))
    assert result.passed is False
    [check] = result.text_fields
    assert (check.name, check.dark) == ("last_name", False)
    assert check.max_luma is not None
    assert check.max_luma > 200
    assert any("Text field last_name is not dark" in p for p in result.problems)
    assert result.to_dict()["text_fields"] == [
        {"name": "last_name", "dark": False, "max_luma": check.max_luma, "box": box(23, 40, 151, 9)}
    ]


def test_a_kept_region_over_a_field_fails_it_whatever_the_pixels(burned_in_clip: Path) -> None:
    # An ROI mistake that keeps the field: the area check passes (nothing outside the whole
    # frame), the field check does not.
    whole = Roi(0, 0, WIDTH, HEIGHT)
    result = verify_output(burned_in_clip, expected_frames=25, roi=whole, text_fields=(LAST_NAME,))
    assert result.max_luma_outside is None
    assert result.passed is False
    assert result.text_fields[0].dark is False
    assert "Text field last_name overlaps the kept region." in result.problems


def test_a_field_within_the_margin_cannot_be_shown_dark(burned_in_clip: Path) -> None:
    roi = Roi(200, 0, 440, HEIGHT)
    beside = TextField("beside", Roi(194, 40, 4, 10))  # all of it within 8 px of the ROI
    result = verify_output(burned_in_clip, expected_frames=25, roi=roi, text_fields=(beside,))
    assert result.text_fields[0].dark is False
    assert result.text_fields[0].max_luma is None
    assert any("none of it can be measured" in p for p in result.problems)


def test_the_probe_leaves_out_only_the_margin_next_to_the_kept_region() -> None:
    kept = Roi(100, 0, 100, 100)
    field = TextField("beside", Roi(40, 10, 60, 20))  # x 40..99: touches the kept region
    luma = np.full((100, 200), 16, np.uint8)
    luma[15, 92] = 235  # within 8 px of the kept region: codec ringing's place, left out
    probe = FieldProbe(field, kept, 8, 200, 100)
    probe.check(luma, 0, LUMA_LIMIT)
    assert probe.result(LUMA_LIMIT) == (FieldCheck("beside", field.box, 16, dark=True), None)
    luma[29, 91] = 235  # one pixel further out, in the field's last row: measured
    probe.check(luma, 1, LUMA_LIMIT)
    check, problem = probe.result(LUMA_LIMIT)
    assert (check.dark, check.max_luma) == (False, 235)
    assert problem is not None
    assert "in 1 frames, first at frame 1" in problem
