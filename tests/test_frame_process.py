"""The child processes frame loops run in (jobs/frame_process.py): answers, errors, crashes,
stopping, and no orphans when the parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.errors import FrameProcessCrashed
from jobs.frame_process import InChild
from jobs.video import InvalidVideo, probe
from testkit.media import make_not_a_video
from tests.processes import descendants


class Stopped(Exception):
    pass


class Recorder:
    """A progress sink like the runner's: records counts, raises once asked to stop."""

    def __init__(self) -> None:
        self.stop = False
        self.seen: list[int] = []

    def __call__(self, done: int) -> None:
        if self.stop:
            raise Stopped
        self.seen.append(done)


def count_frames(n: int, *, on_progress: Recorder) -> str:
    """Stands for a frame loop: reports n frames, 10 ms each."""
    for done in range(1, n + 1):
        time.sleep(0.01)
        on_progress(done)
    return f"{n} frames"


def segfault(*, on_progress: Recorder) -> None:
    on_progress(1)
    os.kill(os.getpid(), signal.SIGSEGV)


def test_answer_and_throttled_progress() -> None:
    progress = Recorder()
    assert InChild(count_frames, 60)(progress) == "60 frames"
    assert progress.seen, "no progress arrived"
    assert progress.seen == sorted(progress.seen)
    assert len(progress.seen) <= 6, "progress must come a few times a second, not per frame"


def test_errors_come_back_with_their_type(tmp_path: Path) -> None:
    text = make_not_a_video(tmp_path / "notes.mp4")
    with pytest.raises(InvalidVideo, match="not a recognized video"):
        InChild(probe, text)()
    with pytest.raises(FileNotFoundError):
        InChild(probe, tmp_path / "missing.mp4")()


def test_a_signal_is_a_crash_that_names_it() -> None:
    with pytest.raises(FrameProcessCrashed, match="SIGSEGV") as caught:
        InChild(segfault)(Recorder())
    assert caught.value.code == "worker_crash"


def test_stop_kills_a_child_stuck_in_its_work() -> None:
    progress = Recorder()
    progress.stop = True
    started = time.monotonic()
    with pytest.raises(Stopped):
        InChild(time.sleep, 60)(progress)
    assert time.monotonic() - started < 2.0


def test_a_child_ends_itself_when_its_parent_is_killed(tmp_path: Path) -> None:
    """Even a child stuck where it reports nothing: the parent's end of the pipe closes."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from jobs.frame_process import InChild; InChild(time.sleep, 60)()",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        helpers: list[int] = []
        for _ in range(200):  # the forkserver, and the child forked from it
            helpers = descendants(parent.pid)
            if any(descendants(pid) for pid in helpers):
                break
            time.sleep(0.05)
        child = [pid for helper in helpers for pid in descendants(helper)]
        assert child, "the child never started"
        parent.kill()
        parent.wait()
        for _ in range(100):
            if not any(Path(f"/proc/{pid}").exists() for pid in child + helpers):
                break
            time.sleep(0.05)
        assert not [pid for pid in child + helpers if Path(f"/proc/{pid}").exists()]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
