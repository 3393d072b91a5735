"""Long videos split across workers (jobs/chunked.py): real worker processes on one Redis and
one data dir, short clips cut into chunks of a second or less (``VIDCORRECT_CHUNK_SECONDS``).

Outputs are judged by the oracle (ffmpeg decodes them; burned-in frame numbers and tones), and
the video stream is compared byte for byte between runs with one and two workers. Chunks are
held still with SIGSTOP (tests/pausing.py) while a worker is killed, a task cancelled or a
duplicate job queued.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import jsonschema_rs
import pytest
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job

from jobs.chunked import CHUNK_JOB, STITCH_JOB, chunk_job_id, enqueue_stitch, parts_root
from jobs.errors import ConfigError
from jobs.settings import Settings
from jobs.storage import Storage
from server.openapi import OPENAPI_PATH
from testkit.media import make_numbered_video
from tests.api import Client, download, submit_mask, upload
from tests.metrics import scrape
from tests.oracle import judge_mask, judge_removal
from tests.pausing import FrameProcess, _children, _forkservers, _opens_under, frame_processes
from tests.processes import SpawnWorker

#: 320x240, 25 fps, 7 s with a keyframe every second: seven chunks of a second.
FRAMES = 175
#: Each worker runs one job at a time, chunks are a second long, and lost heartbeats are
#: noticed after 3 s (worker_env).
CHUNKED = {"VIDCORRECT_CHUNK_SECONDS": "1", "VIDCORRECT_MAX_JOBS": "1"}
#: An octagonal mask: its corner goes through the chunk jobs' plan too.
BODY: dict[str, Any] = {
    "mask_type": "custom",
    "roi": {"x": 40, "y": 20, "width": 200, "height": 180},
    "shape": "octagon",
    "corner": 40,
    "audio": "keep",
}
ENDED = {"SUCCESS", "FAILURE", "REVOKED"}
TIMEOUT = 180.0


@pytest.fixture(scope="session")
def long_clip(media_dir: Path) -> Path:
    return make_numbered_video(
        media_dir / "chunked-7s.mp4",
        width=320,
        height=240,
        frames=FRAMES,
        x264_params="keyint=25:min-keyint=25:scenecut=0",
    )


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    return make_numbered_video(media_dir / "chunked-short.mp4", width=320, height=240, frames=10)


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(settings.redis_settings())
    try:
        yield pool
    finally:
        await pool.aclose()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def _status(client: Client, task_id: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/api/task-status/{task_id}/")).json())


async def _follow(client: Client, task_id: str) -> list[dict[str, Any]]:
    """Every status until the task ends (REVOKED included)."""
    seen = [await _status(client, task_id)]
    deadline = time.monotonic() + TIMEOUT
    while seen[-1]["state"] not in ENDED:
        assert time.monotonic() < deadline, f"task never ended: {seen[-1]}"
        await asyncio.sleep(0.05)
        seen.append(await _status(client, task_id))
    return seen


async def _workers_ready(client: Client, count: int) -> None:
    async def ready() -> bool:
        resp = await client.get("/readyz")
        return resp.status == 200 and (await resp.json())["workers"] == count

    await _until(ready, f"{count} workers ready", 60)


def _video_stream(path: Path) -> bytes:
    """The output's video stream as an Annex B elementary stream, copied by ffmpeg."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy", "-f", "h264", "-"],
        check=True,
        capture_output=True,
    ).stdout


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _worker_of(frame_pid: int) -> int:
    """The worker process whose forkserver forked a frame process."""
    return _ppid(_ppid(frame_pid))


async def _running_chunks(queue: ArqRedis, settings: Settings, task_id: str) -> dict[int, str]:
    """The task's running chunks and the worker id running each."""
    keys = settings.keys
    members = await queue.zrange(keys.chunks_running, 0, -1)
    found = {}
    for member in members:
        owner, _, index = member.decode().rpartition(":")
        if owner != task_id:
            continue
        worker = await cast(
            Awaitable[bytes | None],
            queue.hget(keys.chunks_progress(task_id), f"worker:{index}"),
        )
        if worker is not None:
            found[int(index)] = worker.decode()
    return found


async def _finished_parts(queue: ArqRedis, settings: Settings, task_id: str) -> set[int]:
    members = await cast(Awaitable[set[bytes]], queue.smembers(settings.keys.chunks_done(task_id)))
    return {int(m) for m in members}


async def _freeze_a_chunk(
    queue: ArqRedis,
    settings: Settings,
    task_id: str,
    *,
    after: int = 0,
    only: int | None = None,
    other_than: str | None = None,
) -> tuple[FrameProcess, int, str]:
    """Stop the frame process of one running chunk of the task (once ``after`` parts are
    finished; chunk ``only`` when given; on a worker other than ``other_than`` when given);
    returns it, the chunk's index and its worker's id."""
    # A chunk's frame process writes to a temp file of the task's (Storage.temp_path).
    temp_prefix = _storage(settings).tmp_dir.resolve() / f"{task_id}-"
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "no chunk of the task ran"
        if len(await _finished_parts(queue, settings, task_id)) >= after:
            running = await _running_chunks(queue, settings, task_id)
            pids = await asyncio.to_thread(frame_processes, settings.data_dir)
            for index, worker_id in running.items():
                if (only is not None and index != only) or worker_id == other_than:
                    continue
                worker_pid = int(worker_id.split(":")[1])
                for pid in pids:
                    try:
                        if _worker_of(pid) != worker_pid:
                            continue
                    except OSError:
                        continue
                    frames = FrameProcess(pid)
                    try:
                        frames.stop()
                    except AssertionError:  # it ended meanwhile
                        continue
                    # Still writing that chunk (a worker runs one job at a time; a frame process
                    # that has answered and is exiting no longer holds its output open), and
                    # the chunk still that worker's?
                    if (
                        _opens_under(pid, str(temp_prefix))
                        and (await _running_chunks(queue, settings, task_id)).get(index)
                        == worker_id
                    ):
                        return frames, index, worker_id
                    frames.resume()
        await asyncio.sleep(0.005)


async def _catch_stitch(settings: Settings, task_id: str) -> FrameProcess:
    """Stop the frame process of the task's stitch (the one reading its parts) at its start."""
    folder = str(parts_root(_storage(settings), task_id).resolve())

    def stitching() -> list[int]:
        return [
            pid
            for server in _forkservers()
            for pid in _children(server)
            if _opens_under(pid, folder)
        ]

    deadline = time.monotonic() + TIMEOUT
    while not (found := await asyncio.to_thread(stitching)):
        assert time.monotonic() < deadline, "the stitch never ran"
        await asyncio.sleep(0.002)
    stitch = FrameProcess(found[0])
    stitch.stop()
    return stitch


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _check_parts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts cover the frames in order, without gap or overlap; returns them."""
    parts = result["parts"]
    assert len(parts) >= 2, result
    assert [p["index"] for p in parts] == list(range(len(parts)))
    assert parts[0]["start_frame"] == 0
    assert parts[-1]["end_frame"] == FRAMES - 1
    for before, after in itertools.pairwise(parts):
        assert after["start_frame"] == before["end_frame"] + 1, parts
    assert sorted(result["workers"]) == sorted({p["worker_id"] for p in parts})
    return list(parts)


def _log_lines(tmp_path: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(tmp_path.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def _no_leftovers(settings: Settings, task_id: str) -> bool:
    tmp = settings.data_dir / "tmp"
    return not parts_root(_storage(settings), task_id).exists() and not any(
        tmp.glob(f"{task_id}-*")
    )


def _storage(settings: Settings) -> Storage:
    return Storage(settings.data_dir)


def test_chunk_settings_are_read_and_checked() -> None:
    defaults = Settings.from_env({})
    assert (defaults.chunk_seconds, defaults.max_chunks_per_task) == (60.0, 0)
    env = {"VIDCORRECT_CHUNK_SECONDS": "0.5", "VIDCORRECT_MAX_CHUNKS_PER_TASK": "3"}
    settings = Settings.from_env(env)
    assert (settings.chunk_seconds, settings.max_chunks_per_task) == (0.5, 3)
    for bad in ("0", "-1", "nan", "inf", "a minute"):
        with pytest.raises(ConfigError, match="VIDCORRECT_CHUNK_SECONDS must be"):
            Settings.from_env({"VIDCORRECT_CHUNK_SECONDS": bad})
    with pytest.raises(ConfigError, match="VIDCORRECT_MAX_CHUNKS_PER_TASK must be at least 0"):
        Settings.from_env({"VIDCORRECT_MAX_CHUNKS_PER_TASK": "-1"})


async def test_one_or_two_workers_write_the_same_video_stream(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path
) -> None:
    first = spawn_worker(**CHUNKED)
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    alone = (await _follow(client, await submit_mask(client, video["id"], BODY)))[-1]
    assert alone["state"] == "SUCCESS", alone
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    spawn_worker(**CHUNKED)
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 2)
    again = await upload(client, long_clip)  # another video: the same request would be one task
    seen = await _follow(client, await submit_mask(client, again["id"], BODY))
    shared = seen[-1]
    assert shared["state"] == "SUCCESS", shared

    one, two = _check_parts(alone["result"]), _check_parts(shared["result"])
    assert len(alone["result"]["workers"]) == 1
    assert len(shared["result"]["workers"]) == 2, shared["result"]["parts"]
    assert [(p["start_frame"], p["end_frame"]) for p in one] == [
        (p["start_frame"], p["end_frame"]) for p in two
    ]
    assert all(p["attempts"] == 1 and not p["reused"] for p in one + two)
    outputs = []
    for name, final in (("alone", alone), ("shared", shared)):
        output = await download(client, final, settings.data_dir / f"{name}.mp4")
        judge_mask(output, long_clip, BODY, numbered=True)  # every frame, in order, with sound
        assert final["result"]["frames"] == FRAMES
        assert final["result"]["verification"]["passed"]
        outputs.append(output)
    streams = [await asyncio.to_thread(_video_stream, output) for output in outputs]
    assert streams[0] == streams[1], "the video streams differ between one and two workers"

    document = await (await client.get(OPENAPI_PATH)).json()
    task_schema = {
        **document["components"]["schemas"]["Task"],
        "components": document["components"],
    }
    validator = jsonschema_rs.validator_for(task_schema)
    for final in (alone, shared):
        validator.validate(final)  # result.parts and result.workers as documented
    for final in (alone, shared):  # the whole task's time, not the stitch's alone
        span = _epoch(final["finished_at"]) - _epoch(final["started_at"])
        assert span - 1 <= final["result"]["processing_time"] <= span + 0.1, final
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress), "progress went backwards"
    assert not any(parts_root(_storage(settings), t).exists() for t in (alone["task_id"],))


async def test_progress_counts_every_worker_and_never_goes_back(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    spawn_worker(**CHUNKED)
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    # One chunk held on each worker: both run one now, whatever their speed.
    frozen, _, first_worker = await _freeze_a_chunk(queue, settings, task_id)
    statuses: list[dict[str, Any]] = []
    try:
        other, _, _ = await _freeze_a_chunk(queue, settings, task_id, other_than=first_worker)
    except BaseException:
        frozen.resume()
        raise

    async def two_workers_shown() -> bool:
        statuses.append(await _status(client, task_id))
        assert statuses[-1]["state"] not in ENDED, statuses[-1]  # two chunks are held
        return "on 2 workers" in statuses[-1]["status"]

    try:
        await _until(two_workers_shown, "a status naming 2 workers")
        frozen.resume()
        other.resume()
        statuses += await _follow(client, task_id)
    finally:
        frozen.resume()
        other.resume()
    assert statuses[-1]["state"] == "SUCCESS", statuses[-1]
    frames = [
        int(s["status"].split("frame ")[1].split("/")[0])
        for s in statuses
        if s["state"] == "PROGRESS" and s["status"].startswith("Encoding frame")
    ]
    assert frames, statuses
    assert frames == sorted(frames), "frames done went backwards"
    percent = [s["progress"] for s in statuses]
    assert percent == sorted(percent)


async def test_a_killed_worker_costs_only_its_chunk(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    workers = [spawn_worker(**CHUNKED), spawn_worker(**CHUNKED)]
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, killed_id = await _freeze_a_chunk(queue, settings, task_id, after=1)
    victim = next(w for w in workers if w.pid == int(killed_id.split(":")[1]))
    victim.kill()
    victim.wait()
    frozen.resume()  # it finds its worker gone and ends
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    lost = parts[index]
    assert lost["attempts"] == 2, parts
    assert lost["worker_id"] != killed_id
    assert [p["index"] for p in parts if p["attempts"] != 1] == [index], "another chunk re-ran"
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)
    assert not parts_root(_storage(settings), task_id).exists()


async def test_the_only_worker_restarted_resumes_from_its_parts(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    first = spawn_worker(**CHUNKED)
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, first_id = await _freeze_a_chunk(queue, settings, task_id, after=2)
    first.kill()
    first.wait()
    # Read once the worker is dead: its other job slot may finish a chunk until then.
    finished = await _finished_parts(queue, settings, task_id)
    frozen.resume()
    assert (await _status(client, task_id))["state"] == "PROGRESS"
    _, samples = await scrape(client)  # its chunks wait, but they are no tasks waiting
    assert samples["vidcorrect_queue_depth"] == 0
    spawn_worker(**CHUNKED)
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    assert len(final["result"]["workers"]) == 2
    for part in parts:
        if part["index"] in finished:  # done before the crash: kept, not run again
            assert part["reused"], part
            assert part["attempts"] == 1
            assert part["worker_id"] == first_id
        else:
            assert not part["reused"], part
            assert part["worker_id"] != first_id
    assert parts[index]["attempts"] == 2
    assert final["attempt"] == 1, "the task was run again from frame 0"
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)


async def test_cancel_stops_every_chunk_and_removes_the_parts(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    spawn_worker(**CHUNKED)
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, _, _ = await _freeze_a_chunk(queue, settings, task_id, after=1)
    try:
        assert parts_root(_storage(settings), task_id).exists()
        resp = await client.post(f"/api/task-status/{task_id}/cancel/")
        assert resp.status == 202
        statuses = await _follow(client, task_id)
        assert statuses[-1]["state"] == "REVOKED", statuses[-1]
        await _until(lambda: asyncio.sleep(0, not frozen.alive()), "the held chunk stopped", 30)
        await _until(
            lambda: asyncio.sleep(0, _no_leftovers(settings, task_id)), "parts removed", 30
        )
    finally:
        frozen.resume()
    assert not await queue.exists(settings.keys.chunks(task_id))
    lines = _log_lines(settings.data_dir.parent)
    revoked = [
        line
        for line in lines
        if line.get("task_id") == task_id and line["event"] == "chunked task cancelled"
    ]
    assert len(revoked) == 1, revoked


async def test_cancel_while_no_chunk_runs_is_carried_out_by_the_next_worker(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    first = spawn_worker(**CHUNKED)
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, _, _ = await _freeze_a_chunk(queue, settings, task_id, after=1)
    first.kill()
    first.wait()
    frozen.resume()
    assert parts_root(_storage(settings), task_id).exists()
    assert (await client.post(f"/api/task-status/{task_id}/cancel/")).status == 202
    spawn_worker(**CHUNKED)
    statuses = await _follow(client, task_id)
    assert statuses[-1]["state"] == "REVOKED", statuses[-1]
    await _until(lambda: asyncio.sleep(0, _no_leftovers(settings, task_id)), "parts removed", 30)


async def test_a_chunk_run_twice_counts_once_and_the_stitch_runs_once(
    client: Client,
    settings: Settings,
    spawn_worker: SpawnWorker,
    long_clip: Path,
    queue: ArqRedis,
    tmp_path: Path,
) -> None:
    # One worker with room for duplicates; one chunk of the task queued at a time.
    spawn_worker(
        VIDCORRECT_CHUNK_SECONDS="1", VIDCORRECT_MAX_JOBS="3", VIDCORRECT_MAX_CHUNKS_PER_TASK="1"
    )
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    original, index, _ = await _freeze_a_chunk(queue, settings, task_id)
    assert index == 0
    await queue.enqueue_job(
        CHUNK_JOB, task_id, 0, 1, 1, _job_id="again-0", _queue_name=settings.queue_name
    )

    async def second_chunk_process() -> bool:
        found = await asyncio.to_thread(frame_processes, settings.data_dir)
        return len([pid for pid in found if pid != original.pid]) == 1

    await _until(second_chunk_process, "the duplicate chunk job encoding")
    pids = await asyncio.to_thread(frame_processes, settings.data_dir)
    duplicate = FrameProcess(next(pid for pid in pids if pid != original.pid))
    duplicate.stop()
    original.resume()  # both finish at about the same time
    duplicate.resume()
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    assert parts[0]["attempts"] == 1
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)

    done = [
        line
        for line in _log_lines(tmp_path)
        if line.get("task_id") == task_id and line["event"] == "chunk done" and line["chunk"] == 0
    ]
    assert sorted(line["new"] for line in done) == [False, True], done  # ran twice, counted once
    result = await Job("again-0", queue, _queue_name=settings.queue_name).result(timeout=30)
    assert result == "done"

    # The stitch: queued again under its id, arq keeps the one; under another id, it does
    # nothing.
    assert not await enqueue_stitch(queue, settings.queue_name, task_id, 1)
    await queue.enqueue_job(
        STITCH_JOB, task_id, 1, _job_id="stitch-again", _queue_name=settings.queue_name
    )
    again = await Job("stitch-again", queue, _queue_name=settings.queue_name).result(timeout=30)
    assert again == "SUCCESS"
    succeeded = [
        line
        for line in _log_lines(tmp_path)
        if line.get("task_id") == task_id and line["event"] == "job succeeded"
    ]
    assert len(succeeded) == 1, succeeded
    assert (await _status(client, task_id))["result"] == final["result"]


async def test_the_stitch_runs_once_when_queued_twice(
    client: Client,
    settings: Settings,
    spawn_worker: SpawnWorker,
    long_clip: Path,
    queue: ArqRedis,
    tmp_path: Path,
) -> None:
    spawn_worker(VIDCORRECT_CHUNK_SECONDS="1", VIDCORRECT_MAX_JOBS="3")
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    stitch = await _catch_stitch(settings, task_id)
    try:
        await queue.enqueue_job(
            STITCH_JOB, task_id, 1, _job_id="stitch-twice", _queue_name=settings.queue_name
        )
        twice = await Job("stitch-twice", queue, _queue_name=settings.queue_name).result(timeout=60)
        assert twice == "duplicate"
        assert not await enqueue_stitch(queue, settings.queue_name, task_id, 1)
    finally:
        stitch.resume()
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    succeeded = [
        line
        for line in _log_lines(tmp_path)
        if line.get("task_id") == task_id and line["event"] == "job succeeded"
    ]
    assert len(succeeded) == 1


async def test_the_per_task_limit_lets_a_short_job_in(
    client: Client,
    settings: Settings,
    spawn_worker: SpawnWorker,
    long_clip: Path,
    short_clip: Path,
    queue: ArqRedis,
) -> None:
    spawn_worker(**CHUNKED, VIDCORRECT_MAX_CHUNKS_PER_TASK="1")
    await _workers_ready(client, 1)
    long_video = await upload(client, long_clip)
    long_id = await submit_mask(client, long_video["id"], BODY)
    frozen, _, _ = await _freeze_a_chunk(queue, settings, long_id)
    short_video = await upload(client, short_clip)
    try:  # the short job queued while the only worker runs a chunk of the long one
        short_id = await submit_mask(client, short_video["id"], BODY)
    finally:
        frozen.resume()
    short = (await _follow(client, short_id))[-1]
    long_then = await _status(client, long_id)
    finished_then = len(await _finished_parts(queue, settings, long_id))
    assert short["state"] == "SUCCESS", short
    assert "parts" not in short["result"], "a one-chunk video was split"
    assert long_then["state"] == "PROGRESS", long_then
    total = len((await _follow(client, long_id))[-1]["result"]["parts"])
    # It waited for the chunk running when it came, and at most one more: not for the rest.
    assert finished_then <= 2 < total, (finished_then, total)


async def test_blacken_reencoded_removal_and_reprocess_are_chunked_too(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path
) -> None:
    spawn_worker(**CHUNKED)
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    blacken = {**BODY, "blacken_frames": "20-30,99-101"}  # across two seams
    removal = {"frame_ranges": "20-34,100-101", "mode": "reencode", "audio": "keep"}
    reprocess = {**BODY, "remove_labels": ["blank"]}
    submitted = []
    for route, body in (
        ("video-apply-mask", blacken),
        ("video-remove-frames", removal),
        ("video-reprocess", reprocess),
    ):
        resp = await client.post(f"/api/{route}/{video['id']}/", json=body)
        assert resp.status == 202, await resp.text()
        submitted.append((await resp.json())["task_id"])
    finals = [(await _follow(client, task_id))[-1] for task_id in submitted]
    for final in finals:
        assert final["state"] == "SUCCESS", final
        assert len(final["result"]["parts"]) >= 2, final["result"]

    blackened, removed, reprocessed = finals
    assert blackened["result"]["blackened_ranges"] == "20-30,99-101"
    output = await download(client, blackened, settings.data_dir / "blackened.mp4")
    judge_mask(output, long_clip, blacken, numbered=True)

    assert removed["result"]["mode"] == "reencode"
    assert removed["result"]["frames"] == FRAMES - 17
    output = await download(client, removed, settings.data_dir / "removed.mp4")
    judge_removal(output, long_clip, removal, numbered=True)

    result = reprocessed["result"]
    assert result["mask"]["source"] == "request"
    assert result["analysis"]["total_frames"] == FRAMES
    assert result["frames"] == FRAMES - result.get("removed_frames", 0)
    if not result.get("removed_frames"):  # a numbered clip has no blank frame
        output = await download(client, reprocessed, settings.data_dir / "reprocessed.mp4")
        judge_mask(output, long_clip, BODY, numbered=True)


async def test_a_chunk_job_lost_from_the_queue_is_queued_again(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, _ = await _freeze_a_chunk(queue, settings, task_id)
    try:  # a queued chunk vanishes, as if its worker died right before queueing it
        lost = index + 2  # still queued: the worker runs one chunk at a time, in order
        job_id = chunk_job_id(task_id, lost, 1, 1)
        assert await queue.delete(f"arq:job:{job_id}") == 1
        await queue.zrem(settings.queue_name, job_id)
    finally:
        frozen.resume()
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    assert parts[lost]["attempts"] == 2, parts
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)


async def test_a_failing_chunk_fails_the_task_with_its_name(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    spawn_worker(**CHUNKED)
    spawn_worker(**CHUNKED)
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, _ = await _freeze_a_chunk(queue, settings, task_id, after=1)
    frozen.send(signal.SIGKILL)  # its frame process crashes (as on a hostile stretch of video)
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "worker_crash"
    assert final["error"]["message"].startswith(f"Chunk {index} (frames "), final["error"]
    await _until(lambda: asyncio.sleep(0, _no_leftovers(settings, task_id)), "parts removed", 30)
    assert not (settings.data_dir / "outputs" / f"{task_id}.mp4").exists()


async def test_a_stitch_whose_worker_dies_is_run_again_from_the_parts(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path
) -> None:
    workers = [spawn_worker(**CHUNKED), spawn_worker(**CHUNKED)]
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    stitch = await _catch_stitch(settings, task_id)
    victim = next(w for w in workers if w.pid == _worker_of(stitch.pid))
    victim.kill()
    victim.wait()
    stitch.resume()
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 2  # the task ran again: its new run found every part finished
    parts = _check_parts(final["result"])
    assert all(p["reused"] and p["attempts"] == 1 for p in parts), parts
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)
    assert not parts_root(_storage(settings), task_id).exists()


async def test_a_chunk_that_loses_its_worker_every_time_fails_the_task_with_its_name(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    worker = spawn_worker(**CHUNKED)
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    index: int | None = None
    for _ in range(3):  # the chunk's three attempts, each on a worker that dies
        frozen, index, _ = await _freeze_a_chunk(queue, settings, task_id, only=index)
        worker.kill()
        worker.wait()
        frozen.resume()
        worker = spawn_worker(**CHUNKED)
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "worker_lost"
    assert final["error"]["message"].startswith(f"Chunk {index} (frames "), final["error"]
    assert "on each of its 3 attempts" in final["error"]["message"]
    await _until(lambda: asyncio.sleep(0, _no_leftovers(settings, task_id)), "parts removed", 30)


async def test_a_worker_stopped_with_sigterm_hands_its_chunk_back(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    workers = [spawn_worker(**CHUNKED), spawn_worker(**CHUNKED)]
    await _workers_ready(client, 2)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, stopped_id = await _freeze_a_chunk(queue, settings, task_id, after=1)
    stopping = next(w for w in workers if w.pid == int(stopped_id.split(":")[1]))
    stopping.send_signal(signal.SIGTERM)
    try:
        assert await asyncio.to_thread(stopping.wait, 60) == 0
    finally:
        frozen.resume()
    final = (await _follow(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    assert parts[index]["worker_id"] != stopped_id  # run again by the other worker
    assert all(p["attempts"] == 1 for p in parts), parts  # handed back: no attempt lost
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)


async def test_a_hung_chunk_is_killed_and_run_again(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, long_clip: Path, queue: ArqRedis
) -> None:
    """A chunk's frame process stopped (SIGSTOP) and left so, its worker alive and beating:
    the stall watchdog kills it after VIDCORRECT_STALL_TIMEOUT and the chunk runs again as its
    next attempt; the other chunks are not run again."""
    worker = spawn_worker(**CHUNKED, VIDCORRECT_STALL_TIMEOUT="3")
    await _workers_ready(client, 1)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], BODY)
    frozen, index, _ = await _freeze_a_chunk(queue, settings, task_id, after=1)
    try:
        final = (await _follow(client, task_id))[-1]
        assert not frozen.alive(), "the hung frame process should have been killed"
    finally:
        frozen.resume()
    assert worker.poll() is None
    assert final["state"] == "SUCCESS", final
    parts = _check_parts(final["result"])
    assert parts[index]["attempts"] >= 2, parts
    assert all(p["attempts"] == 1 for p in parts if p["index"] != index), parts
    assert any(
        line.get("event") == "frame loop stalled; stopping it"
        for line in _log_lines(settings.data_dir.parent)
    )
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, long_clip, BODY, numbered=True)
