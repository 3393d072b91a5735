"""The cursors of task listings: the position (score, task id) of the last task looked at, the
score being the task's creation time in ms. Both stores page newest first by that position, so
pages neither skip nor repeat tasks while new ones are added."""

from __future__ import annotations

#: A position in a listing: (creation time in ms, task id).
Position = tuple[float, str]


def format_cursor(position: Position) -> str:
    """The cursor of the page that follows ``position``."""
    return f"{position[0]!r}:{position[1]}"


def parse_cursor(cursor: str) -> Position:
    """The position a cursor stands for; ValueError for one no store gave out."""
    score, sep, member = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not member or value != value:  # NaN check
        raise ValueError("cursor")
    return value, member
