"""Video and task records in Redis: the service's memory and the task history.

Keys (``P`` is :attr:`Settings.key_prefix`):

    P:video:next_id        counter for video ids
    P:video:<id>           JSON of a :class:`VideoRecord`
    P:videos               sorted set of video ids
    P:task:<task_id>       hash of a :class:`TaskRecord`, one JSON value per field
    P:tasks                sorted set of task ids by creation time (ms)
    P:video:<id>:tasks     the same, per video

Records have no TTL: they outlive arq's own job results and are the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis

from jobs.errors import NotFound

JsonDict = dict[str, Any]


class TaskState(StrEnum):
    """A task's life: PENDING -> STARTED -> PROGRESS -> SUCCESS | FAILURE."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.FAILURE)


class Operation(StrEnum):
    """What a task does to a video."""

    MASK = "mask"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp, as every record stores it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class VideoRecord:
    """An uploaded original and what probing it found."""

    id: int
    filename: str  # display only: never logged, never used as a path
    stored_name: str  # relative to the data dir
    size_bytes: int
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    created_at: str

    def to_api(self) -> JsonDict:
        """The JSON shape the API answers with."""
        data = asdict(self)
        del data["stored_name"]
        return data


@dataclass(frozen=True)
class TaskRecord:
    """One requested operation on one video, from submission to its end."""

    task_id: str
    operation: Operation
    video_id: int
    params: JsonDict
    state: TaskState = TaskState.PENDING
    progress: int = 0
    status: str = "Waiting for a worker"
    result: JsonDict | None = None
    error: JsonDict | None = None
    eta_seconds: float | None = None
    created_at: str = field(default_factory=utc_now)
    started_at: str | None = None
    finished_at: str | None = None

    def to_api(self) -> JsonDict:
        """The JSON shape of ``GET /api/task-status/{task_id}/``."""
        return {
            "task_id": self.task_id,
            "state": self.state.value,
            "progress": self.progress,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "eta_seconds": self.eta_seconds,
            "video_id": self.video_id,
            "operation": self.operation.value,
            "params": self.params,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


_TASK_FIELDS = frozenset(f.name for f in fields(TaskRecord))


class Records:
    """Reads and writes the records; one instance per process, sharing its Redis pool."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _video_key(self, video_id: int) -> str:
        return f"{self.prefix}:video:{video_id}"

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    async def next_video_id(self) -> int:
        """Reserve a new video id."""
        return int(await self.redis.incr(f"{self.prefix}:video:next_id"))

    async def save_video(self, video: VideoRecord) -> None:
        """Store a video record (create or replace)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._video_key(video.id), json.dumps(asdict(video)))
            pipe.zadd(f"{self.prefix}:videos", {str(video.id): video.id})
            await pipe.execute()

    async def get_video(self, video_id: int) -> VideoRecord:
        """The video with this id, or :class:`NotFound`."""
        raw = await self.redis.get(self._video_key(video_id))
        if raw is None:
            raise NotFound(f"There is no video with id {video_id}.", code="video_not_found")
        return VideoRecord(**json.loads(raw))

    async def list_videos(self) -> list[VideoRecord]:
        """All videos, newest first."""
        ids = await self.redis.zrevrange(f"{self.prefix}:videos", 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([self._video_key(int(i)) for i in ids])
        return [VideoRecord(**json.loads(raw)) for raw in raws if raw is not None]

    async def create_task(self, task: TaskRecord) -> None:
        """Store a new task record and index it."""
        score = time.time() * 1000
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._task_key(task.task_id), mapping=_encode(asdict(task)))
            pipe.zadd(f"{self.prefix}:tasks", {task.task_id: score})
            pipe.zadd(f"{self.prefix}:video:{task.video_id}:tasks", {task.task_id: score})
            await pipe.execute()

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task with this id, or :class:`NotFound`."""
        # redis-py types hash commands as sync-or-async; this client is async.
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self._task_key(task_id)))
        if not raw:
            raise NotFound(f"There is no task with id {task_id!r}.", code="task_not_found")
        data = {k.decode(): json.loads(v) for k, v in raw.items()}
        data = {k: v for k, v in data.items() if k in _TASK_FIELDS}
        task = TaskRecord(**data)
        return replace(task, state=TaskState(task.state), operation=Operation(task.operation))

    async def update_task(self, task_id: str, **changes: Any) -> None:
        """Change some fields of an existing task record."""
        unknown = set(changes) - _TASK_FIELDS
        if unknown:
            raise ValueError(f"not task fields: {sorted(unknown)}")
        await cast(
            Awaitable[int], self.redis.hset(self._task_key(task_id), mapping=_encode(changes))
        )


def _encode(values: JsonDict) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in values.items()}
