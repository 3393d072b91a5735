"""Probing: is a file a decodable video, and what are its properties?"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import cast

import av
import av.error
from av.container import InputContainer
from av.sidedata.sidedata import SideData
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from jobs.video.detectors import TILE
from jobs.video.errors import (
    InvalidVideo,
    RotatedVideo,
    TruncatedVideo,
    VideoTooLarge,
    VideoTooSmall,
)

# Demuxers that "succeed" on things that are not videos: text rendered as ANSI art, and
# single still images.
_NOT_VIDEO_FORMATS = {"tty", "image2"}
_IMAGE_FORMAT_SUFFIX = "_pipe"

# Extensions for formats whose FFmpeg name is not itself a usual extension (or whose
# extension list is empty).
_FORMAT_EXTENSIONS = {
    "mpegts": "ts",
    "mpeg": "mpg",
    "asf": "wmv",
    "matroska": "mkv",
}
_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis"}
_SAFE_EXTENSION = re.compile(r"[a-z0-9]{1,10}")


@dataclass(frozen=True)
class VideoInfo:
    """What probe() found out about a video file."""

    width: int
    height: int
    fps: float  # average frame rate, e.g. 25.0 or 29.97 (0.0 if unknown)
    frame_count: int  # from the container when it says, else counted by demuxing packets
    duration: float  # seconds
    codec: str  # e.g. "h264"
    pix_fmt: str  # e.g. "yuv420p"
    has_audio: bool
    audio_codec: str | None
    extension: str  # file extension (no dot) matching the container, e.g. "mp4", "mkv"


def open_input(path: Path) -> InputContainer:
    """Open `path` read-only with PyAV; InvalidVideo if it is not a media file, TruncatedVideo
    if its index refers to data past its end (so no job works on a file cut short).

    OSErrors (missing file, permissions) are not the upload's fault and propagate unchanged.
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidVideo("The file is empty.")
    try:
        container = av.open(str(path), "r")
    except OSError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InvalidVideo("The file is not a recognized video file.") from exc
    name = container.format.name
    if name in _NOT_VIDEO_FORMATS or name.endswith(_IMAGE_FORMAT_SUFFIX):
        container.close()
        raise InvalidVideo("The file is not a video (it looks like text or a still image).")
    try:
        _check_complete(container, size)
    except TruncatedVideo:
        container.close()
        raise
    return container


def select_video_stream(container: InputContainer) -> VideoStream:
    """The first real video stream (cover art, i.e. attached pictures, does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:
            return stream
    raise InvalidVideo("The file contains no video stream.")


def probe(
    path: Path,
    filename_hint: str | None = None,
    *,
    max_side: int | None = None,
    max_frames: int | None = None,
) -> VideoInfo:
    """Describe the video at `path` (opened read-only), decoding its first frame.

    Raises InvalidVideo with a user-facing message unless the file is a video that PyAV can
    decode. `filename_hint` (e.g. the uploaded file's name) provides the preferred extension
    when its suffix is one of the detected container format's extensions. A video wider or
    taller than `max_side` pixels, or with more than `max_frames` frames, raises VideoTooLarge;
    the frame size is checked before anything is decoded and counting stops past the limit.
    """
    with open_input(path) as container:
        stream = select_video_stream(container)
        ctx = stream.codec_context
        check_size(ctx.width, ctx.height, max_side)
        _check_frames(stream.frames, max_frames)
        first, counted = _first_frame_and_count(
            container, stream, count=stream.frames <= 0, max_frames=max_frames
        )
        _check_upright(first)
        width = ctx.width or first.width
        height = ctx.height or first.height
        check_size(width, height, max_side)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frame_count = stream.frames if stream.frames > 0 else counted
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            width=width,
            height=height,
            fps=fps,
            frame_count=frame_count,
            duration=_duration(container, stream, frame_count, fps),
            codec=stream.codec.canonical_name,
            pix_fmt=ctx.pix_fmt or first.format.name,
            has_audio=audio is not None,
            audio_codec=audio.codec.canonical_name if audio is not None else None,
            extension=_extension(container, filename_hint),
        )


def _check_complete(container: InputContainer, size: int) -> None:
    """Raise TruncatedVideo when the container's index (MP4/MOV sample tables, Matroska cues)
    places media data beyond the end of the file. Such a file was cut short: its frames from
    the cut on are missing, and a job would quietly write a shorter video."""
    for stream in container.streams:
        if stream.type not in ("video", "audio"):
            continue
        entries = stream.index_entries
        if len(entries) == 0:
            continue
        last = entries[len(entries) - 1]
        if last.pos >= 0 and last.pos + last.size > size:
            raise TruncatedVideo(
                "The file is cut short: its index refers to media data past its end (an "
                "interrupted upload or copy?). Upload the complete file."
            )


def _check_upright(frame: VideoFrame) -> None:
    """Raise RotatedVideo when the video is meant to be shown rotated or mirrored."""
    try:
        # PyAV's stub lists only motion vectors; the container is a mapping of every type.
        sides = cast("Mapping[SideDataType, SideData]", frame.side_data)
        matrix = bytes(sides[SideDataType.DISPLAYMATRIX])
    except KeyError:
        return
    if len(matrix) < 36:
        return
    # The display matrix: a, b, c, d of its 2x2 linear part (16.16 fixed point); rotations and
    # mirrorings change their signs or swap them.
    a, b, _, c, d, *_ = struct.unpack("=9i", matrix[:36])
    if b != 0 or c != 0 or a <= 0 or d <= 0:  # only scaling keeps the mask where it is seen
        turned = f"turned by {abs(frame.rotation)} degrees" if frame.rotation else "mirrored"
        raise RotatedVideo(
            f"The video is stored sideways or mirrored and meant to be shown {turned} (rotation "
            "metadata). Masks are placed on the stored picture, so they would not cover what "
            "a viewer sees; re-encode the video upright (e.g. ffmpeg -i in.mp4 out.mp4, which "
            "applies the rotation) and upload that."
        )


#: Smaller frames are no endoscopy video, and smaller than one tile of the analysis.
MIN_SIDE = TILE


def check_size(width: int, height: int, max_side: int | None = None) -> None:
    """Raise VideoTooSmall for a frame under MIN_SIDE pixels a side (a size of 0 is not known
    yet), VideoTooLarge for one over `max_side`."""
    if 0 < min(width, height) < MIN_SIDE:
        raise VideoTooSmall(
            f"The video is {width}x{height} pixels; at least {MIN_SIDE} pixels a side are needed."
        )
    if max_side is not None and max(width, height) > max_side:
        raise VideoTooLarge(
            f"The video is {width}x{height} pixels; at most {max_side} pixels a side are accepted."
        )


def _check_frames(frames: int, max_frames: int | None) -> None:
    if max_frames is not None and frames > max_frames:
        raise VideoTooLarge(
            f"The video has more than {max_frames} frames; at most {max_frames} are accepted."
        )


def _first_frame_and_count(
    container: InputContainer, stream: VideoStream, *, count: bool, max_frames: int | None
) -> tuple[VideoFrame, int]:
    """Decode until the first frame; if `count`, keep demuxing (not decoding) to the end and
    return the number of video packets too (VideoTooLarge as soon as it passes `max_frames`)."""
    first: VideoFrame | None = None
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size > 0:
                packets += 1
                _check_frames(packets, max_frames)
            if first is None:
                frames = packet.decode()
                if frames:
                    first = frames[0]
            if first is not None and not count:
                break
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        if first is None:
            raise InvalidVideo("The video stream could not be decoded.") from exc
        # A damaged tail only makes the count approximate; the first frame decoded fine.
    if first is None:
        raise InvalidVideo("The video stream contains no decodable frame.")
    return first, packets


def _duration(container: InputContainer, stream: VideoStream, frames: int, fps: float) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return frames / fps if fps else 0.0


def _extension(container: InputContainer, filename_hint: str | None) -> str:
    """A file extension for the container: the hint's suffix when it fits the format, else a
    usual one for the format."""
    fmt = container.format
    known = {ext.lower() for ext in fmt.extensions}
    if filename_hint:
        suffix = PurePath(filename_hint).suffix.lower().lstrip(".")
        if suffix in known and _SAFE_EXTENSION.fullmatch(suffix):
            return suffix
    names = fmt.name.split(",")
    if "mov" in names and "mp4" in names:
        brand = container.metadata.get("major_brand", "").strip()
        return "mov" if brand == "qt" else "mp4"
    if "matroska" in names:
        codecs = {s.codec.canonical_name for s in container.streams if s.type in ("video", "audio")}
        return "webm" if codecs and codecs <= _WEBM_CODECS else "mkv"
    for name in names:
        if name in _FORMAT_EXTENSIONS:
            return _FORMAT_EXTENSIONS[name]
        if name in known:
            return name
    candidates = sorted(e for e in known if _SAFE_EXTENSION.fullmatch(e))
    if candidates:
        return candidates[0]
    fallback = re.sub(r"[^a-z0-9]", "", names[0].lower())[:10]
    return fallback or "bin"
