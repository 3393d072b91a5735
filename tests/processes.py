"""Service processes for tests whose point is process behaviour: ``vidcorrect worker`` and
``vidcorrect serve`` started as real processes against the test's Redis and data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from jobs.settings import Settings
from tests.served import free_port, wait_until_answering

#: Starts a ``vidcorrect worker`` process; keyword arguments are extra environment variables.
SpawnWorker = Callable[..., "subprocess.Popen[bytes]"]


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker or server process for ``settings`` (a separate Redis)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCORRECT_")}
    assert settings.redis_url is not None
    env.update(
        REDIS_URL=settings.redis_url,
        VIDCORRECT_DATA_DIR=str(settings.data_dir),
        VIDCORRECT_KEY_PREFIX=settings.key_prefix,
        VIDCORRECT_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m vidcorrect *args``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vidcorrect", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class ServerProcess:
    """``vidcorrect serve`` (with ``REDIS_URL``: it only serves) on a fixed local port, so that
    it can be stopped and started again where clients expect it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the process and wait until it answers."""
        self.process = start_process(["serve", "--port", str(self.port)], self.env, self.log)
        async with aiohttp.ClientSession() as session:
            await wait_until_answering(session, f"{self.base}/api/videos/", self.process, self.log)

    def stop(self) -> int:
        """Stop it as a service manager would (SIGTERM); returns its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            self.process = None

    def kill(self) -> None:
        """Kill it if it still runs (test clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def descendants(pid: int) -> list[int]:
    """The ids of ``pid``'s child processes, theirs, and so on (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    wanted = [pid]
    while wanted:
        parent = wanted.pop()
        children = [child for child, of in parents.items() if of == parent]
        found += children
        wanted += children
    return found
