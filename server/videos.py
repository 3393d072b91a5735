"""Video endpoints: upload, list, show, download the original, delete."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp import web

from jobs import deletion
from jobs.errors import InvalidRequest
from jobs.model import TaskState
from jobs.task_pages import TaskQuery
from jobs.videos import still_of, store_upload
from server.audit_trail import note_ids
from server.http_errors import PayloadTooLarge
from server.keys import METRICS, RECORDS, SETTINGS, STORAGE, TASKS, UPLOAD_SLOTS
from server.record_json import output_url, task_json, video_json
from server.uploads import UploadPace, receive_to_file, upload_source

FRAME_NUMBER = re.compile(r"[0-9]{1,10}")
#: A video id in a route: ASCII digits (``\d`` also takes other scripts' digits, which int()
#: reads) and at most 18 of them (a longer number is no id, and int() of a few thousand digits
#: raises); anything else is no route, 404.
VIDEO_ID = r"{video_id:[0-9]{1,18}}"
routes = web.RouteTableDef()


@routes.post("/api/videos/")
async def upload_video(request: web.Request) -> web.Response:
    """Store an uploaded video after checking that it decodes; 201 with its properties. At most
    ``VIDCORRECT_MAX_CONCURRENT_UPLOADS`` at once (then 503), each cut off with 408 when it
    sends too slowly."""
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"The upload is larger than the limit of {limit} bytes (VIDCORRECT_MAX_UPLOAD_BYTES)."
        )
    with request.app[UPLOAD_SLOTS].take():
        return await _store_upload(request, limit)


async def _store_upload(request: web.Request, limit: int) -> web.Response:
    settings, storage = request.app[SETTINGS], request.app[STORAGE]
    pace = UploadPace(settings.upload_idle_timeout, settings.upload_min_rate)
    async with pace.start():
        chunks, client_name = await upload_source(request)
    temp = storage.temp_path("upload")
    received = await receive_to_file(chunks, temp, limit, pace)
    video = await store_upload(
        temp,
        received.size,
        received.sha256,
        client_name,
        settings=settings,
        storage=storage,
        records=request.app[RECORDS],
    )
    note_ids(request, video_id=video.id)
    return web.json_response(
        video_json(video), status=201, headers={"Location": f"/api/videos/{video.id}/"}
    )


@routes.get("/api/videos/")
async def list_videos(request: web.Request) -> web.Response:
    """All videos, newest first."""
    videos = await request.app[RECORDS].list_videos()
    return web.json_response({"videos": [video_json(video) for video in videos]})


@routes.get(f"/api/videos/{VIDEO_ID}/")
async def show_video(request: web.Request) -> web.Response:
    """One video's properties, its tasks (newest first) and the outputs they produced."""
    records = request.app[RECORDS]
    video = await records.get_video(int(request.match_info["video_id"]))
    tasks, next_cursor = await records.list_tasks(
        TaskQuery(video_id=video.id, limit=VIDEO_TASKS_SHOWN)
    )
    outputs = [
        {
            "task_id": task.task_id,
            "operation": task.operation.value,
            "output_file": task.result["output_file"],
            "output_url": output_url(task.task_id),
            "finished_at": task.finished_at,
        }
        for task in tasks
        if task.state is TaskState.SUCCESS and task.result and "output_file" in task.result
    ]
    more = None
    if next_cursor:
        more = "/api/tasks/?" + urlencode({"video_id": video.id, "cursor": next_cursor})
    return web.json_response(
        {
            **video_json(video),
            "tasks": [task_json(task) for task in tasks],
            "more_tasks_url": more,
            "outputs": outputs,
        }
    )


@routes.delete(f"/api/videos/{VIDEO_ID}/")
async def delete_video(request: web.Request) -> web.Response:
    """Delete the original and every output made from it, its running and queued tasks
    cancelled first; the task records stay, marked (see :mod:`jobs.deletion`). 204, then 404."""
    video_id = int(request.match_info["video_id"])
    app = request.app
    deleted = await deletion.delete_video(app[RECORDS], app[TASKS].stores, app[STORAGE], video_id)
    app[METRICS].count_deleted(deleted)
    return web.Response(status=204)


#: Tasks listed with a video; the rest are paged through /api/tasks/?video_id=.
VIDEO_TASKS_SHOWN = 100


@routes.get(f"/api/videos/{VIDEO_ID}/file")
async def download_original(request: web.Request) -> web.FileResponse:
    """The original upload, untouched."""
    video = await request.app[RECORDS].get_video(int(request.match_info["video_id"]))
    path = request.app[STORAGE].resolve(video.stored_name)
    extension = path.suffix
    return web.FileResponse(
        path,
        headers={"Content-Disposition": f'attachment; filename="video-{video.id}{extension}"'},
    )


@routes.get(f"/api/videos/{VIDEO_ID}/frame")
async def video_frame(request: web.Request) -> web.Response:
    """Frame ``?n=`` (default 0) of the original as a JPEG, for previews and drawing an ROI."""
    video = await request.app[RECORDS].get_video(int(request.match_info["video_id"]))
    raw = request.query.get("n", "0")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not FRAME_NUMBER.fullmatch(raw) or int(raw) >= video.frame_count:
        raise InvalidRequest(
            f"n must be a frame number from 0 to {video.frame_count - 1}; the video has "
            f"{video.frame_count} frames.",
            code="frame_out_of_range",
        )
    jpeg = await still_of(request.app[STORAGE], video, int(raw))
    return web.Response(body=jpeg, content_type="image/jpeg")  # Cache-Control: no-store
