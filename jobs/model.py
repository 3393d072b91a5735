"""The task model: what a task and a video record hold, the states a task goes through and
their groups (waiting, running, finished), and the retry policy (:func:`next_attempt`,
:func:`failed`), shared by the stores, the runner and recovery."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class TaskState(StrEnum):
    """A task's life: PENDING -> STARTED -> PROGRESS -> SUCCESS | FAILURE | REVOKED.

    RETRY: its worker was lost and it waits to run again. REVOKED: cancelled.
    """

    PENDING = "PENDING"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def waiting(self) -> bool:
        """Queued: no worker runs it now."""
        return self in WAITING


#: Queued: no worker runs it now.
WAITING = frozenset({TaskState.PENDING, TaskState.RETRY})
#: A worker runs it.
RUNNING = frozenset({TaskState.STARTED, TaskState.PROGRESS})
#: It has ended and will not change again.
FINISHED = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED})

#: Attempts a task gets in all when its worker is lost or its run hits a transient error.
MAX_ATTEMPTS = 3


class Operation(StrEnum):
    """What a task does to a video."""

    MASK = "mask"
    REMOVE_FRAMES = "remove_frames"
    ANALYZE = "analyze"
    REPROCESS = "reprocess"


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
    #: The original's SHA-256 (hex), hashed while the upload was received; ``None`` in records
    #: of older versions (a job then hashes the original when it starts).
    sha256: str | None = None


#: What a task id may be (a regular expression, unanchored): the ids the service makes (32 hex
#: digits, with a prefix for local tasks) and nothing that could escape a Redis key or a path.
#: The routes and the OpenAPI document both derive theirs from it.
TASK_ID_PATTERN = "[A-Za-z0-9_-]{1,64}"


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
    #: 1 for the first run; a run whose worker was lost is retried as the next attempt.
    attempt: int = 1
    #: "queued" (Redis and the workers) or "local" (run by the server itself, Redis being away).
    mode: str = "queued"
    #: The worker that started the latest run (``host:pid:tag``); ``None`` until one does.
    worker_id: str | None = None
    created_at: str = field(default_factory=utc_now)
    started_at: str | None = None
    finished_at: str | None = None
    #: The name of the user who submitted it; ``None`` when the API is open (anonymous), and in
    #: records of older versions.
    submitted_by: str | None = None
    #: The review of its output (:mod:`jobs.review`): ``{"state", "by", "at", "comment"}``;
    #: ``None`` until a reviewer sets one (pending).
    review: JsonDict | None = None

    @classmethod
    def from_fields(cls, values: JsonDict) -> TaskRecord:
        """The record of these fields, as a store keeps them (JSON values; fields that are no
        record's, from older versions, are ignored)."""
        task = cls(**{name: value for name, value in values.items() if name in TASK_FIELDS})
        return replace(task, state=TaskState(task.state), operation=Operation(task.operation))


TASK_FIELDS = frozenset(f.name for f in fields(TaskRecord))


def next_attempt(task: TaskRecord, status: str) -> JsonDict | None:
    """The changes that send a task whose run was lost or hit a transient error back to the
    queue as its next attempt (RETRY, ``status`` and which attempt of how many), or ``None`` once
    it has had ``MAX_ATTEMPTS``: then it fails (:func:`failed`)."""
    if task.attempt >= MAX_ATTEMPTS:
        return None
    return {
        "state": TaskState.RETRY,
        "attempt": task.attempt + 1,
        "progress": 0,
        "eta_seconds": None,
        "status": f"{status}; attempt {task.attempt + 1} of {MAX_ATTEMPTS}",
    }


def failed(code: str, message: str, *, status: str | None = None) -> JsonDict:
    """The changes that end a task as FAILURE with this error; its status says
    ``"Failed: {message}"`` unless ``status`` is given."""
    return {
        "state": TaskState.FAILURE,
        "status": f"Failed: {message}" if status is None else status,
        "error": {"code": code, "message": message},
        "eta_seconds": None,
        "finished_at": utc_now(),
    }
