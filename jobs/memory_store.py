"""Tasks held in this process's memory: the task store of the degraded, Redis-less mode.

When Redis cannot be reached at submission, the server runs the job itself through the same
code (:func:`jobs.runner.run_task`) with this store in place of the Redis one. It is a whole
:class:`TaskStore`, with the same record shapes and the same event log semantics (ids that only
grow, an ``end`` event last), so the status and event endpoints serve local tasks as they serve
queued ones. What it holds is lost with the process: heartbeats have nothing to tell (a local
task lives and dies with it) and event logs never expire. Video records are read from the
sidecar file each upload writes next to the original.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.errors import NotFound
from jobs.model import TaskRecord, TaskState, VideoRecord
from jobs.storage import Storage
from jobs.task_pages import Position, TaskPage, TaskQuery, format_cursor
from jobs.task_store import TaskEvent, TaskStore, changed, event_entry


@dataclass
class _LocalTask:
    record: TaskRecord
    #: Where it is listed: (creation time in ms, task id), as in Redis.
    position: Position
    events: list[TaskEvent] = field(default_factory=list)
    cancel: bool = False


class MemoryTaskStore:
    """The tasks this process runs itself, and their event logs."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._tasks: dict[str, _LocalTask] = {}
        self._changed = asyncio.Condition()
        self._closing = False

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    async def create_task(self, task: TaskRecord, *, created: float | None = None) -> None:
        score = (time.time() if created is None else created) * 1000
        self._tasks[task.task_id] = _LocalTask(task, (score, task.task_id))
        await self._log(task)

    async def get_task(self, task_id: str) -> TaskRecord:
        local = self._tasks.get(task_id)
        if local is None:
            raise NotFound(f"There is no task with id {task_id!r}.", code="task_not_found")
        return local.record

    async def get_video(self, video_id: int) -> VideoRecord:
        """From the sidecar file its upload wrote."""
        return await asyncio.to_thread(self._storage.load_video, video_id)

    async def update_task(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        updated = changed(task, changes)
        self._tasks[task.task_id].record = updated
        await self._log(updated)
        return updated

    async def transition(
        self, task_id: str, allowed: frozenset[TaskState], **changes: Any
    ) -> TaskRecord | None:
        """Atomic: no await between the check and the change."""
        current = await self.get_task(task_id)
        if current.state not in allowed:
            return None
        return await self.update_task(current, **changes)

    async def request_cancel(self, task_id: str) -> None:
        self._tasks[task_id].cancel = True

    async def cancel_requested(self, task_id: str) -> bool:
        return self._tasks[task_id].cancel

    async def heartbeat(self, task_id: str) -> None:
        """Nothing to do: a local task lives and dies with this process."""

    async def not_running(self, task_id: str) -> None:
        """Nothing to do (see :meth:`heartbeat`)."""

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        after = query.after()
        found: list[TaskRecord] = []
        for local in sorted(self._tasks.values(), key=lambda t: t.position, reverse=True):
            task = local.record
            if (after is None or local.position < after) and query.matches(task):
                found.append(task)
                if len(found) == query.limit:
                    return found, format_cursor(local.position)
        return found, None

    async def task_counts(self) -> dict[tuple[str, str], int]:
        return dict(
            Counter((t.record.operation.value, t.record.state.value) for t in self._tasks.values())
        )

    async def event_log_expired(self, task: TaskRecord) -> bool:
        """Never: a local task's event log is kept as long as the task."""
        return False

    async def _log(self, task: TaskRecord) -> None:
        local = self._tasks[task.task_id]
        local.events.append(TaskEvent(f"{len(local.events) + 1}-0", *event_entry(task)))
        async with self._changed:
            self._changed.notify_all()

    def close_streams(self) -> None:
        self._closing = True
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @asynccontextmanager
    async def follow(
        self, task_id: str, last_event_id: str | None
    ) -> AsyncIterator[AsyncIterator[TaskEvent]]:
        local = self._tasks[task_id]
        if last_event_id is None:
            start = max(0, len(local.events) - 1)
        else:
            start = int(last_event_id.partition("-")[0])
        yield self._events(local, start)

    async def _events(self, local: _LocalTask, start: int) -> AsyncIterator[TaskEvent]:
        position = start
        while True:
            while position < len(local.events):
                event = local.events[position]
                position += 1
                yield event
                if event.is_end:
                    return
            if local.events and local.events[-1].is_end:
                # Resumed at or past the end: the end again, so the stream always ends.
                yield local.events[-1]
                return
            if self._closing:
                return
            async with self._changed:
                await self._changed.wait()


if TYPE_CHECKING:
    _: type[TaskStore] = MemoryTaskStore
