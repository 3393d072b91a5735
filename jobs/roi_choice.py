"""What reprocess keeps when no mask is given: a recognised device's mask, else the analysis'
suggested ROI if it is trusted, else nothing (the task is refused: ``roi_uncertain``).

Device recognition. A catalogued device (jobs/device_catalogue.py) is recognised in an
analysis when, with the device scaled to the video (same aspect ratio, within 1%):

- the found live image lies inside the device's image area (2% of the frame's width and height
  of tolerance), covers at least MIN_AREA_SHARE of it (a round image fills about 60% of the
  Olympus CV-1500's box) and spans it (MIN_FILL) in at least one direction: processors scale
  their image to the area (the CV-1500's circle is as high as the frame);
- the burned-in text found outside the image (the overlay regions) lies where the device has
  text fields: every region meets a field (each grown by the same tolerance), and at least
  half of the fields have their centre in a region (a device without text fields matches only
  a video without overlay);
- the suggested ROI is trusted (confidence at least ROI_MIN_CONFIDENCE).

Reprocess without a mask is refused at once (:func:`refuse_if_uncertain`, before it is queued)
when the video's latest analysis already says so; otherwise its worker decides.

When several devices match, the one whose image area is closest to the found image (IoU of the
boxes) is named. Its mask is what the device mask would keep: the whole image area, as a
rectangle, with the device's text fields checked dark in the output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobs.device_catalogue import Device
from jobs.errors import RoiUncertain
from jobs.task_store import TaskStore, latest_analysis
from jobs.video import Roi
from jobs.video.analyze import ROI_MIN_CONFIDENCE, Analysis

ASPECT_TOLERANCE = 0.01
EDGE_TOLERANCE = 0.02  # of the frame's width / height
MIN_AREA_SHARE = 0.45  # of the device's image area covered by the found image's box
MIN_FILL = 0.95  # the found image spans the image area in at least one direction
MIN_FIELDS_FOUND = 0.5  # of the device's text fields, found (their centre in an overlay region)


def roi_uncertain(confidence: float | None) -> RoiUncertain:
    """The refusal, saying what to pass instead."""
    found = (
        "found no live endoscope image"
        if confidence is None
        else f"is not sure of the live image it found (confidence {confidence:.2f}, "
        f"at least {ROI_MIN_CONFIDENCE} needed)"
    )
    return RoiUncertain(
        f"No mask was given and the analysis {found}; nothing was written. Submit again with a "
        'mask: "mask_type": "device" with your processor\'s "device_name", or "mask_type": '
        '"custom" with the "roi" to keep.'
    )


def trusted(suggested_roi: Mapping[str, Any] | None) -> bool | None:
    """Whether an analysis result's ``suggested_roi`` may be used without a mask; None when
    the result predates confidences (unknown)."""
    if suggested_roi is None:
        return False
    confidence = suggested_roi.get("confidence")
    if not isinstance(confidence, int | float):
        return None
    return float(confidence) >= ROI_MIN_CONFIDENCE


async def refuse_if_uncertain(records: TaskStore, video_id: int, sample_every: int) -> None:
    """RoiUncertain at once when the video's latest analysis (with the same ``sample_every``:
    the reprocess would find the same) recognised no device and is not sure of the live image.
    Without such an analysis the reprocess decides on its worker (FAILURE roi_uncertain)."""
    analysis = await latest_analysis(records, video_id)
    if (
        analysis is None
        or analysis.result is None
        or analysis.params.get("sample_every", 1) != sample_every
    ):
        return
    result = analysis.result
    if "suggested_device" not in result:  # an analysis by an earlier version: not comparable
        return
    suggested = result.get("suggested_roi")
    if result["suggested_device"] is None and trusted(suggested) is False:
        confidence = suggested.get("confidence") if isinstance(suggested, dict) else None
        raise roi_uncertain(confidence if isinstance(confidence, float | int) else None)


def recognise_device(
    analysis: Analysis, width: int, height: int, devices: Iterable[Device]
) -> Device | None:
    """The catalogued device whose layout the analysis found (module docstring), or None."""
    found = analysis.suggested_roi
    if found is None or found.confidence < ROI_MIN_CONFIDENCE:
        return None
    overlay = list(analysis.overlay_regions)
    tx, ty = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    best: tuple[float, Device] | None = None
    for device in devices:
        if abs(device.frame_width / device.frame_height - width / height) > ASPECT_TOLERANCE * (
            width / height
        ):
            continue
        area = device.roi_for(width, height)
        if area.width <= 0 or area.height <= 0 or not _inside(found.roi, area, tx, ty):
            continue
        if found.roi.width * found.roi.height < MIN_AREA_SHARE * area.width * area.height:
            continue
        if max(found.roi.width / area.width, found.roi.height / area.height) < MIN_FILL:
            continue
        fields = [field.box for field in device.text_fields_for(width, height)]
        if fields:
            grown = [_grow(box, tx, ty) for box in fields]
            if not overlay or not all(any(r.overlaps(g) for g in grown) for r in overlay):
                continue
            covered = sum(any(_contains(r, _centre(box)) for r in overlay) for box in fields)
            if covered < MIN_FIELDS_FOUND * len(fields):
                continue
        elif overlay:
            continue
        score = _iou(found.roi, area)
        if best is None or score > best[0]:
            best = (score, device)
    return None if best is None else best[1]


def _inside(box: Roi, area: Roi, tx: float, ty: float) -> bool:
    return (
        box.x >= area.x - tx
        and box.y >= area.y - ty
        and box.x + box.width <= area.x + area.width + tx
        and box.y + box.height <= area.y + area.height + ty
    )


def _centre(box: Roi) -> tuple[float, float]:
    return box.x + box.width / 2, box.y + box.height / 2


def _contains(box: Roi, point: tuple[float, float]) -> bool:
    x, y = point
    return box.x <= x < box.x + box.width and box.y <= y < box.y + box.height


def _grow(box: Roi, tx: float, ty: float) -> Roi:
    dx, dy = round(tx), round(ty)
    return Roi(box.x - dx, box.y - dy, box.width + 2 * dx, box.height + 2 * dy)


def _iou(a: Roi, b: Roi) -> float:
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.width * a.height + b.width * b.height - inter)
