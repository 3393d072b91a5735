"""Hold a running job still, on purpose, with nothing in production code.

A job's frame loop runs in a child process forked from a forkserver (jobs/frame_process.py);
the worker's thread only waits for it. Stopping that process (SIGSTOP) freezes the job exactly
where it is: it stays STARTED/PROGRESS, its worker stays alive and beating, and whatever a test
does meanwhile (cancel, stop Redis, signal the worker, scrape metrics, reload a page) happens
while the job surely runs, however fast x264 is. SIGCONT lets it go on.

A frame process is found without asking the worker: it is a child of a forkserver (the
worker's, or this test process's for an in-process worker) with a file of the video open under
the test's data dir. Frame processes of other tests have other data dirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jobs.redis_store import RedisTaskStore
from server.record_json import task_json
from tests.api import Client

#: What a forkserver's command line (and so every process it forks) contains.
FORKSERVER = b"multiprocessing.forkserver"
#: How often /proc is looked at while waiting for a frame process (seconds).
SCAN_INTERVAL = 0.005
#: How long one step of :meth:`FrameProcess.run_until` lets the process run (seconds).
STEP = 0.05


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def _forkservers() -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if FORKSERVER in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


def _opens_under(pid: int, folder: str) -> bool:
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(folder):
                return True
    return False


def frame_processes(data_dir: Path, video_id: int | None = None) -> list[int]:
    """The frame processes working on files of ``data_dir`` (on video ``video_id``'s original
    when given), wherever their worker runs."""
    folder = str(data_dir.resolve() / "videos")
    folder += f"/{video_id}/" if video_id is not None else "/"
    # (A forkserver's children have its command line too: "servers" holds them as well.)
    return sorted(
        {pid for server in _forkservers() for pid in _children(server) if _opens_under(pid, folder)}
    )


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "T"


class FrameProcess:
    """One job's frame process, stopped or running at the test's will."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return False
        return state != "Z"

    def stop(self) -> None:
        """SIGSTOP, and wait until the kernel has stopped it."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not _stopped(self.pid):
            assert self.alive(), f"frame process {self.pid} ended"
            assert time.monotonic() < deadline, f"frame process {self.pid} did not stop"
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT (nothing if it has ended meanwhile)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)

    def send(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def run_until(
        self,
        done: Callable[[], Awaitable[bool]],
        timeout: float = 60,
        step: float = STEP,
        rest: float = STEP,
    ) -> None:
        """Let the stopped process run in short steps until ``done()`` is true; it is stopped
        again when this returns. A step is far shorter than any test's job, so the job never
        runs past the point the test waits for by more than a step's few frames. Between steps
        it rests ``rest`` seconds (what it sent meanwhile reaches the worker and Redis)."""
        deadline = time.monotonic() + timeout
        while not await done():
            assert time.monotonic() < deadline, "the job never got there"
            self.resume()
            await asyncio.sleep(step)
            self.stop()
            await asyncio.sleep(rest)


async def catch_frame_process(
    data_dir: Path, video_id: int | None = None, timeout: float = 60
) -> FrameProcess:
    """Wait for the frame process of a job on ``video_id`` (any video of ``data_dir`` when
    None) and stop it as soon as it appears, before it has done much; returns it stopped."""
    deadline = time.monotonic() + timeout
    while True:  # (scanned in a thread: an app under test may share this event loop)
        found = await asyncio.to_thread(frame_processes, data_dir, video_id)
        if found:
            assert len(found) == 1, f"several frame processes on one video: {found}"
            process = FrameProcess(found[0])
            process.stop()
            return process
        assert time.monotonic() < deadline, "no frame process appeared"
        await asyncio.sleep(SCAN_INTERVAL)


@asynccontextmanager
async def frozen(
    data_dir: Path, video_id: int | None = None, timeout: float = 60
) -> AsyncIterator[FrameProcess]:
    """:func:`catch_frame_process`; resumed at the end if it still exists (a failing test
    does not leave a stopped process behind)."""
    process = await catch_frame_process(data_dir, video_id, timeout)
    try:
        yield process
    finally:
        process.resume()


FRAMES = re.compile(r"frame ([0-9]+)/")


def frames_done(status: dict[str, Any]) -> int:
    """The frames done that a PROGRESS status reports ("Encoding frame 12/250 ..."), else 0."""
    text = status.get("status")
    found = FRAMES.search(text) if isinstance(text, str) else None
    return int(found.group(1)) if found and status.get("state") == "PROGRESS" else 0


#: Reads a task's status (the JSON of ``GET /api/task-status/{id}/``).
StatusOf = Callable[[], Awaitable[dict[str, Any]]]


def api_status(client: Client, task_id: str) -> StatusOf:
    """The task's status through the app under test."""

    async def read() -> dict[str, Any]:
        return dict(await (await client.get(f"/api/task-status/{task_id}/")).json())

    return read


def record_status(records: RedisTaskStore, task_id: str) -> StatusOf:
    """The task's status straight from its record in Redis."""

    async def read() -> dict[str, Any]:
        return task_json(await records.get_task(task_id))

    return read


async def reports_frames(status_of: StatusOf, at_least: int = 1) -> bool:
    """Whether the running task's status reports ``at_least`` frames done."""
    status = await status_of()
    assert status["state"] not in ("SUCCESS", "FAILURE", "REVOKED"), status
    return frames_done(status) >= at_least


async def frames_reported(client: Client, task_id: str, at_least: int = 1) -> bool:
    """Whether the task's status (through the API) reports ``at_least`` frames done."""
    return await reports_frames(api_status(client, task_id), at_least)


async def advance(frames: FrameProcess, status_of: StatusOf) -> int:
    """Let the stopped job run until its status reports more frames than it does now, so that
    one more PROGRESS event has been published; returns the frames it reports then."""
    before = frames_done(await status_of())
    await frames.run_until(lambda: reports_frames(status_of, before + 1))
    return frames_done(await status_of())
