"""Frame ranges: validation, merging, streaming membership tests and text form."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FrameRange = tuple[int, int]
"""0-based frame numbers in presentation order, inclusive at both ends."""

__all__ = [
    "ClosedUp",
    "FrameRange",
    "RangeCursor",
    "close_up",
    "format_ranges",
    "merge_ranges",
    "range_frames",
    "removed_flags",
    "to_output_ranges",
]


def merge_ranges(ranges: Iterable[FrameRange]) -> tuple[FrameRange, ...]:
    """Sorted, merged copy of `ranges` (overlapping and adjacent ranges are joined).

    Raises ValueError for a range that is not a pair of integers 0 <= start <= end.
    """
    checked: list[FrameRange] = []
    for item in ranges:
        start, end = item
        if (
            not isinstance(start, int)
            or not isinstance(end, int)
            or isinstance(start, bool)
            or isinstance(end, bool)
        ):
            raise ValueError(f"The frame range {item!r} is not a pair of integers.")
        if start < 0 or end < start:
            raise ValueError(f"The frame range {start}-{end} is invalid (need 0 <= start <= end).")
        checked.append((start, end))
    checked.sort()
    merged: list[FrameRange] = []
    for start, end in checked:
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def range_frames(ranges: Iterable[FrameRange]) -> int:
    """Number of frames in `ranges` (which must not overlap)."""
    return sum(end - start + 1 for start, end in ranges)


def format_ranges(ranges: Iterable[FrameRange]) -> str:
    """Ranges as text, e.g. "10-20,30" (a single frame is written alone)."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


class RangeCursor:
    """Answers "is frame i in the ranges?" for increasing i in O(1) amortized time."""

    def __init__(self, ranges: tuple[FrameRange, ...]) -> None:
        self._ranges = ranges  # sorted and merged
        self._next = 0

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        while self._next < len(self._ranges) and self._ranges[self._next][1] < index:
            self._next += 1
        return self._next < len(self._ranges) and self._ranges[self._next][0] <= index


def to_output_ranges(
    ranges: Iterable[FrameRange], removed: Iterable[FrameRange]
) -> tuple[FrameRange, ...]:
    """`ranges` of source frames in the numbering of an output that leaves out the `removed`
    frames (those are dropped from the result), sorted and merged. Known before editing, unlike
    EditOutcome.to_output_ranges, with which it agrees on the frames the source has."""
    kept: list[tuple[int, int | None]] = []  # the kept runs of source frames (end None: open)
    next_kept = 0
    for start, end in merge_ranges(removed):
        if start > next_kept:
            kept.append((next_kept, start - 1))
        next_kept = end + 1
    kept.append((next_kept, None))
    mapped: list[FrameRange] = []
    for start, end in merge_ranges(ranges):
        dropped = 0  # removed frames before the current kept run
        previous_end = -1
        for run_start, run_end in kept:
            dropped += run_start - previous_end - 1
            lo, hi = max(start, run_start), end if run_end is None else min(end, run_end)
            if lo <= hi:
                mapped.append((lo - dropped, hi - dropped))
            if run_end is None:
                break
            previous_end = run_end
    return merge_ranges(mapped)


def removed_flags(frames: int, remove: Iterable[FrameRange]) -> list[bool]:
    """For each of `frames` frames, whether one of the ranges `remove` holds it."""
    removed = [False] * frames
    for start, end in remove:
        for index in range(max(0, start), min(end, frames - 1) + 1):
            removed[index] = True
    return removed


@dataclass(frozen=True)
class ClosedUp:
    """The output timing of a removal (see :func:`close_up`)."""

    kept: tuple[int, ...]  # the kept frames, in order
    new_pts: tuple[int, ...]  # the output pts of each kept frame (aligned with `kept`)
    #: The removed runs as source pts: (first removed frame's, next kept frame's or None at the
    #: end of the stream).
    spans: tuple[tuple[int, int | None], ...]
    #: The kept runs as (old_start, old_end inclusive, new_start), as EditOutcome.frame_map.
    frame_map: tuple[tuple[int, int, int], ...]


def close_up(sorted_pts: Sequence[int], removed: Sequence[bool]) -> ClosedUp:
    """The timing edit_video gives an edit that removes the frames flagged in `removed` from
    a stream whose frames (in presentation order) have the pts `sorted_pts`: kept frames keep
    their durations and each removed run is closed up, its duration measured from the pts of
    its first frame to the pts of the next kept frame."""
    kept: list[int] = []
    new_pts: list[int] = []
    spans: list[tuple[int, int | None]] = []
    runs: list[list[int]] = []
    shift = 0
    cut_from: int | None = None
    for index, pts in enumerate(sorted_pts):
        if removed[index]:
            if cut_from is None:
                cut_from = pts
                spans.append((pts, None))
            continue
        if cut_from is not None:
            shift += pts - cut_from
            spans[-1] = (cut_from, pts)
            cut_from = None
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index, len(kept)])
        kept.append(index)
        new_pts.append(pts - shift)
    return ClosedUp(tuple(kept), tuple(new_pts), tuple(spans), tuple((a, b, c) for a, b, c in runs))
