"""Numpy geometry of the mask: which samples of each YUV plane must be blanked.

Everything here is computed once per video; `PlaneFill.apply` is the only per-frame work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Shape = Literal["rect", "ellipse", "octagon"]
SHAPES: tuple[Shape, ...] = ("rect", "ellipse", "octagon")

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]

# Limited ("MPEG") range black and neutral chroma, 8-bit.
LUMA_BLACK = 16
CHROMA_NEUTRAL = 128


@dataclass(frozen=True)
class Roi:
    """The region that is KEPT, in pixels of the stored frame; everything outside goes black."""

    x: int
    y: int
    width: int
    height: int

    def to_dict(self) -> dict[str, int]:
        """The region as the API, the task records and the results write it."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    def overlaps(self, other: Roi) -> bool:
        """Whether the two regions share a pixel."""
        return (
            self.x < other.x + other.width
            and other.x < self.x + self.width
            and self.y < other.y + other.height
            and other.y < self.y + self.height
        )


@dataclass(frozen=True)
class TextField:
    """A named box where a video processor burns in patient data (a name, a date of birth),
    in pixels of the stored frame. It lies outside the kept region, so it must come out black.
    """

    name: str
    box: Roi

    def to_dict(self) -> dict[str, object]:
        """The field as the API, the task records and the results write it."""
        return {"name": self.name, **self.box.to_dict()}


def check_roi(roi: Roi, width: int, height: int) -> None:
    """Raise ValueError unless `roi` is non-empty and entirely inside a width x height frame."""
    if roi.width <= 0 or roi.height <= 0:
        raise ValueError(f"The region is empty ({roi.width}x{roi.height}).")
    if roi.x < 0 or roi.y < 0 or roi.x + roi.width > width or roi.y + roi.height > height:
        raise ValueError(
            f"The region {roi.width}x{roi.height} at ({roi.x}, {roi.y}) "
            f"is not inside the {width}x{height} frame."
        )


def check_corner(roi: Roi, shape: Shape, corner: int) -> None:
    """Raise ValueError unless `corner` suits the shape: 1 to half the ROI's shorter side for
    an "octagon", 0 for the other shapes."""
    if shape != "octagon":
        if corner != 0:
            raise ValueError(f"A corner is cut only from an octagon, not from a {shape}.")
        return
    most = min(roi.width, roi.height) // 2
    if not 1 <= corner <= most:
        raise ValueError(
            f"The octagon's corner must be 1 to {most} pixels (half the region's shorter "
            f"side), got {corner}."
        )


def in_shape(
    xs: FloatArray, ys: FloatArray, roi: Roi, shape: Shape, corner: float = 0.0
) -> BoolArray:
    """Boolean (len(ys), len(xs)) array: whether each point (xs across, ys down, in the ROI's
    units) lies in the kept area of `roi`: the box, the ellipse inscribed in it, or the
    "octagon", the box less the points within `corner` of one of its corners in |dx| + |dy|
    (a right isosceles triangle of legs `corner` cut off each corner). The one definition of
    the shapes: the mask's pixels, the output's check and the analysis' tiles and fit."""
    if shape == "ellipse":
        # Coordinates relative to the centre, in units of the semi-axes.
        rx, ry = roi.width / 2, roi.height / 2
        dx = (xs - roi.x - rx) / rx
        dy = (ys - roi.y - ry) / ry
        return np.asarray(dy[:, None] ** 2 + dx[None, :] ** 2 <= 1.0)
    in_x = (xs >= roi.x) & (xs < roi.x + roi.width)
    in_y = (ys >= roi.y) & (ys < roi.y + roi.height)
    inside = in_y[:, None] & in_x[None, :]
    if shape == "octagon":
        # A point's distance from the nearer vertical and from the nearer horizontal edge.
        to_x = np.minimum(xs - roi.x, roi.x + roi.width - xs)
        to_y = np.minimum(ys - roi.y, roi.y + roi.height - ys)
        inside &= to_y[:, None] + to_x[None, :] >= corner
    elif shape != "rect":
        raise ValueError(f"Unknown mask shape {shape!r}; expected one of {SHAPES}.")
    return np.asarray(inside)


def centres(start: int, count: int) -> FloatArray:
    """The centres of `count` pixels (or cells) from `start` on: start + 0.5, start + 1.5, ..."""
    return np.arange(start, start + count, dtype=np.float64) + 0.5


def luma_keep_mask(
    width: int,
    height: int,
    roi: Roi,
    shape: Shape,
    holes: tuple[Roi, ...] = (),
    corner: int = 0,
) -> BoolArray:
    """Boolean (height, width) array, True for the luma pixels that are kept.

    For "ellipse" a pixel is kept iff its centre lies in the ellipse inscribed in the ROI; for
    "octagon" iff it lies in the ROI with a right isosceles triangle of legs `corner` pixels
    cut off each corner (the 45-degree cut corners of an endoscope's octagonal image; a
    rounded rectangle is close to it). `holes` are boxes made black inside the kept area (text
    the processor prints over the image); they must lie inside the frame.
    """
    check_roi(roi, width, height)
    check_corner(roi, shape, corner)
    for hole in holes:
        check_roi(hole, width, height)
    keep = np.zeros((height, width), dtype=np.bool_)
    # (the box's pixels only: none outside it is kept)
    keep[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width] = in_shape(
        centres(roi.x, roi.width), centres(roi.y, roi.height), roi, shape, corner
    )
    for hole in holes:
        keep[hole.y : hole.y + hole.height, hole.x : hole.x + hole.width] = False
    return keep


def subsample_keep(keep: BoolArray, sub_x: int, sub_y: int) -> BoolArray:
    """Keep mask of a chroma plane subsampled by (sub_x, sub_y) from the luma keep mask.

    A chroma sample is kept only if ALL the luma pixels it covers are kept, so a sample that
    straddles the boundary is blanked (privacy first). The plane size is ceil(luma / sub), as
    in FFmpeg; the last sample of an odd dimension covers a single luma pixel.
    """
    if sub_x == 1 and sub_y == 1:
        return keep
    height, width = keep.shape
    ch, cw = -(-height // sub_y), -(-width // sub_x)
    # Padding stands for pixels that do not exist, so it must not veto keeping: pad with True.
    padded = np.ones((ch * sub_y, cw * sub_x), dtype=np.bool_)
    padded[:height, :width] = keep
    return np.asarray(padded.reshape(ch, sub_y, cw, sub_x).all(axis=(1, 3)), dtype=np.bool_)


@dataclass(frozen=True)
class PlaneFill:
    """How to blank one plane: whole rectangles outside the kept area's bounding box, plus a
    boolean mask inside that box (None when the box is kept entirely, as for "rect")."""

    value: int
    bands: tuple[tuple[slice, slice], ...]
    box: tuple[slice, slice] | None
    box_outside: BoolArray | None

    @classmethod
    def from_keep(cls, keep: BoolArray, value: int) -> PlaneFill:
        """Precompute the fill of a plane from its boolean keep mask."""
        rows = np.flatnonzero(keep.any(axis=1))
        cols = np.flatnonzero(keep.any(axis=0))
        everything = (slice(None), slice(None))
        if rows.size == 0:
            return cls(value=value, bands=(everything,), box=None, box_outside=None)
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        bands = [
            (slice(0, r0), slice(None)),
            (slice(r1, None), slice(None)),
            (slice(r0, r1), slice(0, c0)),
            (slice(r0, r1), slice(c1, None)),
        ]
        height, width = keep.shape
        non_empty = tuple(
            (rs, cs)
            for rs, cs in bands
            if len(range(*rs.indices(height))) and len(range(*cs.indices(width)))
        )
        box = (slice(r0, r1), slice(c0, c1))
        outside = ~keep[box]
        return cls(
            value=value,
            bands=non_empty,
            box=box,
            box_outside=np.ascontiguousarray(outside) if outside.any() else None,
        )

    def apply(self, view: U8Array) -> None:
        """Blank the outside of the kept area in `view`, a (height, width) view of the plane."""
        for rows, cols in self.bands:
            view[rows, cols] = self.value
        if self.box is not None and self.box_outside is not None:
            np.copyto(view[self.box], self.value, where=self.box_outside, casting="unsafe")


def plane_fills(
    width: int,
    height: int,
    roi: Roi,
    shape: Shape,
    sub_x: int,
    sub_y: int,
    holes: tuple[Roi, ...] = (),
    corner: int = 0,
) -> tuple[PlaneFill, PlaneFill, PlaneFill]:
    """The (Y, U, V) fills for a planar YUV frame whose chroma is subsampled by (sub_x, sub_y)
    (2, 2 for yuv420p; 1, 1 for yuv444p), black outside the ROI (an octagon's `corner`s cut)
    and in the `holes`. Raises ValueError for a bad ROI, hole, shape or corner."""
    keep = luma_keep_mask(width, height, roi, shape, holes, corner)
    chroma = PlaneFill.from_keep(subsample_keep(keep, sub_x, sub_y), CHROMA_NEUTRAL)
    return PlaneFill.from_keep(keep, LUMA_BLACK), chroma, chroma
