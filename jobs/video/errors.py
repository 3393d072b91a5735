"""Exceptions raised by the video core."""

from __future__ import annotations


class VideoError(Exception):
    """Base of problems with a video file; str(e) is a user-facing message.

    Messages never contain file paths or file contents; the underlying PyAV error, if any, is
    chained as ``__cause__`` for the logs.
    """


class InvalidVideo(VideoError):
    """The file is not a decodable video (empty, not a media file, no video stream, ...).

    ``code`` names the kind of problem for the error answer of an upload.
    """

    code = "not_a_video"


class TruncatedVideo(InvalidVideo):
    """The file's index points past its end: it was cut short (an interrupted upload?)."""

    code = "truncated_video"


class RotatedVideo(InvalidVideo):
    """The video is meant to be shown rotated or mirrored (a display matrix). Masks are defined
    on the stored picture, so they would land elsewhere than where the viewer looks."""

    code = "rotated_video"


class VideoTooSmall(InvalidVideo):
    """The file is a video, but its frames are too small to analyse or mask (under a tile a
    side). Nothing is damaged: the message says the size, not where decoding stopped."""


class VideoTooLarge(InvalidVideo):
    """The file is a video, but larger than the configured limits (frame size or count)."""

    code = "video_too_large"
