"""Retention of patient data: originals and outputs past their settings' age, and files a crash
left in ``tmp/``, deleted by one sweep (:func:`sweep`) that the server runs at start-up and
every hour (``server.sweeper``).

- An original older than ``VIDCORRECT_ORIGINAL_RETENTION_DAYS`` (its record's ``created_at``)
  goes with its video's record, as ``DELETE /api/videos/{id}/`` deletes it, but its outputs stay
  until their own retention: they hold masked pixels only.
- An output whose task finished more than ``VIDCORRECT_OUTPUT_RETENTION_DAYS`` ago (its record's
  ``finished_at``) goes as ``DELETE /api/tasks/{id}/output`` deletes it.
- A file in ``tmp/`` (a partial upload or output) not written for longer than the longest a job
  may run (``VIDCORRECT_JOB_TIMEOUT`` plus :data:`ORPHAN_MARGIN`) is an orphan; never one whose
  task is running (in the heartbeat set), whatever its age.

The history's own retention (task records, ``VIDCORRECT_TASK_RETENTION_DAYS``) is
:mod:`jobs.history`'s, run by the workers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime

import structlog

from jobs.audit import RETENTION_ACTOR, Action, AuditLog, Outcome
from jobs.deletion import PAGE, delete_video, drop_output
from jobs.errors import NotFound
from jobs.model import TaskState
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.storage import Storage
from jobs.task_pages import TaskQuery

log = structlog.get_logger("vidcorrect.retention")

#: Seconds added to the job time limit before a temp file counts as an orphan: a job past its
#: limit is being stopped, and its last write may have come just before.
ORPHAN_MARGIN = 600
DAY = 86400


async def sweep(
    records: RedisTaskStore,
    storage: Storage,
    settings: Settings,
    now: float | None = None,
    audit: AuditLog | None = None,
) -> Counter[str]:
    """One round: expired originals, expired outputs, orphans. Returns the files deleted by
    kind, and logs their counts (never an id or a name); each video and output deleted is an
    entry of ``audit`` (by :data:`jobs.audit.RETENTION_ACTOR`)."""
    now = time.time() if now is None else now
    deleted: Counter[str] = Counter()
    if settings.original_retention_days > 0:
        deleted += await _expire_originals(
            records, storage, now - settings.original_retention_days * DAY, audit
        )
    if settings.output_retention_days > 0:
        deleted += await _expire_outputs(
            records, storage, now - settings.output_retention_days * DAY, audit
        )
    orphans = await _sweep_orphans(records, storage, now - settings.job_timeout - ORPHAN_MARGIN)
    deleted += Counter(orphan=orphans)
    if deleted:
        log.info("retention sweep deleted files", **deleted)
    return deleted


async def _expire_originals(
    records: RedisTaskStore, storage: Storage, cutoff: float, audit: AuditLog | None
) -> Counter[str]:
    deleted: Counter[str] = Counter()
    for video in await records.list_videos():
        if _epoch(video.created_at) < cutoff:
            try:
                deleted += await delete_video(records, [records], storage, video.id, outputs=False)
            except NotFound:  # deleted meanwhile
                continue
            if audit is not None:
                await audit.append(
                    Action.DELETE_VIDEO, RETENTION_ACTOR, Outcome.OK, ids={"video_id": video.id}
                )
    return deleted


async def _expire_outputs(
    records: RedisTaskStore, storage: Storage, cutoff: float, audit: AuditLog | None
) -> Counter[str]:
    deleted: Counter[str] = Counter()
    cursor: str | None = None
    while True:
        page, cursor = await records.list_tasks(
            TaskQuery(state=TaskState.SUCCESS, limit=PAGE, cursor=cursor)
        )
        for task in page:
            has_output = bool(task.result) and "output_file" in (task.result or {})
            if has_output and task.finished_at and _epoch(task.finished_at) < cutoff:
                deleted += await drop_output(records, storage, task)
                if audit is not None:
                    await audit.append(
                        Action.DELETE_OUTPUT,
                        RETENTION_ACTOR,
                        Outcome.OK,
                        ids={"video_id": task.video_id, "task_id": task.task_id},
                    )
        if cursor is None:
            return deleted


async def _sweep_orphans(records: RedisTaskStore, storage: Storage, cutoff: float) -> int:
    """Remove the files of ``tmp/`` last written before ``cutoff`` whose task is not running."""
    running = await records.stale_running(float("inf"))
    return await asyncio.to_thread(_remove_orphans, storage, cutoff, running)


def _remove_orphans(storage: Storage, cutoff: float, running: list[str]) -> int:
    removed = 0
    for path in storage.tmp_dir.iterdir():
        if any(path.name.startswith(f"{task_id}-") for task_id in running):
            continue
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # removed meanwhile (its job ended)
            continue
    return removed


def _epoch(timestamp: str) -> float:
    """Epoch seconds of a record's ISO 8601 timestamp."""
    return datetime.fromisoformat(timestamp).timestamp()
