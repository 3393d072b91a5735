"""Task endpoints: submit the four operations, follow a task, list them, get the output."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from jobs import deletion
from jobs.audio_policy import AUDIO_FIELD, parse_audio
from jobs.errors import Conflict, InvalidRequest
from jobs.frame_request import (
    check_not_everything,
    parse_blacken_found,
    parse_frame_ranges,
    parse_removal_mode,
    parse_removal_request,
    parse_remove_labels,
    parse_sample_every,
)
from jobs.mask_request import MASK_KEYS, parse_mask_fields, parse_mask_request
from jobs.model import TASK_ID_PATTERN, Operation, TaskRecord, TaskState, VideoRecord
from jobs.outputs import stored_output
from jobs.review import is_approved, parse_review, review_of, set_review
from jobs.roi_choice import refuse_if_uncertain
from jobs.runner import revoke_if_waiting
from jobs.task_pages import TaskQuery
from jobs.task_store import EVENT_END, TaskEvent, latest_analysis
from jobs.users import skips_approval
from jobs.webhooks import CALLBACK_FIELD, check_callback_url
from server.audit_trail import note_ids
from server.auth import current_user, has_access
from server.errors import client_gone, error_response
from server.events import is_event_id
from server.http_errors import Forbidden
from server.json_body import read_json
from server.keys import DEVICES, METRICS, RECORDS, SETTINGS, SSE_SLOTS, STORAGE, TASKS
from server.record_json import event_data, result_json, task_json
from server.videos import VIDEO_ID

routes = web.RouteTableDef()

TASK_ID = f"{{task_id:{TASK_ID_PATTERN}}}"


OPERATION_NAMES = {
    Operation.MASK: "Mask",
    Operation.REMOVE_FRAMES: "Frame removal",
    Operation.ANALYZE: "Analysis",
    Operation.REPROCESS: "Reprocess",
}


async def _video_and_body(
    request: web.Request,
) -> tuple[VideoRecord, dict[str, Any], str | None]:
    """The video, the JSON body of a submission and its ``callback_url`` (every submission's
    field, checked and taken out of the body: the rest is the operation's)."""
    video = await request.app[TASKS].get_video(int(request.match_info["video_id"]))
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    callback_url = check_callback_url(body.pop(CALLBACK_FIELD, None), request.app[SETTINGS])
    return video, body, callback_url


async def _queue(
    request: web.Request,
    operation: Operation,
    video: VideoRecord,
    params: dict[str, Any],
    callback_url: str | None,
) -> web.Response:
    """Submit a task: 202 with its id and where to follow it, or 200 with the task an identical
    or repeated (``Idempotency-Key``) submission already made. With ``USE_ASYNC_TASKS=false``
    the answer waits for the job's end instead (the legacy synchronous API)."""
    app = request.app
    user = current_user(request)
    submission = await app[TASKS].submit(
        operation,
        video.id,
        params,
        _idempotency_key(request),
        callback_url,
        user.name if user else None,
    )
    task = submission.task
    note_ids(request, task_id=task.task_id)
    if not app[SETTINGS].use_async_tasks:
        return await _wait_for_end(request, task)
    status_url = f"/api/task-status/{task.task_id}/"
    if submission.duplicate:
        message = (
            f"An identical {OPERATION_NAMES[operation].lower()} of video {video.id} is "
            f"already {task.state.value}; follow it at {status_url}"
        )
    else:
        message = (
            f"{OPERATION_NAMES[operation]} of video {video.id} queued; follow it at {status_url}"
        )
    return web.json_response(
        {
            "task_id": task.task_id,
            "status": task.state.value.lower(),
            "duplicate": submission.duplicate,
            "message": message,
            "status_url": status_url,
            "events_url": f"{status_url}events",
            "mode": task.mode,
        },
        status=200 if submission.duplicate else 202,
        headers={"Location": status_url},
    )


#: What an ``Idempotency-Key`` may be: 1 to 255 visible ASCII characters (a UUID, a ULID,
#: ``upload-42-mask``). aiohttp decodes other header bytes to lone surrogates, which no
#: key may carry.
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")


def _idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` (``None`` when absent or empty), or 400
    ``invalid_idempotency_key`` when it is not one :data:`IDEMPOTENCY_KEY` allows."""
    raw = request.headers.get("Idempotency-Key")
    if not raw:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(raw):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces), such as a "
            "UUID.",
            code="invalid_idempotency_key",
        )
    return raw


async def _wait_for_end(request: web.Request, task: TaskRecord) -> web.Response:
    """Legacy synchronous answer: the result once the job has ended."""
    async with request.app[TASKS].store(task.task_id).follow(task.task_id, "0-0") as events:
        async for event in events:
            if event.is_end:
                final = event.task
                break
        else:  # the server is shutting down
            raise Conflict(
                "The server stopped before the job ended; ask again.", code="interrupted"
            )
    if final.state is TaskState.SUCCESS:
        return web.json_response({"task_id": None, "result": result_json(final)})
    if final.state is TaskState.REVOKED:
        raise Conflict("The job was cancelled.", code="cancelled")
    error = final.error or {"code": "failed", "message": "The job failed."}
    return error_response(422, error["code"], error["message"])


@routes.post(f"/api/video-apply-mask/{VIDEO_ID}/")
async def submit_mask(request: web.Request) -> web.Response:
    """Black out everything outside an ROI (and optionally whole frames); 202 at once."""
    video, body, callback_url = await _video_and_body(request)
    mask = parse_mask_request(
        body, video.width, video.height, video.frame_count, devices=request.app[DEVICES]
    )
    params = {**mask.to_params(), AUDIO_FIELD: parse_audio(body, request.app[SETTINGS].audio)}
    return await _queue(request, Operation.MASK, video, params, callback_url)


@routes.post(f"/api/video-remove-frames/{VIDEO_ID}/")
async def submit_removal(request: web.Request) -> web.Response:
    """Cut frames out, frame-accurately; 202 at once."""
    video, body, callback_url = await _video_and_body(request)
    removal = parse_removal_request(body, video.frame_count)
    params: dict[str, Any]
    if removal is None:
        analysis = await _latest_analysis(request, video)
        flagged = (analysis.result or {}).get("sensitive_frame_ids") or ""
        if not flagged:
            raise Conflict(
                f"The latest analysis of video {video.id} (task {analysis.task_id}) flagged no "
                "frames; there is nothing to remove.",
                code="nothing_flagged",
            )
        ranges = parse_frame_ranges(flagged, video.frame_count, "sensitive_frame_ids")
        check_not_everything(ranges, video.frame_count)
        params = {"detection_method": "automatic", "analysis_task_id": analysis.task_id}
    else:
        ranges = removal.ranges
        params = {"detection_method": "manual"}
    params["frame_ranges"] = [list(r) for r in ranges]
    params["mode"] = parse_removal_mode(body)
    params[AUDIO_FIELD] = parse_audio(body, request.app[SETTINGS].audio)
    return await _queue(request, Operation.REMOVE_FRAMES, video, params, callback_url)


async def _latest_analysis(request: web.Request, video: VideoRecord) -> TaskRecord:
    analysis = await latest_analysis(request.app[RECORDS], video.id)
    if analysis is None:
        raise Conflict(
            f"Video {video.id} has no successful analysis yet: analyze it first "
            f"(POST /api/video-analyze/{video.id}/), then ask for automatic removal.",
            code="analysis_required",
        )
    return analysis


@routes.post(f"/api/video-analyze/{VIDEO_ID}/")
async def submit_analysis(request: web.Request) -> web.Response:
    """Scan for blank, text and non-endoscopic frames, the live image and overlays; 202."""
    video, body, callback_url = await _video_and_body(request)
    unknown = sorted(set(body) - {"sample_every"})
    if unknown:
        raise InvalidRequest(f"Unknown field(s) {', '.join(unknown)}; allowed: sample_every.")
    params = {"sample_every": parse_sample_every(body.get("sample_every"))}
    return await _queue(request, Operation.ANALYZE, video, params, callback_url)


@routes.post(f"/api/video-reprocess/{VIDEO_ID}/")
async def submit_reprocess(request: web.Request) -> web.Response:
    """Analysis, then mask and removal of the flagged frames in one encode pass; 202."""
    video, body, callback_url = await _video_and_body(request)
    allowed = MASK_KEYS | {"remove_labels", "sample_every", "blacken_found_regions", AUDIO_FIELD}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )
    sample_every = parse_sample_every(body.get("sample_every"))
    mask_fields = {k: v for k, v in body.items() if k in MASK_KEYS}
    mask = (
        parse_mask_fields(mask_fields, video.width, video.height, devices=request.app[DEVICES])
        if mask_fields
        else None
    )
    params = {
        "mask": mask.to_params() if mask else None,
        "remove_labels": list(parse_remove_labels(body.get("remove_labels"))),
        "sample_every": sample_every,
        "blacken_found_regions": parse_blacken_found(body.get("blacken_found_regions")),
        AUDIO_FIELD: parse_audio(body, request.app[SETTINGS].audio),
    }
    if mask is None:
        await refuse_if_uncertain(request.app[RECORDS], video.id, sample_every)
    return await _queue(request, Operation.REPROCESS, video, params, callback_url)


@routes.get(f"/api/task-status/{TASK_ID}/")
async def task_status(request: web.Request) -> web.Response:
    """A task's state, progress and, when it has ended, result or error."""
    task_id = request.match_info["task_id"]
    task = await request.app[TASKS].store(task_id).get_task(task_id)
    return web.json_response(task_json(task))


@routes.post(f"/api/task-status/{TASK_ID}/cancel/")
@routes.delete(f"/api/task-status/{TASK_ID}/")
async def cancel_task(request: web.Request) -> web.Response:
    """Cancel a task: a queued one never starts, a running one stops within about 2 s and its
    temporary files are removed; either way it ends REVOKED. 409 if it has already ended."""
    records = request.app[TASKS].store(request.match_info["task_id"])
    task = await records.get_task(request.match_info["task_id"])
    if task.state.finished:
        raise Conflict(
            f"Task {task.task_id} has already ended as {task.state.value}; there is nothing to "
            "cancel.",
            code="already_finished",
        )
    await records.request_cancel(task.task_id)
    revoked = await revoke_if_waiting(records, task.task_id)
    current = revoked or await records.get_task(task.task_id)
    if current.state is TaskState.REVOKED:
        message = "Cancelled."
    elif current.state.finished:
        message = f"It ended as {current.state.value} before the cancel reached it."
    else:
        message = "Cancelling: the job stops within 2 s and then shows REVOKED."
    return web.json_response(
        {"task_id": task.task_id, "state": current.state.value, "message": message}, status=202
    )


@routes.get(f"/api/tasks/{TASK_ID}/output")
async def task_output(request: web.Request) -> web.FileResponse:
    """The output file of a task that has succeeded. With ``VIDCORRECT_REQUIRE_APPROVAL``,
    one not approved yet is 403 ``not_approved``, except for reviewers and admins."""
    task_id = request.match_info["task_id"]
    task = await request.app[TASKS].store(task_id).get_task(task_id)
    stored = stored_output(task)
    if (
        request.app[SETTINGS].require_approval
        and not is_approved(task)
        and not skips_approval(current_user(request))
    ):
        state = review_of(task)["state"]
        raise Forbidden(
            f"The output of task {task_id} is {state}, not approved: this server requires a "
            "reviewer's approval (VIDCORRECT_REQUIRE_APPROVAL) before it is downloaded. Ask a "
            "reviewer to approve it.",
            code="not_approved",
        )
    path = request.app[STORAGE].resolve(stored)
    filename = f"video-{task.video_id}-{task.operation.value}-{task.task_id[:8]}{path.suffix}"
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@routes.delete(f"/api/tasks/{TASK_ID}/output")
async def delete_output(request: web.Request) -> web.Response:
    """Delete a task's output; its record stays, with ``result.output_deleted_at``. 204, then
    404 (``output_deleted``)."""
    task_id = request.match_info["task_id"]
    app = request.app
    deleted = await deletion.delete_output(app[TASKS].store(task_id), app[STORAGE], task_id)
    app[METRICS].count_deleted(deleted)
    return web.Response(status=204)


@routes.post(f"/api/tasks/{TASK_ID}/review")
async def review_output(request: web.Request) -> web.Response:
    """Set the review of a task's output (reviewers and admins): ``{"state": "approved" |
    "rejected" | "pending", "comment": "..."}``; answers the task."""
    task_id = request.match_info["task_id"]
    state, comment = parse_review(await read_json(request))
    user = current_user(request)
    note_ids(request, review=state.value)
    store = request.app[TASKS].store(task_id)
    task = await set_review(store, task_id, state, comment, user.name if user else None)
    return web.json_response(task_json(task))


#: Reconnection delay suggested to EventSource clients (ms).
RETRY_MS = 2000
#: Seconds between comment heartbeats on an idle stream.
HEARTBEAT_SECONDS = 15.0
#: Seconds between checks that an idle stream's client is still connected.
GONE_CHECK_SECONDS = 1.0


@routes.get(f"/api/task-status/{TASK_ID}/events")
async def task_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of a task: ``progress`` events, then ``end``, then the stream closes.

    Resumes after ``Last-Event-ID`` (header, or ``?last_event_id=``); without it, starts with the
    task's current state. A finished task's stream always ends with ``end``, whatever the id.
    A client that leaves is noticed within about a second and its stream freed, and so is a
    stream whose session is signed out (or expires) while it is open; past
    ``VIDCORRECT_MAX_SSE_CLIENTS`` open streams the answer is 503 with ``Retry-After``.
    """
    app = request.app
    task_id = request.match_info["task_id"]
    store = app[TASKS].store(task_id)
    task = await store.get_task(task_id)
    last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or None
    if last_id is not None and not is_event_id(last_id):
        raise InvalidRequest(
            "Last-Event-ID must be an event id this stream sent, such as 1732800000000-0.",
            code="invalid_event_id",
        )
    with app[SSE_SLOTS].take():
        if await store.event_log_expired(task):
            # Ended long ago: its event log has expired, the record still tells the end.
            async with sse_response(request, sep="\n") as sse:
                await sse.send(json.dumps(task_json(task)), event=EVENT_END, retry=RETRY_MS)
            return sse
        async with (
            store.follow(task.task_id, last_id) as events,
            sse_response(request, sep="\n", ping_interval=HEARTBEAT_SECONDS) as sse,
        ):
            await _relay(request, sse, events)
        return sse


async def _relay(
    request: web.Request,
    sse: EventSourceResponse,
    events: AsyncIterator[TaskEvent],
) -> None:
    """Send ``events`` until the ``end`` one. Every :data:`GONE_CHECK_SECONDS`, check that the
    client is still there (the transport, and the heartbeat, which stops at its first failed
    write) and that the request still has access (its session not signed out or expired since
    the stream began); return when either is no longer so."""
    loop = asyncio.get_running_loop()
    retry: int | None = RETRY_MS
    iterator = aiter(events)
    waiting: asyncio.Future[TaskEvent | None] | None = None
    checked = loop.time()

    async def allowed() -> bool:  # at most once a GONE_CHECK_SECONDS (it may ask Redis)
        nonlocal checked
        if loop.time() - checked < GONE_CHECK_SECONDS:
            return True
        checked = loop.time()
        return await has_access(request)

    try:
        while True:
            waiting = asyncio.ensure_future(anext(iterator, None))
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=GONE_CHECK_SECONDS)
                if not waiting.done() and (client_gone(request) or not sse.is_connected()):
                    return
                if not await allowed():
                    return
            event = waiting.result()
            if event is None:  # the server is shutting down
                return
            if not await allowed():
                return
            await sse.send(event_data(event), id=event.id, event=event.event, retry=retry)
            retry = None
            if event.is_end:
                return
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()


@routes.get("/api/tasks/")
async def list_tasks(request: web.Request) -> web.Response:
    """Task records newest first: ``?video_id=&state=&operation=&limit=&cursor=``."""
    query = request.query
    video_id = _int_query(query.get("video_id"), "video_id", 1, None)
    limit = _int_query(query.get("limit"), "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    state = _enum_query(query.get("state"), TaskState, "state", str.upper)
    operation = _enum_query(query.get("operation"), Operation, "operation", str.lower)
    tasks, next_cursor = await request.app[RECORDS].list_tasks(
        TaskQuery(
            video_id=video_id,
            state=state,
            operation=operation,
            limit=limit,
            cursor=query.get("cursor") or None,
        )
    )
    return web.json_response(
        {"tasks": [task_json(task) for task in tasks], "next_cursor": next_cursor}
    )


WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
DEFAULT_PAGE = 50
MAX_PAGE = 500
E = TypeVar("E", bound=StrEnum)


def _int_query(raw: str | None, name: str, low: int, high: int | None) -> int | None:
    if raw is None:
        return None
    # ASCII digits only: int() also takes " 5", "+5", "5_0" and other scripts' digits.
    value = int(raw) if WHOLE_NUMBER.fullmatch(raw) else low - 1
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
