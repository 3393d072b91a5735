"""Masking: black out everything outside a region of interest and re-encode to H.264 MP4.

Pipeline (one pass, constant memory): demux video + first audio stream -> decode video with
frame threading -> blank the outside of the ROI directly in the YUV planes with numpy (no RGB
round trip) -> libx264 -> MP4. Audio packets are copied unchanged (or transcoded to AAC when
the codec is not fit for MP4). Frame count, frame rate and every frame's timestamp are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.plane import VideoPlane
from av.video.reformatter import ColorRange
from av.video.stream import VideoStream

from jobs.video.errors import InvalidVideo, VideoError
from jobs.video.planes import SHAPES, PlaneFill, Roi, Shape, U8Array, check_roi, plane_fills
from jobs.video.probe import open_input, select_video_stream

__all__ = [
    "EncodeOptions",
    "MaskOutcome",
    "ProgressCallback",
    "Roi",
    "Shape",
    "mask_video",
]

ProgressCallback = Callable[[int], None]
"""Called with the number of frames done, from the thread running mask_video."""

# Audio codecs copied into the MP4 as they are; anything else (PCM, ...) becomes AAC.
_MP4_AUDIO_COPY = {"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"}
_FALLBACK_RATE = Fraction(25)


@dataclass(frozen=True)
class EncodeOptions:
    """libx264 settings of the masked output."""

    preset: str = "veryfast"
    crf: int = 18


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
    encode: EncodeOptions = EncodeOptions(),
    on_progress: ProgressCallback | None = None,
) -> MaskOutcome:
    """Write to `dst` (MP4, whatever its suffix) a copy of the video `src` in which everything
    outside `roi` (a rectangle, or the ellipse inscribed in it) is black.

    Blocking; run it in a worker thread. `src` is only read. The output is H.264 in limited
    range yuv420p, or yuv444p when the width or height is odd (libx264 cannot encode odd sizes
    in 4:2:0), with the source's size, frame count, frame rate and frame timestamps; the first
    audio stream is kept, other streams are dropped. `on_progress` gets the number of frames
    done after every frame and once more at the end.

    Raises ValueError if `roi` is empty or not inside the frame (or `shape` is unknown),
    InvalidVideo if the source cannot be decoded, VideoError if encoding fails. OSErrors
    (e.g. disk full) propagate. On error `dst` is closed but left in place for the caller.
    """
    if shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {shape!r}; expected one of {SHAPES}.")
    with open_input(src) as inp:
        vin = select_video_stream(inp)
        width, height = vin.codec_context.width, vin.codec_context.height
        if width <= 0 or height <= 0:
            raise InvalidVideo("The video stream has no picture size.")
        check_roi(roi, width, height)
        ain = inp.streams.audio[0] if inp.streams.audio else None

        odd = width % 2 == 1 or height % 2 == 1
        pix_fmt = "yuv444p" if odd else "yuv420p"
        fills = plane_fills(width, height, roi, shape, *((1, 1) if odd else (2, 2)))

        # Default slice threading leaves H.264 decoding on one core.
        vin.codec_context.thread_type = "AUTO"
        with av.open(str(dst), "w", format="mp4") as out:
            vout = _add_video_output(out, vin, width, height, pix_fmt, encode)
            audio = _AudioRelay.create(out, ain) if ain is not None else None
            masker = _FrameMasker(vout, width, height, pix_fmt, fills, _frame_step(vin))
            done = 0
            streams: tuple[Stream, ...] = (vin,) if ain is None else (vin, ain)
            for packet in _demux(inp, streams):
                # Not packet.stream_index: PyAV's end-of-stream flush packets all say 0.
                if packet.stream.index == vin.index:
                    for frame in _decode_video(vin, packet):
                        _mux(out, _encode(vout, masker.mask(frame)))
                        done += 1
                        if on_progress is not None:
                            on_progress(done)
                elif audio is not None:
                    audio.relay(packet)
            _mux(out, _encode(vout, None))
            if audio is not None:
                audio.finish()
            if done == 0:
                raise InvalidVideo("The video stream contains no decodable frame.")
    if on_progress is not None:
        on_progress(done)
    return MaskOutcome(frames=done, width=width, height=height, has_audio=audio is not None)


def _add_video_output(
    out: OutputContainer,
    vin: VideoStream,
    width: int,
    height: int,
    pix_fmt: str,
    encode: EncodeOptions,
) -> VideoStream:
    rate = vin.average_rate or vin.guessed_rate or _FALLBACK_RATE
    vout = out.add_stream("libx264", rate=rate)
    ctx = vout.codec_context
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = pix_fmt
    ctx.thread_type = "FRAME"
    ctx.options = {"preset": encode.preset, "crf": str(encode.crf)}
    # Keep the source's timestamps: same time base, each frame keeps its pts.
    if vin.time_base:
        ctx.time_base = vin.time_base
        vout.time_base = vin.time_base
    ctx.color_range = ColorRange.MPEG.value
    ctx.colorspace = vin.codec_context.colorspace
    ctx.color_primaries = vin.codec_context.color_primaries
    ctx.color_trc = vin.codec_context.color_trc
    if vin.codec_context.sample_aspect_ratio:
        ctx.sample_aspect_ratio = vin.codec_context.sample_aspect_ratio
    return vout


def _frame_step(vin: VideoStream) -> int:
    """One frame's duration in the stream's time base (at least 1), to repair missing pts."""
    rate = vin.average_rate or vin.guessed_rate or _FALLBACK_RATE
    if not vin.time_base:
        return 1
    return max(1, round(1 / (rate * vin.time_base)))


class _FrameMasker:
    """Turns decoded frames into masked frames ready for the encoder."""

    def __init__(
        self,
        vout: VideoStream,
        width: int,
        height: int,
        pix_fmt: str,
        fills: tuple[PlaneFill, PlaneFill, PlaneFill],
        step: int,
    ) -> None:
        self._time_base = vout.codec_context.time_base
        self._width = width
        self._height = height
        self._pix_fmt = pix_fmt
        self._fills = fills
        self._step = step
        self._last_pts: int | None = None

    def mask(self, frame: VideoFrame) -> VideoFrame:
        if frame.width != self._width or frame.height != self._height:
            raise InvalidVideo("The picture size changes within the video; this is not supported.")
        if frame.format.name != self._pix_fmt or frame.color_range == ColorRange.JPEG.value:
            # swscale YUV->YUV (other subsampling, bit depth, or full range -> limited range).
            frame = frame.reformat(format=self._pix_fmt, dst_color_range=ColorRange.MPEG)
        else:
            # The decoder may still reference this picture for later frames: without a private
            # copy, blanking it would corrupt the frames predicted from it.
            frame.make_writable()
        for plane, fill in zip(frame.planes, self._fills, strict=True):
            fill.apply(_plane_view(plane))
        self._fix_pts(frame)
        frame.pict_type = PictureType.NONE  # let x264 choose its own frame types
        return frame

    def _fix_pts(self, frame: VideoFrame) -> None:
        # Decoders give every frame a pts for sane files; repair missing or non-increasing ones
        # (which the MP4 muxer would reject) without dropping frames.
        pts = frame.pts
        if self._last_pts is not None and (pts is None or pts <= self._last_pts):
            pts = self._last_pts + self._step
        elif pts is None:
            pts = 0
        frame.pts = pts
        frame.time_base = self._time_base
        self._last_pts = pts


def _plane_view(plane: VideoPlane) -> U8Array:
    """A writable (height, width) uint8 view of an 8-bit plane, without the line padding."""
    rows: U8Array = np.frombuffer(memoryview(plane), np.uint8).reshape(
        plane.height, plane.line_size
    )
    return rows[:, : plane.width]


class _AudioRelay:
    """Copies the first audio stream into the output, or transcodes it to AAC."""

    def __init__(self, out: OutputContainer, ain: AudioStream, aout: AudioStream, copy: bool):
        self._out = out
        self._ain = ain
        self._aout = aout
        self._copy = copy

    @classmethod
    def create(cls, out: OutputContainer, ain: AudioStream) -> _AudioRelay:
        if ain.codec.canonical_name in _MP4_AUDIO_COPY:
            try:
                return cls(out, ain, out.add_stream_from_template(ain), copy=True)
            except ValueError:  # PyAV's "format does not support codec"
                pass
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48_000)
        aout.layout = ain.codec_context.layout
        aout.codec_context.time_base = Fraction(1, aout.codec_context.sample_rate)
        return cls(out, ain, aout, copy=False)

    def relay(self, packet: Packet[Stream]) -> None:
        if self._copy:
            if packet.dts is None:  # the demuxer's empty flush packet
                return
            packet.stream = self._aout
            _mux(self._out, packet)
        else:
            try:
                frames = self._ain.decode(packet)
            except av.error.FFmpegError as exc:
                if isinstance(exc, OSError):
                    raise
                raise InvalidVideo("The audio track is damaged and cannot be decoded.") from exc
            for frame in frames:
                _mux(self._out, _encode(self._aout, frame))

    def finish(self) -> None:
        if not self._copy:
            _mux(self._out, _encode(self._aout, None))


def _demux(inp: InputContainer, streams: tuple[Stream, ...]) -> Iterator[Packet[Stream]]:
    try:
        yield from inp.demux(streams)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise InvalidVideo("The video file is damaged and cannot be read to the end.") from exc


def _decode_video(stream: VideoStream, packet: Packet[Stream]) -> list[VideoFrame]:
    try:
        return stream.decode(packet)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise InvalidVideo("The video file is damaged and cannot be decoded.") from exc


def _encode(
    stream: VideoStream | AudioStream, frame: VideoFrame | AudioFrame | None
) -> list[Packet[Stream]]:
    try:
        return stream.encode(frame)  # type: ignore[arg-type]
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise VideoError("The masked video could not be encoded.") from exc


def _mux(out: OutputContainer, packets: Packet[Stream] | list[Packet[Stream]]) -> None:
    try:
        out.mux(packets)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise VideoError("The masked video could not be written.") from exc
