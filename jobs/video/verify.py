"""Verification: decode an output of the service and check that it is what was promised.

Every frame of the output is decoded (it runs on every output, so the per-frame work is a few
numpy reductions over precomputed slices, no per-frame allocation of masks) and checked for:

- the frame count: exactly `expected_frames`;
- the mask: the brightest luma among the pixels outside the ROI that are more than
  `margin_px` pixels (Chebyshev distance) away from it must not exceed LUMA_LIMIT. The margin
  leaves out libx264's ringing next to the sharp black/picture boundary, which reaches about
  one transform block into the black area (measured up to ~71 at 1 px at CRF 18); further
  out, masked pixels decode to 16-17. Any real picture content leaking there (tissue, text,
  ~60-235) is far above the limit;
- blackened frames: the brightest luma of each frame that must be entirely black must not
  exceed LUMA_LIMIT.

Chroma is not checked: the masking code blanks chroma together with luma, and luma carries
what a reader could recognize. Frames are read as 8-bit limited-range YUV; other formats are
converted with swscale first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av.error
import numpy as np
from av.video.frame import VideoFrame

from jobs.video.codec import ProgressCallback, demux, plane_view, readable_frame
from jobs.video.errors import InvalidVideo
from jobs.video.planes import (
    LUMA_BLACK,
    SHAPES,
    BoolArray,
    PlaneFill,
    Roi,
    Shape,
    U8Array,
    check_roi,
    luma_keep_mask,
)
from jobs.video.probe import open_input, select_video_stream
from jobs.video.timeline import FrameRange, RangeCursor, merge_ranges

__all__ = ["DEFAULT_MARGIN_PX", "LUMA_LIMIT", "Verification", "verify_output"]

LUMA_LIMIT = LUMA_BLACK + 8
"""Highest luma accepted where the output must be black (beyond the margin / black frames)."""
DEFAULT_MARGIN_PX = 8


@dataclass(frozen=True)
class Verification:
    """The result of verify_output."""

    frames_checked: int  # frames decoded from the output
    frames_expected: int
    # Max luma of the output's pixels outside the ROI, more than margin_px px away from it
    # (None when there is no ROI, or no pixel lies that far out).
    max_luma_outside: int | None
    margin_px: int
    max_luma_blackened: int | None  # max luma over the frames that must be black (None: none)
    passed: bool
    problems: tuple[str, ...]  # human-readable reasons when not passed

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, with the luma limit that was applied."""
        return {
            "passed": self.passed,
            "frames_checked": self.frames_checked,
            "frames_expected": self.frames_expected,
            "max_luma_outside": self.max_luma_outside,
            "margin_px": self.margin_px,
            "max_luma_blackened": self.max_luma_blackened,
            "luma_limit": LUMA_LIMIT,
            "problems": list(self.problems),
        }


def verify_output(
    path: Path,
    *,
    expected_frames: int,
    roi: Roi | None = None,
    shape: Shape = "rect",
    black_frames: tuple[FrameRange, ...] = (),
    on_progress: ProgressCallback | None = None,
    margin_px: int = DEFAULT_MARGIN_PX,
) -> Verification:
    """Decode every frame of the video at `path` and check it against the promises.

    `black_frames` are in the output's numbering (see EditOutcome.to_output_ranges).
    Blocking; run it in a worker thread. `on_progress` gets the number of frames decoded
    after every frame and once more at the end; an exception it raises propagates.

    Returns a Verification; passed is False when the frame count differs, luma beyond the
    margin outside the ROI exceeds LUMA_LIMIT, a must-be-black frame is not black within
    LUMA_LIMIT, or the output cannot be decoded (to the end). Raises ValueError for an unknown
    shape or a malformed range; OSErrors propagate.
    """
    if shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {shape!r}; expected one of {SHAPES}.")
    black = merge_ranges(black_frames)
    checker = _Checker(expected_frames, roi, shape, black, margin_px)
    try:
        with open_input(path) as container:
            stream = select_video_stream(container)
            stream.codec_context.thread_type = "AUTO"
            for packet in demux(container, (stream,)):
                for frame in stream.decode(packet):
                    checker.check(frame)
                    if on_progress is not None:
                        on_progress(checker.frames)
    except OSError:
        raise
    except _Unverifiable as exc:
        checker.problems.append(str(exc))
    except (InvalidVideo, av.error.FFmpegError):
        checker.problems.append(
            "The output is not a readable video."
            if checker.frames == 0
            else f"The output cannot be decoded after frame {checker.frames - 1}."
        )
    if on_progress is not None:
        on_progress(checker.frames)
    return checker.result()


class _Unverifiable(Exception):
    """Stops the check early; str() is the problem to report."""


class _Checker:
    """Per-frame measurements and the final verdict."""

    def __init__(
        self,
        expected: int,
        roi: Roi | None,
        shape: Shape,
        black: tuple[FrameRange, ...],
        margin: int,
    ) -> None:
        self._expected = expected
        self._roi = roi
        self._shape = shape
        self._black = black
        self._black_cursor = RangeCursor(black)
        self._margin = margin
        self._size: tuple[int, int] | None = None
        self._far: PlaneFill | None = None  # where the luma must be black, as slices + mask
        self.frames = 0
        self.problems: list[str] = []
        self._max_outside: int | None = None
        self._max_black: int | None = None
        self._outside_bad = 0
        self._first_outside_bad: int | None = None
        self._black_bad = 0
        self._first_black_bad: int | None = None

    def check(self, frame: VideoFrame) -> None:
        index = self.frames
        self.frames += 1
        size = (frame.width, frame.height)
        if self._size is None:
            self._size = size
            self._prepare(*size)
        elif size != self._size:
            raise _Unverifiable(f"The picture size changes at frame {index}.")
        luma = plane_view(readable_frame(frame).planes[0])
        if self._far is not None:
            value = _max_in(luma, self._far)
            self._max_outside = max(value, self._max_outside or 0)
            if value > LUMA_LIMIT:
                self._outside_bad += 1
                if self._first_outside_bad is None:
                    self._first_outside_bad = index
        if index in self._black_cursor:
            value = int(luma.max())
            self._max_black = max(value, self._max_black or 0)
            if value > LUMA_LIMIT:
                self._black_bad += 1
                if self._first_black_bad is None:
                    self._first_black_bad = index

    def _prepare(self, width: int, height: int) -> None:
        if self._roi is None:
            return
        try:
            check_roi(self._roi, width, height)
        except ValueError as exc:
            raise _Unverifiable(str(exc)) from exc
        keep = luma_keep_mask(width, height, self._roi, self._shape)
        near = _dilate(keep, self._margin)
        if not near.all():
            self._far = PlaneFill.from_keep(near, LUMA_BLACK)

    def result(self) -> Verification:
        problems = list(self.problems)
        if self.frames != self._expected:
            problems.append(f"The output has {self.frames} frames; {self._expected} expected.")
        if self._outside_bad:
            problems.append(
                f"Outside the region (beyond {self._margin} px) the luma reaches "
                f"{self._max_outside} (limit {LUMA_LIMIT}) in {self._outside_bad} frames, "
                f"first at frame {self._first_outside_bad}."
            )
        if self._black_bad:
            problems.append(
                f"Frames that must be black reach luma {self._max_black} (limit {LUMA_LIMIT}) "
                f"in {self._black_bad} frames, first at frame {self._first_black_bad}."
            )
        return Verification(
            frames_checked=self.frames,
            frames_expected=self._expected,
            max_luma_outside=self._max_outside,
            margin_px=self._margin,
            max_luma_blackened=self._max_black,
            passed=not problems,
            problems=tuple(problems),
        )


def _max_in(luma: U8Array, far: PlaneFill) -> int:
    """Max of `luma` over the pixels `far` would fill (outside its kept area)."""
    value = 0
    for rows, cols in far.bands:
        value = max(value, int(luma[rows, cols].max()))
    if far.box is not None and far.box_outside is not None:
        value = max(value, int(np.max(luma[far.box], where=far.box_outside, initial=0)))
    return value


def _dilate(mask: BoolArray, k: int) -> BoolArray:
    """True within Chebyshev distance `k` of a True pixel of `mask`."""
    if k <= 0:
        return mask
    return _dilate_axis(_dilate_axis(mask, k, 1), k, 0)


def _dilate_axis(mask: BoolArray, k: int, axis: int) -> BoolArray:
    moved = np.moveaxis(mask, axis, -1)
    n = moved.shape[-1]
    # counts[..., i] = number of True in moved[..., :i]
    counts = np.zeros((*moved.shape[:-1], n + 1), dtype=np.int32)
    np.cumsum(moved, axis=-1, out=counts[..., 1:])
    idx = np.arange(n)
    window = counts[..., np.minimum(idx + k + 1, n)] - counts[..., np.maximum(idx - k, 0)]
    return np.asarray(np.moveaxis(window > 0, -1, axis), dtype=np.bool_)
