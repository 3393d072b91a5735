"""Videos entering the service, and stills of them: an upload probed, stored and recorded; one
frame of a stored video as a JPEG.

The video core runs in a child process for both (a file that crashes a decoder must not end the
server), and what it finds wrong with a file becomes :class:`UnusableVideo`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from jobs.errors import FrameProcessCrashed, UnusableVideo
from jobs.frame_process import InChild
from jobs.model import VideoRecord, utc_now
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.storage import Storage
from jobs.video import InvalidVideo, VideoInfo, VideoTooLarge, probe
from jobs.video.still import still_frame

log = structlog.get_logger("vidcorrect.videos")


async def store_upload(
    temp: Path,
    size: int,
    sha256: str,
    client_name: str | None,
    *,
    settings: Settings,
    storage: Storage,
    records: RedisTaskStore,
) -> VideoRecord:
    """Make the upload received at ``temp`` (``size`` bytes whose SHA-256 is ``sha256``, hashed
    as they were received; called ``client_name`` by the client) a video of the service: check
    that it decodes within the size limits, move it into storage, and record it (next to the
    file, readable without Redis, and in Redis). ``temp`` is gone afterwards whatever happened;
    an upload that is no usable video raises :class:`UnusableVideo`."""
    try:
        if size == 0:
            raise UnusableVideo("The upload is empty; send a video file.", code="empty_upload")
        info = await _probe_upload(temp, client_name, settings)
        video_id = await records.next_video_id()
        stored_name = storage.original_name(video_id, info.extension)
        await asyncio.to_thread(storage.commit, temp, stored_name)
    finally:
        await asyncio.to_thread(temp.unlink, missing_ok=True)
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
        sha256=sha256,
    )
    await asyncio.to_thread(storage.save_video, video)  # readable without Redis
    await records.save_video(video)
    log.info("video stored", video_id=video_id, size_bytes=size, frames=info.frame_count)
    return video


async def _probe_upload(temp: Path, client_name: str | None, settings: Settings) -> VideoInfo:
    """What the upload at ``temp`` is, probed in a child process; :class:`UnusableVideo` when
    it is no video, too large a one, or crashes the decoder."""
    try:
        return await asyncio.to_thread(
            InChild(
                probe,
                temp,
                client_name,
                max_side=settings.max_video_side,
                max_frames=settings.max_video_frames,
            )
        )
    except VideoTooLarge as error:
        raise UnusableVideo(
            f"The upload is too large a video to process: {error} (limits: "
            "VIDCORRECT_MAX_VIDEO_SIDE, VIDCORRECT_MAX_VIDEO_FRAMES)",
            code="video_too_large",
        ) from None
    except InvalidVideo as error:
        raise UnusableVideo(f"The upload is not a usable video: {error}", code=error.code) from None
    except FrameProcessCrashed:
        raise UnusableVideo(
            "The upload is not a usable video: reading it crashed the decoder, so it is "
            "damaged or hostile. Check that it plays, or re-encode it, and upload again.",
            code="unreadable_video",
        ) from None


def display_filename(raw: str | None, fallback: str) -> str:
    """A filename fit for display: its last path part, printable, at most 255 characters."""
    if not raw:
        return fallback
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or fallback


async def still_of(storage: Storage, video: VideoRecord, index: int) -> bytes:
    """Frame ``index`` of ``video``'s original as a JPEG, decoded in a child process;
    :class:`UnusableVideo` when it cannot be."""
    path = storage.resolve(video.stored_name)
    try:
        return await asyncio.to_thread(InChild(still_frame, path, index, fps=video.fps))
    except InvalidVideo as error:
        raise UnusableVideo(str(error), code="invalid_video") from None
    except FrameProcessCrashed:
        raise UnusableVideo(
            "Decoding this frame crashed the decoder; the video is damaged.",
            code="invalid_video",
        ) from None
