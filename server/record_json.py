"""The JSON the API answers with for a task or a video record: one rendering for polling,
listing, SSE events and the legacy synchronous answer, so they can never differ."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache

from jobs.model import JsonDict, Operation, TaskRecord, VideoRecord
from jobs.review import review_of
from jobs.task_store import TaskEvent


def task_json(task: TaskRecord) -> JsonDict:
    """The body of ``GET /api/task-status/{task_id}/`` (and each task of a listing, the data of
    each SSE event)."""
    return {
        "task_id": task.task_id,
        "state": task.state.value,
        "progress": task.progress,
        "status": task.status,
        "result": result_json(task),
        "error": task.error,
        "eta_seconds": task.eta_seconds,
        "attempt": task.attempt,
        "mode": task.mode,
        "worker_id": task.worker_id,
        "video_id": task.video_id,
        "operation": task.operation.value,
        "params": task.params,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "submitted_by": task.submitted_by,
        "review": review_json(task),
    }


def review_json(task: TaskRecord) -> JsonDict | None:
    """The review of the task's output, ``{"state", "by", "at", "comment"}`` (``pending``
    until a reviewer sets it); ``None`` for an operation that writes no video (an analysis)."""
    if task.operation is Operation.ANALYZE:
        return None
    return review_of(task)


def result_json(task: TaskRecord) -> JsonDict | None:
    """The task's result, with where to download its output right after ``output_file`` (a
    ``output_url`` a result stored by an older version holds is that one)."""
    if task.result is None or "output_file" not in task.result:
        return task.result
    rendered: JsonDict = {}
    for name, value in task.result.items():
        if name == "output_url":
            continue
        rendered[name] = value
        if name == "output_file":
            rendered["output_url"] = output_url(task.task_id)
    return rendered


def output_url(task_id: str) -> str:
    """Where a task's output is downloaded."""
    return f"/api/tasks/{task_id}/output"


def video_json(video: VideoRecord) -> JsonDict:
    """A video's properties as the API answers with them (its stored name stays inside)."""
    data = asdict(video)
    del data["stored_name"]
    return data


@lru_cache(maxsize=256)
def event_data(event: TaskEvent) -> str:
    """The ``data`` of an SSE event: the logged record rendered as :func:`task_json`, once per
    event however many clients follow the task (the hub hands them all the same event; the
    cache holds the few events being delivered now, not the history)."""
    return json.dumps(task_json(event.task))
