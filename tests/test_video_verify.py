"""Tests of verify_output: it passes the service's real outputs and catches what is wrong."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from jobs.video import (
    EditOutcome,
    EditPlan,
    EncodeOptions,
    Roi,
    Verification,
    edit_video,
    mask_video,
    verify_output,
)
from jobs.video.timeline import to_output_ranges
from jobs.video.verify import DEFAULT_MARGIN_PX, LUMA_LIMIT, LiveVerifier
from testkit.media import make_not_a_video, make_video, truncate_copy
from tests.checks import BLACK

ROI = Roi(41, 23, 211, 181)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-media")


@pytest.fixture(scope="module")
def source(media: Path) -> Path:
    """320x240, 25 fps, 2 s: bright and colourful everywhere (luma 60..225)."""
    return make_video(media / "src.mp4", width=320, height=240, seconds=2.0, audio=False)


@pytest.fixture(scope="module")
def masked(media: Path, source: Path) -> Path:
    """The source masked to an ellipse, with frames 10-14 blackened (CRF 18)."""
    dst = media / "masked.mp4"
    edit_video(source, dst, EditPlan(roi=ROI, shape="ellipse", blacken=((10, 14),)))
    return dst


def test_passes_a_correct_output(masked: Path) -> None:
    progress: list[int] = []
    result = verify_output(
        masked,
        expected_frames=50,
        roi=ROI,
        shape="ellipse",
        black_frames=((10, 14),),
        on_progress=progress.append,
    )
    print(f"\n{result}")
    assert result.passed, result.problems
    assert result.problems == ()
    assert (result.frames_checked, result.frames_expected) == (50, 50)
    assert result.margin_px == DEFAULT_MARGIN_PX
    assert result.max_luma_outside is not None
    assert BLACK <= result.max_luma_outside <= BLACK + 3
    assert result.max_luma_blackened is not None
    assert result.max_luma_blackened <= BLACK + 3
    assert progress[:50] == list(range(1, 51))


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_passes_mask_video_outputs(tmp_path: Path, source: Path, shape: str) -> None:
    dst = tmp_path / "m.mp4"
    mask_video(source, dst, ROI, shape)  # type: ignore[arg-type]
    result = verify_output(dst, expected_frames=50, roi=ROI, shape=shape)  # type: ignore[arg-type]
    assert result.passed, result.problems
    assert result.max_luma_blackened is None


def test_catches_content_outside_the_region(source: Path) -> None:
    # The unmasked source "claims" the ROI: everything outside it is bright picture.
    result = verify_output(source, expected_frames=50, roi=ROI, shape="rect")
    assert not result.passed
    assert result.max_luma_outside is not None
    assert result.max_luma_outside > 150
    assert any("Outside the region" in p and "50 frames" in p for p in result.problems)


def test_margin_tolerates_ringing_but_not_leaks(masked: Path) -> None:
    # Claiming a region 4 px smaller on every side: the picture between is within the
    # margin (like codec ringing), so it passes...
    inner = Roi(ROI.x + 4, ROI.y + 4, ROI.width - 8, ROI.height - 8)
    assert verify_output(masked, expected_frames=50, roi=inner, shape="ellipse").passed
    # ...but 20 px smaller, the picture is beyond the margin: a leak.
    smaller = Roi(ROI.x + 20, ROI.y + 20, ROI.width - 40, ROI.height - 40)
    result = verify_output(masked, expected_frames=50, roi=smaller, shape="ellipse")
    assert not result.passed
    assert result.max_luma_outside is not None
    assert result.max_luma_outside > LUMA_LIMIT


def test_catches_wrong_frame_count(masked: Path) -> None:
    result = verify_output(masked, expected_frames=51, roi=ROI, shape="ellipse")
    assert not result.passed
    assert result.problems == ("The output has 50 frames; 51 expected.",)


def test_catches_frames_that_should_be_black(masked: Path) -> None:
    result = verify_output(
        masked, expected_frames=50, roi=ROI, shape="ellipse", black_frames=((9, 14), (40, 40))
    )
    assert not result.passed
    assert result.max_luma_blackened is not None
    assert result.max_luma_blackened > 150
    assert any("must be black" in p and "2 frames" in p for p in result.problems)


def test_region_not_inside_the_output(masked: Path) -> None:
    result = verify_output(masked, expected_frames=50, roi=Roi(200, 0, 200, 100))
    assert not result.passed
    assert "not inside" in result.problems[0]


@pytest.mark.parametrize("broken", ["text", "truncated"])
def test_unreadable_outputs_fail(tmp_path: Path, masked: Path, broken: str) -> None:
    if broken == "text":
        path = make_not_a_video(tmp_path / "x.mp4")
    else:
        path = truncate_copy(masked, tmp_path / "cut.mp4", 0.5)
    result = verify_output(path, expected_frames=50, roi=ROI)
    assert not result.passed
    assert result.frames_checked < 50
    assert result.problems


def test_progress_callback_aborts(masked: Path) -> None:
    def cancel(done: int) -> None:
        if done == 7:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        verify_output(masked, expected_frames=50, on_progress=cancel)


def test_to_dict_is_json(masked: Path) -> None:
    result = verify_output(masked, expected_frames=50, roi=ROI, shape="ellipse")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is True
    assert data["frames_checked"] == 50
    assert data["margin_px"] == DEFAULT_MARGIN_PX
    assert data["luma_limit"] == LUMA_LIMIT
    assert data["max_luma_blackened"] is None
    assert data["problems"] == []
    assert (
        Verification(**{k: v for k, v in data.items() if k != "luma_limit"} | {"problems": ()})
        == result
    )


# -- LiveVerifier: the same checks on the encoder's packets, while the output is written ----


def test_live_verification_matches_the_file_check(media: Path, source: Path) -> None:
    plan = EditPlan(roi=ROI, shape="ellipse", blacken=((10, 14), (30, 33)), remove=((20, 24),))
    black = to_output_ranges(plan.blacken, plan.remove)
    verifier = LiveVerifier(roi=ROI, shape="ellipse", black_frames=black)
    dst = media / "live.mp4"
    try:
        outcome = edit_video(source, dst, plan, on_video_packet=verifier)
    finally:
        verifier.close()
    assert black == outcome.to_output_ranges(plan.blacken) == ((10, 14), (25, 28))
    progress: list[int] = []
    live = verifier.finish(dst, 45, on_progress=progress.append)
    from_file = verify_output(dst, expected_frames=45, roi=ROI, shape="ellipse", black_frames=black)
    assert live.passed, live.problems
    assert live == from_file
    assert progress[-1] == 45  # packets read back from the file


def test_live_verification_catches_an_encoder_that_forgets_the_mask(
    tmp_path: Path, source: Path
) -> None:
    verifier = LiveVerifier(roi=ROI, shape="rect", black_frames=((10, 14),))
    dst = tmp_path / "leaky.mp4"
    try:
        edit_video(source, dst, EditPlan(blacken=((10, 14),)), on_video_packet=verifier)
    finally:
        verifier.close()
    result = verifier.finish(dst, 50)
    assert not result.passed
    assert result.max_luma_outside is not None
    assert result.max_luma_outside > 150
    assert any("Outside the region" in p and "45 frames" in p for p in result.problems)


def test_live_verification_refuses_a_file_other_than_the_checked_stream(
    tmp_path: Path, source: Path, masked: Path
) -> None:
    """What is published must be what was decoded: here the file on disk is another encode."""
    verifier = LiveVerifier(roi=ROI, shape="ellipse", black_frames=((10, 14),))
    try:
        edit_video(
            source,
            tmp_path / "checked.mp4",
            EditPlan(roi=ROI, shape="ellipse", blacken=((10, 14),)),
            encode=EncodeOptions(crf=30),
            on_video_packet=verifier,
        )
    finally:
        verifier.close()
    result = verifier.finish(masked, 50)
    assert not result.passed
    assert any("differs from the stream that was checked" in p for p in result.problems)


def test_live_verification_without_packets_fails(tmp_path: Path, masked: Path) -> None:
    verifier = LiveVerifier(roi=ROI)
    verifier.close()
    result = verifier.finish(masked, 50)
    assert not result.passed
    assert result.problems[0] == "The encoder produced no video packet."


def test_live_verification_of_an_odd_sized_yuv444_output(tmp_path: Path) -> None:
    odd = make_video(
        tmp_path / "odd.mp4", width=321, height=241, seconds=1.0, audio=False, pix_fmt="yuv444p"
    )
    roi = Roi(11, 7, 201, 151)
    verifier = LiveVerifier(roi=roi, shape="ellipse")
    dst = tmp_path / "odd-out.mp4"
    try:
        edit_video(odd, dst, EditPlan(roi=roi, shape="ellipse"), on_video_packet=verifier)
    finally:
        verifier.close()
    result = verifier.finish(dst, 25)
    assert result.passed, result.problems
    assert result.frames_checked == 25


def test_output_ranges_are_known_before_editing() -> None:
    """to_output_ranges (from the plan) agrees with EditOutcome's (from what was written)."""
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(1, 40)
        pick = [rng.randint(0, n - 1) for _ in range(8)]
        removed = tuple((a, min(n - 1, a + rng.randint(0, 5))) for a in pick[:3])
        blacken = tuple((a, min(n - 1, a + rng.randint(0, 5))) for a in pick[3:])
        gone = {i for a, b in removed for i in range(a, b + 1)}
        runs: list[list[int]] = []
        for new, old in enumerate(i for i in range(n) if i not in gone):
            if runs and runs[-1][1] == old - 1:
                runs[-1][1] = old
            else:
                runs.append([old, old, new])
        outcome = EditOutcome(
            frames_in=n,
            frames_out=n - len(gone),
            removed=len(gone),
            frame_map=tuple((a, b, c) for a, b, c in runs),
            width=1,
            height=1,
            has_audio=False,
        )
        assert to_output_ranges(blacken, removed) == outcome.to_output_ranges(blacken)
