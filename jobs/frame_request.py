"""Frame selections in requests: ``frame_list``, ``frame_ranges``, ``blacken_frames``,
``detection_method``, and the analysis and reprocess options.

Frame numbers are 0-based in presentation order; ranges are inclusive at both ends and are
sorted and merged. Every message about a bad selection names the video's frame count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jobs.audio_policy import AUDIO_FIELD
from jobs.errors import InvalidRequest
from jobs.video.analyze import SENSITIVE
from jobs.video.detectors import LABELS as LABELS  # the request checks' labels, re-exported
from jobs.video.timeline import FrameRange, merge_ranges, range_frames

MAX_SELECTION_ITEMS = 100_000
MAX_SAMPLE_EVERY = 1000
#: ASCII digits only (``\d`` takes other scripts' digits) and at most 18 of them (int() of
#: thousands of digits raises; no video has that many frames).
_RANGE = re.compile(r"\s*([0-9]{1,18})\s*(?:-\s*([0-9]{1,18})\s*)?", re.ASCII)


def _frames_note(frame_count: int) -> str:
    return f"the video has {frame_count} frames (0-{frame_count - 1})"


def parse_frame_ranges(text: object, frame_count: int, field: str) -> tuple[FrameRange, ...]:
    """Parse ``"10-20,30,45-50"`` into sorted, merged ranges within the video."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest(
            f'{field} must be a string such as "10-20,30,45-50"; {_frames_note(frame_count)}.',
            code="invalid_frames",
        )
    parts = text.split(",")
    if len(parts) > MAX_SELECTION_ITEMS:
        raise InvalidRequest(
            f"{field} has more than {MAX_SELECTION_ITEMS} parts.", code="invalid_frames"
        )
    ranges: list[FrameRange] = []
    for part in parts:
        match = _RANGE.fullmatch(part)
        if match is None:
            raise InvalidRequest(
                f"{field}: {part.strip()!r} is not a frame number or a range like 10-20; "
                f"{_frames_note(frame_count)}.",
                code="invalid_frames",
            )
        start = int(match[1])
        end = int(match[2]) if match[2] is not None else start
        if end < start:
            raise InvalidRequest(
                f"{field}: the range {start}-{end} runs backwards; {_frames_note(frame_count)}.",
                code="invalid_frames",
            )
        ranges.append((start, end))
    return _within(merge_ranges(ranges), frame_count, field)


def parse_frame_list(values: object, frame_count: int, field: str) -> tuple[FrameRange, ...]:
    """Parse ``[3, 4, 90]`` into sorted, merged ranges within the video."""
    if not isinstance(values, list) or not values:
        raise InvalidRequest(
            f"{field} must be a non-empty list of frame numbers; {_frames_note(frame_count)}.",
            code="invalid_frames",
        )
    if len(values) > MAX_SELECTION_ITEMS:
        raise InvalidRequest(
            f"{field} has more than {MAX_SELECTION_ITEMS} frames; use frame_ranges.",
            code="invalid_frames",
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(
                f"{field}: {value!r} is not a frame number (a whole number "
                f">= 0); {_frames_note(frame_count)}.",
                code="invalid_frames",
            )
    return _within(merge_ranges((v, v) for v in values), frame_count, field)


def _within(ranges: tuple[FrameRange, ...], frame_count: int, field: str) -> tuple[FrameRange, ...]:
    if ranges and ranges[-1][1] >= frame_count:
        raise InvalidRequest(
            f"{field}: frame {ranges[-1][1]} is beyond the end; {_frames_note(frame_count)}.",
            code="frame_out_of_range",
        )
    return ranges


def check_not_everything(ranges: tuple[FrameRange, ...], frame_count: int) -> None:
    """Refuse a removal that would leave no frame."""
    if range_frames(ranges) >= frame_count:
        raise InvalidRequest(
            f"That would remove every frame; {_frames_note(frame_count)}. Keep at least one.",
            code="removes_everything",
        )


@dataclass(frozen=True)
class RemovalRequest:
    """What to remove: explicit ranges (an automatic removal, of the frames the latest analysis
    flagged, is parsed as ``None``)."""

    ranges: tuple[FrameRange, ...]


def parse_removal_request(body: object, frame_count: int) -> RemovalRequest | None:
    """Validate a removal body. Returns ``None`` for ``detection_method: automatic``, whose
    ranges the caller takes from the latest analysis."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    given = [key for key in ("frame_list", "frame_ranges", "detection_method") if key in body]
    allowed = {"frame_list", "frame_ranges", "detection_method", "mode", AUDIO_FIELD}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}; give one of frame_list, "
            f"frame_ranges or detection_method (and optionally mode, {AUDIO_FIELD})."
        )
    parse_removal_mode(body)
    if len(given) != 1:
        raise InvalidRequest(
            'Give exactly one of "frame_list": [3, 4, 90], "frame_ranges": '
            f'"10-20,30" or "detection_method": "automatic"; '
            f"{_frames_note(frame_count)}.",
            code="invalid_frames",
        )
    if given[0] == "detection_method":
        if body["detection_method"] != "automatic":
            raise InvalidRequest('detection_method must be "automatic".')
        return None
    if given[0] == "frame_list":
        ranges = parse_frame_list(body["frame_list"], frame_count, "frame_list")
    else:
        ranges = parse_frame_ranges(body["frame_ranges"], frame_count, "frame_ranges")
    check_not_everything(ranges, frame_count)
    return RemovalRequest(ranges=ranges)


#: How a removal writes its output: "smart" copies the groups of pictures kept whole and
#: re-encodes only around the cuts (H.264 in MP4/MOV; otherwise the full re-encode runs),
#: "reencode" always re-encodes every frame.
REMOVAL_MODES = ("smart", "reencode")


def parse_removal_mode(body: dict[str, Any]) -> str:
    """The removal body's ``mode`` (default ``smart``)."""
    mode = body.get("mode", "smart")
    if mode not in REMOVAL_MODES:
        raise InvalidRequest(f'mode must be "smart" or "reencode", got {mode!r}.')
    return str(mode)


def parse_sample_every(value: Any) -> int:
    """The analysis's sampling step: every n-th frame (default 1, every frame)."""
    if value is None:
        return 1
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (1 <= value <= MAX_SAMPLE_EVERY)
    ):
        raise InvalidRequest(
            f"sample_every must be a whole number from 1 to {MAX_SAMPLE_EVERY}, got {value!r}."
        )
    return value


def parse_blacken_found(value: Any) -> bool:
    """A reprocess's ``blacken_found_regions`` (default true): whether the text the analysis
    finds printed over the image is blackened when the service chooses the mask."""
    if value is None:
        return True
    if not isinstance(value, bool):
        raise InvalidRequest(f"blacken_found_regions must be true or false, got {value!r}.")
    return value


def parse_remove_labels(value: Any) -> tuple[str, ...]:
    """The analysis labels whose frames a reprocess removes (by default the sensitive ones)."""
    if value is None:
        return SENSITIVE
    if not isinstance(value, list) or any(label not in LABELS for label in value):
        raise InvalidRequest(
            f"remove_labels must be a list of labels from {', '.join(LABELS)}, got {value!r}."
        )
    return tuple(label for label in LABELS if label in value)
