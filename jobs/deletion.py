"""Deleting patient data: a video (its original, its record and the outputs made from it) or one
task's output, from the data dir. The one code path of ``DELETE /api/videos/{id}/``,
``DELETE /api/tasks/{id}/output`` and the retention sweeps (:mod:`jobs.retention`).

What stays is the audit trail: every task record, in the state it ended in, its result without
``output_file`` and with ``output_deleted_at`` (when its output was deleted). A deleted video's
record goes (Redis and its sidecar); its tasks keep its id.

A video's running and queued tasks are cancelled first and waited for (:data:`STOP_WAIT`). One
that does not stop in time cannot publish after the deletion: once its output is committed, its
run checks that its video still exists, and takes the output back and ends REVOKED if not
(:func:`jobs.runner.run_task`); and the deletion removes ``outputs/<task_id>.mp4`` of every task
of the video whatever its record says. So one of the two always sees the other's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from jobs.errors import NotFound
from jobs.model import JsonDict, TaskRecord, utc_now
from jobs.outputs import stored_output
from jobs.redis_store import RedisTaskStore
from jobs.runner import revoke_if_waiting
from jobs.storage import Storage
from jobs.task_pages import TaskQuery
from jobs.task_store import TaskStore

#: The kinds of file deleted, as counted (``vidcorrect_deleted_files_total{kind}``).
KINDS = ("original", "output", "orphan")
#: Seconds a video's deletion waits for its running tasks to stop (they stop within about 2 s).
STOP_WAIT = 5.0
#: Tasks read at a time while going through a video's or the service's tasks.
PAGE = 500


async def delete_video(
    records: RedisTaskStore,
    stores: Sequence[TaskStore],
    storage: Storage,
    video_id: int,
    *,
    outputs: bool = True,
) -> Counter[str]:
    """Delete video ``video_id``: its record first (no new task can find it, no running one can
    publish), then, its tasks in ``stores`` cancelled and waited for, its original and, with
    ``outputs``, every output made from it. Returns the files deleted by kind; :class:`NotFound`
    for no such video."""
    folder = storage.video_sidecar(video_id).parent
    try:
        await records.get_video(video_id)
    except NotFound:
        if not await asyncio.to_thread(folder.exists):
            raise
        # A deletion interrupted after the record went (Redis or the disk failed): finish it.
    await records.delete_video(video_id)
    await asyncio.to_thread(storage.video_sidecar(video_id).unlink, missing_ok=True)
    for store in stores:
        await _stop_tasks(store, video_id)
    deleted: Counter[str] = Counter()
    deleted["original"] = await asyncio.to_thread(_remove_folder, folder)
    if outputs:
        for store in stores:
            for task in await video_tasks(store, video_id):
                deleted += await drop_output(store, storage, task)
    return deleted


async def delete_output(store: TaskStore, storage: Storage, task_id: str) -> Counter[str]:
    """Delete the output of task ``task_id``; :class:`NotFound` when the task has none any more,
    :class:`Conflict` when it has none (yet)."""
    task = await store.get_task(task_id)
    stored_output(task)
    return await drop_output(store, storage, task)


async def drop_output(store: TaskStore, storage: Storage, task: TaskRecord) -> Counter[str]:
    """Remove ``task``'s output file (the one its result names, or the one a late commit may
    have put at its name) and mark its record; the count of outputs deleted."""
    names = {storage.output_name(task.task_id)}
    if task.result and "output_file" in task.result:
        names.add(task.result["output_file"])
    removed = 0
    for name in names:
        removed += await asyncio.to_thread(_unlink, storage.resolve(name))
    if task.result and "output_file" in task.result:
        await store.update_task(task, result=_without_output(task.result))
    return Counter(output=removed)


def _without_output(result: JsonDict) -> JsonDict:
    kept = {k: v for k, v in result.items() if k not in ("output_file", "output_url")}
    return {**kept, "output_deleted_at": utc_now()}


async def video_tasks(store: TaskStore, video_id: int) -> list[TaskRecord]:
    """Every task of the video in ``store``, newest first."""
    found: list[TaskRecord] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_tasks(
            TaskQuery(video_id=video_id, limit=PAGE, cursor=cursor)
        )
        found.extend(page)
        if cursor is None:
            return found


async def _stop_tasks(store: TaskStore, video_id: int) -> None:
    """Cancel the video's tasks in ``store`` that have not ended (as ``DELETE
    /api/task-status/{id}/`` does), then wait up to :data:`STOP_WAIT` for the running ones."""
    pending = [t.task_id for t in await video_tasks(store, video_id) if not t.state.finished]
    for task_id in pending:
        await store.request_cancel(task_id)
        await revoke_if_waiting(store, task_id)
    deadline = time.monotonic() + STOP_WAIT
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        pending = [t for t in pending if not (await store.get_task(t)).state.finished]


def _remove_folder(folder: Path) -> int:
    """Remove a video's folder (its original, and whatever a crash left there); the number of
    originals it held."""
    originals = 0
    for path in folder.glob("*"):
        originals += path.name.startswith("original.") and _unlink(path)
    with contextlib.suppress(OSError):  # gone already, or holds a folder: not ours to remove
        folder.rmdir()
    return originals


def _unlink(path: Path) -> bool:
    """Remove ``path``; whether it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
