"""The device catalogue: video processors, where each shows the endoscope image in its output
frame (the area a device mask keeps) and where it burns in patient data (its named text
fields, which the output's check proves dark by name).

Built-in devices ship in ``jobs/devices/*.json``; users add their own through the API, kept in
the data dir as ``devices/<name>.json`` (written atomically, mode 0600). Both are in one file
format: ``name``, ``description``, ``frame_width``, ``frame_height``, the image area as
``endoscope_image_x``/``_y``/``_width``/``_height`` and ``text_fields``, a list of
``{"name", "x", "y", "width", "height"}`` (optional: a device file without it still loads).
The API shows and takes the image area as ``roi``. Every lookup reads the folder, so a device
added through one server process is seen by the others; a mask request resolves its device
into the task's params at submission, so deleting a device later changes no queued task.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from jobs.errors import Conflict, InvalidRequest, NotFound
from jobs.storage import DIR_MODE, fsync_dir, open_private
from jobs.video import Roi, TextField

log = structlog.get_logger("vidcorrect.devices")

#: A device's or a text field's name: what the API, the file names and the results use.
NAME_PATTERN = "[a-z0-9][a-z0-9_]{0,63}"
MAX_FRAME_SIDE = 16384
MAX_TEXT_FIELDS = 32
MAX_DESCRIPTION = 200
BOX_KEYS = ("x", "y", "width", "height")
#: The device file's names of the image area's x, y, width and height.
FILE_ROI_KEYS = tuple(f"endoscope_image_{key}" for key in BOX_KEYS)
DEVICE_FIELDS = ("name", "description", "frame_width", "frame_height", "roi", "text_fields")

_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Device:
    """A video processor: its output frame size, the image area in it and its text fields."""

    name: str
    frame_width: int
    frame_height: int
    roi: Roi
    text_fields: tuple[TextField, ...] = ()
    description: str = ""
    builtin: bool = False

    def roi_for(self, width: int, height: int) -> Roi:
        """The device's ROI scaled to a ``width`` x ``height`` frame, rounded inwards.

        Rounding inwards keeps at most what the device shows: never a pixel of the text strip.
        """
        x0, y0, x1, y1 = self._scaled(self.roi, width, height)
        left, top = math.ceil(x0), math.ceil(y0)
        return Roi(left, top, math.floor(x1) - left, math.floor(y1) - top)

    def text_fields_for(self, width: int, height: int) -> tuple[TextField, ...]:
        """The text fields scaled to a ``width`` x ``height`` frame as the ROI is, but rounded
        outwards: the check then covers every pixel of each field (and, the fields lying
        outside the image area, a field rounded out never meets the ROI rounded in)."""
        fields = []
        for field in self.text_fields:
            x0, y0, x1, y1 = self._scaled(field.box, width, height)
            left, top = math.floor(x0), math.floor(y0)
            box = Roi(left, top, math.ceil(x1) - left, math.ceil(y1) - top)
            fields.append(TextField(field.name, box))
        return tuple(fields)

    def _scaled(self, box: Roi, width: int, height: int) -> tuple[Fraction, ...]:
        sx = Fraction(width, self.frame_width)
        sy = Fraction(height, self.frame_height)
        return (box.x * sx, box.y * sy, (box.x + box.width) * sx, (box.y + box.height) * sy)

    def to_json(self) -> dict[str, Any]:
        """The device as the API shows it."""
        return {
            "name": self.name,
            "description": self.description,
            "frame_width": self.frame_width,
            "frame_height": self.frame_height,
            "roi": self.roi.to_dict(),
            "text_fields": [field.to_dict() for field in self.text_fields],
            "builtin": self.builtin,
        }

    def to_file(self) -> dict[str, Any]:
        """The device as its file holds it."""
        return {
            "name": self.name,
            "description": self.description,
            "frame_width": self.frame_width,
            "frame_height": self.frame_height,
            **dict(zip(FILE_ROI_KEYS, self.roi.to_dict().values(), strict=True)),
            "text_fields": [field.to_dict() for field in self.text_fields],
        }


def parse_device(body: object, *, builtin: bool = False) -> Device:
    """A device as the API takes it (``name``, ``frame_width``, ``frame_height``, ``roi``,
    optional ``description`` and ``text_fields``), validated: every box has a positive size
    and lies inside the frame, and no text field overlaps the image area (the mask would keep
    it). Raises :class:`InvalidRequest` (``invalid_device``) saying what to change."""
    if not isinstance(body, dict):
        raise _invalid("A device must be a JSON object.")
    unknown = sorted(set(body) - set(DEVICE_FIELDS))
    missing = [key for key in ("name", "frame_width", "frame_height", "roi") if key not in body]
    if unknown or missing:
        raise _invalid(
            f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(DEVICE_FIELDS)}."
            if unknown
            else f"A device needs {', '.join(missing)}."
        )
    name = _name(body["name"], "name")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise _invalid(f"description must be a string of at most {MAX_DESCRIPTION} characters.")
    width = _whole(body["frame_width"], "frame_width", 1, MAX_FRAME_SIDE)
    height = _whole(body["frame_height"], "frame_height", 1, MAX_FRAME_SIDE)
    roi = _box(body["roi"], "roi", width, height)
    raw_fields = body.get("text_fields", [])
    if not isinstance(raw_fields, list) or len(raw_fields) > MAX_TEXT_FIELDS:
        raise _invalid(f"text_fields must be a list of at most {MAX_TEXT_FIELDS} boxes.")
    fields: list[TextField] = []
    for index, raw in enumerate(raw_fields):
        where = f"text_fields[{index}]"
        if not isinstance(raw, dict):
            raise _invalid(f'{where} must be an object {{"name", "x", "y", "width", "height"}}.')
        field = TextField(
            _name(raw.get("name"), f"{where}.name"),
            _box({k: v for k, v in raw.items() if k != "name"}, where, width, height),
        )
        if any(other.name == field.name for other in fields):
            raise _invalid(f"{where}: there is already a text field named {field.name}.")
        if field.box.overlaps(roi):
            raise _invalid(
                f"{where} ({field.name}) overlaps the image area: the mask would keep it. "
                "Text fields lie outside the image area."
            )
        fields.append(field)
    return Device(name, width, height, roi, tuple(fields), description, builtin)


def parse_device_file(data: object, *, builtin: bool) -> Device:
    """A device from its file (see the module's docstring), validated as :func:`parse_device`."""
    if not isinstance(data, dict):
        raise _invalid("A device file must hold a JSON object.")
    area = {key: data[alias] for key, alias in zip(BOX_KEYS, FILE_ROI_KEYS, strict=True)}
    rest = {key: value for key, value in data.items() if key not in FILE_ROI_KEYS}
    return parse_device({**rest, "roi": area}, builtin=builtin)


@cache
def builtin_devices() -> dict[str, Device]:
    """The devices shipped in ``jobs/devices/*.json``, by name."""
    devices: dict[str, Device] = {}
    for entry in resources.files("jobs.devices").iterdir():
        if entry.name.endswith(".json"):
            device = parse_device_file(json.loads(entry.read_text("utf-8")), builtin=True)
            devices[device.name] = device
    return dict(sorted(devices.items()))


@dataclass(frozen=True)
class DeviceCatalogue:
    """The built-in devices and those users added, kept in ``folder`` (``data/devices``)."""

    folder: Path

    def all(self) -> list[Device]:
        """Every device, by name (a user's file named as a built-in one is ignored)."""
        devices = dict(builtin_devices())
        for path in sorted(self.folder.glob("*.json")):
            if path.stem not in devices and (device := self._load(path)) is not None:
                devices[device.name] = device
        return sorted(devices.values(), key=lambda device: device.name)

    def find(self, name: str) -> Device | None:
        """The device named ``name``, if there is one."""
        builtin = builtin_devices().get(name)
        if builtin is not None or not _NAME.fullmatch(name):
            return builtin
        return self._load(self._path(name))

    def get(self, name: str) -> Device:
        """The device named ``name``, or :class:`NotFound` (``device_not_found``)."""
        device = self.find(name)
        if device is None:
            raise _not_found(name)
        return device

    def add(self, device: Device) -> None:
        """Keep a user's device: written whole to a temp file, then linked into place, which
        fails if the name is taken (also by another process at the same moment): 409
        ``device_exists``."""
        path = self._path(device.name)
        if device.name in builtin_devices() or path.exists():
            raise _exists(device.name)
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        temp = self.folder / f".{device.name}.{uuid.uuid4().hex}.part"
        try:
            with open_private(temp) as handle:
                handle.write(json.dumps(device.to_file(), indent=2).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)
        except FileExistsError:
            raise _exists(device.name) from None
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(self.folder)

    def remove(self, name: str) -> None:
        """Delete a user's device: :class:`NotFound` if there is none, :class:`Conflict`
        (``builtin_device``) for a built-in one."""
        if name in builtin_devices():
            raise Conflict(
                f"{name} is a built-in device; only devices added through the API can be deleted.",
                code="builtin_device",
            )
        self.get(name)
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise _not_found(name) from None
        fsync_dir(self.folder)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _load(self, path: Path) -> Device | None:
        """The device in a user's file; None when there is none or it is not a valid device
        named as its file (logged, without the name: it is read, not trusted)."""
        try:
            device = parse_device_file(json.loads(path.read_text("utf-8")), builtin=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, InvalidRequest):
            log.warning("unreadable device file skipped")
            return None
        return device if device.name == path.stem else None


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_device")


def _not_found(name: str) -> NotFound:
    return NotFound(f"There is no device named {name!r}.", code="device_not_found")


def _exists(name: str) -> Conflict:
    return Conflict(
        f"There is already a device named {name}; choose another name.", code="device_exists"
    )


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _invalid(
            f"{where} must be 1 to 64 lowercase letters, digits and underscores, starting with "
            f"a letter or digit (such as olympus_cv_1500), got {value!r}."
        )
    return value


def _whole(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{where} must be a whole number from {low} to {high}, got {value!r}.")
    return value


def _box(source: object, where: str, width: int, height: int) -> Roi:
    """A box with exactly x, y, width and height, of positive size, inside the frame."""
    if not isinstance(source, dict) or set(source) != set(BOX_KEYS):
        raise _invalid(f"{where} must be an object with exactly {', '.join(BOX_KEYS)}.")
    low = {"x": 0, "y": 0, "width": 1, "height": 1}
    box = Roi(*(_whole(source[key], f"{where}.{key}", low[key], MAX_FRAME_SIDE) for key in low))
    if box.x + box.width > width or box.y + box.height > height:
        raise _invalid(
            f"{where} ({box.x}, {box.y}, {box.width}x{box.height}) reaches outside the "
            f"{width}x{height} frame: x + width must be <= {width} and y + height <= {height}."
        )
    return box
