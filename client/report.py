"""Plain-text views of the API's answers: a task, a page of tasks, a job's result, the devices.

They show what the server sent about tasks and videos by their ids; never a video's filename.
"""

from __future__ import annotations

from client.api import JsonDict
from client.progress import duration


def task_lines(task: JsonDict) -> list[str]:
    """A task's state, progress and times, one ``name  value`` line each."""
    rows = [
        ("task", str(task.get("task_id"))),
        ("operation", f"{task.get('operation')} of video {task.get('video_id')}"),
        ("state", f"{task.get('state')} ({task.get('progress', 0)}%)"),
        ("status", str(task.get("status") or "")),
    ]
    eta = task.get("eta_seconds")
    if task.get("state") == "PROGRESS" and isinstance(eta, int | float):
        rows.append(("time left", duration(eta)))
    if (task.get("attempt") or 1) > 1:
        rows.append(("attempt", str(task.get("attempt"))))
    for name in ("created_at", "started_at", "finished_at"):
        if task.get(name):
            rows.append((name.removesuffix("_at"), str(task[name])))
    result = task.get("result") or {}
    if result.get("output_url"):
        rows.append(("output", str(result["output_url"])))
    error = task.get("error")
    if error:
        rows.append(("error", f"{error.get('message')} ({error.get('code')})"))
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def tasks_table(tasks: list[JsonDict]) -> list[str]:
    """A page of tasks as aligned columns, newest first as the server lists them."""
    header = ("TASK", "STATE", "PROGRESS", "OPERATION", "VIDEO", "CREATED")
    rows = [header] + [
        (
            str(task.get("task_id")),
            str(task.get("state")),
            f"{task.get('progress', 0)}%",
            str(task.get("operation")),
            str(task.get("video_id")),
            str(task.get("created_at") or ""),
        )
        for task in tasks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def finished_line(task: JsonDict) -> str:
    """One line on a successful job: its time, frames, audio, and its output's check."""
    result = task.get("result") or {}
    parts = []
    if isinstance(result.get("processing_time"), int | float):
        parts.append(f"Finished in {result['processing_time']:.1f} s")
    else:
        parts.append("Finished")
    if result.get("frames") is not None:
        parts.append(f"{result['frames']} frames")
    if result.get("removed_frames"):
        parts.append(f"{result['removed_frames']} removed ({result.get('removed_ranges')})")
    if result.get("audio"):
        parts.append(f"audio {result['audio']}")
    check = result.get("verification")
    if isinstance(check, dict) and check.get("passed"):
        parts.append(
            f"output checked: {check.get('frames_checked')} frames decoded, brightest "
            f"luma outside the ROI {check.get('max_luma_outside')} "
            f"(limit {check.get('luma_limit')})"
        )
    return "; ".join(parts)


def analysis_lines(analysis: JsonDict) -> list[str]:
    """What an analysis found, with its suggested ROI and the device it recognised as the
    options that use them. Fields an older server does not send are left out."""
    total = analysis.get("total_frames")
    count = analysis.get("sensitive_frame_count", 0)
    ratio = float(analysis.get("sensitive_ratio") or 0.0)
    lines = [f"frames      {total}, sensitive {count} ({ratio:.1%})"]
    if analysis.get("sensitive_frame_ids"):
        lines.append(f"sensitive   {analysis['sensitive_frame_ids']}")
    segments = analysis.get("segments") or []
    for segment in segments:
        lines.append(
            f"segment     {segment.get('label')} {segment.get('start_frame')}-"
            f"{segment.get('end_frame')}"
        )
    roi = analysis.get("suggested_roi")
    if isinstance(roi, dict):
        shape = roi.get("shape", "ellipse" if roi.get("ellipse") else "rect")
        corner = f" --corner {roi.get('corner')}" if shape == "octagon" else ""
        confidence = roi.get("confidence")
        sure = f" (confidence {confidence:.2f})" if isinstance(confidence, int | float) else ""
        lines.append(
            f"suggested   --{shape} {roi.get('x')},{roi.get('y')},{roi.get('width')},"
            f"{roi.get('height')}{corner}{sure}"
        )
        evidence = roi.get("evidence")
        if isinstance(evidence, dict):
            lines.append(f"evidence    {_evidence(evidence)}")
    if "suggested_device" in analysis:
        device = analysis["suggested_device"]
        lines.append(f"device      --device {device}" if device else "device      none recognised")
    overlays = [r for r in analysis.get("overlay_regions") or [] if isinstance(r, dict)]
    inside = sum(1 for region in overlays if region.get("inside_roi") is True)
    if len(overlays) > inside:
        lines.append(
            f"overlays    {len(overlays) - inside} static text-like region(s) outside the ROI"
        )
    if inside:
        lines.append(f"overlays    {inside} static text-like region(s) inside the ROI")
    return lines


def _evidence(evidence: JsonDict) -> str:
    """What the suggested ROI rests on: the shape fitted, how well, on how many frames, and in
    how many of them the picture moved."""
    parts = [f"{evidence.get('fit')} fit"]
    residual = evidence.get("fit_residual")
    if isinstance(residual, int | float):
        parts.append(f"residual {residual:.3f}")
    used, share = evidence.get("frames_used"), evidence.get("frame_share")
    if isinstance(used, int):
        of = f" ({share:.1%} of those analysed)" if isinstance(share, int | float) else ""
        parts.append(f"{used} frames used{of}")
    moving = evidence.get("moving_frames")
    if isinstance(moving, int):
        parts.append(f"the picture moved in {moving}")
    return ", ".join(parts)


def device_lines(devices: list[JsonDict]) -> list[str]:
    """The known devices, the image area each keeps on its own frame size, and the text fields
    the output's check proves dark."""
    lines = []
    for device in devices:
        roi = device.get("roi") or {}
        fields = [str(field.get("name")) for field in device.get("text_fields") or []]
        lines.append(
            f"{device.get('name')}  keeps x {roi.get('x')}, y {roi.get('y')}, "
            f"{roi.get('width')}x{roi.get('height')} of a "
            f"{device.get('frame_width')}x{device.get('frame_height')} frame "
            "(scaled to the video's size)"
            + (f"; text fields checked dark: {', '.join(fields)}" if fields else "")
        )
    return lines
