"""Exceptions raised by the video core."""

from __future__ import annotations


class VideoError(Exception):
    """Base of problems with a video file; str(e) is a user-facing message.

    Messages never contain file paths or file contents; the underlying PyAV error, if any, is
    chained as ``__cause__`` for the logs.
    """


class InvalidVideo(VideoError):
    """The file is not a decodable video (empty, not a media file, no video stream, ...)."""


class VideoTooLarge(InvalidVideo):
    """The file is a video, but larger than the configured limits (frame size or count)."""
