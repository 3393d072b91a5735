"""Tests of edit_video: frame-accurate cuts, blackened frames, masks, audio cut in sync.

The sources are "numbered" clips (testkit.media.make_numbered_video): every frame shows its own
number in big binary blocks and the audio's frequency says which frame is being shown, so each
output frame and each stretch of output audio can be traced back to its source frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from jobs.video import EditOutcome, EditPlan, Roi, edit_video, verify_output
from jobs.video.timeline import RangeCursor, format_ranges, merge_ranges
from testkit.media import (
    CodeRow,
    audio_packets,
    audio_seconds,
    iter_frames,
    make_numbered_video,
    make_vfr_numbered_video,
    make_video,
    open_file_paths,
    sha256,
    summarize,
)
from tests.checks import (
    assert_audio_follows,
    assert_edited,
    kept_indices,
)


@dataclass(frozen=True)
class Numbered:
    path: Path
    fps: Fraction
    frames: int
    audio: bool


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edit-media")


@pytest.fixture(scope="module")
def clip_25(media: Path) -> Numbered:
    """320x240, 25 fps, 3 s, B-frames, AAC."""
    path = make_numbered_video(media / "n25.mp4", width=320, height=240, fps=25, frames=75)
    return Numbered(path, Fraction(25), 75, True)


@pytest.fixture(scope="module")
def clip_ntsc(media: Path) -> Numbered:
    """320x240, 30000/1001 fps, 3 s, B-frames, AAC."""
    fps = Fraction(30000, 1001)
    path = make_numbered_video(media / "ntsc.mp4", width=320, height=240, fps=fps, frames=90)
    return Numbered(path, fps, 90, True)


@pytest.fixture(params=["clip_25", "clip_ntsc"])
def clip(request: pytest.FixtureRequest) -> Numbered:
    value: Numbered = request.getfixturevalue(request.param)
    return value


def _plan_ranges(kind: str, frames: int) -> tuple[tuple[int, int], ...]:
    last = frames - 1
    return {
        "start": ((0, 9),),
        "end": ((last - 14, last),),
        "single": ((37, 37),),
        "several": ((0, 0), (10, 14), (33, 33), (50, 61), (last, last)),
    }[kind]


def _expected_map(kept: list[int]) -> tuple[tuple[int, int, int], ...]:
    runs: list[tuple[int, int, int]] = []
    for new, old in enumerate(kept):
        if runs and runs[-1][1] == old - 1:
            runs[-1] = (runs[-1][0], old, runs[-1][2])
        else:
            runs.append((old, old, new))
    return tuple(runs)


# ------------------------------------------------------------------------------- removal


def test_numbered_sources_have_reordered_b_frames(clip: Numbered) -> None:
    """Frame accuracy is only proven if decode order differs from presentation order."""
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        types = {PictureType(f.pict_type).name for f in container.decode(stream)}
        assert stream.codec_context.has_b_frames
    assert {"I", "P", "B"} <= types


@pytest.mark.parametrize("kind", ["start", "end", "single", "several"])
def test_remove_is_frame_accurate_and_audio_follows(
    tmp_path: Path, clip: Numbered, kind: str
) -> None:
    remove = _plan_ranges(kind, clip.frames)
    before = sha256(clip.path)
    dst = tmp_path / "cut.mp4"
    outcome = edit_video(clip.path, dst, EditPlan(remove=remove))

    assert sha256(clip.path) == before
    kept = kept_indices(clip.frames, remove)
    assert outcome == EditOutcome(
        frames_in=clip.frames,
        frames_out=len(kept),
        removed=clip.frames - len(kept),
        frame_map=_expected_map(kept),
        width=320,
        height=240,
        has_audio=True,
    )
    info = summarize(dst)
    assert (info.fps, info.frames, info.audio_codec) == (clip.fps, len(kept), "aac")
    with av.open(str(dst)) as container:
        video = container.streams.video[0]
        assert video.duration is not None
        assert video.time_base is not None
        # Kept frames keep their duration, also the last one (MP4 states it to the ms).
        assert float(video.duration * video.time_base) == pytest.approx(
            len(kept) / clip.fps, abs=0.0011
        )

    check = assert_edited(clip.path, dst, remove=remove)
    assert check.kept == kept
    audio = assert_audio_follows(dst, kept, clip.fps)
    print(f"{kind} @ {clip.fps}: min PSNR {check.min_psnr:.1f} dB, audio {audio}")


def test_blacken_remove_and_mask_in_one_pass(tmp_path: Path, clip_ntsc: Numbered) -> None:
    roi = Roi(12, 8, 297, 223)
    # Blacken and remove overlap (removal wins); cuts at both ends.
    blacken = ((3, 6), (40, 44), (70, 70))
    remove = ((0, 1), (5, 8), (43, 50), (89, 89))
    plan = EditPlan(roi=roi, shape="ellipse", blacken=blacken, remove=remove)
    dst = tmp_path / "all.mp4"
    progress: list[int] = []
    outcome = edit_video(clip_ntsc.path, dst, plan, on_progress=progress.append)

    assert progress[: clip_ntsc.frames] == list(range(1, clip_ntsc.frames + 1))
    check = assert_edited(
        clip_ntsc.path, dst, remove=remove, blacken=blacken, roi=roi, shape="ellipse"
    )
    assert outcome.frames_out == len(check.kept)
    audio = assert_audio_follows(dst, check.kept, clip_ntsc.fps)
    print(f"mask+blacken+cut: min PSNR {check.min_psnr:.1f}, black max {check.max_black_y}")
    print(f"audio {audio}")

    # The outcome maps the plan's frames to output numbers for verify_output.
    black_out = outcome.to_output_ranges(blacken)
    assert black_out == merge_ranges(
        (check.kept.index(k), check.kept.index(k))
        for start, end in blacken
        for k in range(start, end + 1)
        if k in check.kept
    )
    verdict = verify_output(
        dst, expected_frames=outcome.frames_out, roi=roi, shape="ellipse", black_frames=black_out
    )
    assert verdict.passed, verdict.problems


def test_blacken_only_keeps_timing_and_copies_audio(tmp_path: Path, clip_25: Numbered) -> None:
    blacken = ((0, 0), (20, 30), (74, 74))
    dst = tmp_path / "black.mp4"
    outcome = edit_video(clip_25.path, dst, EditPlan(blacken=blacken))
    assert (outcome.frames_in, outcome.frames_out, outcome.removed) == (75, 75, 0)
    assert outcome.frame_map == ((0, 74, 0),)
    check = assert_edited(clip_25.path, dst, blacken=blacken)
    print(f"blacken: black max luma {check.max_black_y}")
    # Nothing removed: the audio packets are copied as they are.
    assert audio_packets(dst) == audio_packets(clip_25.path)


def test_empty_plan_reencodes_everything(tmp_path: Path, clip_25: Numbered) -> None:
    dst = tmp_path / "same.mp4"
    outcome = edit_video(clip_25.path, dst, EditPlan())
    assert (outcome.frames_out, outcome.removed, outcome.frame_map) == (75, 0, ((0, 74, 0),))
    assert_edited(clip_25.path, dst)
    assert audio_packets(dst) == audio_packets(clip_25.path)


def test_odd_size_cut_without_audio(tmp_path: Path) -> None:
    src = make_numbered_video(
        tmp_path / "odd.mp4", width=321, height=241, frames=30, audio=False, pix_fmt="yuv444p"
    )
    remove = ((0, 2), (11, 11), (20, 24))
    dst = tmp_path / "out.mp4"
    outcome = edit_video(src, dst, EditPlan(roi=Roi(31, 21, 260, 200), remove=remove))
    assert not outcome.has_audio
    assert summarize(dst).pix_fmt == "yuv444p"
    assert_edited(src, dst, remove=remove, roi=Roi(31, 21, 260, 200))


def test_variable_frame_rate_cut_keeps_each_frame_duration(tmp_path: Path) -> None:
    durations = [40, 40, 80, 20] * 10  # ms
    src = make_vfr_numbered_video(tmp_path / "vfr.mp4", durations)
    remove = ((2, 3), (10, 12), (39, 39))
    dst = tmp_path / "out.mp4"
    edit_video(src, dst, EditPlan(remove=remove))
    kept = kept_indices(len(durations), remove)
    starts = [sum(durations[:i]) for i in range(len(durations))]
    expected, shift = [], 0
    for i, start in enumerate(starts):
        if i in kept:
            expected.append((start - shift, i))
        else:
            shift += durations[i]
    row = CodeRow.for_size(320, 240)
    found = [(round(f.time * 1000), row.read(f.y)) for f in iter_frames(dst)]
    assert found == expected


def test_cut_transcodes_pcm_audio(tmp_path: Path) -> None:
    """PCM (packed s16) audio in MOV: cut and re-encoded to AAC, as long as the video."""
    src = make_video(
        tmp_path / "src.mov",
        width=160,
        height=120,
        seconds=2,
        container_format="mov",
        audio_codec="pcm_s16le",
    )
    outcome = edit_video(src, tmp_path / "out.mp4", EditPlan(remove=((0, 4), (20, 29))))
    assert outcome.frames_out == 35
    assert summarize(tmp_path / "out.mp4").audio_codec == "aac"
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(35 / 25, abs=0.002)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("remove", [((0, 74),), ((0, 10), (11, 5000))])
def test_removing_every_frame_is_refused_before_writing(
    tmp_path: Path, clip_25: Numbered, remove: tuple[tuple[int, int], ...]
) -> None:
    dst = tmp_path / "none.mp4"
    with pytest.raises(ValueError, match="every frame"):
        edit_video(clip_25.path, dst, EditPlan(remove=remove))
    assert not dst.exists()


def test_removing_every_frame_without_a_frame_count(tmp_path: Path) -> None:
    # Matroska does not store a frame count: the refusal comes once the frames are counted.
    src = make_video(
        tmp_path / "src.mkv", width=160, height=120, seconds=0.4, container_format="matroska"
    )
    with pytest.raises(ValueError, match="every frame"):
        edit_video(src, tmp_path / "none.mp4", EditPlan(remove=((0, 100),)))


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (EditPlan(roi=Roi(0, 0, 321, 240)), "region"),
        (EditPlan(roi=Roi(0, 0, 0, 10)), "region"),
        (EditPlan(remove=((5, 2),)), "range"),
        (EditPlan(blacken=((-1, 2),)), "range"),
        (EditPlan(roi=Roi(0, 0, 10, 10), shape="circle"), "shape"),  # type: ignore[arg-type]
    ],
)
def test_bad_plans_are_refused(
    tmp_path: Path, clip_25: Numbered, plan: EditPlan, message: str
) -> None:
    dst = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=message):
        edit_video(clip_25.path, dst, plan)
    assert not dst.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_progress_callback_aborts_and_closes_files(tmp_path: Path) -> None:
    src = make_numbered_video(tmp_path / "src.mp4", width=160, height=120, frames=25)
    seen: list[int] = []

    def cancel(done: int) -> None:
        seen.append(done)
        if done == 12:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        # With cuts: the second reader of the source must be closed too.
        edit_video(src, tmp_path / "out.mp4", EditPlan(remove=((3, 5),)), on_progress=cancel)
    assert seen == list(range(1, 13))  # decoded frames, removed ones included
    assert not [p for p in open_file_paths() if p.startswith(str(tmp_path))]


# ---------------------------------------------------------------------------- unit tests


def test_outcome_maps_source_frames_to_output() -> None:
    outcome = EditOutcome(
        frames_in=20,
        frames_out=12,
        removed=8,
        frame_map=((2, 5, 0), (9, 16, 4)),
        width=2,
        height=2,
        has_audio=False,
    )
    assert [outcome.output_index(i) for i in (0, 2, 5, 6, 9, 16, 17)] == [
        None,
        0,
        3,
        None,
        4,
        11,
        None,
    ]
    assert outcome.to_output_ranges(((0, 3), (5, 10), (16, 30))) == ((0, 1), (3, 5), (11, 11))


def test_frame_ranges() -> None:
    assert merge_ranges([(5, 6), (0, 2), (3, 3), (8, 9), (9, 12)]) == ((0, 3), (5, 6), (8, 12))
    assert format_ranges(((0, 3), (7, 7), (10, 12))) == "0-3,7,10-12"
    cursor = RangeCursor(((2, 3), (6, 6)))
    assert [i for i in range(9) if i in cursor] == [2, 3, 6]
    with pytest.raises(ValueError, match="range"):
        merge_ranges([(3, 1)])
