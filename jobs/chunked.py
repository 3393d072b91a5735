"""Long videos split across workers: the hand-off of a task to chunk jobs, the chunk jobs, the
fan-in, the stitch job, the aggregate progress, cancel and the recovery of lost chunks.

A mask, re-encoded removal, blacken or reprocess encode whose video is at least two chunks long
(:func:`jobs.video.chunks.plan_chunks`, ``VIDCORRECT_CHUNK_SECONDS``) is not encoded by the run
that started it: :func:`hand_off` stores the spec (chunk plan, edit plan, text fields, result
fields) in Redis (:mod:`jobs.chunk_store`), queues one ``encode_chunk`` job per chunk (at most
``VIDCORRECT_MAX_CHUNKS_PER_TASK`` at once; each finished chunk queues the next) and the run ends
without ending the task (:class:`jobs.handoff.HandedOff`). Each chunk job encodes its part in a
frame process (checked live, like every output) and moves it into the task's parts folder,
``tmp/parts-<task_id>/<fingerprint>/``; the part that completes the set (counted once each in a
Redis set, atomically) claims and queues the ``stitch_chunks`` job, which concatenates the parts
and publishes the output as any job does (:func:`jobs.runner.run_body`).

Parts are keyed by the task and the plan's fingerprint, not by attempt: a task run again finds
its finished parts and reuses them. Each running chunk beats its own heartbeat
(``P:chunks:running``); :func:`recover_chunks` (in every worker's recovery loop) queues a
chunk whose heartbeat is stale again, at most ``MAX_ATTEMPTS`` times, and ends chunked tasks that
were cancelled while no chunk of theirs ran, removing the parts of every chunked task that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from jobs.chunk_store import ChunkStore
from jobs.errors import NotFound, VerificationFailed
from jobs.failures import describe_failure, transient_reason
from jobs.frame_process import InChild
from jobs.job_run import CANCEL_POLL_INTERVAL, HEARTBEAT_INTERVAL, JobDeps, JobRun, OperationBody
from jobs.model import (
    FINISHED,
    MAX_ATTEMPTS,
    RUNNING,
    WAITING,
    JsonDict,
    TaskState,
    failed,
    utc_now,
)
from jobs.progress import FrameProgress, JobStopped, watch_for_stall
from jobs.runner import run_body
from jobs.storage import DIR_MODE, Storage, fsync_dir
from jobs.video import EncodeOptions, TextField
from jobs.video.chunks import ChunkOutcome, ChunkPlan, encode_chunk, plan_chunks
from jobs.video.edit import EditPlan
from jobs.video.planes import Roi

log = structlog.get_logger("vidcorrect.chunks")

#: The arq job names of a chunk and of a stitch (the functions are built in jobs.worker).
CHUNK_JOB = "encode_chunk"
STITCH_JOB = "stitch_chunks"
#: How often a running chunk publishes its progress (seconds).
PUBLISH_INTERVAL = 0.5


# ------------------------------------------------------------------------------ the spec


def plan_to_json(plan: EditPlan) -> JsonDict:
    return {
        "roi": None if plan.roi is None else plan.roi.to_dict(),
        "shape": plan.shape,
        "corner": plan.corner,
        "blacken": [list(r) for r in plan.blacken],
        "remove": [list(r) for r in plan.remove],
        "keep_audio": plan.keep_audio,
        "blacken_regions": [box.to_dict() for box in plan.blacken_regions],
    }


def plan_from_json(data: JsonDict) -> EditPlan:
    roi = data["roi"]
    return EditPlan(
        roi=None if roi is None else Roi(**roi),
        shape=data["shape"],
        corner=int(data.get("corner", 0)),
        blacken=tuple((int(a), int(b)) for a, b in data["blacken"]),
        remove=tuple((int(a), int(b)) for a, b in data["remove"]),
        keep_audio=bool(data["keep_audio"]),
        blacken_regions=tuple(Roi(**box) for box in data.get("blacken_regions", ())),
    )


def fields_to_json(fields: tuple[TextField, ...]) -> list[JsonDict]:
    return [{"name": f.name, "box": f.box.to_dict()} for f in fields]


def fields_from_json(data: list[JsonDict]) -> tuple[TextField, ...]:
    return tuple(TextField(name=f["name"], box=Roi(**f["box"])) for f in data)


@dataclass(frozen=True)
class Spec:
    """What the chunk jobs and the stitch of a handed-off task need (stored as JSON)."""

    attempt: int
    chunk_plan: ChunkPlan
    plan: EditPlan
    text_fields: tuple[TextField, ...]
    encode: EncodeOptions
    #: The task's progress span of the encoding, and its ceiling (the check follows).
    span: tuple[int, int]
    ceiling: int
    #: Result fields known before the encode (reprocess: analysis, mask).
    extra: JsonDict
    #: Removal: the ``mode_reason`` of a re-encoded removal (None: not a removal).
    removal_reason: str | None

    @property
    def fingerprint(self) -> str:
        return self.chunk_plan.fingerprint

    @property
    def total(self) -> int:
        return len(self.chunk_plan.chunks)

    def to_json(self) -> JsonDict:
        return {
            "attempt": self.attempt,
            "fingerprint": self.fingerprint,
            "chunk_plan": self.chunk_plan.to_dict(),
            "plan": plan_to_json(self.plan),
            "text_fields": fields_to_json(self.text_fields),
            "encode": {"preset": self.encode.preset, "crf": self.encode.crf},
            "span": list(self.span),
            "ceiling": self.ceiling,
            "extra": self.extra,
            "removal_reason": self.removal_reason,
        }

    @classmethod
    def from_json(cls, data: JsonDict) -> Spec:
        return cls(
            attempt=int(data["attempt"]),
            chunk_plan=ChunkPlan.from_dict(data["chunk_plan"]),
            plan=plan_from_json(data["plan"]),
            text_fields=fields_from_json(data["text_fields"]),
            encode=EncodeOptions(**data["encode"]),
            span=(int(data["span"][0]), int(data["span"][1])),
            ceiling=int(data["ceiling"]),
            extra=dict(data["extra"]),
            removal_reason=data["removal_reason"],
        )


def _store(deps: JobDeps) -> ChunkStore:
    assert deps.queue is not None, "chunks run on queued workers only"
    return ChunkStore(deps.queue, deps.settings.keys)


# ---------------------------------------------------------------------------- parts on disk


def parts_root(storage: Storage, task_id: str) -> Path:
    """The folder of a task's parts (under tmp/, so renames into it are atomic)."""
    return storage.tmp_dir / f"parts-{task_id}"


def part_path(storage: Storage, task_id: str, fingerprint: str, index: int) -> Path:
    return parts_root(storage, task_id) / fingerprint[:16] / f"{index:06d}.mp4"


def remove_parts(storage: Storage, task_id: str) -> None:
    """Remove every part of a task (all fingerprints)."""
    shutil.rmtree(parts_root(storage, task_id), ignore_errors=True)


def remove_task_files(storage: Storage, task_id: str) -> None:
    """Remove every part of an ended task and the temp files of its chunks."""
    remove_parts(storage, task_id)
    storage.remove_temps(task_id)


def _move_part(temp: Path, final: Path) -> None:
    """Make a finished part durable and move it atomically into its place (private modes)."""
    final.parent.parent.mkdir(mode=DIR_MODE, exist_ok=True)
    final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
    with temp.open("rb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fsync_dir(final.parent)


# ------------------------------------------------------------------------------- hand-off


def may_split(run: JobRun) -> bool:
    """Whether the run's video may be long enough to be split (at least two chunks long, on a
    queued worker): worth planning its chunks."""
    duration = run.video.duration
    return run.deps.queue is not None and not (
        duration and duration < 2 * run.deps.settings.chunk_seconds
    )


async def plan_for(run: JobRun, plan: EditPlan, encode: EncodeOptions) -> ChunkPlan | None:
    """The chunk plan of the run's video (demuxed in a frame process), or None when the run
    cannot hand off (a local job: no queue) or the video is shorter than two chunks."""
    if not may_split(run):
        return None  # one chunk (no need to read the file to know), or a local job
    work = InChild(
        plan_chunks,
        run.source_path,
        run.deps.settings.chunk_seconds,
        plan,
        encode,
        source_id=run.source_sha256 or "",
    )
    return await asyncio.get_running_loop().run_in_executor(run.deps.executor, work)


async def hand_off(run: JobRun, spec: Spec) -> bool:
    """Queue the chunks of ``spec`` not finished yet for the run's task and store what they
    need. Returns True when every part is finished already (the caller stitches them now);
    else the caller raises :class:`jobs.handoff.HandedOff`."""
    if run.cancel_requested:
        raise JobStopped
    deps = run.deps
    store = _store(deps)
    task_id = run.task.task_id
    old = await store.spec(task_id)
    if old is None or old["fingerprint"] != spec.fingerprint:
        await store.drop(task_id)
        await asyncio.to_thread(remove_parts, deps.storage, task_id)
        parts: dict[int, JsonDict] = {}
    else:
        parts = await store.parts(task_id)
        for index in list(parts):
            if not part_path(deps.storage, task_id, spec.fingerprint, index).is_file():
                await store.forget_part(task_id, index)
                del parts[index]
        if parts:  # a new attempt of the task: what is finished is reused
            await store.resume(task_id, time.time())
    chunks = spec.chunk_plan.chunks
    todo = [chunk.index for chunk in chunks if chunk.index not in parts]
    limit = deps.settings.max_chunks_per_task or len(todo)
    queued, pending = todo[:limit], todo[limit:]
    await store.start(task_id, spec.to_json(), queued, pending)
    await store.reset_progress(
        task_id, {c.index: c.end_frame - c.start_frame + 1 for c in chunks if c.index in parts}
    )
    log.info(
        "task handed over to chunk jobs",
        chunks=len(chunks),
        reused=len(parts),
        queued=len(queued),
        fingerprint=spec.fingerprint[:16],
    )
    if not todo:
        return True
    done = sum(c.end_frame - c.start_frame + 1 for c in chunks if c.index in parts)
    await run.update(
        state=TaskState.PROGRESS,
        status=(
            f"Encoding frame {done}/{spec.chunk_plan.total_frames} on 0 workers "
            f"({len(todo)} of {len(chunks)} chunks queued)"
        ),
        eta_seconds=None,
    )
    for index in queued:
        await _enqueue_chunk(deps, task_id, index, spec.attempt, 1)
    return False


async def _enqueue_chunk(
    deps: JobDeps, task_id: str, index: int, attempt: int, chunk_attempt: int, delay: float = 0
) -> None:
    assert deps.queue is not None
    await deps.queue.enqueue_job(
        CHUNK_JOB,
        task_id,
        index,
        attempt,
        chunk_attempt,
        _job_id=chunk_job_id(task_id, index, attempt, chunk_attempt),
        _queue_name=deps.settings.queue_name,
        _defer_by=delay or None,
    )


def chunk_job_id(task_id: str, index: int, attempt: int, chunk_attempt: int) -> str:
    """The arq job id of a chunk's run: fixed for a task attempt and chunk attempt."""
    return f"{task_id}:chunk:{index}:{attempt}.{chunk_attempt}"


async def enqueue_stitch(queue: ArqRedis, queue_name: str, task_id: str, attempt: int) -> bool:
    """Queue the stitch of attempt ``attempt`` (its job id is fixed: queued twice, arq keeps
    one); False if arq had it already."""
    job = await queue.enqueue_job(
        STITCH_JOB, task_id, attempt, _job_id=f"{task_id}:stitch:{attempt}", _queue_name=queue_name
    )
    return job is not None


# ----------------------------------------------------------------------------- chunk jobs


async def run_chunk(
    ctx: dict[str, Any], task_id: str, index: int, attempt: int, chunk_attempt: int
) -> str:
    """The ``encode_chunk`` job: encode chunk ``index`` of the task's spec (task attempt
    ``attempt``, chunk attempt ``chunk_attempt``) unless it is done, superseded or the task has
    ended. Returns what happened, for arq's result."""
    deps: JobDeps = ctx["deps"]
    with structlog.contextvars.bound_contextvars(
        task_id=task_id, attempt=attempt, chunk=index, chunk_attempt=chunk_attempt
    ):
        store = _store(deps)
        raw = await store.spec(task_id)
        if raw is None or int(raw["attempt"]) != attempt:
            log.info("chunk superseded, not run")
            return "superseded"
        try:
            task = await deps.records.get_task(task_id)
        except NotFound:
            return "gone"
        with structlog.contextvars.bound_contextvars(
            video_id=task.video_id, operation=task.operation.value
        ):
            if task.state.finished:
                await _cleanup(deps, task_id)
                return task.state.value
            if await deps.records.cancel_requested(task_id):
                return await _revoke(deps, task_id)
            spec = Spec.from_json(raw)
            if await store.is_done(task_id, index):
                log.info("chunk already done, not run again")
                return "done"
            if await store.attempt(task_id, index) != chunk_attempt:
                log.info("chunk attempt superseded, not run")
                return "superseded"
            try:
                return await _encode(deps, store, task, spec, index, chunk_attempt)
            finally:  # (only once its part is counted: a crash before that is a lost chunk)
                with contextlib.suppress(RedisError):
                    await store.not_running(task_id, index)


async def _encode(
    deps: JobDeps, store: ChunkStore, task: Any, spec: Spec, index: int, chunk_attempt: int
) -> str:
    task_id = task.task_id
    chunk = spec.chunk_plan.chunks[index]
    frames_in = chunk.end_frame - chunk.start_frame + 1
    try:
        video = await deps.records.get_video(task.video_id)
    except NotFound as exc:  # deleted meanwhile (its tasks are cancelled first)
        return await _chunk_failed(deps, store, task_id, spec, index, MAX_ATTEMPTS, exc)
    source = deps.storage.resolve(video.stored_name)
    temp = deps.storage.temp_path(task_id, ".mp4")
    worker_id = deps.worker_id or "local"
    progress = FrameProgress(frames_in)
    started_at = time.time()
    await store.beat(task_id, index)
    await store.report(task_id, index, 0, None, worker_id)
    log.info("chunk started", start_frame=chunk.start_frame, end_frame=chunk.end_frame)
    work = InChild(
        encode_chunk,
        source,
        temp,
        spec.chunk_plan,
        index,
        spec.plan,
        text_fields=spec.text_fields,
        encode=spec.encode,
    )
    stats = deps.stats
    if stats is not None:
        stats.jobs_running += 1
        stats.stage_started(progress)
    future = asyncio.get_running_loop().run_in_executor(deps.executor, work, progress)
    watcher = asyncio.create_task(_watch(deps, store, task_id, index, spec, progress, worker_id))
    stall_after = deps.settings.stall_timeout  # a hung chunk raises Stalled: a new chunk attempt
    watchdog = asyncio.create_task(watch_for_stall(progress, stall_after)) if stall_after else None
    outcome: ChunkOutcome | None = None
    failure: Exception | None = None
    try:
        try:
            async with asyncio.timeout(deps.settings.job_timeout):
                outcome = await asyncio.shield(future)
        except TimeoutError:
            progress.stop = True
            with contextlib.suppress(BaseException):
                await future
            raise
    except asyncio.CancelledError:  # a worker shutdown: arq runs the job again
        progress.stop = True
        with contextlib.suppress(BaseException):
            await future
        temp.unlink(missing_ok=True)
        log.warning("chunk interrupted; arq will run it again")
        raise
    except JobStopped:
        pass
    except Exception as exc:
        failure = exc
    finally:
        for helper in (watcher, watchdog):
            if helper is not None:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        if stats is not None:
            stats.jobs_running -= 1
            stats.stage_ended(progress)
        with contextlib.suppress(RedisError):
            await store.release_publisher(task_id, f"{worker_id}:{index}")
    if failure is not None:
        temp.unlink(missing_ok=True)
        return await _chunk_failed(deps, store, task_id, spec, index, chunk_attempt, failure)
    if outcome is None:  # stopped
        temp.unlink(missing_ok=True)
        if await deps.records.cancel_requested(task_id):
            return await _revoke(deps, task_id)
        log.info("chunk stopped: its task has ended")
        await _cleanup(deps, task_id)
        return "stopped"
    if stats is not None:
        with contextlib.suppress(RedisError):
            await stats.add_frames(task.operation.value, "encode", frames_in)
    if not outcome.verification.passed:
        temp.unlink(missing_ok=True)
        error = VerificationFailed(
            "The output failed its own check and was deleted: "
            + "; ".join(outcome.verification.problems)
        )
        return await _chunk_failed(deps, store, task_id, spec, index, MAX_ATTEMPTS, error)
    current = await deps.records.get_task(task_id)
    if current.state.finished:
        temp.unlink(missing_ok=True)
        await _cleanup(deps, task_id)
        return current.state.value
    latest = await store.spec(task_id)  # a task run again meanwhile stitches as its attempt
    if latest is None or latest["fingerprint"] != spec.fingerprint:
        temp.unlink(missing_ok=True)
        log.info("chunk done for a plan given up meanwhile; part dropped")
        return "superseded"
    attempt = int(latest["attempt"])
    final = part_path(deps.storage, task_id, spec.fingerprint, index)
    await asyncio.to_thread(_move_part, temp, final)
    part = {
        "outcome": outcome.to_dict(),
        "worker_id": worker_id,
        "attempts": chunk_attempt,
        "started_at": started_at,
    }
    count, claimed, added, nxt = await store.finish(
        task_id, index, part, frames_in, spec.total, attempt
    )
    log.info("chunk done", finished=count, of=spec.total, new=added)
    if (await deps.records.get_task(task_id)).state.finished:
        await _cleanup(deps, task_id)
        return "ended meanwhile"
    assert deps.queue is not None
    if nxt is not None:
        await _enqueue_chunk(deps, task_id, nxt, attempt, await store.attempt(task_id, nxt))
    if claimed:
        log.info("every chunk done; stitch queued")
        await enqueue_stitch(deps.queue, deps.settings.queue_name, task_id, attempt)
    return "done"


async def _watch(
    deps: JobDeps,
    store: ChunkStore,
    task_id: str,
    index: int,
    spec: Spec,
    progress: FrameProgress,
    worker_id: str,
) -> None:
    """Until cancelled: beat the chunk's heartbeat, stop it when the task is cancelled or has
    ended, report its frames, and (the one chunk that holds the role) publish the task's
    aggregate progress."""
    beat_every = max(1.0, min(HEARTBEAT_INTERVAL, deps.settings.heartbeat_timeout / 3))
    last_beat = time.monotonic()
    last_report = 0.0
    holder = f"{worker_id}:{index}"
    while True:
        await asyncio.sleep(CANCEL_POLL_INTERVAL)
        try:
            now = time.monotonic()
            if now - last_beat >= beat_every:
                await store.beat(task_id, index)
                last_beat = now
            if not progress.stop and (
                await deps.records.cancel_requested(task_id)
                or (await deps.records.get_task(task_id)).state.finished
            ):
                log.info("chunk told to stop")
                progress.stop = True
            if now - last_report >= PUBLISH_INTERVAL:
                last_report = now
                progress.measure()
                await store.report(task_id, index, progress.done, progress.rate, worker_id)
                if await store.hold_publisher(task_id, holder):
                    await publish_aggregate(deps, store, task_id, spec)
        except RedisError as error:  # the chunk goes on; a lost heartbeat means a retry
            log.warning("chunk supervisor could not reach redis", error=str(error))


async def publish_aggregate(deps: JobDeps, store: ChunkStore, task_id: str, spec: Spec) -> None:
    """Write the task's progress over all chunks to its record (while it runs)."""
    agg = await store.aggregate(task_id)
    total = spec.chunk_plan.total_frames
    fraction = min(1.0, agg.frames / total) if total else 0.0
    percent = min(spec.ceiling, 99, spec.span[0] + int((spec.span[1] - spec.span[0]) * fraction))
    status = f"Encoding frame {agg.frames}/{total} on {agg.workers} worker"
    status += "" if agg.workers == 1 else "s"
    if agg.rate:
        status += f" ({agg.rate:.0f} fps)"
    eta = round(max(0, total - agg.frames) / agg.rate, 1) if agg.rate else None
    await deps.records.transition(
        task_id,
        RUNNING,
        state=TaskState.PROGRESS,
        progress=percent,
        status=status,
        eta_seconds=eta,
    )


async def _chunk_failed(
    deps: JobDeps,
    store: ChunkStore,
    task_id: str,
    spec: Spec,
    index: int,
    chunk_attempt: int,
    exc: Exception,
) -> str:
    """A chunk's run failed: a transient error is tried again (a new chunk attempt, later),
    anything else (or the last attempt) fails the task with the chunk named."""
    reason = transient_reason(exc)
    if reason is not None and chunk_attempt < MAX_ATTEMPTS:
        attempt = await store.next_attempt(task_id, index)
        delay = 2**chunk_attempt
        log.warning("chunk hit a transient error; retrying", error=str(exc), delay=delay)
        await _enqueue_chunk(deps, task_id, index, spec.attempt, attempt, delay)
        return TaskState.RETRY.value
    code, message = describe_failure(exc, deps.settings.job_timeout)
    if code == "internal_error":
        log.error("chunk failed", exc_info=exc)
    else:
        log.warning("chunk failed", code=code)
    await fail_task(deps, task_id, spec, index, code, message)
    return TaskState.FAILURE.value


async def fail_task(
    deps: JobDeps, task_id: str, spec: Spec, index: int, code: str, message: str
) -> None:
    """End a chunked task as FAILURE, naming the chunk, and remove its parts."""
    chunk = spec.chunk_plan.chunks[index]
    named = f"Chunk {index} (frames {chunk.start_frame}-{chunk.end_frame}) failed: {message}"
    await deps.records.transition(task_id, RUNNING, **failed(code, named))
    await _cleanup(deps, task_id)


async def _revoke(deps: JobDeps, task_id: str) -> str:
    """End a cancelled chunked task as REVOKED (once, whoever sees it first) and remove its
    parts."""
    revoked = await deps.records.transition(
        task_id,
        RUNNING | WAITING,
        state=TaskState.REVOKED,
        status="Cancelled",
        eta_seconds=None,
        finished_at=utc_now(),
    )
    if revoked is not None:
        log.info("chunked task cancelled")
    await _cleanup(deps, task_id)
    return TaskState.REVOKED.value


async def _cleanup(deps: JobDeps, task_id: str) -> None:
    """Remove an ended task's parts, the temp files its chunks left (a chunk whose worker was
    killed leaves its part half written) and its chunk state."""
    await asyncio.to_thread(remove_task_files, deps.storage, task_id)
    await _store(deps).drop(task_id)


# ---------------------------------------------------------------------------------- stitch


async def run_stitch(ctx: dict[str, Any], task_id: str, attempt: int, body: OperationBody) -> str:
    """The ``stitch_chunks`` job: run ``body`` (the stitch and the publication) for attempt
    ``attempt`` of the task, once: a second run (queued twice, or by hand) does nothing."""
    deps: JobDeps = ctx["deps"]
    records = deps.records
    store = _store(deps)
    with structlog.contextvars.bound_contextvars(task_id=task_id, attempt=attempt):
        task = await records.get_task(task_id)
        with structlog.contextvars.bound_contextvars(
            video_id=task.video_id, operation=task.operation.value
        ):
            if task.state.finished or task.attempt != attempt:
                log.warning("stitch superseded, not run", state=task.state.value)
                return task.state.value
            raw = await store.spec(task_id)
            if raw is None or await store.finished_count(task_id) < Spec.from_json(raw).total:
                log.warning("stitch queued before every part was done, not run")
                return "not ready"
            if not await store.claim_stitching(task_id, attempt):
                log.warning("stitch already run, not run again")
                return "duplicate"
            if task.state in WAITING:  # handed back by a worker shutdown during the stitch
                back = await records.transition(
                    task_id, WAITING, state=TaskState.STARTED, worker_id=deps.worker_id
                )
                if back is None:
                    return (await records.get_task(task_id)).state.value
                task = back
            await records.heartbeat(task_id)
            if deps.stats is not None:
                deps.stats.jobs_running += 1
            began = time.monotonic()
            try:
                ended = await run_body(deps, task, body)
            except asyncio.CancelledError:
                with contextlib.suppress(RedisError):
                    await store.release_stitching(task_id, attempt)
                raise
            finally:
                if deps.stats is not None:
                    deps.stats.jobs_running -= 1
                with contextlib.suppress(RedisError):
                    await records.not_running(task_id)
            if deps.stats is not None:
                with contextlib.suppress(RedisError):
                    await deps.stats.record_run(
                        task.operation.value, ended, time.monotonic() - began
                    )
            if ended in {state.value for state in FINISHED}:
                await _cleanup(deps, task_id)
            return ended


@dataclass(frozen=True)
class StitchInputs:
    """What the stitch of a run's task needs: its spec, and its parts in order."""

    spec: Spec
    parts: list[Path]
    outcomes: list[ChunkOutcome]
    records: dict[int, JsonDict]
    resumed_at: float  # epoch seconds (see ChunkStore.resumed_at)


async def stitch_inputs(run: JobRun) -> StitchInputs:
    """The run's task's spec and finished parts; an error naming the first part missing."""
    store = _store(run.deps)
    task_id = run.task.task_id
    raw = await store.spec(task_id)
    if raw is None:
        raise RuntimeError("the chunk spec of the task is gone")
    spec = Spec.from_json(raw)
    records = await store.parts(task_id)
    paths, outcomes = [], []
    for chunk in spec.chunk_plan.chunks:
        path = part_path(run.deps.storage, task_id, spec.fingerprint, chunk.index)
        if chunk.index not in records or not path.is_file():
            raise RuntimeError(f"part {chunk.index} of the task is missing")
        paths.append(path)
        outcomes.append(ChunkOutcome.from_dict(records[chunk.index]["outcome"]))
    return StitchInputs(spec, paths, outcomes, records, await store.resumed_at(task_id))


def parts_result(inputs: StitchInputs) -> JsonDict:
    """``result.parts`` (one per chunk) and ``result.workers`` (distinct worker ids)."""
    parts = []
    for chunk in inputs.spec.chunk_plan.chunks:
        record = inputs.records[chunk.index]
        parts.append(
            {
                "index": chunk.index,
                "start_frame": chunk.start_frame,
                "end_frame": chunk.end_frame,
                "worker_id": record["worker_id"],
                "attempts": int(record["attempts"]),
                # Started before the crash or restart the task resumed from, not run again.
                "reused": float(record.get("started_at", 0)) < inputs.resumed_at,
            }
        )
    workers = sorted({str(p["worker_id"]) for p in parts})
    return {"parts": parts, "workers": workers}


def seconds_since_start(run: JobRun) -> float:
    """A chunked task's processing time: from its start (the run that planned its chunks) to
    now, over every worker that took part."""
    started = run.task.started_at
    if started is None:
        return 0.0
    begun = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    return round(max(0.0, time.time() - begun), 3)


async def discard_parts(run: JobRun) -> None:
    """Remove the run's task's parts (and what lost chunks left in tmp) once its output is
    published."""
    await asyncio.to_thread(remove_task_files, run.deps.storage, run.task.task_id)


# -------------------------------------------------------------------------------- recovery


#: Chunks seen unaccounted for (task id, index, chunk attempt) -> when first seen (monotonic).
Suspects = dict[tuple[str, int, int], float]


async def recover_chunks(deps: JobDeps, suspects: Suspects | None = None) -> int:
    """One round: queue again (or fail) the chunks whose heartbeat is stale; end chunked tasks
    cancelled while no chunk of theirs ran; remove the parts and state of ended ones; queue the
    stitch, or a chunk, that a lost worker was about to queue (``suspects``: what earlier
    rounds of this worker found unaccounted for)."""
    store = _store(deps)
    records = deps.records
    recovered = 0
    timeout = deps.settings.heartbeat_timeout
    for task_id, index, last_beat in await store.stale(time.time() - timeout):
        if not await store.forget_running(task_id, index):
            continue  # another worker handles it
        raw = await store.spec(task_id)
        try:
            task = await records.get_task(task_id)
        except NotFound:
            continue
        if raw is None or task.state.finished or await store.is_done(task_id, index):
            continue
        spec = Spec.from_json(raw)
        with structlog.contextvars.bound_contextvars(
            task_id=task_id,
            attempt=task.attempt,
            video_id=task.video_id,
            operation=task.operation.value,
            chunk=index,
        ):
            attempt = await store.next_attempt(task_id, index, since=last_beat)
            if attempt > MAX_ATTEMPTS:
                log.warning("chunk lost its worker too often; failing the task")
                await fail_task(
                    deps,
                    task_id,
                    spec,
                    index,
                    "worker_lost",
                    f"its worker was lost (no heartbeat for {timeout} s) on each of its "
                    f"{MAX_ATTEMPTS} attempts.",
                )
                continue
            log.warning("chunk lost its worker; queued again", chunk_attempt=attempt)
            await _enqueue_chunk(deps, task_id, index, spec.attempt, attempt)
            recovered += 1
    for task_id in await store.chunked_tasks():
        try:
            task = await records.get_task(task_id)
        except NotFound:
            await _cleanup(deps, task_id)
            continue
        with structlog.contextvars.bound_contextvars(
            task_id=task_id,
            attempt=task.attempt,
            video_id=task.video_id,
            operation=task.operation.value,
        ):
            if not task.state.finished and await records.cancel_requested(task_id):
                await _revoke(deps, task_id)
            elif task.state.finished:
                await _cleanup(deps, task_id)
            elif task.state in RUNNING and not await store.task_running(task_id):
                await _stitch_if_stranded(deps, store, task_id, task.attempt)
                if suspects is not None:
                    recovered += await _requeue_stranded(
                        deps, store, task_id, task.attempt, suspects
                    )
    return recovered


async def _requeue_stranded(
    deps: JobDeps, store: ChunkStore, task_id: str, attempt: int, suspects: Suspects
) -> int:
    """Queue again the chunks of a running task that nothing runs, queues or holds back (a
    worker lost between finishing a part and queueing the next, a chunk job that failed on a
    Redis error), once they have been seen so for a heartbeat timeout."""
    raw = await store.spec(task_id)
    if raw is None or int(raw["attempt"]) != attempt:
        return 0
    spec = Spec.from_json(raw)
    loose = await store.unaccounted(task_id, [c.index for c in spec.chunk_plan.chunks])
    if not loose:
        return 0
    queued = await store.jobs_exist(
        [chunk_job_id(task_id, index, attempt, tries) for index, tries in loose]
    )
    now = time.monotonic()
    requeued = 0
    for (index, tries), exists in zip(loose, queued, strict=True):
        key = (task_id, index, tries)
        if exists:
            suspects.pop(key, None)
            continue
        first = suspects.setdefault(key, now)
        if now - first < deps.settings.heartbeat_timeout:
            continue
        del suspects[key]
        with structlog.contextvars.bound_contextvars(chunk=index):
            again = await store.next_attempt(task_id, index)
            if again > MAX_ATTEMPTS:
                await fail_task(
                    deps, task_id, spec, index, "worker_lost", "it was lost on each attempt."
                )
                return requeued
            log.warning("chunk queued by nobody; queued again", chunk_attempt=again)
            await _enqueue_chunk(deps, task_id, index, attempt, again)
            requeued += 1
    return requeued


async def _stitch_if_stranded(deps: JobDeps, store: ChunkStore, task_id: str, attempt: int) -> None:
    """Queue the stitch of a task whose parts are all finished while nothing runs it (the
    worker that completed the set was lost before it queued the stitch). The stitch's fixed job
    id and its claim keep it to one run."""
    raw = await store.spec(task_id)
    if raw is None or int(raw["attempt"]) != attempt or deps.queue is None:
        return
    if await store.finished_count(task_id) < Spec.from_json(raw).total:
        return
    if await store.task_running(task_id):
        return  # a run of the task (its stitch) is in progress
    if await enqueue_stitch(deps.queue, deps.settings.queue_name, task_id, attempt):
        log.warning("stranded chunked task: stitch queued")
