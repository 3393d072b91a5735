"""Editing: in one pass, black out everything outside a region, make chosen frames entirely
black and cut chosen frames out, re-encoding to H.264 MP4.

Pipeline (constant memory): demux -> decode video with frame threading -> per frame, in
presentation order: drop it (removed), fill it black (blackened), or blank the outside of the
ROI in the YUV planes with numpy -> libx264 -> MP4. Frame numbers are positions in
presentation order as decoded, so cuts are frame-accurate whatever the GOP structure.

Timing: kept frames keep their source durations; each removed run is closed up, so a kept
frame's new pts is its source pts minus the total duration of the removed frames before it.
A removed run's duration is measured from the pts of its first frame to the pts of the next
kept frame (to the end of the stream for a run at the end), so no duration guesswork.

Audio (first stream only, other streams are dropped; none at all when the plan says
``keep_audio=False``):
- nothing removed: the packets are copied as they are (or PCM & co. transcoded to AAC);
- frames removed: the samples whose time falls in a removed span [pts of the run's first
  frame, pts of the next kept frame) are dropped and the rest is re-encoded to AAC with its
  timestamps shifted like the video's (see jobs.video.audio_cut, shared with smart_cut).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from av.container import OutputContainer
from av.packet import Packet
from av.stream import Discard, Stream
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from jobs.video.audio_cut import AudioCutter
from jobs.video.codec import (
    DEFAULT_ENCODE,
    AudioRelay,
    EncodeOptions,
    ProgressCallback,
    PtsRepair,
    add_video_output,
    decode_video,
    demux,
    editable_frame,
    encode_frame,
    frame_step,
    mux,
    open_mp4_output,
    output_pix_fmt,
    plane_view,
)
from jobs.video.errors import InvalidVideo
from jobs.video.planes import (
    CHROMA_NEUTRAL,
    LUMA_BLACK,
    SHAPES,
    PlaneFill,
    Roi,
    Shape,
    check_roi,
    plane_fills,
)
from jobs.video.probe import open_input, select_video_stream
from jobs.video.timeline import FrameRange, RangeCursor, merge_ranges

__all__ = ["EditOutcome", "EditPlan", "FrameRange", "edit_video"]

REMOVE_ALL_MESSAGE = "The edit would remove every frame of the video."

KeptRun = tuple[int, int, int]
"""(old_start, old_end, new_start) of a run of kept frames; old_end inclusive."""


@dataclass(frozen=True)
class EditPlan:
    """What edit_video does to a video. Frame numbers are 0-based, in presentation order."""

    roi: Roi | None = None  # None: no mask; else everything outside is black (as mask_video)
    shape: Shape = "rect"
    corner: int = 0  # an "octagon"'s cut corners, in pixels (see planes.luma_keep_mask)
    blacken: tuple[FrameRange, ...] = ()  # frames made entirely black; count and timing kept
    remove: tuple[FrameRange, ...] = ()  # frames cut out; removal wins over blacken
    keep_audio: bool = True  # False: the output has no audio stream, only the video
    #: Boxes made black inside the kept area in every frame (only with an roi).
    blacken_regions: tuple[Roi, ...] = ()


class FrameGate(Protocol):
    """Decides which frames to cut while they stream by (see edit_video's `gate`)."""

    def push(self, frame: VideoFrame) -> list[VideoFrame]:
        """Take the next decoded frame; return the frames now ready, in order."""
        ...

    def finish(self) -> list[VideoFrame]:
        """At the end of the stream: the frames still held back."""
        ...

    def __contains__(self, index: object) -> bool:
        """Whether the ready frame `index` (0-based, in order) is to be cut."""
        ...


@dataclass(frozen=True)
class EditOutcome:
    """What edit_video wrote."""

    frames_in: int  # frames decoded from the source
    frames_out: int  # frames written
    removed: int
    frame_map: tuple[KeptRun, ...]  # kept runs as (old_start, old_end, new_start)
    width: int
    height: int
    has_audio: bool  # whether the output has an audio stream (the source's, cut as the video)

    def output_index(self, frame: int) -> int | None:
        """The output number of source frame `frame`, or None if it was removed or absent."""
        for old_start, old_end, new_start in self.frame_map:
            if old_start <= frame <= old_end:
                return new_start + frame - old_start
        return None

    def to_output_ranges(self, ranges: tuple[FrameRange, ...]) -> tuple[FrameRange, ...]:
        """Source frame ranges in output numbering (removed frames dropped), sorted and merged;
        e.g. the plan's `blacken` ranges for verify_output's `black_frames`."""
        mapped: list[FrameRange] = []
        for start, end in merge_ranges(ranges):
            for old_start, old_end, new_start in self.frame_map:
                lo, hi = max(start, old_start), min(end, old_end)
                if lo <= hi:
                    mapped.append((new_start + lo - old_start, new_start + hi - old_start))
        return merge_ranges(mapped)


def edit_video(
    src: Path,
    dst: Path,
    plan: EditPlan,
    *,
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
    on_video_packet: Callable[[Packet[Stream]], None] | None = None,
    gate: FrameGate | None = None,
) -> EditOutcome:
    """Write to `dst` (MP4, whatever its suffix) the video `src` edited as `plan` says.

    Blocking; run it in a worker thread. `src` is only read. The output is H.264 in limited
    range yuv420p, or yuv444p when the width or height is odd, with the source's size, frame
    rate and time base; the kept frames keep their durations and removed spans are closed up
    (see the module docstring, also for the audio). `on_progress` gets the number of frames
    decoded from the source after every frame and once more at the end; an exception it
    raises aborts the edit and propagates. `on_video_packet` gets every encoded video packet,
    in stream order, before the muxer does (see verify.LiveVerifier); it must not keep it.
    A `gate` sees every decoded frame first and hands them on, in order, once it has decided
    which to cut (analyze.LiveAnalysis); the plan must not remove frames itself then.

    Raises ValueError if the plan would remove every frame, the ROI is empty or not inside
    the frame, the shape is unknown (or its corner unfit) or a frame range is malformed;
    InvalidVideo if the source cannot be decoded; VideoError if encoding fails. OSErrors
    propagate. On error `dst` is closed but left in place for the caller (it is not created
    for a bad plan or ROI).
    """
    if plan.shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {plan.shape!r}; expected one of {SHAPES}.")
    blacken = merge_ranges(plan.blacken)
    remove = merge_ranges(plan.remove)
    if gate is not None and remove:
        raise ValueError("Frames are removed by the plan or by a gate, not both.")
    with ExitStack() as stack:
        inp = stack.enter_context(open_input(src))
        vin = select_video_stream(inp)
        width, height = vin.codec_context.width, vin.codec_context.height
        if width <= 0 or height <= 0:
            raise InvalidVideo("The video stream has no picture size.")
        if plan.roi is not None:
            check_roi(plan.roi, width, height)
        if vin.frames > 0 and remove and remove[0][0] == 0 and remove[0][1] >= vin.frames - 1:
            raise ValueError(REMOVE_ALL_MESSAGE)
        ain = inp.streams.audio[0] if inp.streams.audio and plan.keep_audio else None

        pix_fmt = output_pix_fmt(width, height)
        sub = 1 if pix_fmt == "yuv444p" else 2
        if plan.roi is None and plan.blacken_regions:
            raise ValueError("Regions are blackened inside a kept region: give the roi.")
        fills = (
            None
            if plan.roi is None
            else plane_fills(
                width, height, plan.roi, plan.shape, sub, sub, plan.blacken_regions, plan.corner
            )
        )

        # Default slice threading leaves H.264 decoding on one core.
        vin.codec_context.thread_type = "AUTO"
        out = stack.enter_context(open_mp4_output(dst))
        vout = add_video_output(out, vin, width, height, pix_fmt, encode)
        relay: AudioRelay | None = None
        cutter: AudioCutter | None = None
        if ain is not None and (remove or gate is not None):
            cutter = AudioCutter(stack.enter_context(open_input(src)), ain.index, out)
        elif ain is not None:
            relay = AudioRelay.create(out, ain)

        editor = Editor(
            out,
            vin,
            vout,
            pix_fmt,
            fills,
            blacken,
            RangeCursor(remove) if gate is None else gate,
            cutter,
            on_progress,
            on_video_packet,
        )
        streams: tuple[Stream, ...] = (vin,) if ain is None or relay is None else (vin, ain)
        for stream in inp.streams:
            if stream not in streams:  # the MP4/MKV demuxers then skip their data
                stream.discard = Discard.all
        for packet in demux(inp, streams):
            # Not packet.stream_index: PyAV's end-of-stream flush packets all say 0.
            if packet.stream.index == vin.index:
                for frame in decode_video(vin, packet):
                    if gate is None:
                        editor.take(frame)
                    else:
                        for ready in gate.push(frame):
                            editor.take(ready)
            elif relay is not None:
                relay.relay(packet)
        if gate is not None:
            for ready in gate.finish():
                editor.take(ready)
        editor.flush()
        if cutter is not None:
            cutter.finish()
        if relay is not None:
            relay.finish()
        if editor.frames_in == 0:
            raise InvalidVideo("The video stream contains no decodable frame.")
        if editor.frames_out == 0:
            raise ValueError(REMOVE_ALL_MESSAGE)
    if on_progress is not None:
        on_progress(editor.frames_in)
    return EditOutcome(
        frames_in=editor.frames_in,
        frames_out=editor.frames_out,
        removed=editor.frames_in - editor.frames_out,
        frame_map=tuple((a, b, c) for a, b, c in editor.runs),
        width=width,
        height=height,
        has_audio=ain is not None,
    )


class Editor:
    """Takes the decoded frames in presentation order and writes what the plan keeps."""

    def __init__(
        self,
        out: OutputContainer,
        vin: VideoStream,
        vout: VideoStream,
        pix_fmt: str,
        fills: tuple[PlaneFill, PlaneFill, PlaneFill] | None,
        blacken: tuple[FrameRange, ...],
        remove: Container[int],
        cutter: AudioCutter | None,
        on_progress: ProgressCallback | None,
        on_packet: Callable[[Packet[Stream]], None] | None,
        *,
        first_index: int = 0,
        shift: int = 0,
    ) -> None:
        """`first_index` is the source number of the first frame it will be given and `shift`
        the duration (ticks) of the frames removed before it (a chunk of a longer edit, see
        chunks.encode_chunk); both 0 for a whole video."""
        self._out = out
        self._on_packet = on_packet
        self._vout = vout
        self._width = vout.codec_context.width
        self._height = vout.codec_context.height
        self._pix_fmt = pix_fmt
        self._fills = fills
        self._blacken = RangeCursor(blacken)
        self._remove = remove
        self._cutter = cutter
        self._on_progress = on_progress
        self._time_base = vout.codec_context.time_base
        # The source pts are in the input stream's time base, which the output keeps.
        self._seconds_per_tick = Fraction(vin.time_base or self._time_base)
        self._repair = PtsRepair(frame_step(vin))
        self._first = first_index
        self._shift = shift  # total duration of the removed frames so far, in time base ticks
        self._cut_from: int | None = None  # source pts of the first frame of a removed run
        self.frames_in = 0
        self.frames_out = 0
        self.runs: list[list[int]] = []  # [old_start, old_end, new_start]

    def take(self, frame: VideoFrame) -> None:
        """Handle the next decoded frame."""
        if frame.width != self._width or frame.height != self._height:
            raise InvalidVideo("The picture size changes within the video; this is not supported.")
        index = self._first + self.frames_in
        pts = self._repair(frame.pts)
        if index in self._remove:
            if self._cut_from is None:
                self._cut_from = pts
                if self._cutter is not None:
                    self._cutter.start_cut(pts * self._seconds_per_tick)
        else:
            if self._cut_from is not None:
                self._shift += pts - self._cut_from
                if self._cutter is not None:
                    self._cutter.end_cut(pts * self._seconds_per_tick)
                self._cut_from = None
            self._write(frame, index, pts - self._shift)
        self.frames_in += 1
        if self._cutter is not None:
            self._cutter.advance(pts * self._seconds_per_tick)
        if self._on_progress is not None:
            self._on_progress(self.frames_in)

    def _write(self, frame: VideoFrame, index: int, pts: int) -> None:
        frame = editable_frame(frame, self._pix_fmt)
        if index in self._blacken:
            for plane, value in zip(frame.planes, _BLACK, strict=True):
                plane_view(plane)[:] = value
        elif self._fills is not None:
            for plane, fill in zip(frame.planes, self._fills, strict=True):
                fill.apply(plane_view(plane))
        frame.pts = pts
        frame.time_base = self._time_base
        frame.pict_type = PictureType.NONE  # let x264 choose its own frame types
        self._emit(encode_frame(self._vout, frame))
        if self.runs and self.runs[-1][1] == index - 1:
            self.runs[-1][1] = index
        else:
            self.runs.append([index, index, self.frames_out])
        self.frames_out += 1

    def flush(self) -> None:
        """Write the frames the encoder still holds."""
        self._emit(encode_frame(self._vout, None))

    def _emit(self, packets: list[Packet[Stream]]) -> None:
        if self._on_packet is not None:
            for packet in packets:
                self._on_packet(packet)
        mux(self._out, packets)


_BLACK = (LUMA_BLACK, CHROMA_NEUTRAL, CHROMA_NEUTRAL)
