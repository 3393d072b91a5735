"""What each operation does (mask, remove frames, analyze, reprocess): :data:`OPERATIONS`, run
by :func:`jobs.runner.run_task` on a worker (jobs.worker) or in the server (server.local).

Every job that writes a video decodes its own output before declaring success (see
:func:`_write_verified`): frame count, black outside the ROI, black where frames were blackened,
a device mask's text fields dark, each by name. The decoding runs alongside the encoding, on
the encoder's packets, and the written file is then read back to confirm it holds exactly
those. If that fails, the output is deleted and the task ends FAILURE with
``verification_failed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jobs import chunked
from jobs.audio_policy import audio_applied, keeps_audio
from jobs.device_catalogue import Device, DeviceCatalogue
from jobs.errors import InvalidRequest, VerificationFailed
from jobs.frame_process import InChild
from jobs.handoff import HandedOff
from jobs.job_run import JobRun, OperationBody
from jobs.mask_request import MaskRequest
from jobs.model import JsonDict, Operation
from jobs.roi_choice import recognise_device, roi_uncertain, trusted
from jobs.video import EncodeOptions, Roi, Shape, TextField
from jobs.video.analyze import Analysis, Label, analyze_video
from jobs.video.checked import analyze_and_write_checked, remove_checked, write_checked
from jobs.video.chunks import stitch_parts
from jobs.video.detectors import LABELS
from jobs.video.edit import REMOVE_ALL_MESSAGE, EditOutcome, EditPlan
from jobs.video.smart_cut import smart_reason
from jobs.video.timeline import format_ranges, range_frames
from jobs.video.verify import Verification

T = TypeVar("T")

#: Shares of the task's 0-100 progress for each stage. A single-pass job's progress is the
#: frames encoded (and checked alongside) over all frames, up to 95; reading the written file
#: back (no decoding) takes the last points.
ENCODE_SPAN = (0, 100)
VERIFY_SPAN = (95, 99)
REPROCESS_SPANS = ((0, 30), (30, 92), (92, 99))


async def _mask(run: JobRun) -> JsonDict:
    """Mask (and optionally blacken frames of) the task's video."""
    request = MaskRequest.from_params(run.task.params)
    plan = EditPlan(
        roi=request.roi,
        shape=request.shape,
        corner=request.corner,
        blacken=request.blacken,
        keep_audio=keeps_audio(run.task.params),
        blacken_regions=request.blacken_regions,
    )
    return await _write_verified(run, plan, ENCODE_SPAN, VERIFY_SPAN, request.text_fields)


async def _remove(run: JobRun) -> JsonDict:
    """Cut frames out of the task's video, frame-accurately: smart removal (copy whole groups
    of pictures) where it applies, else the re-encode."""
    ranges = tuple((a, b) for a, b in run.task.params["frame_ranges"])
    settings = run.deps.settings
    encode = EncodeOptions(preset=settings.x264_preset, crf=settings.x264_crf)
    requested = str(run.task.params.get("mode", "smart"))
    keep_audio = keeps_audio(run.task.params)
    if chunked.may_split(run):  # (a short video: no need to ask whether smart applies)
        if requested == "smart":
            why_not = await _in_executor(run, InChild(smart_reason, run.source_path))
            reason = (
                None
                if why_not is None
                else (f"smart removal does not apply: {why_not}; every frame was re-encoded")
            )
        else:
            reason = "re-encode requested"
        # (an edit that removes every frame fails as it always did, unchunked)
        if reason is not None and range_frames(ranges) < run.video.frame_count:
            plan = EditPlan(remove=ranges, keep_audio=keep_audio)
            chunked_result = await _chunked(
                run, plan, (), encode, ENCODE_SPAN, VERIFY_SPAN, {}, removal_reason=reason
            )
            if chunked_result is not None:
                return chunked_result
    temp: Path = run.temp_path(".mp4")
    outcome, verification, mode = await run.run_frames(
        run.video.frame_count,
        _in_child(
            run,
            remove_checked,
            run.source_path,
            temp,
            ranges,
            mode=requested,
            encode=encode,
            keep_audio=keep_audio,
        ),
        label="Encoding",
        span=ENCODE_SPAN,
        ceiling=min(ENCODE_SPAN[1], VERIFY_SPAN[0]),
    )
    result = await _publish(run, temp, EditPlan(remove=ranges), outcome, verification)
    result.update(mode.to_dict())
    return result


async def _analyze(run: JobRun) -> JsonDict:
    """Find blank, text and non-endoscopic frames, the live image and overlays, and the
    catalogued device whose layout that is."""
    analysis = await _run_analysis(run, (0, 99))
    return {**_analysis_json(run, analysis), "source_sha256": await run.confirm_source()}


def _recognised(run: JobRun, analysis: Analysis) -> Device | None:
    devices = DeviceCatalogue(run.deps.storage.devices_dir).all()
    return recognise_device(analysis, run.video.width, run.video.height, devices)


def _analysis_json(run: JobRun, analysis: Analysis, device: Device | None = None) -> JsonDict:
    """The analysis as results show it, with the device recognised in it (or null)."""
    device = device or _recognised(run, analysis)
    return {**analysis.to_dict(), "suggested_device": None if device is None else device.name}


async def _reprocess(run: JobRun) -> JsonDict:
    """Analysis, then mask and removal of the flagged frames in one encode pass."""
    params = run.task.params
    labels: list[Label] = [label for label in LABELS if label in params["remove_labels"]]
    # (a video long enough to be split is analysed first, then encoded by chunk jobs)
    if (
        params.get("mask") is not None
        and int(params.get("sample_every", 1)) == 1
        and not chunked.may_split(run)
    ):
        return await _reprocess_in_one_pass(run, MaskRequest.from_params(params["mask"]), labels)
    analyze_span, encode_span, verify_span = REPROCESS_SPANS
    analysis = await _run_analysis(run, analyze_span)
    text_fields: tuple[TextField, ...] = ()
    device = _recognised(run, analysis)
    source: JsonDict = {"source": "request"}
    shape: Shape
    corner = 0
    # Text the analysis found printed over the image is blackened, unless asked not to, when
    # the mask is the service's choice; with a given mask, the request's regions are.
    regions = analysis.inside_regions if params.get("blacken_found_regions", True) else ()
    if params.get("mask") is not None:
        mask = MaskRequest.from_params(params["mask"])
        roi, shape, corner, text_fields = mask.roi, mask.shape, mask.corner, mask.text_fields
        regions = mask.blacken_regions
    elif device is not None:
        # The recognised device's own mask: its whole image area, its text fields checked.
        width, height = run.video.width, run.video.height
        roi, shape = device.roi_for(width, height), "rect"
        text_fields = device.text_fields_for(width, height)
        source = {"source": "device", "device_name": device.name}
    elif analysis.suggested_roi is not None and trusted(analysis.suggested_roi.to_dict()):
        roi = analysis.suggested_roi.roi
        shape, corner = analysis.suggested_roi.shape, analysis.suggested_roi.corner
        source = {"source": "analysis"}
    else:
        found = analysis.suggested_roi
        raise roi_uncertain(None if found is None else found.confidence)
    remove = analysis.frames_with(labels)
    if range_frames(remove) >= analysis.total_frames:
        raise _removes_everything(labels)
    plan = EditPlan(
        roi=roi,
        shape=shape,
        corner=corner,
        remove=remove,
        keep_audio=keeps_audio(params),
        blacken_regions=regions,
    )
    extra: JsonDict = {
        "analysis": _analysis_json(run, analysis, device),
        "mask": {**_shape_json(roi, shape, corner), **source, **_regions_json(regions)},
    }
    return await _write_verified(run, plan, encode_span, verify_span, text_fields, extra)


def _shape_json(roi: Roi, shape: Shape, corner: int) -> JsonDict:
    """The mask result's kept area: the roi, its shape and an octagon's corner."""
    return {**roi.to_dict(), "shape": shape, **({"corner": corner} if corner else {})}


def _regions_json(regions: tuple[Roi, ...]) -> JsonDict:
    """The mask result's ``blacken_regions`` (absent when there are none)."""
    return {"blacken_regions": [box.to_dict() for box in regions]} if regions else {}


async def _reprocess_in_one_pass(run: JobRun, mask: MaskRequest, labels: list[Label]) -> JsonDict:
    """Reprocess with a given mask: the analysis and the edit share one decoding pass
    (analyze_and_write_checked), with the same outcome as the two passes."""
    settings = run.deps.settings
    encode = EncodeOptions(preset=settings.x264_preset, crf=settings.x264_crf)
    source = run.source_path
    temp: Path = run.temp_path(".mp4")
    try:
        analysis, outcome, verification = await run.run_frames(
            run.video.frame_count,
            _in_child(
                run,
                analyze_and_write_checked,
                source,
                temp,
                roi=mask.roi,
                shape=mask.shape,
                corner=mask.corner,
                remove=labels,
                text_fields=mask.text_fields,
                encode=encode,
                keep_audio=keeps_audio(run.task.params),
                blacken_regions=mask.blacken_regions,
            ),
            label="Analyzing and encoding",
            span=ENCODE_SPAN,
            ceiling=min(ENCODE_SPAN[1], VERIFY_SPAN[0]),
        )
    except ValueError as exc:
        if str(exc) == REMOVE_ALL_MESSAGE:
            raise _removes_everything(labels) from exc
        raise
    plan = EditPlan(
        roi=mask.roi, shape=mask.shape, corner=mask.corner, remove=analysis.frames_with(labels)
    )
    result = await _publish(run, temp, plan, outcome, verification)
    result["analysis"] = _analysis_json(run, analysis)
    result["mask"] = {
        **_shape_json(mask.roi, mask.shape, mask.corner),
        "source": "request",
        **_regions_json(mask.blacken_regions),
    }
    return result


def _removes_everything(labels: list[Label]) -> InvalidRequest:
    return InvalidRequest(
        f"The analysis flagged every frame as {' or '.join(labels)}; removing them would leave "
        "an empty video, so nothing was written.",
        code="removes_everything",
    )


async def _run_analysis(run: JobRun, span: tuple[int, int]) -> Analysis:
    source = run.source_path
    sample_every = int(run.task.params.get("sample_every", 1))
    return await run.run_frames(
        run.video.frame_count,
        _in_child(run, analyze_video, source, sample_every=sample_every),
        label="Analyzing",
        span=span,
    )


async def _write_verified(
    run: JobRun,
    plan: EditPlan,
    encode_span: tuple[int, int],
    verify_span: tuple[int, int],
    text_fields: tuple[TextField, ...] = (),
    extra: JsonDict | None = None,
) -> JsonDict:
    """Encode the plan into a temp file, checked as it is written (write_checked, with a
    device's `text_fields`), then publish it with the result fields `extra`. A video of
    several chunks is handed over to chunk jobs instead (:mod:`jobs.chunked`)."""
    settings = run.deps.settings
    encode = EncodeOptions(preset=settings.x264_preset, crf=settings.x264_crf)
    chunked_result = await _chunked(
        run, plan, text_fields, encode, encode_span, verify_span, extra or {}
    )
    if chunked_result is not None:
        return chunked_result
    source = run.source_path
    temp: Path = run.temp_path(".mp4")
    outcome, verification = await run.run_frames(
        run.video.frame_count,
        _in_child(run, write_checked, source, temp, plan, text_fields=text_fields, encode=encode),
        label="Encoding",
        span=encode_span,
        ceiling=min(encode_span[1], verify_span[0]),
    )
    result = await _publish(run, temp, plan, outcome, verification)
    result.update(extra or {})
    return result


async def _chunked(
    run: JobRun,
    plan: EditPlan,
    text_fields: tuple[TextField, ...],
    encode: EncodeOptions,
    encode_span: tuple[int, int],
    verify_span: tuple[int, int],
    extra: JsonDict,
    *,
    removal_reason: str | None = None,
) -> JsonDict | None:
    """Hand a video of two chunks or more over to chunk jobs (raises HandedOff), or stitch
    its parts now when they are all finished already (a task run again); None: a video of one
    chunk (or a local job), encoded here as it always was."""
    chunk_plan = await chunked.plan_for(run, plan, encode)
    if chunk_plan is None or len(chunk_plan.chunks) < 2:
        return None
    spec = chunked.Spec(
        attempt=run.task.attempt,
        chunk_plan=chunk_plan,
        plan=plan,
        text_fields=text_fields,
        encode=encode,
        span=encode_span,
        ceiling=min(encode_span[1], verify_span[0]),
        extra=extra,
        removal_reason=removal_reason,
    )
    if await chunked.hand_off(run, spec):
        return await stitch_body(run)
    raise HandedOff


async def stitch_body(run: JobRun) -> JsonDict:
    """Concatenate the finished parts of the run's chunked task (no re-encode), check the
    result and publish it: the body of the stitch job (jobs.chunked.run_stitch)."""
    inputs = await chunked.stitch_inputs(run)
    spec = inputs.spec
    temp: Path = run.temp_path(".mp4")
    outcome, verification = await run.run_frames(
        spec.chunk_plan.total_frames,
        _in_child(
            run,
            stitch_parts,
            run.source_path,
            inputs.parts,
            temp,
            spec.chunk_plan,
            inputs.outcomes,
            spec.plan,
        ),
        label="Stitching",
        span=(spec.ceiling, 99),
    )
    result = await _publish(run, temp, spec.plan, outcome, verification)
    result.update(spec.extra)
    if spec.removal_reason is not None:
        result.update(
            {
                "mode": "reencode",
                "mode_reason": spec.removal_reason,
                "frames_copied": 0,
                "frames_reencoded": outcome.frames_out,
            }
        )
    result.update(chunked.parts_result(inputs))
    result["processing_time"] = chunked.seconds_since_start(run)
    await chunked.discard_parts(run)
    return result


async def _in_executor(run: JobRun, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(run.deps.executor, work)


async def _publish(
    run: JobRun, temp: Path, plan: EditPlan, outcome: EditOutcome, verification: Verification
) -> JsonDict:
    """Commit the checked output under its final name and describe it, or fail the task."""
    if not verification.passed:
        raise VerificationFailed(
            "The output failed its own check and was deleted: " + "; ".join(verification.problems)
        )
    name = run.deps.storage.output_name(run.task.task_id)
    provenance = await run.commit(temp, name)
    result: JsonDict = {
        "output_file": name,
        **provenance,
        "frames": outcome.frames_out,
        "verification": verification.to_dict(),
        "audio": audio_applied(outcome.has_audio, run.video.has_audio),
    }
    if plan.remove:
        result["removed_frames"] = outcome.removed
        result["removed_ranges"] = format_ranges(plan.remove)
        result["frame_map"] = [list(run_) for run_ in outcome.frame_map]
    if plan.blacken:
        result["blackened_ranges"] = format_ranges(plan.blacken)
    return result


#: What each operation does, whoever runs it (an arq worker, the server's degraded mode).
OPERATIONS: dict[Operation, OperationBody] = {
    Operation.MASK: _mask,
    Operation.REMOVE_FRAMES: _remove,
    Operation.ANALYZE: _analyze,
    Operation.REPROCESS: _reprocess,
}


def _in_child(run: JobRun, fn: Callable[..., T], *args: Any, **kwargs: Any) -> InChild[T]:
    """A frame loop run in a child process (see :mod:`jobs.frame_process`)."""
    return InChild(fn, *args, **kwargs)
