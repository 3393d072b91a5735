"""Masking: black out everything outside a region of interest and re-encode to H.264 MP4.

A thin wrapper over :func:`jobs.video.edit.edit_video` with a plan that only masks: one pass,
constant memory, the outside of the ROI blanked directly in the YUV planes with numpy (no RGB
round trip), audio packets copied unchanged (or transcoded to AAC when the codec is not fit
for MP4). Frame count, frame rate and every frame's timestamp are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.video.codec import DEFAULT_ENCODE, EncodeOptions, ProgressCallback
from jobs.video.edit import EditPlan, edit_video
from jobs.video.planes import Roi, Shape

__all__ = [
    "EncodeOptions",
    "MaskOutcome",
    "ProgressCallback",
    "Roi",
    "Shape",
    "mask_video",
]


@dataclass(frozen=True)
class MaskOutcome:
    """What mask_video wrote."""

    frames: int
    width: int
    height: int
    has_audio: bool


def mask_video(
    src: Path,
    dst: Path,
    roi: Roi,
    shape: Shape,
    *,
    corner: int = 0,
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
) -> MaskOutcome:
    """Write to `dst` (MP4, whatever its suffix) a copy of the video `src` in which everything
    outside `roi` (a rectangle, the ellipse inscribed in it, or an octagon: the rectangle with
    `corner` pixels cut off each corner at 45 degrees) is black.

    Blocking; run it in a worker thread. `src` is only read. The output is H.264 in limited
    range yuv420p, or yuv444p when the width or height is odd (libx264 cannot encode odd sizes
    in 4:2:0), with the source's size, frame count, frame rate and frame timestamps; the first
    audio stream is kept, other streams are dropped. `on_progress` gets the number of frames
    done after every frame and once more at the end.

    Raises ValueError if `roi` is empty or not inside the frame (or `shape` is unknown),
    InvalidVideo if the source cannot be decoded, VideoError if encoding fails. OSErrors
    (e.g. disk full) propagate. On error `dst` is closed but left in place for the caller.
    """
    outcome = edit_video(
        src,
        dst,
        EditPlan(roi=roi, shape=shape, corner=corner),
        encode=encode,
        on_progress=on_progress,
    )
    return MaskOutcome(
        frames=outcome.frames_out,
        width=outcome.width,
        height=outcome.height,
        has_audio=outcome.has_audio,
    )
