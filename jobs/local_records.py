"""Task records held in this process's memory: the store of the degraded, Redis-less mode.

When Redis cannot be reached at submission, the server runs the job itself through the same
code (:func:`jobs.runner.run_task`) with this store in place of :class:`jobs.records.Records`.
It keeps the same record shapes and the same event log semantics (ids that only grow, an ``end``
event last), so the status and event endpoints serve local tasks as they serve queued ones. What
it holds is lost with the process; video records are read from the sidecar file each upload
writes next to the original.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from jobs.errors import NotFound
from jobs.model import TaskRecord, TaskState, VideoRecord
from jobs.records import EVENT_END, EVENT_PROGRESS
from jobs.storage import Storage


@dataclass(frozen=True)
class LocalEvent:
    """One entry of a local task's event log."""

    id: str
    event: str
    data: str

    @property
    def is_end(self) -> bool:
        return self.event == EVENT_END


@dataclass
class _LocalTask:
    record: TaskRecord
    events: list[LocalEvent] = field(default_factory=list)
    cancel: bool = False


class MemoryRecords:
    """The subset of :class:`jobs.records.Records` that running a job needs, in memory."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._tasks: dict[str, _LocalTask] = {}
        self._changed = asyncio.Condition()
        self._closing = False

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    async def create_task(self, task: TaskRecord) -> None:
        """Hold a new task and log its first event."""
        self._tasks[task.task_id] = _LocalTask(task)
        await self._log(task)

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task, or :class:`NotFound`."""
        local = self._tasks.get(task_id)
        if local is None:
            raise NotFound(f"There is no task with id {task_id!r}.", code="task_not_found")
        return local.record

    async def get_video(self, video_id: int) -> VideoRecord:
        """The video, from the sidecar file its upload wrote."""
        return self._storage.load_video(video_id)

    async def update_task(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        """Apply ``changes`` and log the new state."""
        updated = replace(task, **changes)
        self._tasks[task.task_id].record = updated
        await self._log(updated)
        return updated

    async def transition(
        self, task_id: str, allowed: frozenset[TaskState], **changes: Any
    ) -> TaskRecord | None:
        """Apply ``changes`` if the state is one of ``allowed`` (atomic: one event loop)."""
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

    async def _log(self, task: TaskRecord) -> None:
        local = self._tasks[task.task_id]
        event = EVENT_END if task.state.finished else EVENT_PROGRESS
        local.events.append(
            LocalEvent(f"{len(local.events) + 1}-0", event, json.dumps(task.to_api()))
        )
        async with self._changed:
            self._changed.notify_all()

    def close_streams(self) -> None:
        """End every follower's stream (server shutdown)."""
        self._closing = True
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @asynccontextmanager
    async def follow(
        self, task_id: str, last_event_id: str | None
    ) -> AsyncIterator[AsyncIterator[LocalEvent]]:
        """A local task's events: after ``last_event_id``, or from its newest one."""
        local = self._tasks[task_id]
        if last_event_id is None:
            start = max(0, len(local.events) - 1)
        else:
            start = int(last_event_id.partition("-")[0])
        yield self._events(local, start)

    async def _events(self, local: _LocalTask, start: int) -> AsyncIterator[LocalEvent]:
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
