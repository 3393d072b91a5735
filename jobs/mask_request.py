"""Mask requests: device masks, custom ROIs, and their validation against a video's size.

A request is resolved once, at submission, to the exact pixel ROI that is kept (and, for a
device mask, the device's text fields at the video's size, which the output's check proves
dark); the task record stores them, so what a job blacked out can always be read back, and a
device changed or deleted later changes no queued task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from jobs.audio_policy import AUDIO_FIELD
from jobs.device_catalogue import BOX_KEYS, FILE_ROI_KEYS, DeviceCatalogue
from jobs.errors import InvalidRequest
from jobs.frame_request import parse_frame_ranges
from jobs.video import SHAPES as SHAPES
from jobs.video import Roi, Shape, TextField, check_corner
from jobs.video.timeline import FrameRange

MaskType = Literal["device", "custom"]
#: A custom mask's other names of x, y, width and height: those of a device file.
DEVICE_KEYS = FILE_ROI_KEYS
ROI_KEYS = BOX_KEYS
MASK_KEYS = frozenset(
    {"mask_type", "device_name", "roi", "shape", "corner", "blacken_regions", *DEVICE_KEYS}
)
#: At most this many boxes in ``blacken_regions``.
MAX_BLACKEN_REGIONS = 32
_BODY_KEYS = MASK_KEYS | {"blacken_frames", AUDIO_FIELD}


@dataclass(frozen=True)
class MaskRequest:
    """A validated mask request, resolved to the pixels it keeps in one video."""

    mask_type: MaskType
    device_name: str | None
    roi: Roi
    shape: Shape
    #: An "octagon"'s corners, cut off at 45 degrees: the legs in pixels (0 for other shapes).
    corner: int = 0
    #: Frames made entirely black, keeping the timeline.
    blacken: tuple[FrameRange, ...] = ()
    #: A device mask's text fields at the video's size (proven dark by the output's check).
    text_fields: tuple[TextField, ...] = ()
    #: Boxes made black inside the kept area (text printed over the image), checked black.
    blacken_regions: tuple[Roi, ...] = ()

    def to_params(self) -> dict[str, Any]:
        """The task record's ``params`` (``text_fields`` with a device mask only)."""
        params: dict[str, Any] = {
            "blacken_frames": [list(r) for r in self.blacken],
            "mask_type": self.mask_type,
            "device_name": self.device_name,
            "roi": self.roi.to_dict(),
            "shape": self.shape,
        }
        if self.corner:
            params["corner"] = self.corner
        if self.mask_type == "device":
            params["text_fields"] = [field.to_dict() for field in self.text_fields]
        if self.blacken_regions:
            params["blacken_regions"] = [box.to_dict() for box in self.blacken_regions]
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> MaskRequest:
        """Rebuild the request a task record stores."""
        return cls(
            mask_type=params["mask_type"],
            device_name=params["device_name"],
            roi=Roi(**params["roi"]),
            shape=params["shape"],
            corner=int(params.get("corner", 0)),
            blacken=tuple((a, b) for a, b in params.get("blacken_frames", [])),
            text_fields=tuple(
                TextField(f["name"], Roi(f["x"], f["y"], f["width"], f["height"]))
                for f in params.get("text_fields", [])
            ),
            blacken_regions=tuple(Roi(**box) for box in params.get("blacken_regions", [])),
        )


def parse_mask_request(
    body: object,
    width: int,
    height: int,
    frame_count: int | None = None,
    *,
    devices: DeviceCatalogue,
) -> MaskRequest:
    """Validate a mask request body for a ``width`` x ``height`` video of ``frame_count``
    frames (needed only when the body has ``blacken_frames``); a device mask's device comes
    from ``devices``.

    Raises :class:`InvalidRequest` with a message that says what to change.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_BODY_KEYS))}."
        )
    request = parse_mask_fields(body, width, height, devices=devices)
    if "blacken_frames" in body:
        assert frame_count is not None
        blacken = parse_frame_ranges(body["blacken_frames"], frame_count, "blacken_frames")
        request = replace(request, blacken=blacken)
    return request


def parse_mask_fields(
    body: dict[str, Any], width: int, height: int, *, devices: DeviceCatalogue
) -> MaskRequest:
    """The mask part of a body (``mask_type`` and what goes with it), resolved to an ROI."""
    shape = body.get("shape", "rect")
    if shape not in SHAPES:
        raise InvalidRequest(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}.")

    mask_type = body.get("mask_type")
    if mask_type is None:
        raise InvalidRequest(
            'mask_type is required: "device" (with device_name) or "custom" (with roi).'
        )
    regions = parse_blacken_regions(body.get("blacken_regions"), width, height)
    if mask_type == "device":
        request = _device_mask(body, width, height, shape, devices)
    elif mask_type == "custom":
        request = MaskRequest("custom", None, _custom_roi(body, width, height), shape)
    else:
        raise InvalidRequest(f'mask_type must be "device" or "custom", got {mask_type!r}.')
    corner = _corner(body, request.roi, shape)
    return replace(request, corner=corner, blacken_regions=regions)


def _corner(body: dict[str, Any], roi: Roi, shape: Shape) -> int:
    """``corner``: an octagon's cut corners in pixels, required with shape "octagon" only."""
    if shape != "octagon":
        if "corner" in body:
            raise InvalidRequest(
                f'corner goes with shape "octagon" only (the shape is {shape!r}).',
                code="invalid_roi",
            )
        return 0
    value = body.get("corner")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            'shape "octagon" needs "corner": the whole number of pixels cut off each corner of '
            f"the roi at 45 degrees, got {value!r}.",
            code="invalid_roi",
        )
    try:
        check_corner(roi, shape, value)
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid_roi") from exc
    return value


def parse_blacken_regions(value: Any, width: int, height: int) -> tuple[Roi, ...]:
    """``blacken_regions``: a list of boxes ``{x, y, width, height}`` inside the frame, made
    black inside the kept area (where a processor prints text over the live image)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_BLACKEN_REGIONS:
        raise _bad_regions(
            f"blacken_regions must be a list of at most {MAX_BLACKEN_REGIONS} boxes "
            '{"x", "y", "width", "height"}.'
        )
    boxes = []
    for index, raw in enumerate(value):
        where = f"blacken_regions[{index}]"
        if not isinstance(raw, dict) or set(raw) != set(ROI_KEYS):
            raise _bad_regions(f"{where} must be an object with exactly x, y, width and height.")
        numbers = [raw[key] for key in ROI_KEYS]
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
            raise _bad_regions(f"{where}: x, y, width and height must be whole numbers of pixels.")
        box = Roi(*numbers)
        if box.x < 0 or box.y < 0 or box.width <= 0 or box.height <= 0:
            raise _bad_regions(f"{where}: x and y must be >= 0, width and height > 0.")
        if box.x + box.width > width or box.y + box.height > height:
            raise _bad_regions(
                f"{where} ({box.x}, {box.y}, {box.width}x{box.height}) reaches outside the "
                f"video's {width}x{height} frame."
            )
        boxes.append(box)
    return tuple(boxes)


def _bad_regions(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_blacken_regions")


def _device_mask(
    body: dict[str, Any], width: int, height: int, shape: Shape, devices: DeviceCatalogue
) -> MaskRequest:
    name = body.get("device_name")
    device = devices.find(name) if isinstance(name, str) else None
    if device is None:
        known = ", ".join(known.name for known in devices.all())
        problem = "device_name is missing" if name is None else f"device_name {name!r} is unknown"
        raise InvalidRequest(f"{problem}; known devices: {known}.", code="unknown_device")
    if "roi" in body or any(key in body for key in DEVICE_KEYS):
        raise InvalidRequest('A device mask takes no roi; use mask_type "custom" for your own.')
    roi = device.roi_for(width, height)
    if roi.width <= 0 or roi.height <= 0:
        raise InvalidRequest(f"The device's image area is empty at {width}x{height}.")
    fields = device.text_fields_for(width, height)
    return MaskRequest("device", device.name, roi, shape, text_fields=fields)


def _custom_roi(body: dict[str, Any], width: int, height: int) -> Roi:
    if "device_name" in body:
        raise InvalidRequest('A custom mask takes no device_name; use mask_type "device".')
    # "roi" wins when given, whatever it holds (null included: that is an error, not "absent").
    source = body["roi"] if "roi" in body else {k: body[k] for k in DEVICE_KEYS if k in body}
    if source == {} and "roi" not in body:
        raise InvalidRequest(
            'A custom mask needs "roi": {"x", "y", "width", "height"} '
            "(or the endoscope_image_x/y/width/height keys)."
        )
    if not isinstance(source, dict):
        raise InvalidRequest('roi must be an object {"x", "y", "width", "height"}.')
    values = [
        _roi_value(source, key, alias) for key, alias in zip(ROI_KEYS, DEVICE_KEYS, strict=True)
    ]
    roi = Roi(*values)
    if roi.x < 0 or roi.y < 0 or roi.width <= 0 or roi.height <= 0:
        raise InvalidRequest(
            "roi x and y must be >= 0, and width and height > 0.", code="invalid_roi"
        )
    if roi.x + roi.width > width or roi.y + roi.height > height:
        raise InvalidRequest(
            f"roi ({roi.x}, {roi.y}, {roi.width}x{roi.height}) reaches outside the video's "
            f"{width}x{height} frame: x + width must be <= {width} and y + height <= {height}.",
            code="invalid_roi",
        )
    return roi


def _roi_value(source: dict[str, Any], key: str, alias: str) -> int:
    if key in source and alias in source:
        raise InvalidRequest(f"roi gives both {key} and {alias}; give one.")
    value = source.get(key, source.get(alias))
    if value is None:
        raise InvalidRequest(f"roi needs {key} (or {alias}).", code="invalid_roi")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            f"roi {key} must be a whole number of pixels, got {value!r}.", code="invalid_roi"
        )
    return value
