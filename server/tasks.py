"""Task endpoints: submit a mask, follow a task, download its output."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from jobs.errors import Conflict, InvalidRequest
from jobs.mask_request import parse_mask_request
from jobs.records import Operation, TaskState
from jobs.submit import submit_task
from server.keys import RECORDS, REDIS, SETTINGS, STORAGE

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
