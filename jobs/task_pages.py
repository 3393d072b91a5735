"""The cursors of task listings: the position (score, task id) of the last task looked at, the
score being the task's creation time in ms. Both stores page newest first by that position, so
pages neither skip nor repeat tasks while new ones are added."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.errors import InvalidCursor
from jobs.model import Operation, TaskRecord, TaskState

#: A position in a listing: (creation time in ms, task id).
Position = tuple[float, str]


def format_cursor(position: Position) -> str:
    """The cursor of the page that follows ``position``."""
    return f"{position[0]!r}:{position[1]}"


def parse_cursor(cursor: str) -> Position:
    """The position a cursor stands for; InvalidCursor for one no store gave out."""
    score, sep, member = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not member or value != value:  # NaN check
        raise InvalidCursor
    return value, member


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks a listing asks for, newest first: optionally one video's, in one state, of
    one operation; ``limit`` at a time, after ``cursor`` (the one the previous page ended with)."""

    video_id: int | None = None
    state: TaskState | None = None
    operation: Operation | None = None
    limit: int = 50
    cursor: str | None = None

    def after(self) -> Position | None:
        """The position this page starts after; InvalidCursor for a cursor no store gave out."""
        return parse_cursor(self.cursor) if self.cursor else None

    def matches(self, task: TaskRecord) -> bool:
        """Whether ``task`` passes the query's filters."""
        return (
            (self.video_id is None or task.video_id == self.video_id)
            and (self.state is None or task.state is self.state)
            and (self.operation is None or task.operation is self.operation)
        )


#: A page of a listing: its tasks, and the cursor of the next page (``None`` at the end).
TaskPage = tuple[list[TaskRecord], str | None]
