"""The JSON the API answers with for a task or a video record: one rendering for polling,
listing, SSE events and the legacy synchronous answer, so they can never differ. A task's shape
is :mod:`jobs.task_json`'s (the webhooks post it too), served from here."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache

from jobs.model import JsonDict, VideoRecord
from jobs.task_json import output_url, result_json, task_json
from jobs.task_store import TaskEvent

__all__ = ["event_data", "output_url", "result_json", "task_json", "video_json"]


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
