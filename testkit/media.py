"""Synthetic test media generated with PyAV (no downloads, no ffmpeg CLI).

The generated videos are bright and colourful in every pixel: luma stays far above black (16)
and both chroma planes stay far from neutral (128) across the whole frame, including the moving
disc. So if a mask leaks anything, a check that the masked area is black and neutral fails.

The picture is a smooth texture that scrolls 2 luma pixels per frame (so the blocks of P and B
frames are predicted from shifted areas of earlier frames, also across any mask boundary) plus
a disc moving diagonally across the whole frame. It compresses well at CRF 18, and libx264's
default B-frames make the decoding order differ from the presentation order.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane
from av.video.stream import VideoStream

Plane = npt.NDArray[Any]  # uint8, or uint16 for > 8-bit formats

SCROLL_PX_PER_FRAME = 2
AUDIO_RATE = 48_000
AUDIO_FRAME_SAMPLES = 1024
TONE_HZ = 440.0

# Per plane (Y, U, V): base level, amplitude of the x wave, amplitude of the y wave, disc value.
# Ranges (8-bit): Y 60..190 (disc 225), U 145..195 (disc 90), V 60..110 (disc 190).
_PLANE_LOOKS = (
    (125.0, 40.0, 25.0, 225),
    (170.0, 15.0, 10.0, 90),
    (85.0, 15.0, 10.0, 190),
)


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: copies of its planes (cropped to the visible width) and its time."""

    y: Plane
    u: Plane
    v: Plane
    time: float  # presentation time in seconds
    pts: int
    pix_fmt: str


def plane_array(plane: VideoPlane, frame: VideoFrame) -> Plane:
    """Return a writable-if-possible (height, width) numpy view of a plane, padding cropped."""
    dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
    item = np.dtype(dtype).itemsize
    arr: Plane = np.frombuffer(memoryview(plane), dtype)
    return arr.reshape(plane.height, plane.line_size // item)[:, : plane.width]


def _wave_plane(
    width: int, height: int, extra: int, sx: float, sy: float, look: tuple[float, ...]
) -> npt.NDArray[np.float32]:
    """A smooth texture in plane coordinates, `extra` columns wider than the plane."""
    base, ax, ay, _ = look
    xs = (np.arange(width + extra, dtype=np.float32) + 0.5) * sx
    ys = (np.arange(height, dtype=np.float32) + 0.5) * sy
    row = ax * np.sin(xs * np.float32(2 * math.pi / 97.0))
    col = ay * np.sin(ys * np.float32(2 * math.pi / 71.0))
    out: npt.NDArray[np.float32] = (np.float32(base) + col[:, None] + row[None, :]).astype(
        np.float32
    )
    return out


def _draw_disc(view: Plane, cx: float, cy: float, rx: float, ry: float, value: int) -> None:
    h, w = view.shape
    x0, x1 = max(0, math.floor(cx - rx)), min(w, math.ceil(cx + rx) + 1)
    y0, y1 = max(0, math.floor(cy - ry)), min(h, math.ceil(cy + ry) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    xs = (np.arange(x0, x1) + 0.5 - cx) / rx
    ys = (np.arange(y0, y1) + 0.5 - cy) / ry
    inside = xs[None, :] ** 2 + ys[:, None] ** 2 <= 1.0
    np.copyto(view[y0:y1, x0:x1], value, where=inside, casting="unsafe")


def make_video(
    path: Path,
    *,
    width: int,
    height: int,
    fps: int | Fraction = 25,
    seconds: float = 2.0,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    container_format: str = "mp4",
    audio_codec: str = "aac",
    crf: int = 18,
    faststart: bool = False,
    numbered: bool = False,
    burned_in: tuple[tuple[int, int, int, int], ...] = (),
) -> Path:
    """Write a synthetic video (default: H.264 yuv420p + AAC stereo sine tone in MP4).

    `numbered`: frame i also shows the number i in binary (CodeRow, over neutral chroma) and
    the audio during frame i is a tone of tone_hz(i) (numbered_audio), as in
    make_numbered_video, so that an external check can tell every frame and its sound apart.

    `burned_in`: boxes (x, y, width, height) drawn in peak white luma (8-bit 235) on every
    frame, as a video processor burns in patient data (8-bit formats only).

    `pix_fmt` is the encoder's pixel format (e.g. "yuv444p" for odd sizes, "yuvj420p",
    "yuv422p", "yuv420p10le"); `container_format` an FFmpeg muxer name ("mp4", "mov",
    "matroska", ...); `faststart` writes the MP4/MOV index (moov) before the media data.
    Returns `path`.
    """
    rate = Fraction(fps)
    n_frames = max(1, round(seconds * rate))
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=options) as out:
        vstream = out.add_stream(codec, rate=rate)
        assert isinstance(vstream, VideoStream)
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = pix_fmt
        vstream.codec_context.time_base = 1 / rate
        if codec == "libx264":
            vstream.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
        astream: AudioStream | None = None
        if audio:
            added = out.add_stream(audio_codec, rate=AUDIO_RATE)
            assert isinstance(added, AudioStream)
            added.layout = "stereo"
            astream = added

        _write_picture(out, vstream, width, height, pix_fmt, n_frames, numbered, burned_in)
        if astream is not None:
            _write_tone(out, astream, n_frames / float(rate), rate if numbered else None)
    return path


def _write_picture(
    out: OutputContainer,
    vstream: VideoStream,
    width: int,
    height: int,
    pix_fmt: str,
    n: int,
    numbered: bool = False,
    burned_in: tuple[tuple[int, int, int, int], ...] = (),
) -> None:
    probe_frame = VideoFrame(width, height, pix_fmt)
    bits = probe_frame.format.components[0].bits
    scale = float(1 << (bits - 8))
    dtype = np.uint16 if bits > 8 else np.uint8
    max_shift = SCROLL_PX_PER_FRAME * n
    waves = []
    for index, plane in enumerate(probe_frame.planes[:3]):
        sx, sy = width / plane.width, height / plane.height
        extra = math.ceil(max_shift / sx) + 1
        wave = _wave_plane(plane.width, plane.height, extra, sx, sy, _PLANE_LOOKS[index])
        waves.append((wave * np.float32(scale)).astype(dtype))

    radius = max(4.0, min(width, height) / 7)
    for i in range(n):
        frame = VideoFrame(width, height, pix_fmt)
        t = i / max(1, n - 1)
        cx = -radius + t * (width + 2 * radius)
        cy = -radius + t * (height + 2 * radius)
        for index, plane in enumerate(frame.planes[:3]):
            sx, sy = width / plane.width, height / plane.height
            off = round(SCROLL_PX_PER_FRAME * i / sx)
            view = plane_array(plane, frame)
            view[:] = waves[index][:, off : off + plane.width]
            value = round(_PLANE_LOOKS[index][3] * scale)
            _draw_disc(view, cx / sx, cy / sy, radius / sx, radius / sy, value)
        if numbered:
            _draw_number(frame, i, scale)
        luma = plane_array(frame.planes[0], frame)
        for x, y, w, h in burned_in:
            luma[y : y + h, x : x + w] = 235
        frame.pts = i
        frame.time_base = vstream.codec_context.time_base
        out.mux(vstream.encode(frame))
    out.mux(vstream.encode(None))


def _draw_number(frame: VideoFrame, value: int, scale: float) -> None:
    """Burn `value` into `frame` as a CodeRow over neutral chroma (any 8/10-bit YUV layout)."""
    width, height = frame.width, frame.height
    row = CodeRow.for_size(width, height)
    on, off = round(CODE_ON * scale), round(CODE_OFF * scale)
    row.draw(plane_array(frame.planes[0], frame), value, on, off)
    for plane in frame.planes[1:3]:
        sx, sy = width // plane.width, height // plane.height
        plane_array(plane, frame)[
            row.y // sy : (row.y + row.block) // sy,
            row.x // sx : (row.x + CODE_BITS * row.block) // sx,
        ] = round(128 * scale)


def _write_tone(
    out: OutputContainer, astream: AudioStream, seconds: float, numbered: Fraction | None = None
) -> None:
    """A 440 Hz sine, or with `numbered` (the frame rate) the numbered clips' frame tones."""
    total = round(seconds * AUDIO_RATE)
    done = 0
    while done < total:
        n = min(AUDIO_FRAME_SAMPLES, total - done)
        t = np.arange(done, done + n, dtype=np.float64) / AUDIO_RATE
        if numbered is not None:
            tone = numbered_audio(t, numbered).astype(np.float32)
        else:
            tone = (0.3 * np.sin(2 * math.pi * TONE_HZ * t)).astype(np.float32)
        # PyAV converts to the encoder's sample format (e.g. s16 for PCM) by itself.
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = done
        frame.time_base = Fraction(1, AUDIO_RATE)
        out.mux(astream.encode(frame))
        done += n
    out.mux(astream.encode(None))


def make_audio_only(path: Path, *, seconds: float = 1.0, container_format: str = "mp4") -> Path:
    """Write a file with one AAC audio stream and no video stream."""
    with av.open(str(path), "w", format=container_format) as out:
        astream: AudioStream = out.add_stream("aac", rate=AUDIO_RATE)
        astream.layout = "stereo"
        _write_tone(out, astream, seconds)
    return path


def make_not_a_video(path: Path) -> Path:
    """Write a small text file (typically named *.mp4 by the caller)."""
    path.write_text("Patient: Jane Doe\nThis is not a video, just text with a video name.\n" * 20)
    return path


def make_empty(path: Path) -> Path:
    """Write a 0-byte file."""
    path.write_bytes(b"")
    return path


def truncate_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of `src`'s bytes to `dst` (simulates an interrupted upload)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def open_file_paths() -> Iterator[str]:
    """What this process's open file descriptors point to (Linux /proc)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            yield os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iter_frames(path: Path) -> Iterator[DecodedFrame]:
    """Decode the first video stream of `path` in presentation order, as numpy plane copies.

    Only the first three planes are returned; the pixel format is kept (no conversion).
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            y, u, v = (plane_array(p, frame).copy() for p in frame.planes[:3])
            yield DecodedFrame(
                y=y,
                u=u,
                v=v,
                time=float(frame.time) if frame.time is not None else math.nan,
                pts=int(frame.pts) if frame.pts is not None else -1,
                pix_fmt=frame.format.name,
            )


def read_frames(path: Path) -> list[DecodedFrame]:
    """All frames of `path` (see iter_frames); for small test clips only."""
    return list(iter_frames(path))


def audio_packets(path: Path) -> list[bytes]:
    """The payload bytes of every packet of the first audio stream (empty if there is none)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.dts is not None]


@dataclass(frozen=True)
class StreamSummary:
    """What a test usually wants to know about a file's streams."""

    width: int
    height: int
    fps: Fraction | None
    frames: int  # as stored in the container (0 if unknown)
    video_codec: str
    pix_fmt: str | None
    audio_codec: str | None
    format_name: str


def summarize(path: Path) -> StreamSummary:
    """Stream facts read from the container headers (no decoding)."""
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0] if container.streams.audio else None
        return StreamSummary(
            width=v.codec_context.width,
            height=v.codec_context.height,
            fps=v.average_rate,
            frames=v.frames,
            video_codec=v.codec_context.name,
            pix_fmt=v.codec_context.pix_fmt,
            audio_codec=a.codec_context.name if a is not None else None,
            format_name=container.format.name,
        )


# ------------------------------------------------------------------ numbered clips (for edits)

CODE_BITS = 12  # frame numbers up to 4095
CODE_ON, CODE_OFF = 235, 16  # luma of a 1 and of a 0 block


@dataclass(frozen=True)
class CodeRow:
    """Where a numbered clip draws its frame number: CODE_BITS square blocks in a row, most
    significant bit first, white for 1 and black for 0."""

    x: int
    y: int
    block: int

    @classmethod
    def for_size(cls, width: int, height: int) -> CodeRow:
        block = max(8, min(16, width // (CODE_BITS + 4)))
        return cls(x=(width - CODE_BITS * block) // 2, y=(height - block) // 2, block=block)

    def draw(self, y_plane: Plane, value: int, on: int = CODE_ON, off: int = CODE_OFF) -> None:
        for bit in range(CODE_BITS):
            level = on if value >> (CODE_BITS - 1 - bit) & 1 else off
            x0 = self.x + bit * self.block
            y_plane[self.y : self.y + self.block, x0 : x0 + self.block] = level

    def read(self, y_plane: Plane) -> int:
        """The number in a decoded luma plane (each block judged by its inner half)."""
        q = self.block // 4
        value = 0
        for bit in range(CODE_BITS):
            x0 = self.x + bit * self.block
            inner = y_plane[self.y + q : self.y + self.block - q, x0 + q : x0 + self.block - q]
            value = value << 1 | int(float(inner.mean()) > (CODE_ON + CODE_OFF) / 2)
        return value


def tone_hz(frame: int) -> float:
    """The audio frequency of a numbered clip while source frame `frame` is shown."""
    return 400.0 + 200.0 * (frame % 16)


def numbered_audio(t: npt.NDArray[np.float64], fps: Fraction) -> npt.NDArray[np.float64]:
    """A numbered clip's audio at source times `t` (seconds): during frame i a sine of
    tone_hz(i), so the audio says which frame it belongs to."""
    frames = np.floor(t * float(fps) + 1e-9).astype(np.int64)
    hz = 400.0 + 200.0 * (frames % 16)
    return np.asarray(0.3 * np.sin(2 * math.pi * hz * t), dtype=np.float64)


def make_numbered_video(
    path: Path,
    *,
    width: int,
    height: int,
    fps: int | Fraction = 25,
    frames: int = 75,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    x264_params: str | None = None,
    x264_options: dict[str, str] | None = None,
) -> Path:
    """Write an H.264 (libx264 CRF 18, B-frames) MP4 whose frame i shows the number i in
    binary (see CodeRow) over the scrolling colourful texture of make_video, with (if
    `audio`) an AAC stereo track whose frequency encodes the frame shown (numbered_audio).
    `x264_params` (e.g. "keyint=12:open-gop=1") and `x264_options` (e.g. profile, level)
    shape the GOP structure and parameter sets."""
    rate = Fraction(fps)
    row = CodeRow.for_size(width, height)
    with av.open(str(path), "w", format="mp4") as out:
        vstream = out.add_stream("libx264", rate=rate)
        assert isinstance(vstream, VideoStream)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        vstream.codec_context.time_base = 1 / rate
        options = {"crf": "18", "preset": "veryfast", **(x264_options or {})}
        if x264_params:
            options["x264-params"] = x264_params
        vstream.codec_context.options = options
        astream: AudioStream | None = None
        if audio:
            added = out.add_stream("aac", rate=AUDIO_RATE)
            assert isinstance(added, AudioStream)
            added.layout = "stereo"
            astream = added
        probe_frame = VideoFrame(width, height, pix_fmt)
        waves = []
        for index, plane in enumerate(probe_frame.planes[:3]):
            sx, sy = width / plane.width, height / plane.height
            extra = math.ceil(SCROLL_PX_PER_FRAME * frames / sx) + 1
            wave = _wave_plane(plane.width, plane.height, extra, sx, sy, _PLANE_LOOKS[index])
            waves.append(wave.astype(np.uint8))
        for i in range(frames):
            frame = VideoFrame(width, height, pix_fmt)
            for index, plane in enumerate(frame.planes[:3]):
                sx = width / plane.width
                off = round(SCROLL_PX_PER_FRAME * i / sx)
                plane_array(plane, frame)[:] = waves[index][:, off : off + plane.width]
            y = plane_array(frame.planes[0], frame)
            row.draw(y, i)
            for plane in frame.planes[1:3]:  # neutral chroma under the code blocks
                sx, sy = width // plane.width, height // plane.height
                plane_array(plane, frame)[
                    row.y // sy : (row.y + row.block) // sy,
                    row.x // sx : (row.x + CODE_BITS * row.block) // sx,
                ] = 128
            frame.pts = i
            frame.time_base = vstream.codec_context.time_base
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))
        if astream is not None:
            total = round(frames / rate * AUDIO_RATE)
            for done in range(0, total, AUDIO_FRAME_SAMPLES):
                n = min(AUDIO_FRAME_SAMPLES, total - done)
                t = np.arange(done, done + n, dtype=np.float64) / AUDIO_RATE
                wave32 = numbered_audio(t, rate).astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(
                    np.stack([wave32, wave32]), format="fltp", layout="stereo"
                )
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = done
                aframe.time_base = Fraction(1, AUDIO_RATE)
                out.mux(astream.encode(aframe))
            out.mux(astream.encode(None))
    return path


def read_audio(path: Path) -> tuple[npt.NDArray[np.float64], int, int]:
    """The first channel of the first audio stream as float samples, the sample rate, and the
    first sample's pts in samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks: list[npt.NDArray[np.float64]] = []
        first: int | None = None
        rate = stream.codec_context.sample_rate
        for frame in container.decode(stream):
            if first is None:
                assert frame.pts is not None
                assert frame.time_base is not None
                first = round(frame.pts * frame.time_base * rate)
            data = frame.to_ndarray()
            if not frame.format.is_planar:
                data = data.reshape(-1, len(frame.layout.channels)).T
            chunks.append(data[0].astype(np.float64))
        return np.concatenate(chunks), rate, first or 0


def audio_seconds(path: Path) -> float:
    """The duration of the first audio stream as the container states it (without the codec
    padding that decoding adds at the end)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None
        assert stream.time_base is not None
        return float(stream.duration * stream.time_base)


def make_vfr_numbered_video(path: Path, durations_ms: list[int], *, width: int = 320) -> Path:
    """A silent numbered clip (grey, frame numbers as in make_numbered_video) with variable
    frame durations: frame i lasts durations_ms[i] milliseconds."""
    height = width * 3 // 4
    row = CodeRow.for_size(width, height)
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        stream.codec_context.options = {"crf": "18", "preset": "veryfast"}
        pts = 0
        for i, duration in enumerate(durations_ms):
            frame = VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane_array(plane, frame)[:] = 128
            row.draw(plane_array(frame.planes[0], frame), i)
            frame.pts, frame.time_base = pts, time_base
            out.mux(stream.encode(frame))
            pts += duration
        out.mux(stream.encode(None))
    return path
