"""Shared fixtures: a real Redis, settings on a temp data dir, the HTTP app, a real arq worker,
and small generated videos."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from testkit.media import make_video
from tests.api import Client
from tests.oracle import RECORD_ENV
from tests.processes import SpawnWorker, service_env, start_process

_STARTED = pytest.StashKey[float]()


def _is_mp4(path: Path) -> bool:
    """A real output (not a placeholder a test wrote itself): an ISO media file."""
    with path.open("rb") as f:
        return f.read(8)[4:8] == b"ftyp"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.stash[_STARTED] = time.time()  # fixtures may publish outputs too
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """With VIDCORRECT_ORACLE_RECORD set (a file), note every output a test published (files
    written to an outputs/ folder under the run's temp dir since its set-up began), for
    tests/oracle_coverage.py; tests/oracle.py notes every output it judged."""
    yield
    target = os.environ.get(RECORD_ENV)
    if not target:
        return
    started = item.stash[_STARTED]
    base: Path = item.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    published = [
        p.name
        for p in base.rglob("outputs/*")
        if p.is_file() and p.stat().st_mtime >= started and _is_mp4(p)
    ]
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps({"test": item.nodeid, "published": published}) + "\n")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``REDIS_URL`` when set, else a redis-server of the suite's own on a free port."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings for one test: its own data dir and its own Redis key prefix and queue."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        key_prefix=f"vctest-{uuid.uuid4().hex[:10]}",
        max_jobs=2,
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    """The real HTTP app, serving on a local port."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    """A real arq worker on the test's queue, running in this event loop."""
    async with in_process_worker(settings) as running:
        yield running


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_720p(media_dir: Path) -> Path:
    """1280x720, 25 fps, 2 s, H.264 with B-frames + AAC audio; numbered (frame numbers in
    the pixels, frame tones in the audio)."""
    return make_video(
        media_dir / "clip_720p.mp4", width=1280, height=720, seconds=2.0, numbered=True
    )


@pytest.fixture(scope="session")
def clip_odd(media_dir: Path) -> Path:
    """642x362 (not a multiple of 16), 30000/1001 fps, 2 s, no audio; numbered."""
    from fractions import Fraction

    return make_video(
        media_dir / "clip_odd.mp4",
        width=642,
        height=362,
        fps=Fraction(30000, 1001),
        seconds=2.0,
        audio=False,
        numbered=True,
    )


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process for the test's settings (short heartbeat). Tests
    that need a job to outlast something hold it with tests.pausing, not with a slow preset."""
    return service_env(settings, VIDCORRECT_HEARTBEAT_TIMEOUT="3")


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[SpawnWorker]:
    """Start ``vidcorrect worker`` processes (keyword arguments: extra environment); they are
    killed at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(**extra_env: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(started)}.log"
        process = start_process(["worker"], {**worker_env, **extra_env}, log)
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
