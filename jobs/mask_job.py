"""The ``apply_mask`` job: black out everything outside the kept ROI of a video."""

from __future__ import annotations

from typing import Any

from jobs.mask_request import MaskRequest
from jobs.records import JsonDict
from jobs.runner import JobRun, run_task
from jobs.video import EncodeOptions, mask_video


async def apply_mask(ctx: dict[str, Any], task_id: str) -> str:
    """arq job: mask the video of task ``task_id`` as its params say; returns the end state."""
    return await run_task(ctx, task_id, _mask)


async def _mask(run: JobRun) -> JsonDict:
    request = MaskRequest.from_params(run.task.params)
    settings = run.deps.settings
    encode = EncodeOptions(preset=settings.x264_preset, crf=settings.x264_crf)
    source = run.source_path
    temp = run.temp_path(".mp4")
    outcome = await run.run_frames(
        run.video.frame_count,
        lambda progress: mask_video(
            source, temp, request.roi, request.shape, encode=encode, on_progress=progress
        ),
    )
    name = await run.commit(temp, run.deps.storage.output_name(run.task.task_id))
    return {
        "output_file": name,
        "output_url": f"/api/tasks/{run.task.task_id}/output",
        "frames": outcome.frames,
    }
