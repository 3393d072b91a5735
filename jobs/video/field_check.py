"""The check of a device's text fields in an output: each box where the processor burns in
patient data must be dark in every frame.

The fields lie outside the kept region, so the mask's own check (verify) already covers them;
this is a second, independent proof, by name. It is measured on each field's own box (the
brightest luma of its pixels over all frames), not on the mask's geometry, so a mistake in the
kept region or in the mask's slices cannot hide a field. Two things come from the kept region:
a field that overlaps it fails outright (the mask keeps it), and the pixels within `margin` px
of its rectangle are left out, as in the area check, for libx264's ringing next to the
picture's edge (a field right beside the picture at a small scale would otherwise fail on it).
A field with no pixel left to measure fails: it cannot be shown dark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobs.video.planes import Roi, TextField, U8Array, check_roi

#: A rectangle as (x0, y0, x1, y1), ends excluded.
_Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class FieldCheck:
    """What the check found in one text field over all frames."""

    name: str
    box: Roi  # in pixels of the output frame
    max_luma: int | None  # brightest luma of its measured pixels (None: none measured)
    dark: bool

    def to_dict(self) -> dict[str, object]:
        """The result's entry in ``verification.text_fields``."""
        return {
            "name": self.name,
            "dark": self.dark,
            "max_luma": self.max_luma,
            "box": self.box.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FieldCheck:
        """The inverse of to_dict (e.g. a chunk's check handed between processes)."""
        box = data["box"]
        max_luma = data["max_luma"]
        if not isinstance(box, Mapping) or not (max_luma is None or isinstance(max_luma, int)):
            raise ValueError("A text field check is malformed.")
        return cls(
            name=str(data["name"]),
            box=Roi(int(box["x"]), int(box["y"]), int(box["width"]), int(box["height"])),
            max_luma=max_luma,
            dark=bool(data["dark"]),
        )


class FieldProbe:
    """Measures one text field, frame after frame; :meth:`result` gives the verdict."""

    def __init__(
        self, field: TextField, kept: Roi | None, margin: int, width: int, height: int
    ) -> None:
        self.field = field
        self._geometry_problem: str | None = None
        self._parts: list[tuple[slice, slice]] = []
        self._max: int | None = None
        self._bad_frames = 0
        self._first_bad: int | None = None
        box = field.box
        try:
            check_roi(box, width, height)
        except ValueError as exc:
            self._geometry_problem = f"Text field {field.name}: {exc}"
            return
        if kept is not None and box.overlaps(kept):
            self._geometry_problem = f"Text field {field.name} overlaps the kept region."
            return
        hole = _grown(kept, margin) if kept is not None else None
        self._parts = [(slice(y0, y1), slice(x0, x1)) for x0, y0, x1, y1 in _minus(box, hole)]
        if not self._parts:
            self._geometry_problem = (
                f"Text field {field.name} lies within {margin} px of the kept region: none of "
                "it can be measured."
            )

    def check(self, luma: U8Array, index: int, limit: int) -> None:
        """Measure frame `index` (its luma plane) against `limit`."""
        if not self._parts:
            return
        value = max(int(luma[rows, cols].max()) for rows, cols in self._parts)
        self._max = max(value, self._max or 0)
        if value > limit:
            self._bad_frames += 1
            if self._first_bad is None:
                self._first_bad = index

    def result(self, limit: int) -> tuple[FieldCheck, str | None]:
        """The field's verdict, and the problem to report when it is not dark."""
        problem = self._geometry_problem
        if problem is None and self._bad_frames:
            problem = (
                f"Text field {self.field.name} is not dark: its luma reaches {self._max} "
                f"(limit {limit}) in {self._bad_frames} frames, first at frame "
                f"{self._first_bad}."
            )
        check = FieldCheck(self.field.name, self.field.box, self._max, dark=problem is None)
        return check, problem


def _grown(roi: Roi, margin: int) -> Roi:
    return Roi(roi.x - margin, roi.y - margin, roi.width + 2 * margin, roi.height + 2 * margin)


def _minus(box: Roi, hole: Roi | None) -> list[_Rect]:
    """`box` without `hole`, as up to four disjoint non-empty rectangles."""
    x0, y0, x1, y1 = box.x, box.y, box.x + box.width, box.y + box.height
    if hole is None or not box.overlaps(hole):
        return [(x0, y0, x1, y1)]
    hx0, hy0, hx1, hy1 = hole.x, hole.y, hole.x + hole.width, hole.y + hole.height
    mid0, mid1 = max(y0, hy0), min(y1, hy1)
    parts = [
        (x0, y0, x1, mid0),  # above the hole
        (x0, mid1, x1, y1),  # below it
        (x0, mid0, min(x1, hx0), mid1),  # left of it
        (max(x0, hx1), mid0, x1, mid1),  # right of it
    ]
    return [(a, b, c, d) for a, b, c, d in parts if a < c and b < d]
