"""The external oracle (tests/oracle.py) catches what it is there to catch: outputs made here
with the ffmpeg command line, some right and some wrong in one respect each."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testkit.media import make_video
from tests.oracle import (
    OracleError,
    device_roi,
    judge,
    judge_mask,
    mask_truth,
    parse_frames,
    removal_truth,
)

FPS = 25


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640x360, 25 fps, 50 frames, numbered pictures and frame tones."""
    folder = tmp_path_factory.mktemp("oracle")
    return make_video(folder / "src.mp4", width=640, height=360, seconds=2.0, numbered=True)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True)


def cut(source: Path, dest: Path, frame: int, audio_filter: str | None = None) -> Path:
    """`source` without video frame `frame`, its audio cut as `audio_filter` says (default:
    the frame's 40 ms cut out too)."""
    keep = f"not(eq(n\\,{frame}))"
    start, end = frame / FPS, (frame + 1) / FPS
    af = audio_filter or (f"aselect='not(between(t\\,{start}\\,{end - 1e-6}))',asetpts=N/SR/TB")
    ffmpeg(
        "-i", str(source), "-vf", f"select='{keep}',setpts=N/{FPS}/TB", "-af", af,
        "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", "-c:a", "aac", str(dest),
    )  # fmt: skip
    return dest


def test_the_source_is_its_own_unmasked_copy(source: Path) -> None:
    verdict = judge(source, source, mask_truth({}, 50, 640, 360), numbered=True)
    assert verdict.identity_by_code == 50
    assert verdict.audio_frames_checked == 50


def test_an_unmasked_output_fails_the_mask(source: Path) -> None:
    with pytest.raises(OracleError, match="outside the region"):
        judge_mask(source, source, {"mask_type": "device", "device_name": "olympus_cv_1500"})


def test_a_right_cut_passes_and_a_wrong_one_fails(source: Path, tmp_path: Path) -> None:
    output = cut(source, tmp_path / "cut.mp4", 3)
    verdict = judge(output, source, removal_truth([3], 50), numbered=True)
    assert verdict.identity_by_code == 49
    with pytest.raises(OracleError, match="looks like source frame 4"):
        judge(output, source, removal_truth([4], 50), numbered=True)


def test_audio_not_cut_with_the_frames_fails(source: Path, tmp_path: Path) -> None:
    """Video cut at frame 3, audio cut at its end instead: same duration, wrong sound."""
    output = cut(source, tmp_path / "cut.mp4", 3, audio_filter=f"atrim=end={49 / FPS}")
    with pytest.raises(OracleError, match="output frame 3: audio"):
        judge(output, source, removal_truth([3], 50), numbered=True)


def test_a_frame_not_blackened_fails(source: Path) -> None:
    with pytest.raises(OracleError, match=r"output frame 7 .* not black"):
        judge(source, source, mask_truth({"blacken_frames": "7"}, 50, 640, 360), numbered=True)


def test_a_damaged_output_fails_to_decode(source: Path, tmp_path: Path) -> None:
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(4000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with pytest.raises(OracleError):
        judge(damaged, source, mask_truth({}, 50, 640, 360), numbered=True)


def test_request_parsing_and_device_box() -> None:
    assert parse_frames("0-4, 30-32,89") == {0, 1, 2, 3, 4, 30, 31, 32, 89}
    assert parse_frames([3, 4, 4]) == {3, 4}
    box = device_roi("olympus_cv_1500", 1280, 720)
    assert (box.x, box.y, box.width, box.height) == (367, 0, 899, 720)
