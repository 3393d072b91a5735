"""Checks that a masked video is black outside its ROI and unchanged inside, frame by frame.

The mask geometry is re-derived here independently from the spec (pixel centres, the
inscribed-ellipse formula, "a chroma sample is kept only if all its luma pixels are kept"),
so the checks do not trust the code they check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from jobs.video import Roi, Shape
from tests.media import DecodedFrame, iter_frames

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


def ref_keep(width: int, height: int, roi: Roi, shape: Shape) -> Bool2D:
    """Kept luma pixels per the spec: the pixel centre inside the rect / inscribed ellipse."""
    px = np.arange(width) + 0.5
    py = np.arange(height) + 0.5
    if shape == "rect":
        in_x = (px > roi.x) & (px < roi.x + roi.width)
        in_y = (py > roi.y) & (py < roi.y + roi.height)
        return np.asarray(in_y[:, None] & in_x[None, :])
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
    def of(cls, width: int, height: int, roi: Roi, shape: Shape, sub: int) -> Regions:
        keep = ref_keep(width, height, roi, shape)
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


def assert_masked(source: Path, output: Path, roi: Roi, shape: Shape) -> None:
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
            regions = Regions.of(width, height, roi, shape, 2 if out.u.shape != out.y.shape else 1)
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
