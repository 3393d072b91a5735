"""Device masks and their scaling (no Redis, no video)."""

from __future__ import annotations

from pathlib import Path

from jobs.device_catalogue import DeviceCatalogue, builtin_devices
from jobs.mask_request import parse_mask_request
from jobs.video import Roi


def test_olympus_device_is_defined_on_1080p() -> None:
    device = builtin_devices()["olympus_cv_1500"]
    assert device.roi_for(1920, 1080) == Roi(550, 0, 1350, 1080)


def test_scaling_rounds_inwards() -> None:
    device = builtin_devices()["olympus_cv_1500"]
    # 550 * 1000/1920 = 286.46 -> 287; 1900 * 1000/1920 = 989.58 -> 989.
    assert device.roi_for(1000, 500) == Roi(287, 0, 702, 500)
    roi = device.roi_for(1281, 721)
    assert roi.x >= 550 * 1281 / 1920
    assert roi.x + roi.width <= 1900 * 1281 / 1920


def test_params_round_trip(tmp_path: Path) -> None:
    request = parse_mask_request(
        {
            "mask_type": "custom",
            "roi": {"x": 1, "y": 2, "width": 3, "height": 4},
            "shape": "ellipse",
        },
        10,
        10,
        devices=DeviceCatalogue(tmp_path),
    )
    params = request.to_params()
    assert params == {
        "blacken_frames": [],
        "mask_type": "custom",
        "device_name": None,
        "roi": {"x": 1, "y": 2, "width": 3, "height": 4},
        "shape": "ellipse",
    }
    assert type(request).from_params(params) == request
