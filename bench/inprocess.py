"""Cases 1 (mask) and 4 (reprocess with a mask) in-process, against the ffmpeg command line, and
optionally against the same code of another checkout: wall clock AND CPU time of each run.

    python bench/inprocess.py --reps 5 --seconds 10 [--before /path/to/other/checkout]

Every timed run is a fresh process (the in-process call of ``write_checked`` or
``analyze_and_write_checked``, or the ffmpeg command of bench/harness.py's case 1 or 4 on the
same recording), the sides alternating with the order rotated each repetition. CPU time is the
process's user + system time, all its threads (and ffmpeg's, as a child) included: on a machine
whose cores are all busy it is what a run costs. Case 4 first learns (one untimed run) which
frames the analysis flags, and ffmpeg cuts exactly those. Prints one JSON line per run, then per
case and side the median (min-max) of wall and CPU seconds and the ratios to ffmpeg's medians.
A run's ``vhash`` is the SHA-256 of its output's video packets: equal between checkouts when
they encode the same stream.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

# Appended, not prepended: a run for another checkout imports its code (PYTHONPATH) first.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.harness import frame_ranges, recording, scaled_roi, select_expr
from jobs.settings import Settings
from jobs.video import Roi
from jobs.video.analyze import Label

HERE = Path(__file__).resolve().parent.parent
#: What case 4 cuts, as the service's reprocess does by default.
LABELS: tuple[Label, ...] = ("text_screen", "non_endoscopic")
CLIPS = {"1080p25": (1920, 1080, 25), "720p50": (1280, 720, 50)}
THREADS = "3"  # the decoder's and x264's count on every side (see bench/harness.py: pinning)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def video_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
    return digest.hexdigest()[:16]


def ffmpeg_command(src: Path, dst: Path, roi: Roi, size: tuple[int, int], cuts: str) -> list[str]:
    """bench/harness.py's case 1 (no cuts) or case 4 reference."""
    width, height = size
    crop = f"crop={roi.width}:{roi.height}:{roi.x}:{roi.y}"
    pad = f"{crop},pad={width}:{height}:{roi.x}:{roi.y}:black"
    if cuts:
        pad = f"select='not({select_expr(frame_ranges(cuts))})',setpts=N/FRAME_RATE/TB,{pad}"
    settings = Settings()
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_threads", "1",
        "-filter_complex_threads", "1", "-threads", THREADS, "-i", str(src), "-vf", pad,
        "-c:v", "libx264", "-preset", settings.x264_preset, "-crf", str(settings.x264_crf),
        "-pix_fmt", "yuv420p", "-threads", THREADS, "-an", str(dst),
    ]  # fmt: skip


def run_one(side: str, case: str, src: Path, dst: Path, cuts: str) -> dict[str, Any]:
    """One timed run in this process (the `run` subcommand)."""
    import jobs
    from jobs.video.checked import analyze_and_write_checked, write_checked
    from jobs.video.edit import EditPlan

    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        size = (stream.width, stream.height)
    roi = scaled_roi(*size)
    result: dict[str, Any] = {"side": side, "case": case, "code": str(Path(jobs.__file__).parent)}
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if side == "ffmpeg":
        subprocess.run(ffmpeg_command(src, dst, roi, size, cuts if case == "4" else ""), check=True)
    elif case == "1":
        _, verification = write_checked(src, dst, EditPlan(roi=roi, shape="rect"))
        result["passed"] = verification.passed
    else:
        analysis, _, verification = analyze_and_write_checked(
            src, dst, roi=roi, shape="rect", remove=LABELS
        )
        result["passed"] = verification.passed
        result["cuts"] = ",".join(f"{a}-{b}" for a, b in analysis.frames_with(LABELS))
    result["wall"] = round(time.perf_counter() - wall0, 3)
    result["cpu"] = round(cpu_seconds() - cpu0, 3)
    result["vhash"] = video_hash(dst)
    return result


def spawn(tree: Path, side: str, case: str, src: Path, dst: Path, cuts: str) -> dict[str, Any]:
    """A run in a fresh interpreter that imports the code of `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(HERE / "bench" / "inprocess.py"), "run", side, case]
    done = subprocess.run(
        [*command, str(src), str(dst), cuts], env=env, cwd=tree, check=True, capture_output=True
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def summary(label: str, case: str, runs: list[dict[str, Any]], sides: list[str]) -> list[str]:
    lines = []
    for key in ("wall", "cpu"):
        medians: dict[str, float] = {}
        parts = []
        for side in sides:
            values = [r[key] for r in runs if r["side"] == side]
            medians[side] = statistics.median(values)
            parts.append(f"{side} {medians[side]:.2f} ({min(values):.2f}-{max(values):.2f})")
        ratios = ", ".join(
            f"{side}/ffmpeg {medians[side] / medians['ffmpeg']:.3f}"
            for side in sides
            if side != "ffmpeg"
        )
        lines.append(f"{label} case {case} {key} s: " + "; ".join(parts) + f"; {ratios}")
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        side, case, source, output, cuts = sys.argv[2:7]
        print(json.dumps(run_one(side, case, Path(source), Path(output), cuts)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cases", default="1,4")
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--before", type=Path, help="another checkout, run as side 'before'")
    parser.add_argument("--work", type=Path, help="where the recordings go (default: a temp dir)")
    args = parser.parse_args()
    trees = {"after": HERE} if args.before is None else {"before": args.before, "after": HERE}
    sides = [*trees, "ffmpeg"]
    work = args.work or Path(tempfile.mkdtemp(prefix="inprocess-"))
    work.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for label in args.clips.split(","):
        width, height, fps = CLIPS[label]
        src = work / f"{label}.mp4"
        if not src.exists():
            recording(src, width, height, fps, args.seconds)
        for case in args.cases.split(","):
            cuts = ""
            if case == "4":  # the frames the analysis flags, for ffmpeg to cut
                cuts = spawn(HERE, "after", "4", src, work / "learn.mp4", "")["cuts"]
            runs: list[dict[str, Any]] = []
            for rep in range(args.reps):
                order = sides[rep % len(sides) :] + sides[: rep % len(sides)]
                for side in order:
                    tree = trees.get(side, HERE)
                    dst = work / f"out-{label}-{case}-{side}.mp4"
                    result = spawn(tree, side, case, src, dst, cuts)
                    if case == "4" and side != "ffmpeg" and result["cuts"] != cuts:
                        raise SystemExit(f"{side} cut {result['cuts']}, not {cuts}")
                    runs.append({"clip": label, "rep": rep, **result})
                    print(json.dumps(runs[-1]), flush=True)
            lines += summary(label, case, runs, sides)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
