"""Checks that a masked video is black outside its ROI and unchanged inside, frame by frame.

The mask geometry is re-derived here independently from the spec (pixel centres, the
inscribed-ellipse formula, "a chroma sample is kept only if all its luma pixels are kept"),
so the checks do not trust the code they check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from jobs.video import Roi, Shape
from testkit.media import (
    AUDIO_FRAME_SAMPLES,
    CodeRow,
    DecodedFrame,
    audio_seconds,
    iter_frames,
    numbered_audio,
    read_audio,
    read_frames,
    tone_hz,
)

Bool2D = npt.NDArray[np.bool_]

BLACK = 16
NEUTRAL = 128

# --- CRF 18 tolerances, with the worst values measured on these clips (all frames, rect and
# ellipse, 4:2:0 and 4:4:4). libx264's ringing at the sharp edge between black and the bright
# texture reaches about one 8x8 transform block (one 16x16 macroblock at most) into the masked
# area; further away the output is black to within 1-2 code values. Bit-exactness of the
# geometry is checked separately by the lossless test.
FAR_PX = 8  # "far" = more than 8 px (Chebyshev distance) from every kept pixel
Y_FAR_MAX = BLACK + 3  # measured max 17
C_FAR_DEV = 8  # max |U-128|, |V-128| of chroma samples whose luma is all far; measured 5
Y_NEAR_MAX = BLACK + 64  # luma 1..8 px outside the kept area; measured 71 (1 px away)
Y_NEAR_MEAN = BLACK + 2.5  # per-frame band mean; measured 16.36; a 1 px leak adds ~13
C_NEAR_DEV = 64  # chroma samples entirely outside but near; measured 51 (4:4:4 ellipse)
# The kept area at least 4 px from the boundary vs the decoded source, per frame:
INNER_MARGIN = 4
INNER_MAD = 1.5  # mean abs luma difference; measured max 0.80
INNER_PSNR = 40.0  # luma PSNR in dB; measured min 45.9
CHROMA_INNER_PSNR = 38.0  # measured min 43.5


# --------------------------------------------------------------------------- reference geometry


def ref_keep(width: int, height: int, roi: Roi, shape: Shape, corner: int = 0) -> Bool2D:
    """Kept luma pixels per the spec: the pixel centre inside the rect / inscribed ellipse /
    octagon (the rect less the points within `corner` of a corner in |dx| + |dy|)."""
    px = np.arange(width) + 0.5
    py = np.arange(height) + 0.5
    if shape in ("rect", "octagon"):
        in_x = (px > roi.x) & (px < roi.x + roi.width)
        in_y = (py > roi.y) & (py < roi.y + roi.height)
        keep = in_y[:, None] & in_x[None, :]
        if shape == "octagon":
            # |dx| + |dy| from each of the four corners, the nearest one counting.
            to_x = np.minimum(np.abs(px - roi.x), np.abs(roi.x + roi.width - px))
            to_y = np.minimum(np.abs(py - roi.y), np.abs(roi.y + roi.height - py))
            keep &= to_y[:, None] + to_x[None, :] >= corner
        return np.asarray(keep)
    cx, cy = roi.x + roi.width / 2, roi.y + roi.height / 2
    rx, ry = roi.width / 2, roi.height / 2
    return np.asarray(((px[None, :] - cx) / rx) ** 2 + ((py[:, None] - cy) / ry) ** 2 <= 1.0)


def chroma_all(luma: Bool2D, sub: int) -> Bool2D:
    """Per chroma sample (ceil-sized plane): are ALL the luma pixels it covers True?"""
    if sub == 1:
        return luma
    h, w = luma.shape
    ch, cw = -(-h // sub), -(-w // sub)
    padded = np.ones((ch * sub, cw * sub), dtype=np.bool_)
    padded[:h, :w] = luma
    return np.asarray(padded.reshape(ch, sub, cw, sub).all(axis=(1, 3)))


def grow(mask: Bool2D, k: int) -> Bool2D:
    """Dilate by a (2k+1)^2 square: True within Chebyshev distance k of a True pixel."""
    padded = np.pad(mask, k)
    rows = sliding_window_view(padded, 2 * k + 1, axis=0).any(axis=-1)
    return np.asarray(sliding_window_view(rows, 2 * k + 1, axis=1).any(axis=-1))


@dataclass(frozen=True)
class Regions:
    """Boolean masks of one geometry, for the luma plane and for the chroma planes."""

    keep: Bool2D  # luma kept
    c_keep: Bool2D  # chroma kept (all covered luma kept)
    far: Bool2D  # luma more than FAR_PX from the kept area
    c_far: Bool2D
    near: Bool2D  # luma outside but within FAR_PX
    c_near: Bool2D  # chroma entirely outside but not far
    inner: Bool2D  # luma kept, INNER_MARGIN px away from the boundary
    c_inner: Bool2D
    sub: int

    @classmethod
    def of(
        cls, width: int, height: int, roi: Roi, shape: Shape, sub: int, corner: int = 0
    ) -> Regions:
        keep = ref_keep(width, height, roi, shape, corner)
        far = ~grow(keep, FAR_PX)
        inner = ~grow(~keep, INNER_MARGIN)
        c_far = chroma_all(far, sub)
        return cls(
            keep=keep,
            c_keep=chroma_all(keep, sub),
            far=far,
            c_far=c_far,
            near=~keep & ~far,
            c_near=chroma_all(~keep, sub) & ~c_far,
            inner=inner,
            c_inner=chroma_all(inner, sub),
            sub=sub,
        )


def psnr(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def chroma_dev(frame: DecodedFrame, where: Bool2D) -> int:
    if not where.any():
        return 0
    u = np.abs(frame.u[where].astype(np.int16) - NEUTRAL)
    v = np.abs(frame.v[where].astype(np.int16) - NEUTRAL)
    return int(max(u.max(), v.max()))


def assert_masked(source: Path, output: Path, roi: Roi, shape: Shape, corner: int = 0) -> None:
    """Assert, for every frame of ``output`` (encoded at CRF 18), that everything outside
    ``roi`` is black and neutral within codec tolerance and the inside matches ``source``;
    and that both have the same frames at the same times."""
    src_frames, out_frames = iter_frames(source), iter_frames(output)
    regions: Regions | None = None
    count = 0
    for index, (src, out) in enumerate(zip(src_frames, out_frames, strict=True)):
        where = f"frame {index}"
        assert out.time == src.time, where
        if regions is None:
            height, width = out.y.shape
            sub = 2 if out.u.shape != out.y.shape else 1
            regions = Regions.of(width, height, roi, shape, sub, corner)
        assert out.y[regions.far].max() <= Y_FAR_MAX, where
        assert out.y[regions.near].max() <= Y_NEAR_MAX, where
        assert out.y[regions.near].mean() <= Y_NEAR_MEAN, where
        assert chroma_dev(out, regions.c_far) <= C_FAR_DEV, where
        assert chroma_dev(out, regions.c_near) <= C_NEAR_DEV, where

        y_out, y_src = out.y[regions.inner], src.y[regions.inner]
        mad = float(np.mean(np.abs(y_out.astype(np.int16) - y_src.astype(np.int16))))
        assert mad <= INNER_MAD, where
        assert psnr(y_out, y_src) >= INNER_PSNR, where
        for out_c, src_c in ((out.u, src.u), (out.v, src.v)):
            assert psnr(out_c[regions.c_inner], src_c[regions.c_inner]) >= CHROMA_INNER_PSNR, where
        count += 1
    assert count > 0, "no frames decoded"


# ------------------------------------------------------------------------- edits (cuts, black)

# Blackened frames at CRF 18: the whole frame is flat black, which x264 codes almost exactly.
BLACK_FRAME_Y_MAX = BLACK + 3
BLACK_FRAME_C_DEV = 3
EDIT_PSNR = 40.0  # unmasked kept frames vs their source frame, luma and chroma
AUDIO_MIN_CORR = 0.95  # decoded output audio vs the expected source audio, at the best lag
AUDIO_MAX_LAG = 1  # samples


def kept_indices(total: int, remove: Iterable[tuple[int, int]]) -> list[int]:
    """The source frames an edit keeps, in order (derived from the plan, not the outcome)."""
    removed: set[int] = set()
    for start, end in remove:
        removed.update(range(start, end + 1))
    return [i for i in range(total) if i not in removed]


def in_ranges(index: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(start <= index <= end for start, end in ranges)


@dataclass(frozen=True)
class EditCheck:
    """Measured values of assert_edited, for messages and reports."""

    kept: list[int]  # source frame of each output frame
    min_psnr: float  # worst kept-frame PSNR vs its source frame (luma; inner area if masked)
    max_black_y: int  # brightest luma in the blackened frames (BLACK if none)


def assert_edited(
    source: Path,
    output: Path,
    *,
    remove: tuple[tuple[int, int], ...] = (),
    blacken: tuple[tuple[int, int], ...] = (),
    roi: Roi | None = None,
    shape: Shape = "rect",
    corner: int = 0,
) -> EditCheck:
    """Assert, frame by frame, that `output` is the numbered clip `source` edited as said:
    output frame j shows the number of the j-th kept source frame (read from the picture),
    its pixels match that source frame (masked/blackened as planned) and its time is j frame
    durations (kept frames keep their duration, removed spans are closed up)."""
    src_frames, out_frames = read_frames(source), read_frames(output)
    kept = kept_indices(len(src_frames), remove)
    assert len(out_frames) == len(kept), f"{len(out_frames)} frames, expected {len(kept)}"
    height, width = src_frames[0].y.shape
    row = CodeRow.for_size(width, height)
    step = src_frames[1].time - src_frames[0].time
    sub = 2 if out_frames[0].u.shape != out_frames[0].y.shape else 1
    regions = None if roi is None else Regions.of(width, height, roi, shape, sub, corner)
    min_psnr, max_black = math.inf, BLACK
    for j, (out, k) in enumerate(zip(out_frames, kept, strict=True)):
        where = f"output frame {j} (source frame {k})"
        assert out.time == pytest.approx(src_frames[0].time + j * step, abs=1e-6), where
        if in_ranges(k, blacken):
            max_black = max(max_black, int(out.y.max()))
            assert out.y.max() <= BLACK_FRAME_Y_MAX, where
            assert chroma_dev(out, np.ones(out.u.shape, dtype=np.bool_)) <= BLACK_FRAME_C_DEV
            continue
        assert row.read(out.y) == k, where
        src = src_frames[k]
        if regions is None:
            value = psnr(out.y, src.y)
            assert min(psnr(out.u, src.u), psnr(out.v, src.v)) >= EDIT_PSNR, where
        else:
            assert out.y[regions.far].max() <= Y_FAR_MAX, where
            assert chroma_dev(out, regions.c_far) <= C_FAR_DEV, where
            value = psnr(out.y[regions.inner], src.y[regions.inner])
        assert value >= EDIT_PSNR, where
        min_psnr = min(min_psnr, value)
    return EditCheck(kept=kept, min_psnr=min_psnr, max_black_y=max_black)


def dominant_hz(samples: npt.NDArray[np.float64], rate: int) -> float:
    """Frequency of the strongest component (Hann window, zero padding to 1 Hz bins)."""
    n = max(rate, len(samples))
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=n))
    return float(np.argmax(spectrum)) * rate / n


def best_lag(
    actual: npt.NDArray[np.float64], expected: npt.NDArray[np.float64], max_lag: int
) -> tuple[int, float]:
    """The shift in samples (positive: `actual` is late) maximizing the correlation of the
    two signals, and that correlation."""
    n = min(len(actual), len(expected))
    ref = expected[max_lag : n - max_lag]
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        corr = float(np.corrcoef(actual[max_lag + lag : n - max_lag + lag], ref)[0, 1])
        if corr > best[1]:
            best = (lag, corr)
    return best


@dataclass(frozen=True)
class AudioCheck:
    """Measured values of assert_audio_follows."""

    lag: int  # samples, whole track
    run_lags: list[int]  # samples, per run of consecutive kept frames (long enough to tell)
    corr: float
    duration_error: float  # output audio duration - output video duration, seconds (decoded)
    stated_error: float  # the same with the audio duration the container states
    wrong_frames: int  # output frames whose audio tone is not their source frame's


def assert_audio_follows(output: Path, kept: list[int], fps: Fraction) -> AudioCheck:
    """Assert that the audio of `output` (an edit of a numbered clip keeping source frames
    `kept`) lasts as long as its video (within one AAC frame) and is, sample for sample, the
    source audio of the frame shown: the tone during every output frame is its source
    frame's, and the whole track correlates with the expected audio best at lag 0."""
    audio, rate, first = read_audio(output)
    duration_error = len(audio) / rate - len(kept) / float(fps)
    stated_error = audio_seconds(output) - len(kept) / float(fps)
    t_out = (first + np.arange(len(audio), dtype=np.float64)) / rate
    j = np.clip(np.floor(t_out * float(fps) + 1e-9).astype(np.int64), 0, len(kept) - 1)
    t_src = t_out + (np.asarray(kept, dtype=np.float64)[j] - j) / float(fps)
    expected = numbered_audio(t_src, fps)
    lag, corr = best_lag(audio, expected, 24)
    run_lags = []
    run_start = 0
    for index in range(1, len(kept) + 1):
        if index < len(kept) and kept[index] == kept[index - 1] + 1:
            continue
        lo = round(run_start / fps * rate) - first
        hi = min(len(audio), round(index / fps * rate) - first)
        if lo >= 0 and hi - lo >= 4096:
            run_lags.append(best_lag(audio[lo:hi], expected[lo:hi], 24)[0])
        run_start = index
    wrong = 0
    for index, k in enumerate(kept):
        lo = round((index + 0.25) / fps * rate) - first
        hi = round((index + 0.75) / fps * rate) - first
        if lo < 0 or hi > len(audio):
            continue
        if abs(dominant_hz(audio[lo:hi], rate) - tone_hz(k)) > 50:
            wrong += 1
    found = AudioCheck(
        lag=lag,
        run_lags=run_lags,
        corr=corr,
        duration_error=duration_error,
        stated_error=stated_error,
        wrong_frames=wrong,
    )
    assert abs(duration_error) <= AUDIO_FRAME_SAMPLES / rate, found
    # MP4 edit lists state the duration in the movie time scale, whole milliseconds here.
    assert abs(stated_error) <= 0.001 + 1 / rate, found
    assert wrong == 0, found
    assert abs(lag) <= AUDIO_MAX_LAG, found
    assert all(abs(run_lag) <= AUDIO_MAX_LAG for run_lag in run_lags), found
    assert corr >= AUDIO_MIN_CORR, found
    return found
