"""Chunked editing: one long video edited as independent chunks (by any number of workers, in
any order) and stitched into the file edit_video would write, without re-encoding.

Plan (plan_chunks, demux only): the source's video packets are indexed (pts, keyframe flag,
IDR for H.264) and cut into chunks of about `target_seconds`, in presentation order. A
boundary goes to a *clean* IDR picture within a quarter of a chunk of the target time: one
before which every earlier frame (in presentation order) is decoded and after which no earlier
frame comes (closed GOP). Where there is none (open GOPs, intra refresh, long GOPs) the boundary
is the first frame at or after the target time and the chunk decodes from the latest keyframe
before it that every one of its frames follows in decode order (`seek_pts`), discarding the
frames before its start: frame-exact either way; such a boundary is dropped when that keyframe
lies more than MAX_PREROLL target lengths back (a source without keyframes is one chunk). The
plan depends only on the source, the target length, the edit plan and the encoder settings,
never on the number of workers. A video
shorter than two chunks, or one whose frames do not all have distinct timestamps, is one chunk.
The last chunk keeps whatever is left (it may be a single frame; it is not merged into the one
before, which would make a chunk's length depend on the video's total). A chunk whose frames
are all removed, or all but one with a chunk after it, is merged into the one before (the first
such into the one after), so every part holds a frame and no two parts' IDR pictures follow
one another directly (see _merge_thin).

Parts (encode_chunk): the chunk's frames, edited as edit_video does (mask, blacken, remove),
are encoded by libx264 with content-independent headers (stitchable), closed GOPs and a fixed
thread count (codec.PART_X264_PARAMS), so a part starts with an IDR picture, every part has
the same parameter sets, and its bytes depend only on the inputs, not on the machine or the
process. Kept frames keep their source pts minus the durations of the removed frames before
them (Chunk.pts_shift carries the removals of the earlier chunks), exactly as edit_video's
timing. Each part is checked live like write_checked (verify.LiveVerifier), and the digest of
its NAL units is what was checked.

Stitch (stitch_parts): the parts' packets are copied one after the other into one MP4 under
the parameter sets they share (no re-encode). Decode timestamps are recomputed for the whole
stream (the j-th packet in decode order gets the j-th smallest pts, `delay` frames back, with
`delay` the deepest reordering of any part), so they rise strictly across every seam, also for
variable frame rates. The source's first audio stream is handled once for the whole file,
interleaved with the video as it goes (constant memory): copied (audio.AudioRelay) when no frame
is removed, else cut by time (audio_cut.AudioCutter) where frames are removed; none unless the
plan keeps audio. The file is then read back without decoding and checked: frame count,
strictly increasing decode timestamps, the output pts of every kept source frame, the parameter
sets of every part, and each part's NAL units equal to the ones its own check decoded.

Privacy: parts are new encodings (no SEI of the source, codec.NO_FRAME_SEI), copied as they are.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Discard, Stream
from av.video.stream import VideoStream

from jobs.video.audio_cut import AudioCutter
from jobs.video.codec import (
    DEFAULT_ENCODE,
    PART_THREADS,
    PART_X264_PARAMS,
    AudioRelay,
    EncodeOptions,
    ProgressCallback,
    add_video_output,
    decode_video,
    demux,
    mux,
    open_mp4_output,
    output_pix_fmt,
)
from jobs.video.edit import REMOVE_ALL_MESSAGE, Editor, EditOutcome, EditPlan
from jobs.video.errors import InvalidVideo, VideoError
from jobs.video.field_check import FieldCheck
from jobs.video.nal import (
    UnitDigest,
    annexb_spans,
    annexb_units,
    avcc_config,
    length_prefixed_spans,
    length_prefixed_units,
)
from jobs.video.planes import SHAPES, TextField, check_roi, plane_fills
from jobs.video.probe import open_input, select_video_stream
from jobs.video.timeline import (
    FrameRange,
    RangeCursor,
    close_up,
    merge_ranges,
    removed_flags,
    to_output_ranges,
)
from jobs.video.verify import LiveVerifier, Verification

__all__ = [
    "Chunk",
    "ChunkOutcome",
    "ChunkPlan",
    "encode_chunk",
    "plan_chunks",
    "stitch_parts",
]

#: A clean IDR picture is taken as a boundary when it lies within this share of the target
#: length of the target time; else the boundary is the target frame (decode and discard).
NEAR_SHARE = Fraction(1, 4)
#: A boundary without a clean IDR near it is dropped (its chunk goes on to the next one) when
#: the keyframe to decode from lies more than this many target lengths before it: the frames
#: decoded only to be discarded would cost more than the chunk saves (a source with one keyframe
#: in an hour would decode from its start for every chunk), and a chunk would report no
#: progress for that long.
MAX_PREROLL = 2
#: Bump when the parts' bytes would change for the same inputs (part encoder, timing).
_FORMAT = "vidcorrect-chunks-1"
_NAL_IDR = 5


@dataclass(frozen=True)
class Chunk:
    """One chunk of a ChunkPlan (frame numbers 0-based in presentation order, pts in the
    source stream's time base)."""

    index: int
    start_frame: int  # first source frame this chunk covers
    end_frame: int  # last source frame it covers, inclusive
    start_pts: int  # pts of start_frame
    end_pts: int  # pts of end_frame
    seek_pts: int | None  # keyframe to seek to before decoding (None: from the start)
    pts_shift: int  # duration (ticks) of the frames removed before start_frame

    @property
    def frames(self) -> int:
        """Source frames covered."""
        return self.end_frame - self.start_frame + 1

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "index": self.index,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_pts": self.start_pts,
            "end_pts": self.end_pts,
            "seek_pts": self.seek_pts,
            "pts_shift": self.pts_shift,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Chunk:
        """The inverse of to_dict."""
        seek = data["seek_pts"]
        return cls(
            index=_int(data["index"]),
            start_frame=_int(data["start_frame"]),
            end_frame=_int(data["end_frame"]),
            start_pts=_int(data["start_pts"]),
            end_pts=_int(data["end_pts"]),
            seek_pts=None if seek is None else _int(seek),
            pts_shift=_int(data["pts_shift"]),
        )


@dataclass(frozen=True)
class ChunkPlan:
    """How a source is cut into chunks (see plan_chunks)."""

    chunks: tuple[Chunk, ...]
    total_frames: int
    time_base: Fraction  # JSON: "num/den"
    fingerprint: str  # sha256 hex of everything the parts depend on

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "chunks": [chunk.to_dict() for chunk in self.chunks],
            "total_frames": self.total_frames,
            "time_base": f"{self.time_base.numerator}/{self.time_base.denominator}",
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ChunkPlan:
        """The inverse of to_dict; ValueError when `data` is malformed."""
        chunks = data["chunks"]
        if not isinstance(chunks, list):
            raise ValueError("A chunk plan's chunks must be a list.")
        return cls(
            chunks=tuple(Chunk.from_dict(chunk) for chunk in chunks),
            total_frames=_int(data["total_frames"]),
            time_base=Fraction(str(data["time_base"])),
            fingerprint=str(data["fingerprint"]),
        )


@dataclass(frozen=True)
class ChunkOutcome:
    """What encode_chunk wrote."""

    index: int
    frames_in: int  # source frames covered (end_frame - start_frame + 1)
    frames_out: int  # frames written (after removals)
    nal_sha256: str  # digest of the part's NAL units (what was checked)
    verification: Verification  # the live check of this part

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {
            "index": self.index,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "nal_sha256": self.nal_sha256,
            "verification": self.verification.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ChunkOutcome:
        """The inverse of to_dict; ValueError when `data` is malformed."""
        verification = data["verification"]
        if not isinstance(verification, Mapping):
            raise ValueError("A chunk outcome's verification must be an object.")
        return cls(
            index=_int(data["index"]),
            frames_in=_int(data["frames_in"]),
            frames_out=_int(data["frames_out"]),
            nal_sha256=str(data["nal_sha256"]),
            verification=Verification.from_dict(verification),
        )


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"Expected an integer, got {value!r}.")
    return value


# ----------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Index:
    """The source's video packets in decode order (demux only)."""

    pts: list[int]
    key: list[bool]
    idr: list[bool]
    missing: int = 0  # packets without a pts (not in the lists)

    @property
    def frames(self) -> int:
        return len(self.pts) + self.missing

    def chunkable(self) -> bool:
        """Whether every frame has a pts of its own (else the video is one chunk)."""
        ordered = self.sorted_pts
        return self.missing == 0 and all(b > a for a, b in itertools.pairwise(ordered))

    @property
    def sorted_pts(self) -> list[int]:
        return sorted(self.pts)


def _is_h264_idr(data: bytes, length_size: int | None) -> bool:
    try:
        units = (
            annexb_units(data) if length_size is None else length_prefixed_units(data, length_size)
        )
    except ValueError as exc:
        raise InvalidVideo("A video packet is damaged.") from exc
    return any(unit and unit[0] & 0x1F == _NAL_IDR for unit in units)


def _read_index(inp: InputContainer, vin: VideoStream) -> _Index:
    """The video packets' pts and key/IDR flags."""
    h264 = vin.codec_context.name == "h264"
    length_size: int | None = None
    if h264:
        try:
            length_size, _ = avcc_config(bytes(vin.codec_context.extradata or b""))
        except ValueError:
            length_size = None  # Annex B in the packets
    index = _Index([], [], [])
    missing = 0
    for packet in demux(inp, (vin,)):
        # Discarded packets (cut off by an MP4 edit list) are decoded but give no frame.
        if packet.size == 0 or packet.is_discard:
            continue
        if packet.pts is None:
            missing += 1
            continue
        index.pts.append(packet.pts)
        index.key.append(packet.is_keyframe)
        idr = packet.is_keyframe
        if h264 and packet.is_keyframe:
            idr = _is_h264_idr(bytes(packet), length_size)
        index.idr.append(idr)
    return _Index(index.pts, index.key, index.idr, missing)


def _source_stream(inp: InputContainer) -> VideoStream:
    vin = select_video_stream(inp)
    for stream in inp.streams:
        if stream.index != vin.index:
            stream.discard = Discard.all
    return vin


def plan_chunks(
    src: Path,
    target_seconds: float,
    plan: EditPlan,
    encode: EncodeOptions,
    *,
    source_id: str = "",
) -> ChunkPlan:
    """Demux only (no decoding). Boundaries at IDR keyframes near multiples of target_seconds;
    where no usable keyframe is near (open GOP, intra refresh, long GOP) the boundary is at the
    target frame and seek_pts is an earlier keyframe (decode and discard). Depends only on the
    source, target_seconds, plan and encode - never on workers. Returns ONE chunk when the
    video is shorter than two chunks or cannot be chunked safely (missing/duplicate pts, ...).

    Raises ValueError for a non-positive target, a malformed plan, or one that removes every
    frame; InvalidVideo when the source has no readable video frame.
    """
    if not target_seconds > 0:
        raise ValueError("The target chunk length must be positive.")
    if plan.shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {plan.shape!r}; expected one of {SHAPES}.")
    merge_ranges(plan.blacken)  # validates
    remove = merge_ranges(plan.remove)
    with open_input(src) as inp:
        vin = _source_stream(inp)
        time_base = Fraction(vin.time_base) if vin.time_base else None
        if plan.roi is not None:
            check_roi(plan.roi, vin.codec_context.width, vin.codec_context.height)
        index = _read_index(inp, vin)
    if time_base is None:
        raise InvalidVideo("The video stream has no time base.")
    n = index.frames
    if n == 0:
        raise InvalidVideo("The video stream contains no decodable frame.")
    removed = removed_flags(n, remove)
    if all(removed):
        raise ValueError(REMOVE_ALL_MESSAGE)
    if not index.chunkable():
        # One chunk, the whole video: its pts are edit_video's business (PtsRepair).
        low, high = (min(index.pts), max(index.pts)) if index.pts else (0, 0)
        chunk = Chunk(0, 0, n - 1, low, high, None, 0)
        fingerprint = _fingerprint(source_id, [chunk], n, time_base, plan, encode)
        return ChunkPlan((chunk,), n, time_base, fingerprint)
    sorted_pts = index.sorted_pts
    starts = _boundaries(index, sorted_pts, Fraction(target_seconds) / time_base)
    starts = _merge_thin(starts, removed)
    # pts_shift: removed frame r lasts until the next frame (edit_video closes runs up so).
    shift_before = [0] * (n + 1)
    for r in range(n):
        step = sorted_pts[r + 1] - sorted_pts[r] if removed[r] and r + 1 < n else 0
        shift_before[r + 1] = shift_before[r] + step
    chunks: list[Chunk] = []
    for k, (start, seek) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else n - 1
        chunks.append(
            Chunk(
                index=k,
                start_frame=start,
                end_frame=end,
                start_pts=sorted_pts[start],
                end_pts=sorted_pts[end],
                seek_pts=seek,
                pts_shift=shift_before[start],
            )
        )
    fingerprint = _fingerprint(source_id, chunks, n, time_base, plan, encode)
    return ChunkPlan(tuple(chunks), n, time_base, fingerprint)


def _boundaries(
    index: _Index, sorted_pts: list[int], target: Fraction
) -> list[tuple[int, int | None]]:
    """Chunk starts (presentation rank, seek pts) for a target length of `target` ticks."""
    n = len(index.pts)
    first = sorted_pts[0]
    last = sorted_pts[-1]
    if last - first < 2 * target:
        return [(0, None)]
    # prefix_max[i]: the largest pts among packets 0..i-1 (decode order).
    prefix_max: list[int | None] = [None] * (n + 1)
    for i, pts in enumerate(index.pts):
        before = prefix_max[i]
        prefix_max[i + 1] = pts if before is None else max(before, pts)
    suffix_min = [0] * n
    low: int | None = None
    for i in range(n - 1, -1, -1):
        low = index.pts[i] if low is None else min(low, index.pts[i])
        suffix_min[i] = low
    clean: list[int] = []  # decode index == presentation rank of clean IDR pictures
    for i in range(1, n):
        before = prefix_max[i]
        if index.idr[i] and before is not None and before < index.pts[i] == suffix_min[i]:
            clean.append(i)
    clean_pts = [sorted_pts[i] for i in clean]
    keys = [i for i in range(n) if index.key[i]]
    near = target * NEAR_SHARE
    starts: list[tuple[int, int | None]] = [(0, None)]
    k = 1
    while first + k * target <= last:
        goal = first + k * target
        k += 1
        best: int | None = None
        for rank, pts in zip(clean, clean_pts, strict=True):
            if abs(pts - goal) <= near and (
                best is None or abs(pts - goal) < abs(sorted_pts[best] - goal)
            ):
                best = rank
        seek: int | None
        if best is not None:
            start, seek = best, sorted_pts[best]
        else:
            start = _first_at_or_after(sorted_pts, goal)
            seek = _seek_for(index, keys, prefix_max, sorted_pts[start])
            if sorted_pts[start] - (first if seek is None else seek) > MAX_PREROLL * target:
                continue
        if start > starts[-1][0]:
            starts.append((start, seek))
    return starts


def _first_at_or_after(sorted_pts: list[int], goal: Fraction) -> int:
    return min(bisect.bisect_left(sorted_pts, math.ceil(goal)), len(sorted_pts) - 1)


def _seek_for(
    index: _Index, keys: list[int], prefix_max: list[int | None], start_pts: int
) -> int | None:
    """The pts of the latest keyframe at or before `start_pts` that every frame from
    `start_pts` on follows in decode order; None: decode from the start."""
    for i in reversed(keys):
        before = prefix_max[i]
        if index.pts[i] <= start_pts and (before is None or before < start_pts):
            return None if i == 0 else index.pts[i]
    return None


def _merge_thin(
    starts: list[tuple[int, int | None]], removed: list[bool]
) -> list[tuple[int, int | None]]:
    """`starts` without chunks that would write no frame, or a single frame followed by
    another part (merged into a neighbour). A one-frame part is a lone IDR picture, and the
    next part starts with an IDR picture of the same idr_pic_id, which H.264 forbids for two
    IDR pictures in a row; a one-frame last chunk has no part after it and stays."""
    n = len(removed)
    merged = list(starts)
    k = 0
    while k < len(merged) and len(merged) > 1:
        lo = merged[k][0]
        last = k + 1 == len(merged)
        hi = n - 1 if last else merged[k + 1][0] - 1
        kept = hi - lo + 1 - sum(removed[lo : hi + 1])
        if kept == 0 or (kept == 1 and not last):
            if k == 0:
                del merged[1]  # the second chunk joins the first, which starts at frame 0
            else:
                del merged[k]  # joins the one before
            continue
        k += 1
    return merged


def _fingerprint(
    source_id: str,
    chunks: list[Chunk],
    total: int,
    time_base: Fraction,
    plan: EditPlan,
    encode: EncodeOptions,
) -> str:
    data = {
        "format": _FORMAT,
        "source": source_id,
        "total_frames": total,
        "time_base": f"{time_base.numerator}/{time_base.denominator}",
        "chunks": [chunk.to_dict() for chunk in chunks],
        "plan": {
            "roi": None if plan.roi is None else plan.roi.to_dict(),
            "shape": plan.shape,
            # (only when set: the plans of the other shapes keep their ids)
            **({"corner": plan.corner} if plan.corner else {}),
            "blacken_regions": [box.to_dict() for box in plan.blacken_regions],
            "blacken": [list(r) for r in merge_ranges(plan.blacken)],
            "remove": [list(r) for r in merge_ranges(plan.remove)],
            "keep_audio": plan.keep_audio,
        },
        "encode": {"preset": encode.preset, "crf": encode.crf},
        "x264": {"params": PART_X264_PARAMS, "threads": PART_THREADS},
        "pyav": av.__version__,
        "libavcodec": list(av.library_versions.get("libavcodec", ())),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------- the parts


def _clip(ranges: tuple[FrameRange, ...], lo: int, hi: int) -> tuple[FrameRange, ...]:
    """`ranges` within [lo, hi], renumbered from lo."""
    out = [(max(a, lo) - lo, min(b, hi) - lo) for a, b in ranges if b >= lo and a <= hi]
    return tuple(out)


def _ticks(value: int, from_tb: Fraction, to_tb: Fraction) -> int:
    """`value` in `from_tb` as a whole number of `to_tb` ticks; ValueError if it is not one."""
    exact = value * from_tb / to_tb
    if exact.denominator != 1:
        raise ValueError("A timestamp does not fall on the source's time base.")
    return int(exact)


def encode_chunk(
    src: Path,
    dst: Path,
    chunk_plan: ChunkPlan,
    index: int,
    plan: EditPlan,
    *,
    text_fields: tuple[TextField, ...] = (),
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
) -> ChunkOutcome:
    """Write chunk `index` of `plan` applied to `src` into `dst` (a video-only MP4 part):
    starts with an IDR, closed GOP, x264 stitchable mode, fixed thread count, so the bytes
    depend only on the inputs. Checked live (LiveVerifier) like write_checked. `on_progress`
    gets the chunk's source frames done (0..frames_in). Deterministic: same inputs -> same bytes.

    Raises ValueError for an index outside the plan or a malformed edit plan, InvalidVideo
    when the source does not decode to the frames the plan expects, VideoError when encoding
    fails. OSErrors propagate.
    """
    if not 0 <= index < len(chunk_plan.chunks):
        raise ValueError(f"The chunk plan has no chunk {index}.")
    if plan.shape not in SHAPES:
        raise ValueError(f"Unknown mask shape {plan.shape!r}; expected one of {SHAPES}.")
    chunk = chunk_plan.chunks[index]
    lo, hi = chunk.start_frame, chunk.end_frame
    blacken = merge_ranges(plan.blacken)
    remove = merge_ranges(plan.remove)
    local_remove = _clip(remove, lo, hi)
    expected = chunk.frames - sum(b - a + 1 for a, b in local_remove)
    if plan.roi is None and plan.blacken_regions:
        raise ValueError("Regions are blackened inside a kept region: give the roi.")
    verifier = LiveVerifier(
        roi=plan.roi,
        shape=plan.shape,
        corner=plan.corner,
        black_frames=to_output_ranges(_clip(blacken, lo, hi), local_remove),
        text_fields=text_fields,
        blacken_regions=plan.blacken_regions,
    )
    digest = UnitDigest()

    def on_packet(packet: Packet[Stream]) -> None:
        verifier(packet)
        data = bytes(packet)
        digest.update_spans(data, annexb_spans(data))

    try:
        with ExitStack() as stack:
            inp = stack.enter_context(open_input(src))
            vin = _source_stream(inp)
            if Fraction(vin.time_base or 0) != chunk_plan.time_base:
                raise ValueError("The chunk plan was made for another video.")
            width, height = vin.codec_context.width, vin.codec_context.height
            if plan.roi is not None:
                check_roi(plan.roi, width, height)
            pix_fmt = output_pix_fmt(width, height)
            sub = 1 if pix_fmt == "yuv444p" else 2
            fills = (
                None
                if plan.roi is None
                else plane_fills(
                    width,
                    height,
                    plan.roi,
                    plan.shape,
                    sub,
                    sub,
                    plan.blacken_regions,
                    plan.corner,
                )
            )
            vin.codec_context.thread_type = "AUTO"
            out = stack.enter_context(
                av.open(
                    str(dst),
                    "w",
                    format="mp4",
                    options=_muxer_options(Fraction(vin.time_base or 0)),
                )
            )
            vout = add_video_output(out, vin, width, height, pix_fmt, encode, part=True)
            editor = Editor(
                out,
                vin,
                vout,
                pix_fmt,
                fills,
                blacken,
                RangeCursor(remove),
                None,
                on_progress,
                on_packet,
                first_index=lo,
                shift=chunk.pts_shift,
            )
            if on_progress is not None:
                on_progress(0)
            last: int | None = None
            whole = len(chunk_plan.chunks) == 1
            for frame in _decoded(inp, vin, chunk.seek_pts):
                if whole:  # every frame, as edit_video takes them (whatever their pts)
                    editor.take(frame)
                    continue
                if frame.pts is None:
                    raise InvalidVideo("A decoded frame has no timestamp.")
                if frame.pts < chunk.start_pts:
                    continue
                if frame.pts > chunk.end_pts:
                    break
                if (last is None and frame.pts != chunk.start_pts) or (
                    last is not None and frame.pts <= last
                ):
                    raise InvalidVideo(
                        f"The video does not decode to the frames its index lists near frame "
                        f"{lo + editor.frames_in}."
                    )
                last = frame.pts
                editor.take(frame)
                if frame.pts == chunk.end_pts:
                    break
            if not whole and editor.frames_in != chunk.frames:
                raise InvalidVideo(
                    f"Chunk {index} decoded to {editor.frames_in} frames; "
                    f"its plan lists {chunk.frames}."
                )
            editor.flush()
    finally:
        verifier.close()
    verification = verifier.finish(dst, expected)
    if on_progress is not None:
        on_progress(editor.frames_in)
    return ChunkOutcome(
        index=index,
        frames_in=editor.frames_in,
        frames_out=editor.frames_out,
        nal_sha256=digest.hexdigest(),
        verification=verification,
    )


def _muxer_options(tb: Fraction) -> dict[str, str]:
    """A part starts late (at its first frame's pts), and so may a source, which the MP4 muxer
    writes as an empty edit in the movie time scale (1/1000 s by default): rounded, the
    timestamps would come back shifted. With the movie time scale the track's (for a video time
    base `tb`), they come back exact."""
    if tb <= 0 or tb.numerator != 1:
        return {}
    scale = tb.denominator
    while scale < 10_000:  # the MP4 muxer's track time scale for such a time base
        scale *= 2
    return {"movie_timescale": str(scale)}


def _decoded(
    inp: InputContainer, vin: VideoStream, seek_pts: int | None
) -> Iterator[av.VideoFrame]:
    """The frames decoded from the keyframe at `seek_pts` (None: from the start) on."""
    packets = demux(inp, (vin,))
    if seek_pts is not None:
        try:
            inp.seek(seek_pts, stream=vin, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise InvalidVideo("The video cannot be read from its keyframe.") from exc
        packets = demux(inp, (vin,))
        first = next(packets, None)
        # The demuxer must land on a keyframe at or before the one planned; else start over.
        if first is None or not first.is_keyframe or first.pts is None or first.pts > seek_pts:
            try:
                inp.seek(0, stream=vin, backward=True, any_frame=False)
            except av.error.FFmpegError as exc:
                raise InvalidVideo("The video cannot be read from its start again.") from exc
            packets = demux(inp, (vin,))
        else:
            packets = itertools.chain([first], packets)
    for packet in packets:
        yield from decode_video(vin, packet)


# ---------------------------------------------------------------------------------- the stitch


@dataclass
class _Part:
    """A part's packets, read without decoding."""

    parameter_sets: list[bytes]
    length_size: int
    extradata: bytes
    pts: list[int]  # decode order


def _read_part(path: Path, tb: Fraction) -> _Part:
    """The part at `path`, its pts in `tb` (the source's time base)."""
    with open_input(path) as container:
        stream = select_video_stream(container)
        extradata = bytes(stream.codec_context.extradata or b"")
        length_size, parameter_sets = avcc_config(extradata)
        part_tb = Fraction(stream.time_base or 0)
        pts: list[int] = []
        for packet in demux(container, (stream,)):
            if packet.size:
                if packet.pts is None:
                    raise ValueError("A packet of a part has no timestamp.")
                pts.append(_ticks(packet.pts, part_tb, tb))
    return _Part(parameter_sets, length_size, extradata, pts)


def _reorder_depth(pts: list[int]) -> int:
    """The largest number of positions a packet comes before its place in presentation."""
    rank = {p: r for r, p in enumerate(sorted(pts))}
    return max((j - rank[p] for j, p in enumerate(pts)), default=0)


def stitch_parts(
    src: Path,
    parts: Sequence[Path],
    dst: Path,
    chunk_plan: ChunkPlan,
    outcomes: Sequence[ChunkOutcome],
    plan: EditPlan,
    *,
    on_progress: ProgressCallback | None = None,
) -> tuple[EditOutcome, Verification]:
    """Concatenate the parts' video packets (no re-encode) into `dst` (MP4), with the source's
    audio handled once for the whole file (copied, or cut by time where frames were removed;
    none unless plan.keep_audio), interleaved as it goes (constant memory). Then check the file
    read back (no decoding): frame count, strictly increasing timestamps, the kept source
    timestamps, parameter sets identical across parts, NAL digests equal to `outcomes`.
    The EditOutcome is the one edit_video would report (frame_map, removed, has_audio, ...);
    the Verification merges the parts' checks and the stitch check.

    `on_progress` gets the number of video packets written. Raises ValueError when the parts
    or outcomes do not match the plan, or the plan does not match the source; VideoError
    when a part cannot be read or the output cannot be written. OSErrors propagate.
    """
    chunks = chunk_plan.chunks
    if len(parts) != len(chunks) or len(outcomes) != len(chunks):
        raise ValueError(f"The plan has {len(chunks)} chunks; got {len(parts)} parts.")
    if any(outcome.index != k for k, outcome in enumerate(outcomes)):
        raise ValueError("The chunk outcomes are not in the plan's order.")
    remove = merge_ranges(plan.remove)
    problems: list[str] = []
    with ExitStack() as stack:
        inp = stack.enter_context(open_input(src))
        vin = _source_stream(inp)
        width, height = vin.codec_context.width, vin.codec_context.height
        tb = Fraction(vin.time_base or 0)
        if tb != chunk_plan.time_base:
            raise ValueError("The chunk plan was made for another video.")
        ain_index = inp.streams.audio[0].index if inp.streams.audio and plan.keep_audio else None
        index = _read_index(inp, vin)
    if index.frames != chunk_plan.total_frames:
        raise ValueError("The chunk plan was made for another video.")
    if not index.chunkable():
        raise ValueError(
            "The video's frames do not all have timestamps of their own; it cannot be stitched "
            "and is edited as one job (write_checked)."
        )
    n = chunk_plan.total_frames
    sorted_pts = index.sorted_pts
    removed = removed_flags(n, remove)
    # Output pts of every kept frame, and the removed spans (source pts), as edit_video.
    timing = close_up(sorted_pts, removed)
    kept_src = [sorted_pts[r] for r in timing.kept]
    expected_pts = list(timing.new_pts)
    spans = list(timing.spans)

    try:
        read = [_read_part(path, tb) for path in parts]
    except (InvalidVideo, ValueError, av.error.FFmpegError) as exc:
        raise VideoError("A chunk's part cannot be read.") from exc
    for k, part in enumerate(read):
        if part.parameter_sets != read[0].parameter_sets:
            problems.append(f"Part {k} has other parameter sets than part 0.")
        if len(part.pts) != outcomes[k].frames_out:
            problems.append(
                f"Part {k} has {len(part.pts)} frames; its check counted {outcomes[k].frames_out}."
            )
    delay = max(_reorder_depth(part.pts) for part in read)
    starts = [0, *itertools.accumulate(len(part.pts) for part in read)]
    for k, part in enumerate(read):
        if sorted(part.pts) != expected_pts[starts[k] : starts[k + 1]]:
            problems.append(
                f"Part {k}'s timestamps are not the ones of the kept frames of chunk {k}."
            )
    out_pts = sorted(p for part in read for p in part.pts)
    edit = EditOutcome(
        frames_in=n,
        frames_out=len(kept_src),
        removed=n - len(kept_src),
        frame_map=timing.frame_map,
        width=width,
        height=height,
        has_audio=ain_index is not None,
    )
    if problems or out_pts != expected_pts:
        # Not stitched: the parts are not the ones planned (the caller publishes nothing).
        if out_pts != expected_pts and not problems:
            problems.append("The parts hold other frames than the kept ones.")
        return edit, _merged(outcomes, problems, len(kept_src))
    total_out = len(out_pts)

    def dts_of(j: int) -> int:
        if j >= delay:
            return out_pts[j - delay]
        if delay < len(out_pts):
            return out_pts[j] - (out_pts[delay] - out_pts[0])
        return out_pts[0] - (delay - j)

    with ExitStack() as stack:
        out = stack.enter_context(open_mp4_output(dst, _muxer_options(tb)))
        template = stack.enter_context(open_input(parts[0]))
        vout = out.add_stream_from_template(select_video_stream(template))
        vout.codec_context.extradata = read[0].extradata
        vout.time_base = tb
        audio = _Audio.create(stack, src, ain_index, out, spans, tb)
        j = 0
        for k, path in enumerate(parts):
            with open_input(path) as container:
                stream = select_video_stream(container)
                for packet in demux(container, (stream,)):
                    if not packet.size:
                        continue
                    if j >= total_out:
                        raise VideoError("A part changed while it was stitched.")
                    pts = read[k].pts[j - starts[k]]
                    dts = dts_of(j)
                    if audio is not None:
                        # The audio up to the source time of the frame shown at this dts.
                        shown = kept_src[max(0, min(j - delay, len(kept_src) - 1))]
                        audio.advance(shown * tb, (out_pts[max(0, j - delay)]) * tb)
                    packet.time_base = tb
                    packet.pts, packet.dts = pts, dts
                    packet.stream = vout
                    mux(out, packet)
                    j += 1
                    if on_progress is not None:
                        on_progress(j)
        if audio is not None:
            audio.finish()
    problems.extend(_check_stitched(dst, tb, read, outcomes, expected_pts))
    return edit, _merged(outcomes, problems, len(kept_src))


class _Audio:
    """The source's first audio stream in the stitched file, fed as the video goes."""

    def __init__(
        self,
        cutter: AudioCutter | None,
        relay: AudioRelay | None,
        packets: Iterator[Packet[Stream]] | None,
    ) -> None:
        self._cutter = cutter
        self._relay = relay
        self._packets = packets
        self._pending: Packet[Stream] | None = None

    @classmethod
    def create(
        cls,
        stack: ExitStack,
        src: Path,
        ain_index: int | None,
        out: av.container.OutputContainer,
        spans: list[tuple[int, int | None]],
        tb: Fraction,
    ) -> _Audio | None:
        if ain_index is None:
            return None
        inp = stack.enter_context(open_input(src))
        if spans:
            cutter = AudioCutter(inp, ain_index, out)
            for start, end in spans:
                cutter.start_cut(start * tb)
                if end is not None:
                    cutter.end_cut(end * tb)
            return cls(cutter, None, None)
        ain = inp.streams[ain_index]
        assert isinstance(ain, AudioStream)
        for stream in inp.streams:
            if stream.index != ain_index:
                stream.discard = Discard.all
        relay = AudioRelay.create(out, ain)
        return cls(None, relay, demux(inp, (ain,)))

    def advance(self, source_time: Fraction, output_time: Fraction) -> None:
        """Write the audio up to `source_time` (cut) or `output_time` (copied)."""
        if self._cutter is not None:
            self._cutter.advance(source_time)
            return
        assert self._relay is not None
        assert self._packets is not None
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if (
                packet.pts is not None
                and packet.time_base is not None
                and packet.pts * packet.time_base > output_time
            ):
                self._pending = packet
                return
            self._relay.relay(packet)

    def finish(self) -> None:
        if self._cutter is not None:
            self._cutter.finish()
            return
        assert self._relay is not None
        assert self._packets is not None
        if self._pending is not None:
            self._relay.relay(self._pending)
        for packet in self._packets:
            self._relay.relay(packet)
        self._relay.finish()


def _check_stitched(
    dst: Path,
    tb: Fraction,
    read: list[_Part],
    outcomes: Sequence[ChunkOutcome],
    expected_pts: list[int],
) -> list[str]:
    """The stitched file read back without decoding, against the parts and the source."""
    problems: list[str] = []
    pts: list[int] = []
    dts: list[int] = []
    digests: list[str] = []
    try:
        with open_input(dst) as container:
            stream = select_video_stream(container)
            length_size, parameter_sets = avcc_config(bytes(stream.codec_context.extradata or b""))
            if parameter_sets != read[0].parameter_sets:
                problems.append("The stitched file's parameter sets differ from the parts'.")
            bounds = list(itertools.accumulate(o.frames_out for o in outcomes))
            out_tb = Fraction(stream.time_base or 0)
            digest = UnitDigest()
            for packet in demux(container, (stream,)):
                if not packet.size:
                    continue
                if packet.pts is None or packet.dts is None:
                    problems.append("A packet of the stitched file has no timestamp.")
                    break
                pts.append(_ticks(packet.pts, out_tb, tb))
                dts.append(_ticks(packet.dts, out_tb, tb))
                data = memoryview(packet)  # the packet's own buffer, not a copy
                digest.update_spans(data, length_prefixed_spans(data, length_size))
                if len(digests) < len(bounds) and len(pts) == bounds[len(digests)]:
                    digests.append(digest.hexdigest())
                    digest = UnitDigest()
    except OSError:
        raise
    except (InvalidVideo, ValueError, av.error.FFmpegError):
        return [*problems, "The stitched file has no readable H.264 stream."]
    if len(pts) != len(expected_pts):
        problems.append(f"The stitched file has {len(pts)} frames; {len(expected_pts)} expected.")
    if any(b <= a for a, b in itertools.pairwise(dts)):
        problems.append("The stitched file's decode timestamps do not rise strictly.")
    if any(d > p for d, p in zip(dts, pts, strict=True)):
        problems.append("A frame of the stitched file is decoded after it is shown.")
    if sorted(pts) != expected_pts:
        problems.append("The stitched file's timestamps are not the kept frames' timestamps.")
    for k, outcome in enumerate(outcomes):
        if k >= len(digests) or digests[k] != outcome.nal_sha256:
            problems.append(f"Part {k} in the stitched file is not the part that was checked.")
    return problems


def _merged(outcomes: Sequence[ChunkOutcome], stitch: list[str], expected: int) -> Verification:
    """The parts' checks and the stitch's as one Verification."""
    checks = [o.verification for o in outcomes]
    problems = [f"Chunk {o.index}: {p}" for o in outcomes for p in o.verification.problems]
    problems.extend(stitch)

    def top(values: list[int | None]) -> int | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    fields: dict[str, list[FieldCheck]] = {}
    for check in checks:
        for field in check.text_fields:
            fields.setdefault(field.name, []).append(field)
    merged_fields = tuple(
        FieldCheck(
            name=name,
            box=found[0].box,
            max_luma=top([f.max_luma for f in found]),
            dark=all(f.dark for f in found),
        )
        for name, found in fields.items()
    )
    return Verification(
        frames_checked=sum(c.frames_checked for c in checks),
        frames_expected=expected,
        max_luma_outside=top([c.max_luma_outside for c in checks]),
        margin_px=checks[0].margin_px if checks else 0,
        max_luma_blackened=top([c.max_luma_blackened for c in checks]),
        passed=not problems and all(c.passed for c in checks),
        problems=tuple(problems),
        text_fields=merged_fields,
    )
