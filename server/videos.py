"""Video endpoints: upload, list, show, download the original."""

from __future__ import annotations

import asyncio
import contextlib
import re
from urllib.parse import urlencode

import structlog
from aiohttp import web

from jobs.errors import FrameProcessCrashed, InvalidRequest, PayloadTooLarge, UnsupportedMedia
from jobs.frame_process import InChild
from jobs.model import TaskState, VideoRecord, utc_now
from jobs.video import InvalidVideo, VideoTooLarge, probe
from jobs.video.still import still_frame
from server.keys import RECORDS, SETTINGS, STORAGE, UPLOAD_SLOTS
from server.record_json import output_url, task_json, video_json
from server.uploads import UploadPace, display_filename, receive_to_file, upload_source

log = structlog.get_logger("vidcorrect.videos")
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
    settings, storage, records = request.app[SETTINGS], request.app[STORAGE], request.app[RECORDS]
    pace = UploadPace(settings.upload_idle_timeout, settings.upload_min_rate)
    async with pace.start():
        chunks, client_name = await upload_source(request)
    temp = storage.temp_path("upload")
    size = await receive_to_file(chunks, temp, limit, pace)
    try:
        if size == 0:
            raise UnsupportedMedia("The upload is empty; send a video file.", code="empty_upload")
        try:  # in a child process: a file that crashes the decoder must not end the server
            info = await asyncio.to_thread(
                InChild(
                    probe,
                    temp,
                    client_name,
                    max_side=settings.max_video_side,
                    max_frames=settings.max_video_frames,
                )
            )
        except VideoTooLarge as error:
            raise UnsupportedMedia(
                f"The upload is too large a video to process: {error} (limits: "
                "VIDCORRECT_MAX_VIDEO_SIDE, VIDCORRECT_MAX_VIDEO_FRAMES)",
                code="video_too_large",
            ) from None
        except InvalidVideo as error:
            raise UnsupportedMedia(
                f"The upload is not a usable video: {error}", code=error.code
            ) from None
        except FrameProcessCrashed:
            raise UnsupportedMedia(
                "The upload is not a usable video: reading it crashed the decoder, so it is "
                "damaged or hostile. Check that it plays, or re-encode it, and upload again.",
                code="unreadable_video",
            ) from None
        video_id = await records.next_video_id()
        stored_name = storage.original_name(video_id, info.extension)
        await asyncio.to_thread(storage.commit, temp, stored_name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    video = VideoRecord(
        id=video_id,
        filename=display_filename(client_name, f"video-{video_id}.{info.extension}"),
        stored_name=stored_name,
        size_bytes=size,
        width=info.width,
        height=info.height,
        fps=info.fps,
        frame_count=info.frame_count,
        duration=info.duration,
        codec=info.codec,
        pix_fmt=info.pix_fmt,
        has_audio=info.has_audio,
        audio_codec=info.audio_codec,
        created_at=utc_now(),
    )
    await asyncio.to_thread(storage.save_video, video)  # readable without Redis
    await records.save_video(video)
    log.info("video stored", video_id=video_id, size_bytes=size, frames=info.frame_count)
    return web.json_response(
        video_json(video), status=201, headers={"Location": f"/api/videos/{video_id}/"}
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
    tasks, next_cursor = await records.list_tasks(video_id=video.id, limit=VIDEO_TASKS_SHOWN)
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
    path = request.app[STORAGE].resolve(video.stored_name)
    try:
        jpeg = await asyncio.to_thread(InChild(still_frame, path, int(raw), fps=video.fps))
    except InvalidVideo as error:
        raise UnsupportedMedia(str(error), code="invalid_video") from None
    except FrameProcessCrashed:
        raise UnsupportedMedia(
            "Decoding this frame crashed the decoder; the video is damaged.",
            code="invalid_video",
        ) from None
    return web.Response(body=jpeg, content_type="image/jpeg")  # Cache-Control: no-store
