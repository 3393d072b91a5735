"""Verification: decode an output of the service and check that it is what was promised.

Every frame of the output is decoded (it runs on every output, so the per-frame work is a few
numpy reductions over precomputed slices, no per-frame allocation of masks) and checked for:

- the frame count: exactly `expected_frames`;
- the mask: the brightest luma among the pixels outside the ROI that are more than
  `margin_px` pixels (Chebyshev distance) away from it must not exceed LUMA_LIMIT. The margin
  leaves out libx264's ringing next to the sharp black/picture boundary, which reaches about
  one transform block into the black area (measured up to ~71 at 1 px at CRF 18); further
  out, masked pixels decode to 16-17. Any real picture content leaking there (tissue, text,
  ~60-235) is far above the limit;
- blackened frames: the brightest luma of each frame that must be entirely black must not
  exceed LUMA_LIMIT;
- a device's text fields, by name (see field_check): the brightest luma of each box where the
  processor burns in patient data must not exceed LUMA_LIMIT in any frame.

Chroma is not checked: the masking code blanks chroma together with luma, and luma carries
what a reader could recognize. Frames are read as 8-bit limited-range YUV; other formats are
converted with swscale first.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
from av.packet import Packet
from av.stream import Stream
from av.video.frame import VideoFrame

from jobs.video.codec import ProgressCallback, demux, plane_view, readable_frame
from jobs.video.errors import InvalidVideo
from jobs.video.field_check import FieldCheck, FieldProbe
from jobs.video.nal import (
    UnitDigest,
    annexb_spans,
    annexb_units,
    avcc_config,
    length_prefixed_spans,
)
from jobs.video.planes import (
    LUMA_BLACK,
    SHAPES,
    BoolArray,
    PlaneFill,
    Roi,
    Shape,
    TextField,
    U8Array,
    check_roi,
    luma_keep_mask,
)
from jobs.video.probe import open_input, select_video_stream
from jobs.video.timeline import FrameRange, RangeCursor, merge_ranges

__all__ = ["DEFAULT_MARGIN_PX", "LUMA_LIMIT", "LiveVerifier", "Verification", "verify_output"]

LUMA_LIMIT = LUMA_BLACK + 8
"""Highest luma accepted where the output must be black (beyond the margin / black frames)."""
DEFAULT_MARGIN_PX = 8


@dataclass(frozen=True)
class Verification:
    """The result of verify_output."""

    frames_checked: int  # frames decoded from the output
    frames_expected: int
    # Max luma of the output's pixels outside the ROI, more than margin_px px away from it
    # (None when there is no ROI, or no pixel lies that far out).
    max_luma_outside: int | None
    margin_px: int
    max_luma_blackened: int | None  # max luma over the frames that must be black (None: none)
    passed: bool
    problems: tuple[str, ...]  # human-readable reasons when not passed
    # "decoded": every frame decoded; "smart": a smart removal's check (see smart_cut)
    method: str = "decoded"
    frames_decoded: int | None = None  # smart: frames decoded (re-encoded runs and joins)
    min_psnr: float | None = None  # smart: worst re-encoded frame's luma PSNR (dB)
    text_fields: tuple[FieldCheck, ...] = ()  # a device's text fields, each proven dark or not

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, with the luma limit that was applied."""
        extra: dict[str, object] = {}
        if self.method != "decoded":
            extra = {"frames_decoded": self.frames_decoded, "min_psnr": self.min_psnr}
        if self.text_fields:
            extra["text_fields"] = [field.to_dict() for field in self.text_fields]
        return {
            "method": self.method,
            **extra,
            "passed": self.passed,
            "frames_checked": self.frames_checked,
            "frames_expected": self.frames_expected,
            "max_luma_outside": self.max_luma_outside,
            "margin_px": self.margin_px,
            "max_luma_blackened": self.max_luma_blackened,
            "luma_limit": LUMA_LIMIT,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Verification:
        """The inverse of to_dict (e.g. a chunk's check handed between processes)."""

        def optional_int(key: str) -> int | None:
            value = data.get(key)
            if value is not None and not isinstance(value, int):
                raise ValueError(f"The verification's {key} is malformed.")
            return value

        def count(key: str) -> int:
            value = optional_int(key)
            if value is None:
                raise ValueError(f"The verification's {key} is missing.")
            return value

        problems = data.get("problems", [])
        fields = data.get("text_fields", [])
        psnr = data.get("min_psnr")
        if not isinstance(problems, list) or not isinstance(fields, list):
            raise ValueError("The verification is malformed.")
        if psnr is not None and not isinstance(psnr, int | float):
            raise ValueError("The verification's min_psnr is malformed.")
        return cls(
            frames_checked=count("frames_checked"),
            frames_expected=count("frames_expected"),
            max_luma_outside=optional_int("max_luma_outside"),
            margin_px=count("margin_px"),
            max_luma_blackened=optional_int("max_luma_blackened"),
            passed=bool(data["passed"]),
            problems=tuple(str(p) for p in problems),
            method=str(data.get("method", "decoded")),
            frames_decoded=optional_int("frames_decoded"),
            min_psnr=None if psnr is None else float(psnr),
            text_fields=tuple(FieldCheck.from_dict(f) for f in fields),
        )


def verify_output(
    path: Path,
    *,
    expected_frames: int,
    roi: Roi | None = None,
    shape: Shape = "rect",
    black_frames: tuple[FrameRange, ...] = (),
    text_fields: tuple[TextField, ...] = (),
    corner: int = 0,
    on_progress: ProgressCallback | None = None,
    margin_px: int = DEFAULT_MARGIN_PX,
    blacken_regions: tuple[Roi, ...] = (),
) -> Verification:
    """Decode every frame of the video at `path` and check it against the promises.

    `black_frames` are in the output's numbering (see EditOutcome.to_output_ranges);
    `text_fields` are boxes of the output frame that must be dark (a device's, see field_check);
    `blacken_regions` are boxes inside the ROI that must be black as its outside is.
    Blocking; run it in a worker thread. `on_progress` gets the number of frames decoded
    after every frame and once more at the end; an exception it raises propagates.

    Returns a Verification; passed is False when the frame count differs, luma beyond the
    margin outside the ROI exceeds LUMA_LIMIT, a must-be-black frame is not black within
    LUMA_LIMIT, a text field is not dark, or the output cannot be decoded (to the end). Raises
    ValueError for an unknown shape or a malformed range; OSErrors propagate.
    """
    if shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {shape!r}; expected one of {SHAPES}.")
    black = merge_ranges(black_frames)
    checker = _Checker(roi, shape, black, margin_px, text_fields, blacken_regions, corner)
    try:
        with open_input(path) as container:
            stream = select_video_stream(container)
            stream.codec_context.thread_type = "AUTO"
            for packet in demux(container, (stream,)):
                for frame in stream.decode(packet):
                    checker.check(frame)
                    if on_progress is not None:
                        on_progress(checker.frames)
    except OSError:
        raise
    except _Unverifiable as exc:
        checker.problems.append(str(exc))
    except (InvalidVideo, av.error.FFmpegError):
        checker.problems.append(
            "The output is not a readable video."
            if checker.frames == 0
            else f"The output cannot be decoded after frame {checker.frames - 1}."
        )
    if on_progress is not None:
        on_progress(checker.frames)
    return checker.result(expected_frames)


class LiveVerifier:
    """Verifies an H.264 output while it is being written, so the check costs no pass of its
    own: the same checks as verify_output, on the encoder's own packets.

    Give it to edit_video as `on_video_packet`: it copies each packet the encoder produces
    (before the muxer gets it) into a bounded queue, and a thread of its own decodes and checks
    them meanwhile, on the cores the encoder leaves idle. `finish` then reads the written file
    back without decoding it and compares its NAL units and parameter sets with the ones that
    were decoded, so what was checked is exactly what was written. Memory stays bounded: the
    encoder waits when the checker is `backlog` packets behind.

    Not reusable: one instance per output. Call `close` on every path (it is idempotent).
    """

    def __init__(
        self,
        *,
        roi: Roi | None = None,
        shape: Shape = "rect",
        corner: int = 0,
        black_frames: tuple[FrameRange, ...] = (),
        text_fields: tuple[TextField, ...] = (),
        margin_px: int = DEFAULT_MARGIN_PX,
        backlog: int = 64,
        blacken_regions: tuple[Roi, ...] = (),
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"Unknown mask shape {shape!r}; expected one of {SHAPES}.")
        self._checker = _Checker(
            roi, shape, merge_ranges(black_frames), margin_px, text_fields, blacken_regions, corner
        )
        self._queue: queue.Queue[tuple[bytes, int | None, int | None] | None] = queue.Queue(backlog)
        self._digest = UnitDigest()
        self._parameter_sets: list[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    def __call__(self, packet: Packet[Stream]) -> None:
        """Take the next packet of the encoder (called from the editing thread)."""
        if self._thread is None:
            extradata = packet.stream.codec_context.extradata
            self._parameter_sets = annexb_units(bytes(extradata or b""))
            self._thread = threading.Thread(
                target=self._run, name="verify-output", args=(bytes(extradata or b""),)
            )
            self._thread.start()
        self._queue.put((bytes(packet), packet.pts, packet.dts))

    def close(self) -> None:
        """Stop the checking thread (after it has decoded what it was given)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def finish(
        self, path: Path, expected_frames: int, on_progress: ProgressCallback | None = None
    ) -> Verification:
        """Wait for the check of every packet, then compare them with the file at `path`.

        `on_progress` gets the number of packets read back from the file. Returns the
        Verification (see verify_output); a file whose NAL units or parameter sets differ from
        the checked ones does not pass. OSErrors propagate, as do unexpected errors of the
        checking thread.
        """
        self.close()
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._checker.problems.append("The encoder produced no video packet.")
            return self._checker.result(expected_frames)
        written = _WrittenStream.read(path, on_progress)
        if written is None:
            self._checker.problems.append("The written file has no readable H.264 stream.")
        elif (
            written.parameter_sets != self._parameter_sets
            or written.digest.hexdigest() != self._digest.hexdigest()
        ):
            self._checker.problems.append(
                "The written file differs from the stream that was checked "
                f"({written.digest.units} NAL units written, {self._digest.units} checked)."
            )
        return self._checker.result(expected_frames)

    def _run(self, extradata: bytes) -> None:
        checker = self._checker
        ended = False  # the end marker was taken from the queue
        try:
            ctx = av.CodecContext.create("h264", "r")
            if extradata:
                ctx.extradata = extradata
            # One thread: it keeps up with the encoder by far, and frame threads would each
            # hold frames (tens of MB at 1080p) for no gain in a pipeline whose cores are busy.
            ctx.thread_count = 1
            decoding = True
            while (item := self._queue.get()) is not None:
                data, pts, dts = item
                self._digest.update_spans(data, annexb_spans(data))
                if not decoding:
                    continue  # keep draining so that the encoder never waits on a dead check
                try:
                    packet = av.Packet(data)
                    packet.pts, packet.dts = pts, dts
                    for frame in ctx.decode(packet):
                        checker.check(frame)
                except (_Unverifiable, av.error.FFmpegError) as exc:
                    decoding = False
                    checker.problems.append(_decode_problem(exc, checker.frames))
            ended = True
            if decoding:
                try:
                    for frame in ctx.decode(None):
                        checker.check(frame)
                except (_Unverifiable, av.error.FFmpegError) as exc:
                    checker.problems.append(_decode_problem(exc, checker.frames))
        except BaseException as exc:  # handed to the caller of finish()
            self._error = exc
            while not ended and self._queue.get() is not None:  # unblock the editing thread
                pass


def _decode_problem(exc: Exception, frames: int) -> str:
    if isinstance(exc, _Unverifiable):
        return str(exc)
    if frames == 0:
        return "The output is not a readable video."
    return f"The output cannot be decoded after frame {frames - 1}."


@dataclass
class _WrittenStream:
    """The H.264 stream of a written MP4, as NAL units, read without decoding."""

    parameter_sets: list[bytes]
    digest: UnitDigest

    @classmethod
    def read(cls, path: Path, on_progress: ProgressCallback | None) -> _WrittenStream | None:
        try:
            with open_input(path) as container:
                stream = select_video_stream(container)
                length_size, parameter_sets = avcc_config(
                    bytes(stream.codec_context.extradata or b"")
                )
                digest = UnitDigest()
                packets = 0
                for packet in demux(container, (stream,)):
                    if packet.size:
                        data = memoryview(packet)  # the packet's own buffer, not a copy
                        digest.update_spans(data, length_prefixed_spans(data, length_size))
                        packets += 1
                        if on_progress is not None and packets % 64 == 0:
                            on_progress(packets)
        except OSError:
            raise
        except (InvalidVideo, ValueError, av.error.FFmpegError):
            return None
        if on_progress is not None:
            on_progress(packets)
        return cls(parameter_sets, digest)


class _Unverifiable(Exception):
    """Stops the check early; str() is the problem to report."""


class _Checker:
    """Per-frame measurements and the final verdict."""

    def __init__(
        self,
        roi: Roi | None,
        shape: Shape,
        black: tuple[FrameRange, ...],
        margin: int,
        text_fields: tuple[TextField, ...],
        holes: tuple[Roi, ...] = (),
        corner: int = 0,
    ) -> None:
        self._roi = roi
        self._corner = corner
        self._holes = holes
        self._text_fields = text_fields
        self._field_probes: list[FieldProbe] = []
        self._shape = shape
        self._black_cursor = RangeCursor(black)
        self._margin = margin
        self._size: tuple[int, int] | None = None
        self._far: PlaneFill | None = None  # where the luma must be black, as slices + mask
        self.frames = 0
        self.problems: list[str] = []
        self._max_outside: int | None = None
        self._max_black: int | None = None
        self._outside_bad = 0
        self._first_outside_bad: int | None = None
        self._black_bad = 0
        self._first_black_bad: int | None = None

    def check(self, frame: VideoFrame) -> None:
        index = self.frames
        self.frames += 1
        size = (frame.width, frame.height)
        if self._size is None:
            self._size = size
            self._prepare(*size)
        elif size != self._size:
            raise _Unverifiable(f"The picture size changes at frame {index}.")
        luma = plane_view(readable_frame(frame).planes[0])
        if self._far is not None:
            value = _max_in(luma, self._far)
            self._max_outside = max(value, self._max_outside or 0)
            if value > LUMA_LIMIT:
                self._outside_bad += 1
                if self._first_outside_bad is None:
                    self._first_outside_bad = index
        for probe in self._field_probes:
            probe.check(luma, index, LUMA_LIMIT)
        if index in self._black_cursor:
            value = int(luma.max())
            self._max_black = max(value, self._max_black or 0)
            if value > LUMA_LIMIT:
                self._black_bad += 1
                if self._first_black_bad is None:
                    self._first_black_bad = index

    def _prepare(self, width: int, height: int) -> None:
        self._field_probes = [
            FieldProbe(field, self._roi, self._margin, width, height) for field in self._text_fields
        ]
        if self._roi is None:
            return
        try:
            check_roi(self._roi, width, height)
        except ValueError as exc:
            raise _Unverifiable(str(exc)) from exc
        try:
            keep = luma_keep_mask(width, height, self._roi, self._shape, self._holes, self._corner)
        except ValueError as exc:
            raise _Unverifiable(str(exc)) from exc
        # The blackened regions are checked as the outside is (beyond the margin).
        near = _dilate(keep, self._margin)
        if not near.all():
            self._far = PlaneFill.from_keep(near, LUMA_BLACK)

    def result(self, expected: int) -> Verification:
        problems = list(self.problems)
        if self.frames != expected:
            problems.append(f"The output has {self.frames} frames; {expected} expected.")
        if self._outside_bad:
            problems.append(
                f"Outside the region (beyond {self._margin} px) the luma reaches "
                f"{self._max_outside} (limit {LUMA_LIMIT}) in {self._outside_bad} frames, "
                f"first at frame {self._first_outside_bad}."
            )
        if self._black_bad:
            problems.append(
                f"Frames that must be black reach luma {self._max_black} (limit {LUMA_LIMIT}) "
                f"in {self._black_bad} frames, first at frame {self._first_black_bad}."
            )
        fields: list[FieldCheck] = []
        for probe in self._field_probes:
            check, problem = probe.result(LUMA_LIMIT)
            fields.append(check)
            if problem is not None:
                problems.append(problem)
        return Verification(
            frames_checked=self.frames,
            frames_expected=expected,
            max_luma_outside=self._max_outside,
            margin_px=self._margin,
            max_luma_blackened=self._max_black,
            passed=not problems,
            problems=tuple(problems),
            text_fields=tuple(fields),
        )


def _max_in(luma: U8Array, far: PlaneFill) -> int:
    """Max of `luma` over the pixels `far` would fill (outside its kept area)."""
    value = 0
    for rows, cols in far.bands:
        value = max(value, int(luma[rows, cols].max()))
    if far.box is not None and far.box_outside is not None:
        value = max(value, int(np.max(luma[far.box], where=far.box_outside, initial=0)))
    return value


def _dilate(mask: BoolArray, k: int) -> BoolArray:
    """True within Chebyshev distance `k` of a True pixel of `mask`."""
    if k <= 0:
        return mask
    return _dilate_axis(_dilate_axis(mask, k, 1), k, 0)


def _dilate_axis(mask: BoolArray, k: int, axis: int) -> BoolArray:
    moved = np.moveaxis(mask, axis, -1)
    n = moved.shape[-1]
    # counts[..., i] = number of True in moved[..., :i]
    counts = np.zeros((*moved.shape[:-1], n + 1), dtype=np.int32)
    np.cumsum(moved, axis=-1, out=counts[..., 1:])
    idx = np.arange(n)
    window = counts[..., np.minimum(idx + k + 1, n)] - counts[..., np.maximum(idx - k, 0)]
    return np.asarray(np.moveaxis(window > 0, -1, axis), dtype=np.bool_)
