"""Video core of vidcorrect: probe uploads and black out everything outside a region.

Depends only on the standard library, PyAV and numpy. All functions are blocking; call them
from a worker thread.
"""

from jobs.video.errors import InvalidVideo, VideoError
from jobs.video.mask import (
    EncodeOptions,
    MaskOutcome,
    ProgressCallback,
    Roi,
    Shape,
    mask_video,
)
from jobs.video.planes import check_roi
from jobs.video.probe import VideoInfo, probe

__all__ = [
    "EncodeOptions",
    "InvalidVideo",
    "MaskOutcome",
    "ProgressCallback",
    "Roi",
    "Shape",
    "VideoError",
    "VideoInfo",
    "check_roi",
    "mask_video",
    "probe",
]
