"""PyAV plumbing shared by the editing pipeline: output streams, per-frame preparation, error
mapping of demux/decode/encode/mux, and copying or transcoding the audio stream."""

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
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane
from av.video.reformatter import ColorRange
from av.video.stream import VideoStream

from jobs.video.errors import InvalidVideo, VideoError
from jobs.video.planes import U8Array

ProgressCallback = Callable[[int], None]
"""Called with the number of frames done, from the thread running the video function."""

# Audio codecs copied into the MP4 as they are; anything else (PCM, ...) becomes AAC.
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
FALLBACK_RATE = Fraction(25)
# 8-bit planar YUV layouts that numpy can read plane by plane without conversion.
PLANAR_YUV8 = frozenset({"yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p", "yuv410p"})


@dataclass(frozen=True)
class EncodeOptions:
    """libx264 settings of the output."""

    preset: str = "veryfast"
    crf: int = 18


DEFAULT_ENCODE = EncodeOptions()

#: libx264 options that keep what a decoded frame carries besides its picture out of the output:
#: FFmpeg's wrapper writes a frame's A/53 closed captions as an SEI message unless a53cc is off
#: (it is on by default) and its unregistered user data SEI when udu_sei is on (off by
#: default). Either could hold a patient's name from the source (see nal.py).
NO_FRAME_SEI = {"a53cc": "0", "udu_sei": "0"}

#: Encoder threads of a chunk's part (see chunks.encode_chunk): fixed, because libx264's
#: output depends on its thread count, and a part must be the same bytes on every machine.
PART_THREADS = 2

#: x264 settings of a chunk's part, on top of the preset and CRF: headers that do not depend on
#: the content (stitchable), so that every part has the same SPS/PPS and the parts can follow
#: one another in one stream; closed GOPs; a fixed number of frame and lookahead threads.
PART_X264_PARAMS = f"stitchable=1:open-gop=0:threads={PART_THREADS}:lookahead-threads=1"


#: The MP4 muxer's flags for every output: ``faststart`` moves the index (the ``moov`` box) in
#: front of the media data once the file is complete (a second pass over the file as it is
#: closed), so a browser or player given the output over HTTP starts playing after its first
#: bytes instead of seeking to the end for the index.
MP4_MUXER_OPTIONS = {"movflags": "+faststart"}


def open_mp4_output(dst: Path, extra: dict[str, str] | None = None) -> OutputContainer:
    """`dst` opened for writing as an MP4 with :data:`MP4_MUXER_OPTIONS` and `extra` (options
    of the muxer only, not of its streams' encoders)."""
    options = {**MP4_MUXER_OPTIONS, **(extra or {})}
    return av.open(str(dst), "w", format="mp4", container_options=options)


def output_pix_fmt(width: int, height: int) -> str:
    """yuv420p, or yuv444p when a dimension is odd (libx264 cannot encode odd 4:2:0)."""
    return "yuv444p" if width % 2 == 1 or height % 2 == 1 else "yuv420p"


def add_video_output(
    out: OutputContainer,
    vin: VideoStream,
    width: int,
    height: int,
    pix_fmt: str,
    encode: EncodeOptions,
    *,
    part: bool = False,
) -> VideoStream:
    """A libx264 stream with the source's rate, time base and colour description; with `part`,
    set up for a chunk's part (PART_X264_PARAMS, PART_THREADS threads)."""
    rate = vin.average_rate or vin.guessed_rate or FALLBACK_RATE
    vout = out.add_stream("libx264", rate=rate)
    ctx = vout.codec_context
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = pix_fmt
    ctx.thread_type = "FRAME"
    options = {"preset": encode.preset, "crf": str(encode.crf), **NO_FRAME_SEI}
    if part:
        ctx.thread_count = PART_THREADS
        options["x264-params"] = PART_X264_PARAMS
    ctx.options = options
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


def frame_step(vin: VideoStream) -> int:
    """One frame's duration in the stream's time base (at least 1), to repair missing pts."""
    rate = vin.average_rate or vin.guessed_rate or FALLBACK_RATE
    if not vin.time_base:
        return 1
    return max(1, round(1 / (rate * vin.time_base)))


def plane_view(plane: VideoPlane) -> U8Array:
    """A writable (height, width) uint8 view of an 8-bit plane, without the line padding."""
    rows: U8Array = np.frombuffer(memoryview(plane), np.uint8).reshape(
        plane.height, plane.line_size
    )
    return rows[:, : plane.width]


def editable_frame(frame: VideoFrame, pix_fmt: str) -> VideoFrame:
    """`frame` in limited-range `pix_fmt`, safe to edit in place.

    Other formats go through swscale YUV->YUV (other subsampling, bit depth, or full range ->
    limited range). Otherwise the frame gets a private copy of its buffers: the decoder may
    still reference this picture for later frames, and editing it would corrupt them.
    """
    if frame.format.name != pix_fmt or frame.color_range == ColorRange.JPEG.value:
        return frame.reformat(format=pix_fmt, dst_color_range=ColorRange.MPEG)
    frame.make_writable()
    return frame


def readable_frame(frame: VideoFrame) -> VideoFrame:
    """`frame` itself when its planes are 8-bit limited-range YUV, else a yuv420p conversion
    (for reading only)."""
    if frame.format.name in PLANAR_YUV8 and frame.color_range != ColorRange.JPEG.value:
        return frame
    return frame.reformat(format="yuv420p", dst_color_range=ColorRange.MPEG)


class PtsRepair:
    """Gives every frame a strictly increasing pts, repairing missing or non-increasing ones
    (which the MP4 muxer would reject) without dropping frames; sane files pass unchanged."""

    def __init__(self, step: int) -> None:
        self._step = step
        self._last: int | None = None

    def __call__(self, pts: int | None) -> int:
        """The repaired pts of the next frame, whose decoded pts is `pts`."""
        if self._last is not None and (pts is None or pts <= self._last):
            pts = self._last + self._step
        elif pts is None:
            pts = 0
        self._last = pts
        return pts


def add_aac_output(out: OutputContainer, ain: AudioStream) -> AudioStream:
    """An AAC stream with the source's sample rate and channel layout, time base 1/rate."""
    aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48_000)
    aout.layout = ain.codec_context.layout
    aout.codec_context.time_base = Fraction(1, aout.codec_context.sample_rate)
    return aout


class AudioRelay:
    """Copies the first audio stream into the output, or transcodes it to AAC."""

    def __init__(self, out: OutputContainer, ain: AudioStream, aout: AudioStream, copy: bool):
        self._out = out
        self._ain = ain
        self._aout = aout
        self._copy = copy

    @classmethod
    def create(cls, out: OutputContainer, ain: AudioStream) -> AudioRelay:
        """Add the output audio stream: a copy when MP4 can hold the codec, else AAC."""
        if ain.codec.canonical_name in MP4_AUDIO_COPY:
            try:
                return cls(out, ain, out.add_stream_from_template(ain), copy=True)
            except ValueError:  # PyAV's "format does not support codec"
                pass
        return cls(out, ain, add_aac_output(out, ain), copy=False)

    def relay(self, packet: Packet[Stream]) -> None:
        """Write (or transcode) one demuxed packet of the source audio stream."""
        if self._copy:
            if packet.dts is None:  # the demuxer's empty flush packet
                return
            packet.stream = self._aout
            mux(self._out, packet)
        else:
            for frame in decode_audio(self._ain, packet):
                mux(self._out, encode_frame(self._aout, frame))

    def finish(self) -> None:
        """Flush the audio encoder, if any."""
        if not self._copy:
            mux(self._out, encode_frame(self._aout, None))


def demux(inp: InputContainer, streams: tuple[Stream, ...]) -> Iterator[Packet[Stream]]:
    """inp.demux(streams), with FFmpeg errors as InvalidVideo."""
    try:
        yield from inp.demux(streams)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise InvalidVideo("The video file is damaged and cannot be read to the end.") from exc


def decode_video(stream: VideoStream, packet: Packet[Stream]) -> list[VideoFrame]:
    """stream.decode(packet), with FFmpeg errors as InvalidVideo."""
    try:
        return stream.decode(packet)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise InvalidVideo("The video file is damaged and cannot be decoded.") from exc


def decode_audio(stream: AudioStream, packet: Packet[Stream]) -> list[AudioFrame]:
    """stream.decode(packet), with FFmpeg errors as InvalidVideo."""
    try:
        return stream.decode(packet)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise InvalidVideo("The audio track is damaged and cannot be decoded.") from exc


def encode_frame(
    stream: VideoStream | AudioStream, frame: VideoFrame | AudioFrame | None
) -> list[Packet[Stream]]:
    """stream.encode(frame), with FFmpeg errors as VideoError."""
    try:
        return stream.encode(frame)  # type: ignore[arg-type]
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise VideoError("The output video could not be encoded.") from exc


def mux(out: OutputContainer, packets: Packet[Stream] | list[Packet[Stream]]) -> None:
    """out.mux(packets), with FFmpeg errors as VideoError."""
    try:
        out.mux(packets)
    except OSError:
        raise
    except av.error.FFmpegError as exc:
        raise VideoError("The output video could not be written.") from exc
