"""Several worker processes against one Redis and one shared data dir: work is spread over
them, every job runs exactly once, and every job log line names its task."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from jobs.settings import Settings
from testkit.media import make_video
from tests.api import Client, download, follow_task, submit_mask, upload
from tests.metrics import scrape
from tests.oracle import judge_mask

JOBS = 8
#: The fields every line a job logs must carry.
JOB_FIELDS = ("task_id", "video_id", "operation", "attempt")


@pytest.fixture(scope="session")
def tiny_clip(media_dir: Path) -> Path:
    """320x240, 1 s, numbered: a job of well under a second."""
    return make_video(
        media_dir / "tiny.mp4", width=320, height=240, seconds=1.0, audio=False, numbered=True
    )


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker of this test's service (as compose gives its workers)."""
    assert settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCORRECT_")}
    env.update(
        REDIS_URL=settings.redis_url,
        VIDCORRECT_DATA_DIR=str(settings.data_dir),
        VIDCORRECT_KEY_PREFIX=settings.key_prefix,
        VIDCORRECT_MAX_JOBS="2",
        VIDCORRECT_LOG_FORMAT="json",
    )
    return env


def _vidcorrect() -> str:
    return str(Path(sys.executable).parent / "vidcorrect")


def _start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_vidcorrect(), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.fixture
def two_workers(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[Path]]]:
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    handles = [path.open("wb") for path in logs]
    processes = [_start_worker(worker_env, handle) for handle in handles]
    yield processes, logs
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    for handle in handles:
        handle.close()


async def _wait_for_workers(client: Client, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        resp = await client.get("/readyz")
        body = await resp.json()
        if resp.status == 200 and body["workers"] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} workers never reported in; last /readyz: {body}")


def _liveness_check(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "jobs.liveness"], env=env, capture_output=True, check=False
    ).returncode


def _stop(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [process.wait(30) for process in processes]


async def test_two_worker_processes_share_eight_jobs_each_run_once(
    client: Client,
    settings: Settings,
    tiny_clip: Path,
    two_workers: tuple[list[subprocess.Popen[bytes]], list[Path]],
    worker_env: dict[str, str],
) -> None:
    processes, logs = two_workers
    await _wait_for_workers(client, 2)
    assert await asyncio.to_thread(_liveness_check, worker_env) == 0
    elsewhere = {**worker_env, "VIDCORRECT_KEY_PREFIX": settings.key_prefix + "-none"}
    assert await asyncio.to_thread(_liveness_check, elsewhere) == 1

    video = await upload(client, tiny_clip)
    task_ids, bodies = [], []
    for i in range(JOBS):  # different ROIs: identical submissions would be one task
        roi = {"x": 10 + i, "y": 0, "width": 240, "height": 240}
        bodies.append({"mask_type": "custom", "roi": roi})
        task_ids.append(await submit_mask(client, video["id"], bodies[-1]))
    finals = [(await follow_task(client, task_id, timeout=120))[-1] for task_id in task_ids]
    _, samples = await scrape(client)
    assert await asyncio.to_thread(_stop, processes) == [0, 0]

    for final in finals:
        assert final["state"] == "SUCCESS", final
        assert final["attempt"] == 1
        assert final["result"]["verification"]["passed"]
    for index, (final, asked) in enumerate(zip(finals, bodies, strict=True)):
        output = await download(client, final, settings.data_dir / f"out-{index}.mp4")
        judge_mask(output, tiny_clip, asked, numbered=True)
    by_worker = Counter(final["worker_id"] for final in finals)
    assert len(by_worker) == 2, f"one worker took every job: {by_worker}"
    print(f"jobs per worker: {dict(by_worker)}")

    for task_id in task_ids:  # each task's event log: started once, ended once
        resp = await client.get(f"/api/task-status/{task_id}/events?last_event_id=0-0")
        body = await resp.text()
        assert body.count('"state": "STARTED"') == 1, body
        assert body.count("event: end") == 1

    lines = [
        json.loads(line)
        for path in logs
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    job_lines = [line for line in lines if line.get("logger") == "vidcorrect.job"]
    started = Counter(line["task_id"] for line in job_lines if line["event"] == "job started")
    succeeded = Counter(line["task_id"] for line in job_lines if line["event"] == "job succeeded")
    assert started == Counter(task_ids) == succeeded, "a job ran twice, or not at all"
    for line in job_lines:
        missing = [name for name in JOB_FIELDS if name not in line]
        assert not missing, f"job log line without {missing}: {line}"
    workers_started = [line for line in lines if line.get("event") == "worker started"]
    assert {line["worker_id"] for line in workers_started} == set(by_worker)

    assert samples['vidcorrect_tasks{operation="mask",state="SUCCESS"}'] == JOBS
    assert samples['vidcorrect_job_duration_seconds_count{operation="mask",state="SUCCESS"}'] == (
        JOBS
    )
    frames = video["frame_count"] * JOBS
    assert samples['vidcorrect_frames_processed_total{operation="mask",stage="encode"}'] == frames
    assert samples["vidcorrect_workers_alive"] == 2
    for worker_id in by_worker:
        assert samples[f'vidcorrect_worker_heartbeat_age_seconds{{worker="{worker_id}"}}'] < 10
