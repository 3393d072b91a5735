"""Tests of chunked editing (jobs.video.chunks, issue 18): a video planned into chunks, the
parts encoded in any order or in separate processes, and stitched.

Judged independently of the code under test: the ffmpeg and ffprobe command lines read the
stitched files (video elementary stream bytes, packet timestamps, a clean decode with -xerror),
the frame numbers burned into the numbered clips' pixels and their per-frame audio tones say
which source frame every output frame and stretch of sound comes from (tests.checks), and the
unchunked edit_video output of the same plan is the reference for the timestamps.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest

from jobs.video.chunks import (
    ChunkOutcome,
    ChunkPlan,
    encode_chunk,
    plan_chunks,
    stitch_parts,
)
from jobs.video.codec import DEFAULT_ENCODE, EncodeOptions
from jobs.video.edit import EditOutcome, EditPlan, edit_video
from jobs.video.nal import avcc_config, length_prefixed_units, sei_messages, unescape_rbsp
from jobs.video.planes import Roi, TextField
from jobs.video.verify import Verification
from testkit.media import (
    CodeRow,
    iter_frames,
    make_numbered_video,
    make_vfr_numbered_video,
    make_video,
    sha256,
)
from tests.checks import BLACK, assert_audio_follows, assert_edited, kept_indices
from tests.hidden import caption_source, found_forms, user_data_source
from tests.oracle import decode_video, probe

TARGET = 1.0  # seconds per chunk: three or four chunks per clip
ROI = Roi(40, 30, 240, 180)
CLOSED_GOPS = "keyint=12:min-keyint=12:scenecut=0"
#: x264's own unregistered user data SEI (its version and options): the only user data allowed.
X264_UUID = bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef")


@dataclass(frozen=True)
class Source:
    path: Path
    fps: Fraction | None  # None: variable frame rate
    frames: int
    audio: bool


@dataclass(frozen=True)
class Chunked:
    chunk_plan: ChunkPlan
    outcomes: list[ChunkOutcome]
    edit: EditOutcome
    verification: Verification
    parts: list[Path]
    dst: Path


EncodeFn = Callable[[Path, Path, ChunkPlan, int, EditPlan], ChunkOutcome]


def _encode_here(
    src: Path, dst: Path, chunk_plan: ChunkPlan, index: int, plan: EditPlan
) -> ChunkOutcome:
    return encode_chunk(src, dst, chunk_plan, index, plan)


def run_chunked(
    src: Path,
    folder: Path,
    plan: EditPlan,
    *,
    order: list[int] | None = None,
    encode_fn: EncodeFn = _encode_here,
    target: float = TARGET,
) -> Chunked:
    """Plan, encode the parts in `order` (default: in turn), stitch."""
    folder.mkdir(parents=True, exist_ok=True)
    chunk_plan = plan_chunks(src, target, plan, DEFAULT_ENCODE, source_id="test")
    parts = [folder / f"part{c.index}.mp4" for c in chunk_plan.chunks]
    found: dict[int, ChunkOutcome] = {}
    for k in order if order is not None else range(len(parts)):
        found[k] = encode_fn(src, parts[k], chunk_plan, k, plan)
    outcomes = [found[k] for k in range(len(parts))]
    dst = folder / "stitched.mp4"
    edit, verification = stitch_parts(src, parts, dst, chunk_plan, outcomes, plan)
    return Chunked(chunk_plan, outcomes, edit, verification, parts, dst)


def video_stream(path: Path) -> bytes:
    """The H.264 elementary stream of `path`'s video, as the ffmpeg command line copies it."""
    run = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "h264",
            "-",
        ],
        capture_output=True,
        check=True,
    )
    assert run.stdout, "no video stream"
    return run.stdout


def packet_times(path: Path) -> list[tuple[float, float]]:
    """(pts, dts) in seconds of every video packet in file order, as ffprobe reads them."""
    run = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    packets = json.loads(run.stdout)["packets"]
    return [(float(p["pts_time"]), float(p["dts_time"])) for p in packets]


def interleaving_lag(path: Path) -> float:
    """How far (seconds) a packet, in file order, lies behind the latest packet of the other
    stream written before it: small when audio and video are interleaved as they go, the
    whole duration when one stream was written after the other."""
    run = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts_time,pos",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    packets = sorted(json.loads(run.stdout)["packets"], key=lambda p: int(p["pos"]))
    latest: dict[int, float] = {}
    lag = 0.0
    for packet in packets:
        stream, time = int(packet["stream_index"]), float(packet["dts_time"])
        others = [t for s, t in latest.items() if s != stream]
        if others:
            lag = max(lag, max(others) - time)
        latest[stream] = max(time, latest.get(stream, time))
    assert len(latest) == 2, "expected a video and an audio stream"
    return lag


def ffmpeg_errors(path: Path) -> str:
    """What `ffmpeg -xerror` says decoding every stream of `path` (empty when clean)."""
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (run.stdout + run.stderr).strip() + ("" if run.returncode == 0 else " (failed)")


def shown_numbers(path: Path) -> list[int]:
    """The frame number burned into each frame of a numbered clip's edit."""
    numbers: list[int] = []
    row: CodeRow | None = None
    for frame in iter_frames(path):
        if row is None:
            height, width = frame.y.shape
            row = CodeRow.for_size(width, height)
        numbers.append(row.read(frame.y))
    return numbers


# ------------------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chunk-media")


def _numbered(folder: Path, name: str, fps: Fraction, frames: int, params: str | None) -> Source:
    path = make_numbered_video(
        folder / f"{name}.mp4", width=320, height=240, fps=fps, frames=frames, x264_params=params
    )
    return Source(path, fps, frames, True)


@pytest.fixture(scope="module")
def closed_gop(media: Path) -> Source:
    """25 fps, 4 s, B-frames, an IDR every 12 frames (closed GOPs)."""
    return _numbered(media, "closed", Fraction(25), 100, CLOSED_GOPS)


@pytest.fixture(scope="module")
def open_gop(media: Path) -> Source:
    """25 fps, 3.6 s, B-frames, open GOPs: an I-frame every 12 frames, only the first an IDR."""
    return _numbered(media, "open", Fraction(25), 90, CLOSED_GOPS + ":open-gop=1")


@pytest.fixture(scope="module")
def long_gop(media: Path) -> Source:
    """25 fps, 90 frames, one GOP (x264's keyint 250): no keyframe near any boundary; the
    chunks decode from the start, up to MAX_PREROLL (2) target lengths back."""
    return _numbered(media, "long", Fraction(25), 90, None)


@pytest.fixture(scope="module")
def short_last(media: Path) -> Source:
    """25 fps, 76 frames, an IDR every 25 frames: the last chunk is the single frame 75."""
    return _numbered(media, "short_last", Fraction(25), 76, "keyint=25:min-keyint=25:scenecut=0")


@pytest.fixture(scope="module")
def ntsc(media: Path) -> Source:
    """29.97 fps, 95 frames, an IDR every 15 frames."""
    return _numbered(media, "ntsc", Fraction(30000, 1001), 95, "keyint=15:min-keyint=15:scenecut=0")


VFR_DURATIONS = [40 if i % 3 else 80 for i in range(80)]  # ms: 25 fps with every third frame 2x


@pytest.fixture(scope="module")
def vfr(media: Path) -> Source:
    """Variable frame rate (40 and 80 ms frames), silent, one GOP."""
    path = make_vfr_numbered_video(media / "vfr.mp4", VFR_DURATIONS)
    return Source(path, None, len(VFR_DURATIONS), False)


SOURCES = ["closed_gop", "open_gop", "long_gop", "short_last", "ntsc", "vfr"]

#: Plans: a mask; a mask with frames blackened and removed across the seams (each clip's
#: boundaries lie near frames 25, 50, 75 or, for 29.97 fps, 30, 60, 90), a removal at the start;
#: an octagonal mask with a removal across a seam.
PLANS = {
    "mask": EditPlan(roi=ROI),
    "octagon": EditPlan(roi=ROI, shape="octagon", corner=50, remove=((22, 28),)),
    "edit": EditPlan(
        roi=ROI,
        shape="ellipse",
        blacken=((8, 12), (70, 78)),
        remove=((0, 2), (20, 31), (45, 52), (88, 91)),
    ),
}


# ------------------------------------------------------------------------------------- the tests


def test_parts_in_any_order_or_process_give_the_same_bytes(
    closed_gop: Source, tmp_path: Path
) -> None:
    """Parts encoded in turn, in reverse, shuffled, or each in its own Python process (some
    held to one core), give a byte-identical stitched video stream (and file)."""
    plan = PLANS["edit"]
    in_turn = run_chunked(closed_gop.path, tmp_path / "turn", plan)
    n = len(in_turn.parts)
    assert n >= 3
    reverse = run_chunked(closed_gop.path, tmp_path / "reverse", plan, order=list(range(n))[::-1])
    shuffled = run_chunked(
        closed_gop.path, tmp_path / "shuffled", plan, order=[2, 0, *range(3, n), 1]
    )
    processes = run_chunked(closed_gop.path, tmp_path / "processes", plan, encode_fn=_in_process)
    reference = video_stream(in_turn.dst)
    for other in (reverse, shuffled, processes):
        assert other.verification.passed, other.verification.problems
        assert video_stream(other.dst) == reference
        assert packet_times(other.dst) == packet_times(in_turn.dst)
        assert [sha256(p) for p in other.parts] == [sha256(p) for p in in_turn.parts]
        assert sha256(other.dst) == sha256(in_turn.dst)
        assert [o.nal_sha256 for o in other.outcomes] == [o.nal_sha256 for o in in_turn.outcomes]


_CHILD = """
import json, os, sys
from pathlib import Path
from jobs.video.chunks import ChunkPlan, encode_chunk
from jobs.video.edit import EditPlan
from jobs.video.planes import Roi
args = json.loads(Path(sys.argv[1]).read_text())
if args["one_core"]:  # as on a machine with a single core
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
p = args["plan"]
plan = EditPlan(
    roi=Roi(**p["roi"]), shape=p["shape"],
    blacken=tuple(map(tuple, p["blacken"])), remove=tuple(map(tuple, p["remove"])),
)
outcome = encode_chunk(
    Path(args["src"]), Path(args["dst"]), ChunkPlan.from_dict(args["chunk_plan"]),
    args["index"], plan,
)
Path(sys.argv[2]).write_text(json.dumps(outcome.to_dict()))
"""


def _in_process(
    src: Path, dst: Path, chunk_plan: ChunkPlan, index: int, plan: EditPlan
) -> ChunkOutcome:
    """encode_chunk in a fresh Python process (held to one core for every other chunk), the
    plans and the outcome through JSON."""
    assert plan.roi is not None
    args = {
        "src": str(src),
        "dst": str(dst),
        "chunk_plan": chunk_plan.to_dict(),
        "index": index,
        "one_core": index % 2 == 0,
        "plan": {
            "roi": plan.roi.to_dict(),
            "shape": plan.shape,
            "blacken": plan.blacken,
            "remove": plan.remove,
        },
    }
    args_path = dst.with_suffix(".args.json")
    result_path = dst.with_suffix(".outcome.json")
    args_path.write_text(json.dumps(args))
    subprocess.run(
        [sys.executable, "-c", _CHILD, str(args_path), str(result_path)], check=True, timeout=300
    )
    return ChunkOutcome.from_dict(json.loads(result_path.read_text()))


@pytest.mark.parametrize("plan_name", list(PLANS))
@pytest.mark.parametrize("source_name", SOURCES)
def test_stitched_equals_unchunked_edit(
    request: pytest.FixtureRequest, tmp_path: Path, source_name: str, plan_name: str
) -> None:
    """The stitched output has the unchunked output's frames, timestamps and sound: every
    seam without a duplicated or missing frame, the audio tone in sync across every seam."""
    source: Source = request.getfixturevalue(source_name)
    plan = PLANS[plan_name]
    chunked = run_chunked(source.path, tmp_path / "chunked", plan)
    assert len(chunked.chunk_plan.chunks) >= 3
    assert chunked.verification.passed, chunked.verification.problems
    whole = tmp_path / "whole.mp4"
    reference = edit_video(source.path, whole, plan)
    assert chunked.edit == reference

    assert ffmpeg_errors(chunked.dst) == ""
    times = packet_times(chunked.dst)
    dts = [d for _, d in times]
    assert all(b > a for a, b in itertools.pairwise(dts)), "dts not strictly increasing"
    assert all(d <= p for p, d in times)
    assert sorted(p for p, _ in times) == sorted(p for p, _ in packet_times(whole))

    kept = kept_indices(source.frames, plan.remove)
    # Blackened frames read as 0 (every block dark).
    assert shown_numbers(chunked.dst) == [0 if _in(k, plan.blacken) else k for k in kept]
    if source.fps is not None:
        assert_edited(
            source.path,
            chunked.dst,
            remove=plan.remove,
            blacken=plan.blacken,
            roi=plan.roi,
            shape=plan.shape,
            corner=plan.corner,
        )
    if source.audio:
        assert source.fps is not None
        assert_audio_follows(chunked.dst, kept, source.fps)
        assert interleaving_lag(chunked.dst) < 0.5


def _in(index: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= index <= b for a, b in ranges)


def test_plan_boundaries(
    closed_gop: Source, open_gop: Source, long_gop: Source, short_last: Source
) -> None:
    """Closed GOPs: boundaries at the IDR nearest each second, decoded from there. Open GOPs
    and long GOPs: boundaries at the target frames, decoded from an earlier keyframe (or the
    start), but not from further back than two chunks. A last chunk of a single frame."""
    plan = PLANS["mask"]
    closed = plan_chunks(closed_gop.path, TARGET, plan, DEFAULT_ENCODE)
    assert [c.start_frame for c in closed.chunks] == [0, 24, 48, 72]
    assert all(c.seek_pts == c.start_pts for c in closed.chunks[1:])
    assert closed.chunks[-1].end_frame == closed_gop.frames - 1
    opened = plan_chunks(open_gop.path, TARGET, plan, DEFAULT_ENCODE)
    assert [c.start_frame for c in opened.chunks] == [0, 25, 50, 75]
    for chunk in opened.chunks[1:]:
        assert chunk.seek_pts is not None
        assert chunk.seek_pts < chunk.start_pts
    long = plan_chunks(long_gop.path, TARGET, plan, DEFAULT_ENCODE)
    assert [(c.start_frame, c.end_frame) for c in long.chunks] == [(0, 24), (25, 49), (50, 89)]
    assert all(c.seek_pts is None for c in long.chunks)
    last = plan_chunks(short_last.path, TARGET, plan, DEFAULT_ENCODE)
    assert [(c.start_frame, c.end_frame) for c in last.chunks] == [
        (0, 24),
        (25, 49),
        (50, 74),
        (75, 75),
    ]
    assert all(c.seek_pts == c.start_pts for c in last.chunks[1:])
    for chunk_plan in (closed, opened, long, last):
        frames = [f for c in chunk_plan.chunks for f in range(c.start_frame, c.end_frame + 1)]
        assert frames == list(range(chunk_plan.total_frames))


def test_plan_depends_only_on_its_inputs(closed_gop: Source, media: Path) -> None:
    plan = PLANS["edit"]
    first = plan_chunks(closed_gop.path, TARGET, plan, DEFAULT_ENCODE, source_id="a")
    assert plan_chunks(closed_gop.path, TARGET, plan, DEFAULT_ENCODE, source_id="a") == first
    assert ChunkPlan.from_dict(json.loads(json.dumps(first.to_dict()))) == first
    others = [
        plan_chunks(closed_gop.path, TARGET, plan, DEFAULT_ENCODE, source_id="b"),
        plan_chunks(closed_gop.path, TARGET, PLANS["mask"], DEFAULT_ENCODE, source_id="a"),
        plan_chunks(closed_gop.path, TARGET, plan, EncodeOptions(crf=20), source_id="a"),
        plan_chunks(closed_gop.path, 1.5, plan, DEFAULT_ENCODE, source_id="a"),
    ]
    assert len({first.fingerprint, *(o.fingerprint for o in others)}) == 5
    # Shorter than two chunks: one chunk.
    short = make_numbered_video(media / "short.mp4", width=320, height=240, frames=45)
    single = plan_chunks(short, TARGET, plan, DEFAULT_ENCODE)
    assert [(c.start_frame, c.end_frame, c.seek_pts) for c in single.chunks] == [(0, 44, None)]
    with pytest.raises(ValueError, match="remove every frame"):
        plan_chunks(closed_gop.path, TARGET, EditPlan(remove=((0, 99),)), DEFAULT_ENCODE)


def test_chunk_left_with_one_frame_is_merged(closed_gop: Source) -> None:
    """A middle chunk with a single kept frame (47) joins the one before: its part would be a
    lone IDR picture followed by the next part's, of the same idr_pic_id."""
    plan = EditPlan(remove=((24, 46),))
    chunk_plan = plan_chunks(closed_gop.path, TARGET, plan, DEFAULT_ENCODE)
    assert [(c.start_frame, c.end_frame) for c in chunk_plan.chunks] == [
        (0, 47),
        (48, 71),
        (72, 99),
    ]


def test_chunk_entirely_removed_is_merged(closed_gop: Source, tmp_path: Path) -> None:
    """A removal that swallows a whole chunk (24-47) merges it into the one before; the
    stitched file is the unchunked edit."""
    plan = EditPlan(roi=ROI, remove=((20, 50),))
    chunked = run_chunked(closed_gop.path, tmp_path, plan)
    assert [(c.start_frame, c.end_frame) for c in chunked.chunk_plan.chunks] == [
        (0, 47),
        (48, 71),
        (72, 99),
    ]
    assert chunked.verification.passed, chunked.verification.problems
    assert_edited(closed_gop.path, chunked.dst, remove=plan.remove, roi=ROI)
    kept = kept_indices(closed_gop.frames, plan.remove)
    assert_audio_follows(chunked.dst, kept, Fraction(25))


def test_stitch_check_catches_wrong_parts(closed_gop: Source, tmp_path: Path) -> None:
    """Parts out of order, or a part other than the one checked, fail the stitch's check."""
    plan = PLANS["mask"]
    good = run_chunked(closed_gop.path, tmp_path / "good", plan)
    swapped = [good.parts[0], good.parts[2], good.parts[1], *good.parts[3:]]
    _, verification = stitch_parts(
        closed_gop.path, swapped, tmp_path / "swapped.mp4", good.chunk_plan, good.outcomes, plan
    )
    assert not verification.passed
    assert verification.problems == (
        "Part 1's timestamps are not the ones of the kept frames of chunk 1.",
        "Part 2's timestamps are not the ones of the kept frames of chunk 2.",
    )
    assert not (tmp_path / "swapped.mp4").exists()
    wrong = [good.outcomes[0], *good.outcomes[1:]]
    wrong[1] = ChunkOutcome(
        index=1,
        frames_in=wrong[1].frames_in,
        frames_out=wrong[1].frames_out,
        nal_sha256="0" * 64,
        verification=wrong[1].verification,
    )
    _, verification = stitch_parts(
        closed_gop.path, good.parts, tmp_path / "wrong.mp4", good.chunk_plan, wrong, plan
    )
    assert verification.problems == (
        "Part 1 in the stitched file is not the part that was checked.",
    )


def test_parts_are_checked_live(tmp_path: Path) -> None:
    """A device's text field is proven dark in every part; a mask that leaves it visible
    fails the part's check, and so the stitched file's."""
    field = TextField("patient", Roi(8, 8, 80, 20))
    src = make_video(
        tmp_path / "burned.mp4", width=320, height=240, seconds=3.2, burned_in=((8, 8, 80, 20),)
    )
    for roi, dark in ((ROI, True), (Roi(0, 0, 320, 240), False)):
        plan = EditPlan(roi=roi)
        chunk_plan = plan_chunks(src, TARGET, plan, DEFAULT_ENCODE)
        assert len(chunk_plan.chunks) >= 3
        done: list[int] = []
        outcomes = [
            encode_chunk(
                src,
                tmp_path / f"p{c.index}.mp4",
                chunk_plan,
                c.index,
                plan,
                text_fields=(field,),
                on_progress=done.append,
            )
            for c in chunk_plan.chunks
        ]
        assert done[0] == 0
        assert done[-1] == chunk_plan.chunks[-1].frames
        parts = [tmp_path / f"p{c.index}.mp4" for c in chunk_plan.chunks]
        _, verification = stitch_parts(src, parts, tmp_path / "out.mp4", chunk_plan, outcomes, plan)
        assert [f.dark for f in verification.text_fields] == [dark]
        assert verification.passed is dark
        assert all(o.verification.passed is dark for o in outcomes)
        assert verification.frames_checked == chunk_plan.total_frames
        for outcome in outcomes:  # as handed between processes
            assert ChunkOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome


@pytest.mark.parametrize("kind", ["user data", "captions"])
def test_stitched_output_holds_no_hidden_name(
    closed_gop: Source, tmp_path: Path, kind: str
) -> None:
    """A name hidden in the source's SEI (unregistered user data, A/53 closed captions) reaches
    neither the parts nor the stitched file, which holds no SEI user data but x264's own."""
    if kind == "user data":
        src = user_data_source(closed_gop.path, tmp_path / "hidden.mp4")
    else:
        src = caption_source(closed_gop.path, tmp_path / "hidden.mp4")
    assert found_forms(src) != []
    chunked = run_chunked(src, tmp_path / "out", PLANS["mask"])
    assert chunked.verification.passed, chunked.verification.problems
    for path in [*chunked.parts, chunked.dst]:
        assert found_forms(path) == []
    for payload_type, payload in _sei_messages(chunked.dst):
        assert payload_type != 4
        assert payload_type != 5 or payload[:16] == X264_UUID


def _sei_messages(path: Path) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        length_size, _ = avcc_config(bytes(stream.codec_context.extradata or b""))
        for packet in container.demux(stream):
            if packet.size:
                for unit in length_prefixed_units(bytes(packet), length_size):
                    if unit[0] & 0x1F == 6:
                        found.extend(sei_messages(unescape_rbsp(unit[1:])))
    return found


def test_late_start_keeps_the_source_timestamps(closed_gop: Source, tmp_path: Path) -> None:
    """A source whose first frame is shown at 0.3337 s: the stitched mask has the source's
    timestamps exactly (the MP4 edit lists of the parts and of the output are not rounded)."""
    src = tmp_path / "late.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(closed_gop.path),
            "-c",
            "copy",
            "-output_ts_offset",
            "0.3337",
            str(src),
        ],
        check=True,
    )
    source_pts = sorted(p for p, _ in packet_times(src))
    assert source_pts[0] > 0.3
    chunked = run_chunked(src, tmp_path / "chunked", PLANS["mask"])
    assert len(chunked.chunk_plan.chunks) >= 3
    assert chunked.verification.passed, chunked.verification.problems
    assert sorted(p for p, _ in packet_times(chunked.dst)) == source_pts
    assert shown_numbers(chunked.dst) == list(range(closed_gop.frames))


def test_without_audio(closed_gop: Source, tmp_path: Path) -> None:
    """keep_audio=False: the stitched file has the video only."""
    plan = EditPlan(roi=ROI, remove=((20, 30),), keep_audio=False)
    chunked = run_chunked(closed_gop.path, tmp_path, plan)
    assert chunked.verification.passed, chunked.verification.problems
    assert not chunked.edit.has_audio
    run = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            str(chunked.dst),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["video"]
    assert shown_numbers(chunked.dst) == kept_indices(closed_gop.frames, plan.remove)


def test_source_with_frames_cut_off_by_an_edit_list(open_gop: Source, tmp_path: Path) -> None:
    """A source cut with `ffmpeg -ss 0.5 -c copy` starts before its first shown frame: the
    packets its edit list discards are no frames, in the plan as in edit_video."""
    src = tmp_path / "cut.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-ss",
            "0.5",
            "-i",
            str(open_gop.path),
            "-c",
            "copy",
            str(src),
        ],
        check=True,
    )
    plan = EditPlan(roi=ROI, remove=((20, 30),))
    chunked = run_chunked(src, tmp_path / "chunked", plan)
    assert len(chunked.chunk_plan.chunks) >= 3
    assert chunked.verification.passed, chunked.verification.problems
    whole = tmp_path / "whole.mp4"
    assert chunked.edit == edit_video(src, whole, plan)
    assert chunked.edit.frames_in == chunked.chunk_plan.total_frames
    assert len(packet_times(src)) > chunked.chunk_plan.total_frames  # the discarded packets
    assert shown_numbers(chunked.dst) == shown_numbers(whole)
    assert sorted(p for p, _ in packet_times(chunked.dst)) == sorted(
        p for p, _ in packet_times(whole)
    )


def test_blacken_regions_inside_the_kept_area(closed_gop: Source, tmp_path: Path) -> None:
    """Boxes blackened inside the kept area (a clock printed over the picture) are carried into
    every part and checked there: the stitched output is the unchunked one, and the ffmpeg
    command line decodes every frame dark inside each box."""
    boxes = (Roi(60, 40, 48, 24), Roi(200, 150, 32, 32))
    plan = EditPlan(roi=ROI, blacken_regions=boxes)
    chunked = run_chunked(closed_gop.path, tmp_path / "chunked", plan)
    assert len(chunked.chunk_plan.chunks) >= 3
    assert chunked.verification.passed, chunked.verification.problems
    assert chunked.edit == edit_video(closed_gop.path, tmp_path / "whole.mp4", plan)
    info = probe(chunked.dst)
    frames = 0
    for planes in decode_video(chunked.dst, info, "yuv420p"):
        for box in boxes:
            inside = planes.y[box.y + 2 : box.y + box.height - 2, box.x + 2 : box.x + box.width - 2]
            assert int(inside.max()) <= BLACK + 8, f"frame {frames}: box {box} not black"
        frames += 1
    assert frames == closed_gop.frames
