"""Frame loops in a child process of their own, so that a crash of FFmpeg's native code (a
hostile file can make a decoder read out of bounds and segfault) ends one job, not the worker
and the other jobs it is running.

:class:`InChild` wraps a video-core call (``edit_video``, ``verify_output``, ``analyze_video``:
a blocking function that takes ``on_progress``) so that :meth:`jobs.job_run.JobRun.run_frames`
runs it in a fresh process forked from a *forkserver* that has already imported PyAV and numpy
(a few milliseconds per call, not the half second of a spawned interpreter). The job's thread
in the worker keeps everything else: Redis, progress publishing, cancel and time limit.

- Progress comes over a pipe, at most every :data:`PROGRESS_INTERVAL` seconds (never per frame).
- A cancel, the time limit or a worker shutdown kills the child at once (SIGKILL); the caller
  removes its temporary files as before.
- A child that dies from a signal (or exits without an answer) raises :class:`FrameProcessCrashed`
  (task error code ``worker_crash``), naming the signal; the worker goes on.
- The child writes no core dump (its memory holds decoded patient video), ignores terminal and
  service-manager signals meant for the worker (the worker decides when it stops), and ends
  itself when the worker's side of its pipe closes (the worker died, even by SIGKILL).

This module imports only the standard library and our error types (so a child imports nothing
new); the functions it runs are referenced by name and loaded in the child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from jobs.errors import FrameProcessCrashed
from jobs.video.errors import InvalidVideo

T = TypeVar("T")

#: Least time between two progress messages of a child (seconds).
PROGRESS_INTERVAL = 0.2
#: How often the waiting thread looks at the pipe, the child and the stop flag (seconds).
POLL_INTERVAL = 0.05
#: How long a child that has answered gets to exit by itself before it is killed (seconds).
EXIT_GRACE = 5.0
#: Modules the forkserver imports once, so that each child starts with them loaded.
PRELOAD = ["jobs.frame_process", "jobs.video"]

#: Exit status of a child whose parent has gone.
ORPHANED_EXIT = 3


class Progress(Protocol):
    """What a frame loop reports to (``jobs.progress.FrameProgress``): called with the number
    of frames done (it may raise to stop the loop); ``stop`` asks the loop to end."""

    stop: bool

    def __call__(self, done: int) -> None: ...


class InChild(Generic[T]):
    """``fn(*args, on_progress=..., **kwargs)`` run in a child process when called with a
    :class:`Progress`; returns what ``fn`` returned, or raises what it raised. Called without
    one, ``fn`` gets no ``on_progress`` (for calls such as ``probe``).
    """

    def __init__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __call__(self, progress: Progress | None = None) -> T:
        """Run the call in a child; blocks the calling thread until it has ended."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preload())
        # Duplex, so that the child sees the end of file when this process dies (see
        # _exit_with_parent); it never reads anything else from it.
        receiver, sender = context.Pipe(duplex=True)
        child = context.Process(
            target=_child_main,
            args=(sender, self.fn, self.args, self.kwargs, progress is not None),
            name="vidcorrect-frames",
            daemon=True,
        )
        answered = False
        try:
            child.start()
            sender.close()
            result = _await_answer(child, receiver, progress or _NoProgress())
            answered = True
            return result  # type: ignore[no-any-return]
        finally:
            receiver.close()
            sender.close()
            if child.pid is not None:  # started
                child.join(EXIT_GRACE if answered else 0)  # an answered child is exiting
                if child.exitcode is None:
                    child.kill()
                    child.join()
            child.close()


class _NoProgress:
    stop = False

    def __call__(self, done: int) -> None:
        pass


def start_forkserver() -> None:
    """Start the forkserver now (it imports PyAV and numpy once), so that the first job does
    not wait for it; blocking, a fraction of a second."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(_preload())
    forkserver.ensure_running()


def _preload() -> list[str]:
    """What the forkserver imports before it forks the first child: our modules, and what this
    process's main module is made of. multiprocessing runs the main module again in every child
    (as ``__mp_main__``); with its imports already loaded that costs a millisecond, not the
    second it takes to import a web framework or a test runner."""
    names: set[str] = set()
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if isinstance(spec_name, str) and "." in spec_name:
        # python -m package.module: its package, not the module itself (runpy warns when the
        # module it runs is already imported)
        names.add(spec_name.rpartition(".")[0])
    for key, value in vars(main).items() if main is not None else ():
        if key.startswith("__"):
            continue
        module = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        )
        if (
            isinstance(module, str)
            and module
            and module != spec_name
            and not module.startswith(("__", "builtins"))
        ):
            names.update((module, module.partition(".")[0]))  # what the main module imports
    return [*sorted(names), *PRELOAD]


def _await_answer(child: Any, receiver: Connection, progress: Progress) -> Any:
    """Follow the child until it answers or dies; forward its progress."""
    done = 0
    while True:
        if progress.stop:
            progress(done)  # raises jobs.progress.JobStopped; the caller kills the child
            raise InterruptedError("the frame loop was asked to stop")
        if not receiver.poll(POLL_INTERVAL):
            continue
        try:
            raw = receiver.recv_bytes()
        except EOFError:  # the child ended without an answer
            child.join()
            raise _crash(child.exitcode) from None
        message = _load(raw)
        if message[0] == "progress":
            done = int(message[1])
            progress(done)
        elif message[0] == "result":
            return message[1]
        else:
            _, error, trace, frames = message
            raise _located(error, frames) from _with_trace(error, trace)


def _load(raw: bytes) -> tuple[Any, ...]:
    try:
        message = pickle.loads(raw)  # noqa: S301 - from our own child process
    except Exception as error:  # an answer that cannot be rebuilt here is a failure like any
        message = ("error", RuntimeError(f"unreadable answer of the frame process: {error}"))
        return (*message, None, 0)
    assert isinstance(message, tuple)
    return message


def _with_trace(error: BaseException, trace: str | None) -> BaseException:
    if trace:
        error.add_note(f"In the frame process:\n{trace}")
    return error


def _located(error: BaseException, frames: int) -> BaseException:
    """A damaged video's error with where the damage is: the frames before it decoded."""
    if not isinstance(error, InvalidVideo) or type(error) is not InvalidVideo:
        return error
    if frames <= 0:
        where = "No frame could be decoded."
    else:
        where = (
            f"Frames 0 to {frames - 1} were decoded; the damage is at frame {frames} or just "
            "after it (frames counted from 0)."
        )
    return InvalidVideo(f"{error} {where}")


def _crash(exitcode: int | None) -> FrameProcessCrashed:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        what = f"was killed by {name}"
        if name == "SIGKILL":
            what += " (perhaps it ran out of memory)"
    else:
        what = f"exited with status {exitcode} without an answer"
    return FrameProcessCrashed(
        f"The process decoding and encoding the video {what}; the video may be damaged or "
        "hostile. Nothing was written and the worker carries on; check the file (e.g. play it "
        "to the end) or re-encode it before submitting again."
    )


# ---------------------------------------------------------------------------- in the child


def _child_main(
    sender: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    with_progress: bool,
) -> None:
    """The child's entry point: run the call, send progress and then the answer."""
    _harden_child(sender)
    last_sent = 0.0
    frames = 0
    frames_sent = 0

    def on_progress(done: int) -> None:
        nonlocal last_sent, frames, frames_sent
        frames = done
        now = time.monotonic()
        if now - last_sent >= PROGRESS_INTERVAL:
            last_sent, frames_sent = now, done
            sender.send_bytes(pickle.dumps(("progress", done)))

    answer: tuple[Any, ...]
    try:
        if with_progress:
            kwargs = {**kwargs, "on_progress": on_progress}
        answer = ("result", fn(*args, **kwargs))
        if with_progress and frames != frames_sent:  # the last count, throttled away above
            sender.send_bytes(pickle.dumps(("progress", frames)))
    except BaseException as error:  # everything goes back to the parent, which decides
        answer = ("error", _portable(error), traceback.format_exc(), frames)
    try:
        sender.send_bytes(pickle.dumps(answer))
    except OSError:  # the parent has gone away: nobody to tell
        os._exit(1)
    sender.close()


def _harden_child(connection: Connection) -> None:
    """No core dump, no stray signals, and no life after the parent's."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent, args=(connection,), name="parent-watch", daemon=True
    ).start()


def _exit_with_parent(connection: Connection) -> None:
    """Wait for the end of file of the parent's side of the pipe, then end this process.

    The parent closes it when it is done with the child, and the kernel closes it when the
    parent dies (even by SIGKILL); an orphan must not go on writing a file nobody will use.
    (The forkserver cannot tell: every child holds its "alive" pipe too.)
    """
    with contextlib.suppress(OSError, EOFError):
        connection.poll(None)
    os._exit(ORPHANED_EXIT)


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a plain equivalent."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    except Exception:
        if isinstance(error, OSError) and error.errno is not None:
            return OSError(error.errno, error.strerror or os.strerror(error.errno))
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


__all__ = ["PRELOAD", "FrameProcessCrashed", "InChild", "Progress", "start_forkserver"]
