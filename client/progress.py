"""Progress on stderr: a bar redrawn in place on a terminal, else one line per meaningful change
(a new state or stage, every 10 %), so logs and pipes stay readable."""

from __future__ import annotations

import os
import re
import time
from typing import Protocol, TextIO

from client.api import JsonDict

_FRAMES = re.compile(
    r"^(?P<stage>.+?) frame (?P<done>\d+)/(?P<total>\d+)(?: \((?P<fps>[\d.]+) fps\))?$"
)
BAR_WIDTH = 24
#: Seconds between redraws of a bar.
REDRAW_INTERVAL = 0.1
#: A line is printed each time the progress passes another multiple of this.
LINE_STEP = 10


def duration(seconds: float) -> str:
    """``0:07``, ``12:05``, ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def megabytes(size: float) -> str:
    """A byte count in MB with one decimal."""
    return f"{size / 1e6:.1f} MB"


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` writes to (80 when it does not say)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns if columns > 0 else 80


def _bar(fraction: float) -> str:
    filled = round(BAR_WIDTH * min(1.0, max(0.0, fraction)))
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _stage(status: JsonDict) -> str:
    """What the task is doing: the stage of a frame loop (``Encoding``), else its status."""
    text = str(status.get("status") or "")
    match = _FRAMES.match(text)
    return match["stage"] if match else text


class TaskView(Protocol):
    """Shows a task's statuses as they come."""

    def update(self, status: JsonDict) -> None:
        """Show this status."""

    def close(self) -> None:
        """Finish the display (the task has ended, or following stopped)."""


class QuietView:
    """Shows nothing (``--quiet``)."""

    def update(self, status: JsonDict) -> None:
        """Ignore the status."""

    def close(self) -> None:
        """Nothing to finish."""


class LineView:
    """One line per new state, new stage, or 10 % more: for logs, pipes and CI."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._shown: tuple[str, str, int] | None = None

    def update(self, status: JsonDict) -> None:
        """Print a line if this status says something new."""
        percent = int(status.get("progress") or 0)
        state = str(status.get("state") or "")
        key = (state, _stage(status), percent // LINE_STEP)
        if state == "PROGRESS" and self._shown == key:
            return
        if state != "PROGRESS" and self._shown is not None and self._shown[:2] == key[:2]:
            return
        self._shown = key
        line = f"{percent:3d}%  {state:<8}  {status.get('status') or ''}"
        eta = status.get("eta_seconds")
        if state == "PROGRESS" and isinstance(eta, int | float):
            line += f", {duration(eta)} left"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to finish: every line is complete."""


class _RedrawnLine:
    """One terminal line redrawn in place with ``\r``, cut to the terminal's width."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._open = False

    def _redraw(self, parts: list[str]) -> None:
        line = "  ".join(parts)[: terminal_width(self.stream) - 1]
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()
        self._open = True

    def close(self) -> None:
        """End the line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


class BarView(_RedrawnLine):
    """A bar redrawn in place: stage, percent, frames, rate and time left. A finished stage
    keeps its line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._stage: str | None = None
        self._drawn = 0.0

    def update(self, status: JsonDict) -> None:
        """Redraw the bar (at most ten times a second, except for a new stage or the end)."""
        stage = _stage(status)
        state = str(status.get("state") or "")
        now = time.monotonic()
        new_stage = stage != self._stage
        if not new_stage and state == "PROGRESS" and now - self._drawn < REDRAW_INTERVAL:
            return
        if new_stage and self._open:
            self.stream.write("\n")
        self._stage, self._drawn = stage, now
        self._draw(status, stage)

    def _draw(self, status: JsonDict, stage: str) -> None:
        percent = int(status.get("progress") or 0)
        parts = [stage, _bar(percent / 100), f"{percent:3d}%"]
        match = _FRAMES.match(str(status.get("status") or ""))
        if match:
            parts.append(f"frame {match['done']}/{match['total']}")
            if match["fps"]:
                parts.append(f"{match['fps']} fps")
        eta = status.get("eta_seconds")
        if status.get("state") == "PROGRESS" and isinstance(eta, int | float):
            parts.append(f"{duration(eta)} left")
        self._redraw(parts)


def task_view(stream: TextIO, *, quiet: bool) -> TaskView:
    """The view that suits ``stream``: a bar on a terminal, else lines."""
    if quiet:
        return QuietView()
    return BarView(stream) if stream.isatty() else LineView(stream)


class TransferBar(_RedrawnLine):
    """Bytes sent or received, as a bar redrawn in place on a terminal (nothing elsewhere)."""

    def __init__(self, stream: TextIO, label: str, total: int | None, *, show: bool) -> None:
        super().__init__(stream)
        self.label = label
        self.total = total
        self.show = show and stream.isatty()
        self._started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int) -> None:
        """Redraw with ``done`` bytes transferred (at most ten times a second)."""
        now = time.monotonic()
        if not self.show or (now - self._drawn < REDRAW_INTERVAL and done != self.total):
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        parts = [self.label]
        if self.total:
            parts += [_bar(done / self.total), f"{100 * done // self.total:3d}%"]
            parts.append(f"{megabytes(done)} of {megabytes(self.total)}")
        else:
            parts.append(megabytes(done))
        parts.append(f"{megabytes(done / elapsed)}/s")
        if self.total and done and done < self.total:
            parts.append(f"{duration((self.total - done) * elapsed / done)} left")
        self._redraw(parts)
