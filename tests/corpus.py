"""Broken and hostile inputs, generated in code into a folder (nothing is downloaded).

Each :class:`BadInput` writes one file and says what the service must answer for it: a 4xx at
upload (:class:`Refused`), or an accepted upload whose mask job ends as :class:`JobEnds` says.
The broken MP4s are made from a good one by editing its boxes (ISO BMFF: 32-bit size, 4-byte
type, children of ``moov``/``trak`` nested inside), as a damaged disk or a hostile sender would.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from testkit.media import (
    make_audio_only,
    make_empty,
    make_not_a_video,
    make_vfr_numbered_video,
    make_video,
    plane_array,
)

#: The good clip every broken MP4 starts from: small, with B-frames and audio, moov at the end.
WIDTH, HEIGHT = 640, 360
#: Durations (ms) of the variable-frame-rate clip's frames: 40 ms, then 20 ms, then 80 ms runs.
VFR_DURATIONS_MS = [40] * 10 + [20] * 20 + [80] * 8 + [40] * 10


@dataclass(frozen=True)
class Refused:
    """The upload is refused with this status and error code, its message containing
    ``words``."""

    status: int
    code: str
    words: str


@dataclass(frozen=True)
class JobEnds:
    """The upload is accepted and a mask job ends in ``state`` (with error ``code`` and
    ``words`` in its message for FAILURE)."""

    state: str
    code: str | None = None
    words: str = ""


Expectation = Refused | JobEnds


@dataclass(frozen=True)
class BadInput:
    """One file of the corpus: its name (as uploaded), how to make it, what must happen."""

    name: str
    make: Callable[[Path], Path]
    expect: Expectation

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------- MP4 surgery


@dataclass(frozen=True)
class Box:
    """One ISO BMFF box: its type, where it starts, its header size and its total size."""

    kind: str
    start: int
    header: int
    size: int

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes between ``start`` and ``end`` (one level, no descent)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        yield Box(kind.decode("latin-1"), pos, header, size)
        pos += size


def find_box(data: bytes | bytearray, *path: str) -> Box:
    """The first box at ``path`` (e.g. ``"moov", "trak", "tkhd"``)."""
    start, end = 0, len(data)
    found: Box | None = None
    for kind in path:
        found = next((b for b in boxes(data, start, end) if b.kind == kind), None)
        if found is None:
            raise LookupError(f"no {'/'.join(path)} box")
        start, end = found.body, found.end
    assert found is not None
    return found


def _good_clip(folder: Path, *, faststart: bool = False) -> Path:
    name = "good-faststart.mp4" if faststart else "good.mp4"
    path = folder / name
    if not path.exists():
        make_video(path, width=WIDTH, height=HEIGHT, seconds=3.0, faststart=faststart)
    return path


def truncated(folder: Path, *, faststart: bool = False) -> Path:
    """A good MP4 cut at half its bytes (an interrupted upload or copy)."""
    data = _good_clip(folder, faststart=faststart).read_bytes()
    path = folder / ("truncated-faststart.mp4" if faststart else "truncated.mp4")
    path.write_bytes(data[: len(data) // 2])
    return path


def without_moov(folder: Path) -> Path:
    """A good MP4 whose index (the moov box) is renamed to an unknown type: all media, no
    index. (Not to ``free``: FFmpeg looks inside free boxes for a hidden moov.)"""
    data = bytearray(_good_clip(folder).read_bytes())
    moov = find_box(data, "moov")
    data[moov.start + 4 : moov.start + 8] = b"junk"
    path = folder / "no-moov.mp4"
    path.write_bytes(bytes(data))
    return path


def corrupt_mdat(folder: Path) -> Path:
    """A good MP4 with 16 KiB of random bytes written over the middle of its media data: the
    index is intact, the packets in the middle are garbage."""
    data = bytearray(_good_clip(folder).read_bytes())
    mdat = find_box(data, "mdat")
    middle = (mdat.body + mdat.end) // 2
    garbage = random.Random(8).randbytes(16 * 1024)
    data[middle : middle + len(garbage)] = garbage
    path = folder / "corrupt-mdat.mp4"
    path.write_bytes(bytes(data))
    return path


#: The tkhd matrix of a picture shown turned a quarter turn clockwise (as phones write it).
ROTATE_90 = (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
#: The tkhd matrix of a picture shown mirrored left to right.
MIRRORED = (-0x10000, 0, 0, 0, 0x10000, 0, WIDTH << 16, 0, 0x40000000)


def rotated(folder: Path, matrix: tuple[int, ...] = ROTATE_90, name: str = "rotated.mp4") -> Path:
    """A good MP4 whose video track carries a display matrix (the ``rotate`` metadata of
    phones and some recorders): players show the picture turned, the stored frames are not."""
    data = bytearray(_good_clip(folder).read_bytes())
    tkhd = find_box(data, "moov", "trak", "tkhd")
    version = data[tkhd.body]
    # full box header (4), times and ids (20 or 32), reserved (8), layer..volume (8)
    offset = tkhd.body + 4 + (32 if version == 1 else 20) + 8 + 8
    struct.pack_into(">9i", data, offset, *matrix)
    if matrix[1] != 0:  # a quarter turn: the displayed size is the other way round
        struct.pack_into(">II", data, offset + 36, HEIGHT << 16, WIDTH << 16)
    path = folder / name
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------------- other inputs


def still_image(folder: Path, codec: str) -> Path:
    """A single picture encoded as PNG or JPEG (named .mp4: what it is must be found out)."""
    encoder = av.CodecContext.create(codec, "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height = WIDTH, HEIGHT
    encoder.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    frame = VideoFrame(WIDTH, HEIGHT, "rgb24")
    plane_array(frame.planes[0], frame)[:] = np.uint8(180)
    frame = frame.reformat(format=encoder.pix_fmt)
    frame.pts = 0
    packets = encoder.encode(frame) + encoder.encode(None)
    path = folder / f"still-{codec}.mp4"
    path.write_bytes(b"".join(bytes(p) for p in packets))
    return path


def _made(make: Callable[[Path], Path], name: str) -> Callable[[Path], Path]:
    return lambda folder: make(folder / name)


CORPUS: tuple[BadInput, ...] = (
    BadInput("zero-bytes", _made(make_empty, "empty.mp4"), Refused(415, "empty_upload", "empty")),
    BadInput(
        "text-named-mp4",
        _made(make_not_a_video, "notes.mp4"),
        Refused(415, "not_a_video", "not a usable video"),
    ),
    BadInput(
        "truncated-at-half",
        truncated,
        Refused(415, "not_a_video", "not a recognized video"),
    ),
    BadInput(
        "truncated-at-half-faststart",
        lambda folder: truncated(folder, faststart=True),
        Refused(415, "truncated_video", "cut short"),
    ),
    BadInput("moov-missing", without_moov, Refused(415, "not_a_video", "not a recognized video")),
    BadInput(
        "corrupt-packets-mid-mdat",
        corrupt_mdat,
        JobEnds("FAILURE", "invalid_video", "damaged and cannot be decoded"),
    ),
    BadInput(
        "audio-only",
        _made(lambda p: make_audio_only(p, seconds=1.0), "audio.mp4"),
        Refused(415, "not_a_video", "no video stream"),
    ),
    BadInput(
        "still-png",
        lambda folder: still_image(folder, "png"),
        Refused(415, "not_a_video", "still image"),
    ),
    BadInput(
        "still-jpeg",
        lambda folder: still_image(folder, "mjpeg"),
        Refused(415, "not_a_video", "still image"),
    ),
    BadInput("rotated-90", rotated, Refused(415, "rotated_video", "turned by 90 degrees")),
    BadInput(
        "mirrored",
        lambda folder: rotated(folder, MIRRORED, "mirrored.mp4"),
        Refused(415, "rotated_video", "mirrored"),
    ),
    BadInput(
        "variable-frame-rate",
        lambda folder: make_vfr_numbered_video(folder / "vfr.mp4", VFR_DURATIONS_MS),
        JobEnds("SUCCESS"),
    ),
    BadInput(
        "10-bit-yuv420p10le",
        _made(
            lambda p: make_video(p, width=WIDTH, height=HEIGHT, seconds=1.0, pix_fmt="yuv420p10le"),
            "10bit.mp4",
        ),
        JobEnds("SUCCESS"),
    ),
    BadInput(
        "4:2:2-yuv422p",
        _made(
            lambda p: make_video(p, width=WIDTH, height=HEIGHT, seconds=1.0, pix_fmt="yuv422p"),
            "422.mp4",
        ),
        JobEnds("SUCCESS"),
    ),
)
