"""Tests of smart_remove: copied groups of pictures bit-exact, re-encoded frames close, every
kept frame the right source frame, timestamps and audio as edit_video's, and an output that
ffmpeg decodes without a single warning.

Sources are numbered clips (testkit.media.make_numbered_video) with short fixed GOPs, so a cut
runs through some groups and leaves others whole.
"""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from jobs.video.nal import avcc_config, length_prefixed_units
from jobs.video.smart_cut import MIN_PSNR, NotSmart, smart_remove
from testkit.media import iter_frames, make_numbered_video, make_video
from tests.checks import assert_audio_follows, assert_edited, kept_indices, psnr

CLOSED = "keyint=12:min-keyint=12:scenecut=0:bframes=3:b-pyramid=normal"
OPEN = "keyint=12:min-keyint=12:scenecut=0:open-gop=1:bframes=3"
NO_B = "keyint=12:min-keyint=12:scenecut=0:bframes=0"
FRAMES = 72  # six GOPs of 12


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smart-media")


def _source(media: Path, name: str, params: str, **options: str) -> Path:
    path = media / f"{name}.mp4"
    if not path.exists():
        make_numbered_video(
            path, width=320, height=240, frames=FRAMES, x264_params=params, x264_options=options
        )
    return path


def ffmpeg_complaints(path: Path) -> str:
    """What `ffmpeg -v warning -xerror` says decoding `path` (empty when clean)."""
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "warning", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (run.stdout + run.stderr).strip() + (
        "" if run.returncode == 0 else f" rc={run.returncode}"
    )


def packet_times(path: Path) -> list[tuple[int, int]]:
    """(pts, dts) of every video packet in decode order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (p.pts, p.dts)
            for p in container.demux(stream)
            if p.size and p.pts is not None and p.dts is not None
        ]


def check_smart(src: Path, remove: tuple[tuple[int, int], ...], tmp_path: Path) -> tuple[int, int]:
    """Run smart_remove and check everything promised; returns (copied, re-encoded)."""
    dst = tmp_path / "smart.mp4"
    outcome = smart_remove(src, dst, remove, min_copy_share=0.0)  # the mechanics, always
    kept = kept_indices(FRAMES, remove)
    assert outcome.verification.passed, outcome.verification.problems
    assert outcome.edit.frames_out == len(kept)
    assert outcome.frames_copied + outcome.frames_reencoded == len(kept)
    # Every output frame shows its source frame's number, at gap-free times, PSNR >= 40 dB.
    check = assert_edited(src, dst, remove=remove)
    assert check.kept == kept
    assert check.min_psnr >= MIN_PSNR
    # Copied frames are bit-exact: at least frames_copied output frames equal their source.
    source = list(iter_frames(src))
    exact = sum(
        all(np.array_equal(a, b) for a, b in ((o.y, s.y), (o.u, s.u), (o.v, s.v)))
        for o, s in zip(iter_frames(dst), (source[k] for k in kept), strict=True)
    )
    assert exact >= outcome.frames_copied
    # Decode timestamps strictly increase (also across joins), never after the pts.
    times = packet_times(dst)
    assert len(times) == len(kept)
    dts = [d for _, d in times]
    assert all(b > a for a, b in itertools.pairwise(dts))
    assert all(d <= p for p, d in times)
    assert_audio_follows(dst, kept, Fraction(25))
    assert ffmpeg_complaints(dst) == ""
    for out, k in zip(iter_frames(dst), kept, strict=True):
        assert psnr(out.y, source[k].y) >= MIN_PSNR
    return outcome.frames_copied, outcome.frames_reencoded


@pytest.mark.parametrize(
    ("remove", "copied"),
    [
        (((0, 2),), 60),  # the very start: GOP 0 re-encoded, five copied
        (((66, 71),), 60),  # the very end
        (((27, 28), (32, 33)), 60),  # two cuts inside one GOP (24-35)
        (((10, 14), (40, 40), (60, 71)), 24),  # across a GOP boundary, one frame, the end
    ],
)
def test_smart_closed_gops_with_b_pyramid(
    media: Path, tmp_path: Path, remove: tuple[tuple[int, int], ...], copied: int
) -> None:
    src = _source(media, "closed", CLOSED)
    found, reencoded = check_smart(src, remove, tmp_path)
    assert found == copied
    assert reencoded == len(kept_indices(FRAMES, remove)) - copied


def test_smart_without_b_frames(media: Path, tmp_path: Path) -> None:
    src = _source(media, "nob", NO_B)
    copied, _ = check_smart(src, ((5, 7), (50, 50)), tmp_path)
    assert copied == 48


def test_open_gops_are_reencoded_not_copied(media: Path, tmp_path: Path) -> None:
    """An open GOP's leading B-frames reference the previous group; its recovery-point
    I-frame is no IDR, so no copy starts there."""
    src = _source(media, "open", OPEN)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        packets = [
            (p.pts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None
        ]
    keys = [i for i, (_, key) in enumerate(packets) if key]
    assert len(keys) > 1
    # After a later keyframe comes (in decode order) a frame shown before it: a leading frame.
    leading = [k for k in keys[1:] if int(packets[k + 1][0] or 0) < int(packets[k][0] or 0)]
    assert leading
    copied, reencoded = check_smart(src, ((30, 31),), tmp_path)
    # Frames before the first cut that the source's only IDR covers are copied...
    assert copied == 0
    assert reencoded == FRAMES - 2


def test_parameter_sets_differ_between_copied_and_reencoded_runs(
    media: Path, tmp_path: Path
) -> None:
    """A source encoded with other settings (fast preset, 1 reference frame, level 4.0): the
    re-encoded runs carry their own SPS/PPS in-band, the copied IDR after a run gets the
    source's back, and every frame still decodes cleanly."""
    src = _source(media, "params", CLOSED + ":ref=1", preset="ultrafast", level="4.0")
    copied, _ = check_smart(src, ((3, 4), (40, 41)), tmp_path)
    assert copied == 48
    dst = tmp_path / "smart.mp4"
    with av.open(str(dst)) as container:
        stream = container.streams.video[0]
        size, entry = avcc_config(bytes(stream.codec_context.extradata or b""))
        in_band = [
            unit
            for packet in container.demux(stream)
            if packet.size
            for unit in length_prefixed_units(bytes(packet), size)
            if unit[0] & 0x1F == 7
        ]
    assert in_band, "no in-band SPS"
    assert any(sps != entry[0] for sps in in_band), "the re-encoded SPS equals the source's"
    assert entry[0] in in_band  # restored before the copied IDR after a run
    # The re-encoded runs match the source's profile and level (SPS bytes 1 and 3: profile_idc,
    # level_idc), so one decoder configuration plays the whole output.
    assert {(sps[1], sps[3]) for sps in in_band} == {(entry[0][1], entry[0][3])}
    assert entry[0][3] == 40  # the source's level 4.0


def test_smart_does_not_apply_to_other_codecs(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "mpeg4.mkv",
        width=64,
        height=48,
        codec="mpeg4",
        container_format="matroska",
        audio=False,
    )
    with pytest.raises(NotSmart, match="not MP4/MOV"):
        smart_remove(src, tmp_path / "out.mp4", ((0, 0),))
    assert not (tmp_path / "out.mp4").exists()


def test_smart_falls_back_when_it_could_copy_too_little(media: Path, tmp_path: Path) -> None:
    """An open-GOP source has one IDR: nothing after the first cut can be copied, so the full
    re-encode is the faster way, and smart removal says so before writing anything."""
    src = _source(media, "open", OPEN)
    dst = tmp_path / "out.mp4"
    with pytest.raises(NotSmart, match="too few for copying to be faster"):
        smart_remove(src, dst, ((30, 31),))
    assert not dst.exists()
