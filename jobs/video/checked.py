"""Editing with the output's own check: one function that writes an edited video and says
whether it is what was promised, for the jobs to call (in one thread or one child process)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jobs.video.analyze import Analysis, Label, LiveAnalysis
from jobs.video.codec import DEFAULT_ENCODE, EncodeOptions, ProgressCallback
from jobs.video.edit import EditOutcome, EditPlan, edit_video
from jobs.video.planes import Roi, Shape, TextField
from jobs.video.smart_cut import NotSmart, smart_remove
from jobs.video.timeline import FrameRange, range_frames, to_output_ranges
from jobs.video.verify import LiveVerifier, Verification

__all__ = ["RemovalMode", "analyze_and_write_checked", "remove_checked", "write_checked"]


def write_checked(
    src: Path,
    dst: Path,
    plan: EditPlan,
    *,
    text_fields: tuple[TextField, ...] = (),
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
) -> tuple[EditOutcome, Verification]:
    """edit_video(src, dst, plan), with every frame of the output decoded and checked while it
    is written (see verify.LiveVerifier), `text_fields` (a device's) proven dark by name, and
    the file read back to confirm it holds exactly the checked stream. The caller publishes
    `dst` only if the Verification passed.

    `on_progress` gets the source frames done, as for edit_video. Raises what edit_video raises.
    """
    verifier = LiveVerifier(
        roi=plan.roi,
        shape=plan.shape,
        corner=plan.corner,
        black_frames=to_output_ranges(plan.blacken, plan.remove),
        text_fields=text_fields,
        blacken_regions=plan.blacken_regions,
    )
    try:
        outcome = edit_video(
            src, dst, plan, encode=encode, on_progress=on_progress, on_video_packet=verifier
        )
    finally:
        verifier.close()
    removed = range_frames(
        (a, min(b, outcome.frames_in - 1)) for a, b in plan.remove if a < outcome.frames_in
    )
    return outcome, verifier.finish(
        dst, outcome.frames_in - removed, _still_at(on_progress, outcome.frames_in)
    )


def analyze_and_write_checked(
    src: Path,
    dst: Path,
    *,
    roi: Roi,
    shape: Shape,
    corner: int = 0,
    remove: Iterable[Label],
    text_fields: tuple[TextField, ...] = (),
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
    keep_audio: bool = True,
    blacken_regions: tuple[Roi, ...] = (),
) -> tuple[Analysis, EditOutcome, Verification]:
    """Analyse `src` and, in the same decoding pass, write it masked to `roi` without the frames
    labelled with any of `remove` (and without audio unless `keep_audio`), `blacken_regions`
    black inside it, checked as write_checked does (`text_fields` too).

    The frames go from the decoder through the analysis (which holds each back until its label
    is decided, DECISION_LAG frames later) to the editor, so the result is the one of
    analyze_video followed by edit_video, for one decoding instead of two. Raises what
    edit_video raises (ValueError when every frame is cut).
    """
    labels = tuple(remove)
    verifier = LiveVerifier(
        roi=roi,
        shape=shape,
        corner=corner,
        text_fields=text_fields,
        blacken_regions=blacken_regions,
    )
    # The analysis runs in a thread of its own: closed however the edit ends.
    with LiveAnalysis(hold=labels) as analysis:
        try:
            outcome = edit_video(
                src,
                dst,
                EditPlan(
                    roi=roi,
                    shape=shape,
                    corner=corner,
                    keep_audio=keep_audio,
                    blacken_regions=blacken_regions,
                ),
                encode=encode,
                on_progress=on_progress,
                on_video_packet=verifier,
                gate=analysis,
            )
        finally:
            verifier.close()
    result = analysis.result()
    expected = result.total_frames - range_frames(result.frames_with(labels))
    return (
        result,
        outcome,
        verifier.finish(dst, expected, _still_at(on_progress, result.total_frames)),
    )


def _still_at(on_progress: ProgressCallback | None, frames: int) -> ProgressCallback | None:
    """A progress callback for reading the written file back: it reports `frames` (all done)
    as it goes, a sign of life for the job's stall watchdog on a large file."""
    if on_progress is None:
        return None
    report = on_progress
    return lambda _packets: report(frames)


@dataclass(frozen=True)
class RemovalMode:
    """How a removal was written: `used` "smart" or "reencode", and why."""

    used: str
    reason: str
    frames_copied: int
    frames_reencoded: int

    def to_dict(self) -> dict[str, object]:
        """The result fields: mode, mode_reason, frames_copied, frames_reencoded."""
        return {
            "mode": self.used,
            "mode_reason": self.reason,
            "frames_copied": self.frames_copied,
            "frames_reencoded": self.frames_reencoded,
        }


def remove_checked(
    src: Path,
    dst: Path,
    remove: tuple[FrameRange, ...],
    *,
    mode: str = "smart",
    encode: EncodeOptions = DEFAULT_ENCODE,
    on_progress: ProgressCallback | None = None,
    keep_audio: bool = True,
) -> tuple[EditOutcome, Verification, RemovalMode]:
    """Cut `remove` out of `src` into `dst`, checked: with smart_remove when `mode` is "smart"
    and it applies to the source, else with the full re-encode (write_checked); the audio cut
    alike, or left out unless `keep_audio`."""
    if mode == "smart":
        try:
            smart = smart_remove(
                src, dst, remove, encode=encode, on_progress=on_progress, keep_audio=keep_audio
            )
        except NotSmart as exc:
            reason = f"smart removal does not apply: {exc}; every frame was re-encoded"
        else:
            used = RemovalMode(
                "smart",
                "the groups of pictures kept whole were copied, the rest re-encoded",
                smart.frames_copied,
                smart.frames_reencoded,
            )
            return smart.edit, smart.verification, used
    else:
        reason = "re-encode requested"
    outcome, verification = write_checked(
        src,
        dst,
        EditPlan(remove=remove, keep_audio=keep_audio),
        encode=encode,
        on_progress=on_progress,
    )
    return outcome, verification, RemovalMode("reencode", reason, 0, outcome.frames_out)
