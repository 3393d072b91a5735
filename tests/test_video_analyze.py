"""Tests of analyze_video against synthetic recordings with per-frame ground truth
(testkit.scenes): per-label recall and false positives, the suggested ROI, the overlay.

The measured figures are printed (pytest -s) and appear in the assertion messages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from jobs.video import EditPlan, Roi, Shape, edit_video, verify_output
from jobs.video import analyze as analyze_module
from jobs.video.analyze import (
    BATCH,
    DECISION_LAG,
    IN_FLIGHT,
    Analysis,
    FramePlanes,
    Label,
    LiveAnalysis,
    Segment,
    SuggestedRoi,
    _components,
    _components_searched,
    _Learner,
    _segments,
    analyze_video,
)
from jobs.video.checked import analyze_and_write_checked
from jobs.video.detectors import (
    EDGE_STEP,
    TEXT_MAX_MIDTONES,
    TEXT_RANGE,
    TILE,
    TISSUE_MIN_CR,
    Grid,
    TileStats,
    _midtone_share,
    _mode_levels,
    _quotient,
    _stroke_stats,
    abs_diff,
    block_sums,
    sampled,
    tile_stats,
    tile_sum,
    tissue_colour,
)
from jobs.video.errors import InvalidVideo
from testkit.media import make_video
from testkit.scenes import Scene, SceneTruth, make_scene_video

LABELS: tuple[Label, ...] = ("blank", "text_screen", "non_endoscopic")
MIN_RECALL = 0.95
MAX_FALSE_POSITIVES = 0.05
ROI_TOLERANCE = 0.02  # of the frame width (x edges) / height (y edges)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> SceneTruth:
    """640x360, 25 fps, 192 frames: endoscopy with an overlay, black (with and without the
    overlay), two text screens, an office scene."""
    return make_scene_video(tmp_path_factory.mktemp("scenes") / "scenes.mp4")


@pytest.fixture(scope="module")
def analysis(scenes: SceneTruth) -> Analysis:
    return analyze_video(scenes.path)


@dataclass(frozen=True)
class Score:
    label: Label
    truth_frames: int
    recall: float
    false_positives: int
    false_positive_rate: float  # over the frames whose truth is another label or none

    def __str__(self) -> str:
        return (
            f"{self.label}: recall {self.recall:.3f} of {self.truth_frames}, "
            f"false positives {self.false_positives} ({self.false_positive_rate:.3f})"
        )


def per_frame(analysis: Analysis) -> list[Label | None]:
    labels: list[Label | None] = [None] * analysis.total_frames
    for segment in analysis.segments:
        for index in range(segment.start_frame, segment.end_frame + 1):
            assert labels[index] is None, f"frame {index} has two labels"
            labels[index] = segment.label
    return labels


def scores(truth: Iterable[Label | None], analysis: Analysis) -> dict[Label, Score]:
    truth = list(truth)
    found = per_frame(analysis)
    result = {}
    for label in LABELS:
        positives = [i for i, t in enumerate(truth) if t == label]
        negatives = [i for i, t in enumerate(truth) if t != label]
        hits = sum(found[i] == label for i in positives)
        false = sum(found[i] == label for i in negatives)
        result[label] = Score(
            label=label,
            truth_frames=len(positives),
            recall=hits / len(positives) if positives else 1.0,
            false_positives=false,
            false_positive_rate=false / len(negatives) if negatives else 0.0,
        )
    return result


def roi_errors(found: Roi, truth: Roi, width: int, height: int) -> dict[str, float]:
    """Per edge, the error as a share of the frame width (x edges) or height (y edges)."""
    return {
        "left": abs(found.x - truth.x) / width,
        "right": abs(found.x + found.width - truth.x - truth.width) / width,
        "top": abs(found.y - truth.y) / height,
        "bottom": abs(found.y + found.height - truth.y - truth.height) / height,
    }


# --------------------------------------------------------------------------------- labels


def test_labels_match_ground_truth(scenes: SceneTruth, analysis: Analysis) -> None:
    assert analysis.total_frames == scenes.frames
    assert analysis.detection_method == "classical-v1"
    found = scores(scenes.labels, analysis)
    report = "; ".join(str(s) for s in found.values())
    print(f"\nsample_every=1: {report}")
    for score in found.values():
        assert score.truth_frames > 0
        assert score.recall >= MIN_RECALL, report
        assert score.false_positive_rate <= MAX_FALSE_POSITIVES, report


def test_small_frames(tmp_path: Path) -> None:
    """The same script at 320x240: smaller text (1 px strokes), overlay closer to the disc."""
    truth = make_scene_video(tmp_path / "small.mp4", width=320, height=240, seed=2)
    found = analyze_video(truth.path)
    score = scores(truth.labels, found)
    report = "; ".join(str(s) for s in score.values())
    assert found.suggested_roi is not None
    errors = roi_errors(found.suggested_roi.roi, truth.disc, truth.width, truth.height)
    print(f"\n320x240: {report}; ROI {found.suggested_roi.roi}, errors {errors}")
    for one in score.values():
        assert one.recall >= MIN_RECALL, report
        assert one.false_positive_rate <= MAX_FALSE_POSITIVES, report
    assert max(errors.values()) <= ROI_TOLERANCE, errors
    assert found.suggested_roi.ellipse


@pytest.mark.parametrize(
    ("pix_fmt", "width", "height"),
    [("yuv444p", 321, 241), ("yuv420p10le", 320, 240), ("yuvj420p", 320, 240)],
)
def test_other_pixel_formats(tmp_path: Path, pix_fmt: str, width: int, height: int) -> None:
    # make_video's picture is blue-green everywhere: not the inside of a body.
    src = make_video(
        tmp_path / "c.mp4", width=width, height=height, seconds=0.6, pix_fmt=pix_fmt, audio=False
    )
    found = analyze_video(src)
    assert found.total_frames == 15
    assert found.segments == (Segment("non_endoscopic", 0, 14),)


@pytest.mark.parametrize(("width", "height"), [(1920, 18), (2000, 20), (1920, 40), (18, 1920)])
def test_strips_are_analysed(tmp_path: Path, width: int, height: int) -> None:
    """A wide, low strip is read at a stride that leaves it a tile high (at the stride of its
    width, 1920x18 is 9 working lines: the analysis failed with a numpy error); a tall one
    too. As in test_other_pixel_formats, the blue-green picture is not endoscopic."""
    src = make_video(tmp_path / "s.mp4", width=width, height=height, seconds=0.6, audio=False)
    found = analyze_video(src)
    assert found.total_frames == 15
    assert found.segments == (Segment("non_endoscopic", 0, 14),)
    grid = Grid.of(width, height, 2, 2)
    assert grid.rows * TILE * grid.stride <= height
    assert grid.cols * TILE * grid.stride <= width


def test_frames_smaller_than_a_tile_are_refused(tmp_path: Path) -> None:
    """Under a tile a side (uploads this small are refused already) the analysis says so,
    as an InvalidVideo, rather than failing with a numpy error."""
    src = make_video(tmp_path / "t.mp4", width=64, height=8, seconds=0.2, audio=False)
    with pytest.raises(InvalidVideo, match="64x8 pixels; at least 16"):
        analyze_video(src)


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix"),
    [
        ("libx264", "yuv420p", "mp4"),
        ("mpeg4", "yuv420p", "mp4"),
        ("libvpx-vp9", "yuv420p", "webm"),
        ("ffv1", "gray", "mkv"),
        ("ffv1", "yuv410p", "mkv"),
        ("ffv1", "yuv444p", "mkv"),
    ],
)
def test_flat_noise_and_strokes_in_any_codec(
    tmp_path: Path, codec: str, pix_fmt: str, suffix: str
) -> None:
    """Eight flat grey frames (blank), eight of coloured noise (every tile contrasty but none
    two-level: whole batches without ink, which failed the analysis in CI on 2026-12-01; its
    colours are not tissue) and eight of thin white strokes on black (too little of it for
    text, too much for blank), in several codecs and pixel formats (no chroma at all, 4:1:0)."""
    rng = np.random.default_rng(5)
    width, height = 320, 240
    src = tmp_path / f"odd.{suffix}"
    with av.open(str(src), "w") as out:
        stream = out.add_stream(codec, rate=25)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for index in range(24):
            if index < 8:
                rgb = np.full((height, width, 3), 128, np.uint8)
            elif index < 16:
                rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:
                rgb = np.zeros((height, width, 3), np.uint8)
                for _ in range(40):
                    y, x = int(rng.integers(0, height - 2)), int(rng.integers(0, width - 30))
                    rgb[y : y + 2, x : x + 30] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    found = analyze_video(src)
    assert found.total_frames == 24
    assert found.segments == (Segment("blank", 0, 7), Segment("non_endoscopic", 8, 15))
    json.dumps(found.to_dict())


def test_segments_are_sorted_disjoint_runs(analysis: Analysis) -> None:
    ends = -1
    for segment in analysis.segments:
        assert segment.start_frame > ends
        assert segment.end_frame >= segment.start_frame
        ends = segment.end_frame
    assert ends < analysis.total_frames


@pytest.mark.parametrize("every", [3, 7])
def test_sampling_labels_whole_runs(scenes: SceneTruth, every: int) -> None:
    progress: list[int] = []
    sampled = analyze_video(scenes.path, sample_every=every, on_progress=progress.append)
    assert progress[: scenes.frames] == list(range(1, scenes.frames + 1))
    assert sampled.total_frames == scenes.frames
    assert sampled.sample_every == every
    found = scores(scenes.labels, sampled)
    report = "; ".join(str(s) for s in found.values())
    print(f"\nsample_every={every}: {report}")
    # Unsampled frames next to a scene change may take the neighbour's label: at most
    # every - 1 frames per change; text and office runs are extended (cautious), blank not.
    changes = sum(1 for a, b in zip(scenes.labels, scenes.labels[1:], strict=False) if a != b)
    for score in found.values():
        assert score.recall >= 1 - changes * (every - 1) / max(1, score.truth_frames), report
        assert score.false_positives <= changes * (every - 1), report
    assert sampled.suggested_roi is not None


def test_gap_frames_take_the_cautious_label() -> None:
    # Codes: 0 none, 1 blank, 2 text_screen, 3 non_endoscopic; samples every 4 frames.
    segments = _segments(bytearray([0, 2, 2, 0, 1, 1, 3]), 4, 26)
    assert segments == (
        Segment("text_screen", 1, 11),  # samples 4 and 8, the gaps before 4 and after 8
        Segment("blank", 16, 20),  # gaps between blank and none/other are not blank
        Segment("non_endoscopic", 21, 25),
    )


# ----------------------------------------------------------------------------- ROI, overlay


def test_suggested_roi_is_the_live_disc(scenes: SceneTruth, analysis: Analysis) -> None:
    assert analysis.suggested_roi is not None
    errors = roi_errors(analysis.suggested_roi.roi, scenes.disc, scenes.width, scenes.height)
    message = f"found {analysis.suggested_roi}, truth {scenes.disc}, errors {errors}"
    print(f"\n{message}")
    assert max(errors.values()) <= ROI_TOLERANCE, message
    assert analysis.suggested_roi.ellipse, message


def test_rectangular_live_image(tmp_path: Path) -> None:
    truth = make_scene_video(
        tmp_path / "rect.mp4",
        width=320,
        height=240,
        script=(Scene("endoscopy", 24), Scene("blank", 4), Scene("endoscopy", 8)),
        live_shape="rect",
    )
    found = analyze_video(truth.path)
    assert found.suggested_roi is not None
    errors = roi_errors(found.suggested_roi.roi, truth.disc, truth.width, truth.height)
    message = f"found {found.suggested_roi}, truth {truth.disc}, errors {errors}"
    print(f"\n{message}")
    assert max(errors.values()) <= ROI_TOLERANCE, message
    assert not found.suggested_roi.ellipse, message
    assert found.frames_with(["blank"]) == ((24, 27),)


def test_overlay_region_covers_the_burned_in_text(scenes: SceneTruth, analysis: Analysis) -> None:
    assert len(analysis.overlay_regions) == 1, analysis.overlay_regions
    found, truth = analysis.overlay_regions[0], scenes.overlay
    message = f"found {found}, truth {truth}"
    print(f"\noverlay: {message}")
    assert found.x <= truth.x, message
    assert found.y <= truth.y, message
    assert found.x + found.width >= truth.x + truth.width, message
    assert found.y + found.height >= truth.y + truth.height, message
    # Not much more than the text (the boxes are whole tiles plus half a tile of margin).
    assert found.width * found.height <= 1.6 * truth.width * truth.height, message
    # And it stays clear of the live image.
    assert found.x + found.width <= scenes.disc.x, message


# ----------------------------------------------------------------------------------- API


def test_to_dict_is_json(scenes: SceneTruth, analysis: Analysis) -> None:
    data = json.loads(json.dumps(analysis.to_dict()))
    assert data["total_frames"] == scenes.frames
    assert data["detection_method"] == "classical-v1"
    assert data["sample_every"] == 1
    sensitive = analysis.frames_with(["text_screen", "non_endoscopic"])
    count = sum(b - a + 1 for a, b in sensitive)
    assert data["sensitive_frame_count"] == count
    assert data["sensitive_ratio"] == pytest.approx(count / scenes.frames)
    assert data["sensitive_frame_ids"] == ",".join(
        str(a) if a == b else f"{a}-{b}" for a, b in sensitive
    )
    assert [s["label"] for s in data["segments"]] == [s.label for s in analysis.segments]
    assert set(data["segments"][0]) == {"label", "start_frame", "end_frame"}
    assert analysis.suggested_roi is not None
    roi = analysis.suggested_roi.roi
    suggested = analysis.suggested_roi
    assert data["suggested_roi"] == {
        "x": roi.x,
        "y": roi.y,
        "width": roi.width,
        "height": roi.height,
        "shape": "ellipse",
        "ellipse": True,
        "confidence": round(suggested.confidence, 3),
        "evidence": {
            "fit": "ellipse",
            "fit_residual": round(suggested.fit_residual, 4),
            "frames_used": suggested.frames_used,
            "frame_share": round(suggested.frame_share, 4),
            "moving_frames": suggested.moving_frames,
        },
    }
    assert 0.9 <= data["suggested_roi"]["confidence"] <= 1.0
    assert analysis.inside_regions == ()  # the scenes print nothing over the picture
    assert data["overlay_regions"] == [
        {"x": r.x, "y": r.y, "width": r.width, "height": r.height, "inside_roi": False}
        for r in analysis.overlay_regions
    ]


@dataclass
class EveryTenth:
    """A stand-in for a later OCR/ML detector."""

    name: str = "every-tenth"
    seen: int = 0

    def __call__(self, planes: FramePlanes) -> Iterable[Label]:
        self.seen += 1
        assert not planes.y.flags.writeable
        assert planes.u.shape == (planes.y.shape[0] // 2, planes.y.shape[1] // 2)
        return ["text_screen"] if planes.index % 10 == 0 else []


def test_extra_detectors_add_labels(tmp_path: Path) -> None:
    truth = make_scene_video(
        tmp_path / "s.mp4", width=320, height=240, script=(Scene("endoscopy", 25),)
    )
    detector = EveryTenth()
    found = analyze_video(truth.path, extra_detectors=[detector])
    assert detector.seen == 25
    assert found.detection_method == "classical-v1+every-tenth"
    assert found.frames_with(["text_screen"]) == ((0, 0), (10, 10), (20, 20))


def analysis_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vidcorrect-analysis"]


def test_progress_callback_aborts(scenes: SceneTruth) -> None:
    def cancel(done: int) -> None:
        if done == 5:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        analyze_video(scenes.path, on_progress=cancel)
    assert analysis_threads() == []


@dataclass
class Failing:
    """A detector that fails on one frame."""

    name: str = "failing"
    at: int = 30

    def __call__(self, planes: FramePlanes) -> Iterable[Label]:
        if planes.index == self.at:
            raise ArithmeticError(f"failed on {planes.index}")
        return []


@pytest.mark.parametrize("at", [3, 191])  # early, and the last frame (raised by finish)
def test_a_failing_detector_aborts(scenes: SceneTruth, at: int) -> None:
    """The analysis runs in a thread of its own: its exception reaches the caller."""
    with pytest.raises(ArithmeticError, match=f"failed on {at}"):
        analyze_video(scenes.path, extra_detectors=[Failing(at=at)])
    assert analysis_threads() == []


class CountingGate:
    """Feeds a LiveAnalysis as edit_video does, counting the frames it holds back."""

    def __init__(self) -> None:
        self.analysis = LiveAnalysis(hold=("text_screen",))
        self.given = 0
        self.handed_on: list[bool] = []
        self.most_held = 0

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        ready = self.analysis.push(frame)
        self.given += 1
        self.take(ready)
        return ready

    def take(self, ready: list[av.VideoFrame]) -> None:
        for _ in ready:
            self.handed_on.append(len(self.handed_on) in self.analysis)
        self.most_held = max(self.most_held, self.given - len(self.handed_on))


def test_held_frames_are_bounded_and_labelled_as_analyze_video(
    scenes: SceneTruth, analysis: Analysis
) -> None:
    gate = CountingGate()
    with av.open(str(scenes.path)) as container, gate.analysis:
        for frame in container.decode(video=0):
            gate.push(frame)
        gate.take(gate.analysis.finish())
    assert gate.analysis.result() == analysis
    cut = {i for a, b in analysis.frames_with(["text_screen"]) for i in range(a, b + 1)}
    assert gate.handed_on == [i in cut for i in range(scenes.frames)]
    assert gate.most_held <= DECISION_LAG + IN_FLIGHT + BATCH + 2
    assert analysis_threads() == []


def test_a_closed_analysis_stops_its_thread(scenes: SceneTruth) -> None:
    with av.open(str(scenes.path)) as container, LiveAnalysis() as live:
        for frame in container.decode(video=0):
            live.push(frame)
            if live.frames == 40:
                break
        assert len(analysis_threads()) == 1
    assert analysis_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        live.finish()


def test_sample_every_must_be_positive(scenes: SceneTruth) -> None:
    with pytest.raises(ValueError, match="sample_every"):
        analyze_video(scenes.path, sample_every=0)


# ------------------------------------------------------------------------------- pipeline


def test_analysis_drives_a_clean_edit(
    tmp_path: Path, scenes: SceneTruth, analysis: Analysis
) -> None:
    """Analyse -> remove the sensitive frames, blacken the blank ones, mask to the suggested
    ROI -> verify; the result has no text screen, office or overlay left."""
    assert analysis.suggested_roi is not None
    suggestion: SuggestedRoi = analysis.suggested_roi
    plan = EditPlan(
        roi=suggestion.roi,
        shape=suggestion.shape,
        corner=suggestion.corner,
        blacken=analysis.frames_with(["blank"]),
        remove=analysis.frames_with(["text_screen", "non_endoscopic"]),
    )
    dst = tmp_path / "clean.mp4"
    outcome = edit_video(scenes.path, dst, plan)
    kept_truth = [t for i, t in enumerate(scenes.labels) if outcome.output_index(i) is not None]
    assert "text_screen" not in kept_truth
    assert "non_endoscopic" not in kept_truth
    verdict = verify_output(
        dst,
        expected_frames=outcome.frames_out,
        roi=suggestion.roi,
        shape=suggestion.shape,
        corner=suggestion.corner,
        black_frames=outcome.to_output_ranges(plan.blacken),
    )
    assert verdict.passed, verdict.problems
    again = analyze_video(dst)
    assert again.frames_with(["text_screen", "non_endoscopic"]) == ()
    assert again.overlay_regions == ()


def _video_units(path: Path) -> list[bytes]:
    """The H.264 packets of a file's video stream, as stored."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("labels", [("text_screen", "non_endoscopic"), ("blank",)])
def test_one_pass_analysis_and_edit_equals_the_two_passes(
    tmp_path: Path, scenes: SceneTruth, analysis: Analysis, labels: tuple[Label, ...]
) -> None:
    """Reprocess with a given mask analyses and edits in one decoding pass; the analysis, the
    frames cut and the encoded stream are exactly those of analyze_video then edit_video."""
    roi = Roi(96, 12, 448, 336)
    shape: Shape = "ellipse"
    two_pass = tmp_path / "two-pass.mp4"
    plan = EditPlan(roi=roi, shape=shape, remove=analysis.frames_with(labels))
    assert plan.remove, "the scenes have frames with these labels"
    separate = edit_video(scenes.path, two_pass, plan)

    one_pass = tmp_path / "one-pass.mp4"
    progress: list[int] = []
    found, outcome, verdict = analyze_and_write_checked(
        scenes.path, one_pass, roi=roi, shape=shape, remove=labels, on_progress=progress.append
    )
    assert found == analysis
    assert outcome == separate
    assert verdict.passed, verdict.problems
    assert verdict.frames_checked == outcome.frames_out < outcome.frames_in
    assert _video_units(one_pass) == _video_units(two_pass)
    assert progress[-1] == outcome.frames_in


def test_one_pass_edit_aborted_leaves_no_thread(tmp_path: Path, scenes: SceneTruth) -> None:
    def cancel(done: int) -> None:
        if done == 50:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        analyze_and_write_checked(
            scenes.path,
            tmp_path / "out.mp4",
            roi=Roi(96, 12, 448, 336),
            shape="ellipse",
            remove=("text_screen",),
            on_progress=cancel,
        )
    assert analysis_threads() == []


def test_holding_frames_back_needs_every_frame_analysed() -> None:
    with pytest.raises(ValueError, match="every frame is analysed"):
        LiveAnalysis(sample_every=2, hold=("blank",))


@pytest.mark.parametrize(
    ("width", "step_y", "step_x"), [(1920, 2, 2), (1921, 2, 2), (33, 1, 2), (64, 3, 3), (50, 2, 1)]
)
def test_sampled_copies_the_strided_view(width: int, step_y: int, step_x: int) -> None:
    """detectors.sampled reads every other byte as the low bytes of 16-bit words: the values
    must be those of the plain strided view, on planes with line padding, for any size."""
    rng = np.random.default_rng(width)
    rows = rng.integers(0, 256, (41, width + 32), dtype=np.uint8)
    plane = rows[:, :width]  # a decoded plane: rows longer than the picture (line padding)
    for height, out_width in ((41, width), (20, width // 2 - 1), (7, 3)):
        expected = np.ascontiguousarray(plane[::step_y, ::step_x][:height, :out_width])
        got = sampled(plane, step_y, step_x, height, out_width)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)
        rows, cols = expected.shape
        out = np.zeros((2 * rows, cols), dtype=np.uint8)[rows:]  # a frame's slot in a batch
        assert sampled(plane, step_y, step_x, rows, cols, out) is out
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("batch", [1, 3])
def test_batches_measure_as_frames_one_at_a_time(
    scenes: SceneTruth, analysis: Analysis, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames are measured, learned from and classified BATCH at a time; any batch size
    (1: one frame at a time, 3: batches that straddle every stretch and the decision lag) gives
    the same analysis to the last digit, also with frames sampled and on another layout."""
    monkeypatch.setattr(analyze_module, "BATCH", batch)
    assert analyze_video(scenes.path).to_dict() == analysis.to_dict()
    monkeypatch.undo()
    sampled_every = analyze_video(scenes.path, sample_every=3).to_dict()
    monkeypatch.setattr(analyze_module, "BATCH", batch)
    assert analyze_video(scenes.path, sample_every=3).to_dict() == sampled_every


def test_mode_levels_take_the_median_as_numpy_does() -> None:
    """The batched background level: per frame the fullest 16-code bin of the chosen tiles,
    then np.median inside it (float32, even and odd counts, frames with nothing chosen)."""
    rng = np.random.default_rng(3)
    values = (rng.integers(0, 256 * 4, (40, 9, 11)) / np.float32(4)).astype(np.float32)
    chosen = rng.random(values.shape) < rng.random((40, 1, 1))
    chosen[0] = False
    levels = _mode_levels(values, chosen)
    for frame, where, level in zip(values, chosen, levels, strict=True):
        on = frame[where]
        if on.size == 0:
            assert level == 0
            continue
        bins = np.clip(on // 16, 0, 15).astype(np.int64)
        fullest = int(np.bincount(bins, minlength=16).argmax())
        assert float(level) == float(np.median(on[bins == fullest]))


def test_components_vectorised_match_the_search() -> None:
    """The numpy labelling of larger grids gives the breadth-first search's groups, in its
    order (what the overlay boxes and the ROI's largest group are taken from)."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 70)))
        mask = rng.random(shape) < rng.random()
        fast = _components(mask)
        searched = _components_searched(mask)
        assert [sorted(group) for group in fast] == [sorted(group) for group in searched]
        assert [group[0] for group in fast] == [min(group) for group in searched]


def _up(per_tile: np.ndarray) -> np.ndarray:
    """A (frames, rows, cols) value per tile as (frames, rows * TILE, cols * TILE) pixels."""
    return np.repeat(np.repeat(per_tile, TILE, axis=1), TILE, axis=2)


def _stroke_stats_per_tile(
    work: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_stroke_stats as its docstring defines it, one tile of one frame at a time."""
    frames, rows, cols = lo.shape
    h_steps = np.zeros(lo.shape, dtype=np.int32)
    v_steps = np.zeros(lo.shape, dtype=np.int32)
    midtones = np.zeros(lo.shape, dtype=np.float32)
    for k in range(frames):
        y = work[k].astype(np.int64)
        h_step = np.zeros(y.shape, dtype=bool)  # against the left neighbour; none in column 0
        h_step[:, 1:] = np.abs(y[:, 1:] - y[:, :-1]) >= EDGE_STEP
        v_step = np.zeros(y.shape, dtype=bool)  # against the upper neighbour; none in row 0
        v_step[1:] = np.abs(y[1:] - y[:-1]) >= EDGE_STEP
        for i in range(rows):
            for j in range(cols):
                a, b = int(lo[k, i, j]), int(hi[k, i, j])
                if b - a < TEXT_RANGE:
                    continue
                at = (slice(i * TILE, (i + 1) * TILE), slice(j * TILE, (j + 1) * TILE))
                tile = y[at]
                mid = np.count_nonzero((3 * a + b < 4 * tile) & (4 * tile < a + 3 * b))
                midtones[k, i, j] = np.float32(mid / (TILE * TILE))
                if midtones[k, i, j] <= TEXT_MAX_MIDTONES:
                    h_steps[k, i, j] = np.count_nonzero(h_step[at])
                    v_steps[k, i, j] = np.count_nonzero(v_step[at])
    return h_steps, v_steps, midtones


@pytest.mark.parametrize("popcount", [True, False])
def test_stroke_stats_match_the_per_tile_definition(
    popcount: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gathered, chunked measurement of the strokes gives, to the last bit, what the
    definitions give tile by tile: random sizes (one tile row or column too), frames and
    contrasts, flat, noisy, two-level and mid-tone tiles, more tiles than a chunk, batches
    whose contrasty tiles are all mid-tones (no tile two-level: the CI failure of 2026-12-01);
    with and without numpy's bit counting."""
    if not popcount:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = np.random.default_rng(11)
    every_kind: tuple[int, ...] = (0, 1, 2)
    # (frames, rows, cols, the kinds of tile drawn): the 8 x 33 x 60 ones are more than a
    # chunk; noise and gradients alone leave no tile two-level.
    sizes = [
        (1, 1, 1, every_kind),
        (2, 1, 5, every_kind),
        (3, 4, 1, every_kind),
        (8, 33, 60, every_kind),
        (1, 3, 4, (1,)),
        (2, 2, 3, (1, 2)),
        (8, 33, 60, (1, 2)),
    ]
    for _ in range(12):
        frames, rows, cols = (int(n) for n in rng.integers(1, (5, 12, 16)))
        sizes.append((frames, rows, cols, every_kind))
    seen_steps = seen_midtones = False
    for frames, rows, cols, kinds in sizes:
        shape = (frames, rows, cols)
        # Per tile: two levels (a pattern of ink), a spread of noise, or a gradient.
        low = rng.integers(0, 256, shape)
        high = np.clip(low + rng.integers(0, 256, shape), 0, 255)
        kind = rng.choice(kinds, shape)
        big = (frames, rows * TILE, cols * TILE)
        ink = rng.random(big) < rng.random((frames, 1, 1))
        two_level = np.where(ink, _up(high), _up(low))
        spread = _up(high) - _up(low)
        noisy = _up(low) + (rng.random(big) * (spread + 1)).astype(np.int64)
        ramp = np.tile(np.linspace(0, 1, TILE * TILE).reshape(TILE, TILE), (rows, cols))
        gradient = _up(low) + (ramp * spread).astype(np.int64)
        work = np.choose(_up(kind), [two_level, noisy, gradient]).astype(np.uint8)
        tiles = work.reshape(frames, rows, TILE, cols, TILE)
        lo = tiles.min(axis=(2, 4)).astype(np.int16)
        hi = tiles.max(axis=(2, 4)).astype(np.int16)
        got = _stroke_stats(work, lo, hi)
        expected = _stroke_stats_per_tile(work, lo, hi)
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == e.dtype
            np.testing.assert_array_equal(g, e)
        seen_steps |= bool((expected[0] > 0).any())
        seen_midtones |= bool((expected[2] > TEXT_MAX_MIDTONES).any())
    assert seen_steps
    assert seen_midtones


def test_midtone_share_on_every_luma_and_range() -> None:
    """The wrapped uint8 test of the mid-tones is 3 lo + hi < 4 y < lo + 3 hi for every luma
    y (a tile holding each of the 256 values once) and every contrasty range."""
    lo, hi = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    contrasty = hi - lo >= TEXT_RANGE
    lo, hi = lo[contrasty], hi[contrasty]
    y = np.arange(TILE * TILE)
    mid = (3 * lo[:, None] + hi[:, None] < 4 * y) & (4 * y < lo[:, None] + 3 * hi[:, None])
    expected = (mid.sum(axis=1) / (TILE * TILE)).astype(np.float32)
    pixels = np.tile(y.astype(np.uint8), (lo.size, 1))
    got = _midtone_share(pixels, lo.astype(np.int16), hi.astype(np.int16))
    np.testing.assert_array_equal(got, expected)


def _test_planes(shape: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Random uint8 planes and the extremes (all 0, all 255, a 0/255 checkerboard)."""
    rng = np.random.default_rng(seed)
    checker = (np.indices(shape).sum(axis=0) % 2 * 255).astype(np.uint8)
    return [
        rng.integers(0, 256, shape, dtype=np.uint8),
        rng.integers(250, 256, shape, dtype=np.uint8),
        np.zeros(shape, dtype=np.uint8),
        np.full(shape, 255, dtype=np.uint8),
        checker,
    ]


@pytest.mark.parametrize("block", [2, 4, 8, 16])
def test_block_sums_equal_the_plain_sums(block: int) -> None:
    """block_sums adds rows, then neighbours as fields of 32/64-bit words: exactly the plain
    sums over the block x block squares, up to all-255 blocks (16 x 16 x 255 fills uint16)."""
    for height, width in ((16, 16), (48, 96), (8 * 33 * 16, 60 * 16)):
        for work in _test_planes((height, width), height + width + block):
            h, w = height // block, width // block
            expected = work.reshape(h, block, w, block).sum(axis=(1, 3))
            got = block_sums(work, block)
            assert got.dtype == np.uint16
            assert got.shape == (h, w)
            np.testing.assert_array_equal(got, expected)


def test_tissue_colour_is_the_chroma_condition() -> None:
    """The per-u bound of tissue_colour gives the conditions on the chroma offsets exactly,
    for every (u, v) pair and on 2-d batches."""
    u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    du, dv = u - 128, v - 128
    expected = (dv >= TISSUE_MIN_CR) & (5 * dv >= -4 * du) & (2 * dv >= du)
    got = tissue_colour(u.astype(np.uint8), v.astype(np.uint8))
    np.testing.assert_array_equal(got, expected)
    for u8, v8 in zip(_test_planes((64, 40), 1), _test_planes((64, 40), 2), strict=True):
        du, dv = u8.astype(np.int64) - 128, v8.astype(np.int64) - 128
        expected = (dv >= TISSUE_MIN_CR) & (5 * dv >= -4 * du) & (2 * dv >= du)
        np.testing.assert_array_equal(tissue_colour(u8, v8), expected)


def test_abs_diff_is_the_signed_difference() -> None:
    """The change cells compare |a - b| as max - min in uint8: the int16 difference's."""
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    expected = np.abs(a - b)
    np.testing.assert_array_equal(abs_diff(a.astype(np.uint8), b.astype(np.uint8)), expected)


@pytest.mark.parametrize(("tile_y", "tile_x"), [(8, 8), (4, 4), (16, 16), (8, 4), (2, 16), (3, 5)])
def test_tile_sum_equals_the_plain_sums(tile_y: int, tile_x: int) -> None:
    """tile_sum (rows, then neighbours as fields of words) of bools, bytes (the chroma) and
    uint16 block sums: exactly the plain sums over the tiles, up to all-true and all-255."""
    rows, cols = 7, 9
    shape = (rows * tile_y, cols * tile_x)
    for plane in _test_planes(shape, tile_y * 100 + tile_x):
        planes: list[np.ndarray] = [plane, plane >= 128, plane > 0, plane.astype(np.uint16)]
        if tile_y * tile_x <= 16:  # uint16 block sums of up to 16 pixels (a tile's fits)
            planes.append(plane.astype(np.uint16) * 16)
        for values in planes:
            expected = values.reshape(rows, tile_y, cols, tile_x).sum(axis=(1, 3))
            got = tile_sum(values, rows, cols, tile_y, tile_x)
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [4, 16, 32, 64, 256])
def test_quotient_is_the_float64_division_rounded(n: int) -> None:
    """The tile means divide in float32: the same float32 as dividing in float64 and rounding,
    for every sum a tile of n chroma offsets or n luma bytes can have."""
    sums = np.arange(-128 * n, 256 * n + 1, dtype=np.int32).reshape(1, 1, -1)
    expected = (sums / np.float32(n)).astype(np.float32)
    got = _quotient(sums, n)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_learned_changes_and_extremes_match_the_int16_formulation() -> None:
    """_learned keeps the change cells in uint8 (|a - b| as max - min, extremes in uint8): the
    changed tiles and the per-cell extremes over the live frames are those of the plain int16
    formulation, across batches (the previous batch's last frame) and at 0 and 255."""
    width, height = 160, 96
    rng = np.random.default_rng(5)
    plane = np.zeros((height, width), dtype=np.uint8)
    chroma = np.zeros((height // 2, width // 2), dtype=np.uint8)
    learner = _Learner(width, height, FramePlanes(index=0, y=plane, u=chroma, v=chroma))
    grid = learner.grid
    m = analyze_module.CELLS_PER_TILE
    shape = (grid.rows * m, grid.cols * m)
    base = rng.choice(np.array([0, 1, 4, 5, 250, 251, 254, 255], dtype=np.uint8), size=shape)
    batches = []
    for _ in range(2):
        frames = []
        for k in range(BATCH):
            if k % 3 == 2:  # a still frame: changes of at most CHANGE_STEP
                step = analyze_module.CHANGE_STEP
                noise = rng.integers(-step, step + 1, size=shape)
                frames.append(np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8))
            else:
                frames.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
                base = frames[-1]
        batches.append(np.stack(frames))
    work = np.zeros((BATCH * grid.rows * 16, grid.cols * 16), dtype=np.uint8)
    chroma_samples = np.zeros((BATCH * grid.rows * grid.c_tile_y, grid.cols * grid.c_tile_x))
    stats = tile_stats_of(grid, work, chroma_samples.astype(np.uint8))
    stats = replace(stats, tissue=np.full_like(stats.tissue, stats.samples_per_tile))
    low = np.full(shape, 255, dtype=np.int16)
    high = np.zeros(shape, dtype=np.int16)
    expected_change = np.zeros((grid.rows, grid.cols))
    previous: np.ndarray | None = None
    seen = 0
    for cells in batches:
        learn = learner._learned(cells, stats)
        for k in range(BATCH):
            learn(k)
        wide = cells.astype(np.int16)
        for k in range(BATCH):
            before = previous if k == 0 else wide[k - 1]
            if before is None:
                continue
            changed = np.abs(wide[k] - before) > analyze_module.CHANGE_STEP
            tile_change = changed.reshape(grid.rows, m, grid.cols, m).mean(axis=(1, 3))
            if seen + k >= 2:  # after the first frame's successor, every frame adds its change
                expected_change += tile_change
            tissue_moving = (tile_change >= analyze_module.MOVING_TILE_SHARE).sum()
            if tissue_moving >= max(
                analyze_module.LIVE_MIN_TILES, analyze_module.LIVE_MIN_SHARE * grid.tiles
            ):
                np.minimum(low, wide[k], out=low)
                np.maximum(high, wide[k], out=high)
        previous = wide[-1]
        seen += BATCH
    np.testing.assert_array_equal(learner._cell_min, low)
    np.testing.assert_array_equal(learner._cell_max, high)
    np.testing.assert_array_equal(learner._still.tile_change, expected_change)


def tile_stats_of(grid: Grid, work: np.ndarray, chroma: np.ndarray) -> TileStats:
    """The tile statistics of a batch of blank frames (what _learned reads of them is set)."""
    return tile_stats(grid, work, chroma, chroma, chroma)
