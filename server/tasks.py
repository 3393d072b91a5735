"""Task endpoints: submit a mask, follow a task, download its output."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_sse import sse_response

from jobs.errors import Conflict, InvalidRequest
from jobs.mask_request import parse_mask_request
from jobs.records import EVENT_END, Operation, TaskState
from jobs.submit import submit_task
from server.events import EVENT_ID
from server.keys import EVENTS, RECORDS, REDIS, SETTINGS, STORAGE

routes = web.RouteTableDef()

TASK_ID = r"{task_id:[A-Za-z0-9_-]{1,64}}"


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (``{}`` when empty); :class:`InvalidRequest` if it is not JSON."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"The request body is not valid JSON: {error.msg} at line "
            f"{error.lineno} column {error.colno}.",
            code="invalid_json",
        ) from None


@routes.post(r"/api/video-apply-mask/{video_id:\d+}/")
async def submit_mask(request: web.Request) -> web.Response:
    """Validate a mask request and queue it; 202 with the task id at once."""
    app = request.app
    video = await app[RECORDS].get_video(int(request.match_info["video_id"]))
    mask = parse_mask_request(await read_json(request), video.width, video.height)
    task = await submit_task(
        app[REDIS],
        app[RECORDS],
        app[SETTINGS].queue_name,
        Operation.MASK,
        video.id,
        mask.to_params(),
    )
    status_url = f"/api/task-status/{task.task_id}/"
    return web.json_response(
        {
            "task_id": task.task_id,
            "status": "pending",
            "message": f"Mask of video {video.id} queued; follow it at {status_url}",
            "status_url": status_url,
        },
        status=202,
        headers={"Location": status_url},
    )


@routes.get(f"/api/task-status/{TASK_ID}/")
async def task_status(request: web.Request) -> web.Response:
    """A task's state, progress and, when it has ended, result or error."""
    task = await request.app[RECORDS].get_task(request.match_info["task_id"])
    return web.json_response(task.to_api())


@routes.get(f"/api/tasks/{TASK_ID}/output")
async def task_output(request: web.Request) -> web.FileResponse:
    """The output file of a task that has succeeded."""
    task = await request.app[RECORDS].get_task(request.match_info["task_id"])
    if task.state is not TaskState.SUCCESS or task.result is None:
        raise Conflict(
            f"Task {task.task_id} is {task.state.value}; its output can be downloaded once it "
            "has succeeded.",
            code="output_not_ready",
        )
    path = request.app[STORAGE].resolve(task.result["output_file"])
    filename = f"video-{task.video_id}-{task.operation.value}-{task.task_id[:8]}{path.suffix}"
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


#: Reconnection delay suggested to EventSource clients (ms).
RETRY_MS = 2000
#: Seconds between comment heartbeats on an idle stream.
HEARTBEAT_SECONDS = 15.0


@routes.get(f"/api/task-status/{TASK_ID}/events")
async def task_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of a task: ``progress`` events, then ``end``, then the stream closes.

    Resumes after ``Last-Event-ID`` (header, or ``?last_event_id=``); without it, starts with the
    task's current state.
    """
    app = request.app
    records = app[RECORDS]
    task = await records.get_task(request.match_info["task_id"])
    last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or None
    if last_id is not None and not EVENT_ID.match(last_id):
        raise InvalidRequest(
            "Last-Event-ID must be an event id this stream sent, such as 1732800000000-0.",
            code="invalid_event_id",
        )
    if task.state.finished and not await records.redis.exists(records.events_key(task.task_id)):
        # Ended long ago: its event log has expired, the record still tells the end.
        async with sse_response(request, sep="\n") as sse:
            await sse.send(json.dumps(task.to_api()), event=EVENT_END, retry=RETRY_MS)
        return sse
    async with (
        app[EVENTS].follow(task.task_id, last_id) as events,
        sse_response(request, sep="\n", ping_interval=HEARTBEAT_SECONDS) as sse,
    ):
        retry: int | None = RETRY_MS
        async for event in events:
            await sse.send(event.data, id=event.id, event=event.event, retry=retry)
            retry = None
            if event.is_end:
                break
    return sse


@routes.get("/api/tasks/")
async def list_tasks(request: web.Request) -> web.Response:
    """Task records newest first: ``?video_id=&state=&operation=&limit=&cursor=``."""
    query = request.query
    video_id = _int_query(query.get("video_id"), "video_id", 1, None)
    limit = _int_query(query.get("limit"), "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    state = _enum_query(query.get("state"), TaskState, "state", str.upper)
    operation = _enum_query(query.get("operation"), Operation, "operation", str.lower)
    try:
        tasks, next_cursor = await request.app[RECORDS].list_tasks(
            video_id=video_id,
            state=state,
            operation=operation,
            limit=limit,
            cursor=query.get("cursor") or None,
        )
    except ValueError:
        raise InvalidRequest(
            "cursor is not one this server gave out; start without it.", code="invalid_cursor"
        ) from None
    return web.json_response(
        {"tasks": [task.to_api() for task in tasks], "next_cursor": next_cursor}
    )


DEFAULT_PAGE = 50
MAX_PAGE = 500
E = TypeVar("E", bound=StrEnum)


def _int_query(raw: str | None, name: str, low: int, high: int | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(f"{name} must be a whole number {bounds}, got {raw!r}.")
    return value


def _enum_query(
    raw: str | None, kind: type[E], name: str, normalize: Callable[[str], str]
) -> E | None:
    if not raw:
        return None
    try:
        return kind(normalize(raw))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidRequest(f"{name} must be one of {choices}, got {raw!r}.") from None
