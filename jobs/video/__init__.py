"""Video core of vidcorrect: probe uploads, edit videos (mask outside a region, blacken and
remove frames), verify outputs and analyse videos for sensitive frames.

Depends only on the standard library, PyAV and numpy. All functions are blocking; call them
from a worker thread.
"""

from jobs.video.analyze import (
    Analysis,
    FrameDetector,
    FramePlanes,
    Label,
    Segment,
    SuggestedRoi,
    analyze_video,
)
from jobs.video.codec import EncodeOptions, ProgressCallback
from jobs.video.edit import EditOutcome, EditPlan, edit_video
from jobs.video.errors import (
    InvalidVideo,
    RotatedVideo,
    TruncatedVideo,
    VideoError,
    VideoTooLarge,
    VideoTooSmall,
)
from jobs.video.field_check import FieldCheck
from jobs.video.mask import MaskOutcome, mask_video
from jobs.video.planes import SHAPES, Roi, Shape, TextField, check_corner, check_roi
from jobs.video.probe import VideoInfo, probe
from jobs.video.timeline import FrameRange, format_ranges, merge_ranges
from jobs.video.verify import Verification, verify_output

__all__ = [
    "SHAPES",
    "Analysis",
    "EditOutcome",
    "EditPlan",
    "EncodeOptions",
    "FieldCheck",
    "FrameDetector",
    "FramePlanes",
    "FrameRange",
    "InvalidVideo",
    "Label",
    "MaskOutcome",
    "ProgressCallback",
    "Roi",
    "RotatedVideo",
    "Segment",
    "Shape",
    "SuggestedRoi",
    "TextField",
    "TruncatedVideo",
    "Verification",
    "VideoError",
    "VideoInfo",
    "VideoTooLarge",
    "VideoTooSmall",
    "analyze_video",
    "check_corner",
    "check_roi",
    "edit_video",
    "format_ranges",
    "mask_video",
    "merge_ranges",
    "probe",
    "verify_output",
]
