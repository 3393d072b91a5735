"""``vidcorrect serve`` in its own process, as an operator runs it, for tests that need one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_answering(
    session: aiohttp.ClientSession,
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """Wait until ``url`` answers 200; fail with the process's log if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text(errors="replace")
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("vidcorrect serve did not answer in time")


class Served:
    """A ``vidcorrect serve`` process on a free loopback port, its output in ``log_path``.

    ``env`` is added to this process's environment (``REDIS_URL`` and ``VIDCORRECT_*`` are
    dropped first, so only what the test says applies).
    """

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        base = {
            k: v
            for k, v in os.environ.items()
            if k != "REDIS_URL" and not k.startswith("VIDCORRECT_")
        }
        base["VIDCORRECT_LOG_FORMAT"] = "json"
        base.update(env or {})
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self._log = self.log_path.open("wb")
        script = Path(sys.executable).parent / "vidcorrect"
        self.process = subprocess.Popen(
            [str(script), "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            env=base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, session: aiohttp.ClientSession, path: str = "/api/session/") -> None:
        """Wait until the server answers ``path`` with 200."""
        await wait_until_answering(session, self.base + path, self.process, self.log_path)

    def stop(self) -> int:
        """SIGINT, as Ctrl-C does; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(30)
        finally:
            self._log.close()
