"""Where tasks are kept: the one interface of both task stores, and the events they log.

Two stores implement :class:`TaskStore` in full: :class:`jobs.redis_store.RedisTaskStore`
(Redis: queued tasks and their history, shared by every process) and
:class:`jobs.memory_store.MemoryTaskStore` (this process's memory: the tasks the server runs
itself while Redis is away). Jobs run on either (:func:`jobs.runner.run_task`), and the server
answers for either, through this interface.

Every write of a task logs an event, ``progress`` or, once the task has ended, ``end``, which
carries the record as it is then. Event ids only grow. What a client sees of a record is the
server's to render, from the record.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any, Protocol

from jobs.model import TASK_FIELDS, JsonDict, Operation, TaskRecord, TaskState, VideoRecord
from jobs.task_pages import TaskPage, TaskQuery

EVENT_PROGRESS = "progress"
EVENT_END = "end"


@dataclass(frozen=True)
class TaskEvent:
    """One entry of a task's event log."""

    #: A Redis Stream id (``<ms>-<seq>``; ``<n>-0`` in memory): what SSE resumes after.
    id: str
    #: :data:`EVENT_PROGRESS` or :data:`EVENT_END`.
    event: str
    #: The task's record then: its fields as JSON.
    data: str

    @property
    def is_end(self) -> bool:
        return self.event == EVENT_END

    @cached_property
    def task(self) -> TaskRecord:
        """The record this event logged (decoded once, however many clients follow it)."""
        return TaskRecord.from_fields(json.loads(self.data))


def changed(task: TaskRecord, changes: JsonDict) -> TaskRecord:
    """``task`` with ``changes`` applied; ValueError for a change of no task field."""
    unknown = set(changes) - TASK_FIELDS
    if unknown:
        raise ValueError(f"not task fields: {sorted(unknown)}")
    return replace(task, **changes)


def event_entry(task: TaskRecord) -> tuple[str, str]:
    """The ``(event, data)`` of the entry that logs ``task`` as it is now."""
    return (EVENT_END if task.state.finished else EVENT_PROGRESS), json.dumps(asdict(task))


class TaskStore(Protocol):
    """What running, following and answering for a task needs from where it is kept."""

    async def create_task(self, task: TaskRecord, *, created: float | None = None) -> None:
        """Keep a new task and log its first event; ``created`` (epoch seconds, default now)
        orders the listing."""

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task, or :class:`jobs.errors.NotFound` (``task_not_found``)."""

    async def get_video(self, video_id: int) -> VideoRecord:
        """The video, or :class:`jobs.errors.NotFound` (``video_not_found``)."""

    async def update_task(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        """Apply ``changes`` to ``task`` (the writer holds the current record), keep them and
        log the new state; returns the updated record."""

    async def transition(
        self, task_id: str, allowed: frozenset[TaskState], **changes: Any
    ) -> TaskRecord | None:
        """Apply ``changes`` only if the task's state is one of ``allowed``, atomically, and log
        the event; ``None`` if the state was not allowed. So two parties (a worker starting a
        task, a client cancelling it) can never both win."""

    async def request_cancel(self, task_id: str) -> None:
        """Raise the task's cancel flag, which its running job polls."""

    async def cancel_requested(self, task_id: str) -> bool:
        """Whether a client asked to cancel the task."""

    async def heartbeat(self, task_id: str) -> None:
        """The task's worker is alive and working on it (what recovery watches)."""

    async def not_running(self, task_id: str) -> None:
        """The task's run ended (or was handed back): no more heartbeats are due."""

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """The page of tasks ``query`` asks for, newest first, and the cursor of the next page
        (``None`` at the end). Pages neither skip nor repeat tasks while new ones are
        added. InvalidCursor for a cursor this store did not give out."""

    def follow(
        self, task_id: str, last_event_id: str | None
    ) -> AbstractAsyncContextManager[AsyncIterator[TaskEvent]]:
        """The task's events: every one after ``last_event_id``, or from its newest one, then
        the live ones, up to the ``end`` one. A finished task's events always end with ``end``,
        whatever the id. The iterator also ends at :meth:`close_streams`."""

    async def event_log_expired(self, task: TaskRecord) -> bool:
        """Whether ``task`` has ended so long ago that its event log is gone (its record still
        tells the end)."""

    async def task_counts(self) -> dict[tuple[str, str], int]:
        """How many tasks are in each ``(operation, state)``."""

    def close_streams(self) -> None:
        """End every follower's events (server shutdown); later ones end after their backlog."""


async def latest_analysis(records: TaskStore, video_id: int) -> TaskRecord | None:
    """The video's newest successful analysis, or None when it has none."""
    tasks, _ = await records.list_tasks(
        TaskQuery(video_id=video_id, state=TaskState.SUCCESS, operation=Operation.ANALYZE, limit=1)
    )
    return tasks[0] if tasks else None
