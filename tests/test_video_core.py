"""Tests of the PyAV/numpy video core (jobs.video): real PyAV, small generated clips.

The mask geometry is re-derived here independently from the spec (pixel centres, the
inscribed-ellipse formula, "a chroma sample is kept only if all its luma pixels are kept").

Two kinds of mask checks:
- lossless (libx264 CRF 0): the decoded output must equal, bit for bit, the decoded source with
  the mask applied, in every frame. This catches any geometry error (off by one, chroma rule),
  and any corruption of the kept area, e.g. from editing the decoder's reference pictures
  without make_writable (the sources have P and B frames predicted across the mask boundary).
- production settings (CRF 18): the same checks with codec tolerances (see the constants).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from jobs.video import (
    EncodeOptions,
    InvalidVideo,
    MaskOutcome,
    Roi,
    Shape,
    TruncatedVideo,
    VideoInfo,
    mask_video,
    probe,
)
from jobs.video.planes import PlaneFill, luma_keep_mask, subsample_keep
from testkit.media import (
    audio_packets,
    make_audio_only,
    make_empty,
    make_not_a_video,
    make_video,
    open_file_paths,
    read_frames,
    sha256,
    summarize,
    truncate_copy,
)
from tests.checks import (
    BLACK,
    C_FAR_DEV,
    NEUTRAL,
    Y_FAR_MAX,
    Regions,
    assert_masked,
    chroma_all,
    chroma_dev,
    ref_keep,
)

# --------------------------------------------------------------------------------- test clips


@dataclass(frozen=True)
class Clip:
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    audio: bool
    roi: Roi


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def _clip(media_dir: Path, name: str, width: int, height: int, roi: Roi, **kwargs: Any) -> Clip:
    fps = Fraction(kwargs.get("fps", 25))
    seconds = kwargs.get("seconds", 2.0)
    path = make_video(media_dir / name, width=width, height=height, **kwargs)
    return Clip(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frames=round(seconds * fps),
        audio=kwargs.get("audio", True),
        roi=roi,
    )


@pytest.fixture(scope="module")
def clip_720(media_dir: Path) -> Clip:
    # A typical endoscopy layout: the round image off-centre, a side strip on the left.
    # Odd offsets and sizes exercise the conservative chroma rule (4:2:0 boundary samples).
    return _clip(media_dir, "hd.mp4", 1280, 720, Roi(379, 21, 861, 677))


@pytest.fixture(scope="module")
def clip_642(media_dir: Path) -> Clip:
    # Even but not a multiple of 16, NTSC frame rate, no audio.
    return _clip(
        media_dir,
        "even.mp4",
        642,
        362,
        Roi(201, 31, 333, 301),
        audio=False,
        fps=Fraction(30000, 1001),
    )


@pytest.fixture(scope="module")
def clip_641(media_dir: Path) -> Clip:
    # Odd size: the source must be 4:4:4 (libx264 refuses odd 4:2:0), the output is 4:4:4 too.
    return _clip(media_dir, "odd.mp4", 641, 361, Roi(101, 31, 333, 301), pix_fmt="yuv444p")


@pytest.fixture(params=["clip_720", "clip_642", "clip_641"])
def clip(request: pytest.FixtureRequest) -> Clip:
    value: Clip = request.getfixturevalue(request.param)
    return value


# ----------------------------------------------------------------------------------- probe


def test_probe_with_audio(clip_720: Clip) -> None:
    info = probe(clip_720.path, filename_hint="Patient Video.MP4")
    assert info == VideoInfo(
        width=1280,
        height=720,
        fps=25.0,
        frame_count=50,
        duration=pytest.approx(2.0, abs=0.05),  # type: ignore[arg-type]
        codec="h264",
        pix_fmt="yuv420p",
        has_audio=True,
        audio_codec="aac",
        extension="mp4",
    )


def test_probe_without_audio(clip_642: Clip) -> None:
    info = probe(clip_642.path)
    assert (info.width, info.height) == (642, 362)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.frame_count == 60
    assert info.duration == pytest.approx(60 / (30000 / 1001), abs=0.05)
    assert (info.codec, info.pix_fmt, info.extension) == ("h264", "yuv420p", "mp4")
    assert not info.has_audio
    assert info.audio_codec is None


@pytest.mark.parametrize(
    ("container_format", "codec", "audio_codec", "suffix", "extension"),
    [
        ("mp4", "libx264", "aac", ".mp4", "mp4"),
        ("mov", "libx264", "aac", ".mov", "mov"),
        ("matroska", "libx264", "aac", ".mkv", "mkv"),
        ("webm", "libvpx", "libopus", ".webm", "webm"),
        ("mpegts", "libx264", "aac", ".ts", "ts"),
        # (AVI without audio: with interleaved audio its header may count a dropped frame.)
        ("avi", "mpeg4", None, ".avi", "avi"),
    ],
)
def test_probe_extension_follows_container(
    tmp_path: Path,
    container_format: str,
    codec: str,
    audio_codec: str | None,
    suffix: str,
    extension: str,
) -> None:
    # Stored under a neutral name: the extension must come from the content.
    path = make_video(
        tmp_path / "upload.bin",
        width=160,
        height=120,
        seconds=0.5,
        codec=codec,
        container_format=container_format,
        audio=audio_codec is not None,
        audio_codec=audio_codec or "aac",
    )
    info = probe(path)
    assert info.extension == extension
    assert info.frame_count == 12  # counted by demuxing where the container does not say
    assert info.has_audio == (audio_codec is not None)
    assert probe(path, filename_hint="Clip" + suffix.upper()).extension == extension
    # A misleading upload name does not win over the content...
    assert probe(path, filename_hint="clip.flv").extension == extension


def test_probe_prefers_hint_among_format_extensions(clip_720: Clip) -> None:
    # ...but an extension of the detected format does (MP4 and MOV share one demuxer).
    assert probe(clip_720.path, filename_hint="clip.MOV").extension == "mov"
    assert probe(clip_720.path, filename_hint="clip.mkv").extension == "mp4"
    assert probe(clip_720.path, filename_hint=None).extension == "mp4"


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (make_empty, "empty"),
        (make_not_a_video, "not a recognized video"),
        (make_audio_only, "no video stream"),
    ],
)
def test_probe_rejects_non_videos(tmp_path: Path, maker: Any, message: str) -> None:
    path = maker(tmp_path / "secret-name.mp4")
    with pytest.raises(InvalidVideo, match=message) as caught:
        probe(path, filename_hint="x.mp4")
    assert "secret-name" not in str(caught.value)  # no paths in user-facing messages
    assert str(tmp_path) not in str(caught.value)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4(tmp_path: Path, faststart: bool) -> None:
    """Half an MP4: the index at the end is missing (InvalidVideo), or, index first, the index
    points past the end (TruncatedVideo), for probing and for masking alike: a job never
    writes an output from a file cut short (it would miss frames from the cut on, and copy a
    partial audio packet that no decoder accepts)."""
    full = make_video(tmp_path / "full.mp4", width=320, height=240, faststart=faststart)
    cut = truncate_copy(full, tmp_path / "cut.mp4", 0.5)
    error, words = (TruncatedVideo, "cut short") if faststart else (InvalidVideo, "not a recog")
    with pytest.raises(error, match=words):
        probe(cut)
    with pytest.raises(error, match=words):
        mask_video(cut, tmp_path / "out.mp4", Roi(40, 20, 200, 200), "ellipse")
    assert not (tmp_path / "out.mp4").exists()


# -------------------------------------------------------------------------------- masking


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_mask_crf18(tmp_path: Path, clip: Clip, shape: Shape) -> None:
    """Production settings: every frame blanked outside, kept inside, timing and audio kept."""
    before = sha256(clip.path)
    dst = tmp_path / "masked.tmp"  # any suffix: the output is MP4 regardless
    progress: list[int] = []
    outcome = mask_video(clip.path, dst, clip.roi, shape, on_progress=progress.append)

    assert sha256(clip.path) == before  # the source is never modified
    assert outcome == MaskOutcome(
        frames=clip.frames, width=clip.width, height=clip.height, has_audio=clip.audio
    )
    assert progress[-1] == clip.frames
    assert progress == sorted(progress)

    odd = clip.width % 2 == 1 or clip.height % 2 == 1
    src_info, out_info = summarize(clip.path), summarize(dst)
    assert out_info.format_name.startswith("mov,mp4")
    assert out_info.video_codec == "h264"
    assert out_info.pix_fmt == ("yuv444p" if odd else "yuv420p")
    assert (out_info.width, out_info.height) == (clip.width, clip.height)
    assert out_info.fps == src_info.fps == clip.fps
    assert out_info.frames == src_info.frames == clip.frames
    assert (out_info.audio_codec is not None) == clip.audio

    assert_masked(clip.path, dst, clip.roi, shape)

    assert audio_packets(dst) == audio_packets(clip.path)  # copied, byte for byte
    if clip.audio:
        assert len(audio_packets(dst)) > 0


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_mask_lossless_is_exact(tmp_path: Path, clip: Clip, shape: Shape) -> None:
    """With a lossless encode, each output frame is exactly the decoded source frame with
    black/neutral outside (chroma conservative at the boundary) and untouched inside."""
    dst = tmp_path / "masked.mp4"
    mask_video(clip.path, dst, clip.roi, shape, encode=EncodeOptions(crf=0))
    odd = clip.width % 2 == 1 or clip.height % 2 == 1
    regions = Regions.of(clip.width, clip.height, clip.roi, shape, 1 if odd else 2)
    src_frames, out_frames = read_frames(clip.path), read_frames(dst)
    assert len(out_frames) == len(src_frames) == clip.frames
    for index, (src, out) in enumerate(zip(src_frames, out_frames, strict=True)):
        expected_y = np.where(regions.keep, src.y, BLACK)
        assert np.array_equal(out.y, expected_y), f"luma of frame {index}"
        for name in ("u", "v"):
            expected = np.where(regions.c_keep, getattr(src, name), NEUTRAL)
            assert np.array_equal(getattr(out, name), expected), f"{name} of frame {index}"
        assert out.time == src.time


def test_sources_have_reordered_p_and_b_frames(clip_720: Clip) -> None:
    """The masking tests are only meaningful if frames are predicted from earlier ones."""
    with av.open(str(clip_720.path)) as container:
        stream = container.streams.video[0]
        types = {PictureType(f.pict_type).name for f in container.decode(stream)}
        assert stream.codec_context.has_b_frames
    assert {"I", "P", "B"} <= types


@pytest.mark.parametrize("pix_fmt", ["yuvj420p", "yuv422p", "yuv420p10le"])
def test_mask_converts_other_pixel_formats(tmp_path: Path, pix_fmt: str) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=1, pix_fmt=pix_fmt)
    roi = Roi(60, 20, 200, 200)
    dst = tmp_path / "out.mp4"
    outcome = mask_video(src, dst, roi, "ellipse")
    assert outcome.frames == 25
    out_info = summarize(dst)
    assert out_info.pix_fmt == "yuv420p"
    regions = Regions.of(320, 240, roi, "ellipse", 2)
    out_frames = read_frames(dst)
    assert len(out_frames) == 25
    for out in out_frames:
        assert out.y[regions.far].max() <= Y_FAR_MAX
        assert chroma_dev(out, regions.c_far) <= C_FAR_DEV
    # Inside, the picture is the source's, in limited range 8-bit.
    src_y = read_frames(src)[10].y[regions.inner].astype(np.float64)
    if pix_fmt == "yuvj420p":
        src_y = BLACK + src_y * 219 / 255
    elif pix_fmt == "yuv420p10le":
        src_y = src_y / 4
    out_y = out_frames[10].y[regions.inner].astype(np.float64)
    assert float(np.mean(np.abs(out_y - src_y))) <= 2.0


def test_mask_transcodes_pcm_audio_to_aac(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "src.mov",
        width=320,
        height=240,
        seconds=1,
        container_format="mov",
        audio_codec="pcm_s16le",
    )
    dst = tmp_path / "out.mp4"
    outcome = mask_video(src, dst, Roi(0, 0, 160, 240), "rect")
    assert outcome.has_audio
    assert summarize(dst).audio_codec == "aac"
    with av.open(str(dst)) as container:
        audio = container.streams.audio[0]
        assert audio.duration is not None
        assert audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    "roi",
    [
        Roi(0, 0, 0, 100),
        Roi(0, 0, 100, 0),
        Roi(-1, 0, 100, 100),
        Roi(0, -1, 100, 100),
        Roi(221, 0, 100, 100),  # one column past the right edge of a 320 wide frame
        Roi(0, 141, 100, 100),
        Roi(0, 0, 321, 240),
    ],
)
def test_mask_rejects_bad_roi(tmp_path: Path, roi: Roi) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=0.2, audio=False)
    dst = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="region"):
        mask_video(src, dst, roi, "rect")
    assert not dst.exists()  # nothing written, nothing to clean up


def test_mask_accepts_full_frame_roi(tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=0.2, audio=False)
    outcome = mask_video(src, tmp_path / "out.mp4", Roi(0, 0, 320, 240), "rect")
    assert outcome.frames == 5


def test_mask_rejects_unknown_shape(tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=0.2, audio=False)
    with pytest.raises(ValueError, match="shape"):
        mask_video(src, tmp_path / "out.mp4", Roi(0, 0, 10, 10), "circle")  # type: ignore[arg-type]


@pytest.mark.parametrize("maker", [make_empty, make_not_a_video, make_audio_only])
def test_mask_rejects_non_videos(tmp_path: Path, maker: Any) -> None:
    src = maker(tmp_path / "src.mp4")
    with pytest.raises(InvalidVideo):
        mask_video(src, tmp_path / "out.mp4", Roi(0, 0, 10, 10), "rect")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_mask_closes_files_on_error(tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=1)

    def fail(frames_done: int) -> None:
        if frames_done == 10:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        mask_video(src, tmp_path / "out.mp4", Roi(0, 0, 100, 100), "rect", on_progress=fail)
    assert not [p for p in open_file_paths() if p.startswith(str(tmp_path))]


def test_progress_is_reported_per_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", width=320, height=240, seconds=1)
    progress: list[int] = []
    outcome = mask_video(
        src, tmp_path / "o.mp4", Roi(0, 0, 9, 9), "rect", on_progress=progress.append
    )
    assert outcome.frames == 25
    assert progress[:25] == list(range(1, 26))
    assert progress[-1] == 25
    assert progress == sorted(progress)  # non-decreasing


# ------------------------------------------------------------------------ geometry (unit tests)


def _random_cases() -> Iterator[tuple[int, int, Roi, Shape, int]]:
    rng = np.random.default_rng(7)
    for _ in range(60):
        width, height = (int(v) for v in rng.integers(1, 40, size=2))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(1, width - x + 1)), int(rng.integers(1, height - y + 1))
        for shape in ("rect", "ellipse"):
            yield width, height, Roi(x, y, w, h), shape, 0
        if min(w, h) >= 2:
            yield (
                width,
                height,
                Roi(x, y, w, h),
                "octagon",
                int(rng.integers(1, min(w, h) // 2 + 1)),
            )


def test_plane_geometry_matches_reference() -> None:
    for width, height, roi, shape, corner in _random_cases():
        keep = luma_keep_mask(width, height, roi, shape, corner=corner)
        reference = ref_keep(width, height, roi, shape, corner)
        assert np.array_equal(keep, reference), (width, height, roi, shape, corner)
        for sub in (1, 2):
            c_keep = subsample_keep(keep, sub, sub)
            assert np.array_equal(c_keep, chroma_all(keep, sub))
            plane = np.full(c_keep.shape, 200, dtype=np.uint8)
            PlaneFill.from_keep(c_keep, NEUTRAL).apply(plane)
            assert np.array_equal(plane, np.where(c_keep, 200, NEUTRAL))


def test_an_octagon_cuts_its_corners_at_45_degrees() -> None:
    """Legs of 3 pixels: each corner loses the pixels whose centre is nearer than 3 to it in
    |dx| + |dy| (0.5 + 0.5, 1.5 + 0.5, 0.5 + 1.5: a staircase of 3), the rest of the box is
    kept, and nothing outside it."""
    keep = luma_keep_mask(12, 10, Roi(2, 1, 8, 7), "octagon", corner=3)
    box = keep[1:8, 2:10]
    assert keep.sum() == box.sum() == 8 * 7 - 4 * 3
    assert np.array_equal(box[:2, :2], [[False, False], [False, True]])
    assert np.array_equal(box, box[::-1, ::-1])
    assert np.array_equal(box, box[:, ::-1])
    assert box[3, :].all()
    assert box[:, 4].all()


@pytest.mark.parametrize(
    ("shape", "corner", "problem"),
    [
        ("octagon", 0, "1 to 3 pixels"),
        ("octagon", 4, "1 to 3 pixels"),
        ("rect", 2, "only from an octagon"),
        ("ellipse", 1, "only from an octagon"),
    ],
)
def test_a_corner_that_does_not_fit_is_refused(shape: Shape, corner: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        luma_keep_mask(12, 10, Roi(2, 1, 8, 7), shape, corner=corner)


def test_plane_fill_writes_through_padded_view() -> None:
    buffer = np.full((5, 16), 77, dtype=np.uint8)
    view = buffer[:, :11]  # like a plane with line padding
    keep = np.zeros((5, 11), dtype=np.bool_)
    keep[1:4, 2:9] = True
    PlaneFill.from_keep(keep, BLACK).apply(view)
    assert np.array_equal(view, np.where(keep, 77, BLACK))
    assert (buffer[:, 11:] == 77).all()  # padding untouched
