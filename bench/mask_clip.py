"""Time one mask of a generated clip three ways, side by side in one run.

    .venv/bin/python bench/mask_clip.py [--width 1920 --height 1080 --seconds 20 --repeat 3]

1. ``core``: :func:`jobs.video.mask_video` called directly (the worker's frame loop).
2. ``service``: the whole service in this process (HTTP upload excluded): POST the mask to the
   real aiohttp app, an in-process arq worker runs it, poll the status until SUCCESS.
3. ``ffmpeg``: the ffmpeg command line doing the same mask (crop + pad keeps the ROI, black
   outside) with the same encoder, preset and CRF, when ``ffmpeg`` is on PATH.

The runs alternate and repeat; the table gives the median wall time of each. This is a quick
check, not the full harness of the performance issue.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import running_service, upload
from jobs.video import EncodeOptions, Roi, mask_video
from testkit.media import make_video


def device_roi(width: int, height: int) -> Roi:
    """The olympus_cv_1500 area scaled as the service scales it."""
    from jobs.device_catalogue import builtin_devices

    return builtin_devices()["olympus_cv_1500"].roi_for(width, height)


def run_core(src: Path, work: Path, roi: Roi) -> float:
    started = time.perf_counter()
    mask_video(src, work / "core.mp4", roi, "rect", encode=EncodeOptions())
    return time.perf_counter() - started


def run_ffmpeg(src: Path, work: Path, roi: Roi, width: int, height: int) -> float:
    command = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-i",
        str(src),
        "-vf",
        f"crop={roi.width}:{roi.height}:{roi.x}:{roi.y},pad={width}:{height}:{roi.x}:{roi.y}:black",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "copy",
        str(work / "ffmpeg.mp4"),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


async def _service_once(base: str, session: aiohttp.ClientSession, video_id: int) -> float:
    started = time.perf_counter()
    async with session.post(
        f"{base}/api/video-apply-mask/{video_id}/",
        json={"mask_type": "device", "device_name": "olympus_cv_1500"},
    ) as resp:
        task_id = (await resp.json())["task_id"]
    while True:
        async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
            state = (await resp.json())["state"]
        if state in ("SUCCESS", "FAILURE"):
            assert state == "SUCCESS"
            return time.perf_counter() - started
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vidcorrect-bench-") as tmp:
        work = Path(tmp)
        src = make_video(
            work / "src.mp4", width=args.width, height=args.height, seconds=args.seconds
        )
        roi = device_roi(args.width, args.height)
        times: dict[str, list[float]] = {"core": [], "service": []}
        runners: dict[str, Callable[[], float]] = {"core": lambda: run_core(src, work, roi)}
        if shutil.which("ffmpeg"):
            times["ffmpeg"] = []
            runners["ffmpeg"] = lambda: run_ffmpeg(src, work, roi, args.width, args.height)
        asyncio.run(_bench_service(work, src, args.repeat, runners, times))

    frames = round(args.seconds * 25)
    print(
        f"\nMask of a {args.width}x{args.height} {args.seconds:g} s clip ({frames} frames), "
        f"median of {args.repeat}:\n"
    )
    print("| case | median s | fps | all runs s |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {median:.2f} | {frames / median:.0f} | {runs} |")


async def _bench_service(
    work: Path,
    src: Path,
    repeat: int,
    runners: dict[str, Callable[[], float]],
    times: dict[str, list[float]],
) -> None:
    async with running_service(work / "data") as base, aiohttp.ClientSession() as session:
        video_id = await upload(session, base, src)
        for _ in range(repeat):
            for name, run in runners.items():
                times[name].append(await asyncio.to_thread(run))
            times["service"].append(await _service_once(base, session, video_id))


if __name__ == "__main__":
    main()
