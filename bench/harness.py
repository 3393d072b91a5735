"""The performance harness: each case, ours against its references, in one run.

    .venv/bin/python bench/harness.py                 # the full run (manual; about an hour)
    .venv/bin/python bench/harness.py --quick         # the smoke run and gate CI does (a minute)
    .venv/bin/python bench/harness.py --long          # adds the 5 min 1080p memory case
    .venv/bin/python bench/harness.py --quick --only 1,4   # some cases alone

"Ours" goes through the whole service (HTTP POST to SUCCESS seen by the client on the task's
event stream: wall clock; embedded Redis and an in-process worker, the output's own check
included) unless the case says otherwise. Every encode case has two references:

- ``ffmpeg-cli``: the ffmpeg command line as installed (what a user would run), doing the same
  work with the service's preset and CRF;
- ``same-build``: bench/same_build.py, the plain work with PyAV's own bundled libavcodec and
  libx264 (the libraries the service runs) and the same settings, so that ours / same-build is
  the service's overhead with no library difference in it.

Threads are pinned: the harness binds itself (so the service, its worker processes and every
reference it starts) to the same CPUs (``--cpus``); the service leaves libavcodec's and x264's
thread counts on auto, which on those CPUs resolve to fixed counts, and both references get
those counts explicitly (ffmpeg ``-threads`` for the decoder and the encoder, filters in one
thread like our mask; PyAV ``thread_count``). Each output's x264 SEI (``threads=``) is checked.
The same frames are cut on every side. Every case runs ``--reps`` times (5 by default; the order
of the sides rotates each repetition); the results give every repetition, min/median/max and
ratios of medians. ``bench/out/results.md`` (the README's table) and ``--json`` (default
``bench/out/results.json``) hold them.

``--quick`` is a gate: tiny inputs, and it exits non-zero when a case's ratio against its
same-build reference (case 10: ffmpeg-cli) exceeds twice its usual quick ratio (QUICK_GATES),
or when the geometric mean over the cases of ratio / usual ratio exceeds MEAN_LIMIT: noise
stays under those, a 2x slowdown of our side does not.
``BENCH_INJECT_DELAY_FACTOR=F`` (read here and nowhere else) makes every run of our side last
F times as long, to prove the gate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import (
    ROOT,
    follow_latencies,
    running_service,
    service_process,
    spawn,
    submit_device_mask,
    upload,
)
from jobs.logs import configure_logging
from jobs.settings import Settings
from jobs.video import EncodeOptions, Roi
from jobs.video.checked import write_checked
from jobs.video.edit import EditPlan, edit_video
from testkit.media import make_video
from testkit.scenes import Scene, make_scene_video
from testkit.sse import read_events

OUT = ROOT / "bench" / "out"
SAME_BUILD = ROOT / "bench" / "same_build.py"
ROI_1080 = Roi(550, 0, 1350, 1080)  # olympus_cv_1500
CUTS = ((100, 149), (250, 259), (400, 424))  # three cuts, frames per 500
INJECT = "BENCH_INJECT_DELAY_FACTOR"
#: The quick run's gate. Per case: the reference its ratio is taken against (the median of the
#: repetitions' ratios, each pair having run back to back) and the ratio quick runs usually give
#: (the middle of what runs on a 2-core machine with a load average of 8 to 15 gave: mask
#: 1.5-3.3, removal 1.8-2.9, analysis 6.4-11 (the reference only decodes 100 tiny frames in
#: 0.05 s), reprocess 2.1-4.7; case 10 against ffmpeg-cli 3.5-4.8, as its same-build copy takes
#: 0.02 s, too short to divide by). Our fixed costs (HTTP, Redis, the job's process) weigh more
#: on these tiny inputs than in the full run, hence ratios above the full run's.
QUICK_GATES: dict[str, tuple[str, float]] = {
    "1": ("same-build", 1.9),
    "2": ("same-build", 2.3),
    "3": ("same-build", 9.1),
    "4": ("same-build", 3.0),
    "10": ("ffmpeg-cli", 3.8),
}
#: A case fails past this many times its usual ratio (runs under load reached 1.73).
CASE_LIMIT = 2.0
#: The run fails when the geometric mean over the gated cases of ratio / usual ratio exceeds
#: this (runs under load gave 0.83-1.15; a 2x slowdown of our side doubles it). The mean
#: averages the noise of single cases away, so it is what surely catches a general slowdown.
MEAN_LIMIT = 1.4

Ranges = tuple[tuple[int, int], ...]
Timed = Callable[[int], Awaitable[float]]


@dataclass(frozen=True)
class Pinning:
    """What both sides run on: the CPUs, and the thread counts libavcodec's and x264's auto
    resolve to on them (what the service uses, given to the references explicitly)."""

    cpus: tuple[int, ...]
    decode_threads: int
    encode_threads: int


def summary(runs: Sequence[float]) -> dict[str, float]:
    return {"min": min(runs), "median": statistics.median(runs), "max": max(runs)}


@dataclass
class Reference:
    kind: str  # ffmpeg-cli, same-build, or what else this case compares against
    runs: list[float]
    command: str = ""
    target: float | None = None  # ours/this ratio of medians must be at most this


@dataclass
class Case:
    number: str  # "1", "2", ... (QUICK_GATES' key)
    name: str
    unit: str  # s, ms, MB
    ours: list[float]
    references: list[Reference] = field(default_factory=list)
    #: For cases without references: the median of ours must be at most this (in ``unit``).
    limit: float | None = None
    note: str = ""

    def ratio(self, ref: Reference) -> float:
        return statistics.median(self.ours) / statistics.median(ref.runs)

    def ref_met(self, ref: Reference) -> bool | None:
        return None if ref.target is None else self.ratio(ref) <= ref.target

    @property
    def target(self) -> float | None:
        targets = {r.target for r in self.references if r.target is not None}
        return self.limit if not targets else min(targets)

    @property
    def met(self) -> bool | None:
        if self.limit is not None:
            return statistics.median(self.ours) <= self.limit
        verdicts = [m for r in self.references if (m := self.ref_met(r)) is not None]
        return all(verdicts) if verdicts else None

    def reference(self, kind: str) -> Reference | None:
        return next((r for r in self.references if r.kind == kind), None)

    def paired_ratio(self, ref: Reference) -> float:
        """The median of each repetition's ours / reference: the two ran next to each other,
        under the same load, so this is steadier than the ratio of medians on a busy machine."""
        return statistics.median(o / r for o, r in zip(self.ours, ref.runs, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.number,
            "name": self.name,
            "unit": self.unit,
            "ours": {"runs": self.ours, **summary(self.ours)},
            "references": [
                {
                    "reference_kind": r.kind,
                    "command": r.command,
                    "runs": r.runs,
                    **summary(r.runs),
                    "ratio": self.ratio(r),
                    "paired_ratio": self.paired_ratio(r),
                    "target": r.target,
                    "met": self.ref_met(r),
                }
                for r in self.references
            ],
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


def inject_factor() -> float:
    return float(os.environ.get(INJECT, "1") or "1")


async def ours_timed(ours: Timed, rep: int) -> float:
    """One run of our side, made ``BENCH_INJECT_DELAY_FACTOR`` times as long (wall clock,
    measured around the run and the added wait) when that is set."""
    started = time.perf_counter()
    took = await ours(rep)
    factor = inject_factor()
    if factor > 1:
        await asyncio.sleep(took * (factor - 1))
        return time.perf_counter() - started
    return took


async def compare(
    number: str,
    name: str,
    reps: int,
    ours: Timed,
    references: Sequence[tuple[str, str, Timed, float | None]],
    note: str = "",
) -> Case:
    """Run ours and each reference ``reps`` times, alternating (the order rotates every
    repetition so that no side always runs first)."""
    sides: list[tuple[str, Timed]] = [("ours", ours)] + [(k, t) for k, _, t, _ in references]
    runs: dict[str, list[float]] = {kind: [] for kind, _ in sides}
    for rep in range(reps):
        shift = rep % len(sides)
        for kind, timed in sides[shift:] + sides[:shift]:
            took = await (ours_timed(timed, rep) if kind == "ours" else timed(rep))
            runs[kind].append(took)
    case = Case(
        number,
        name,
        "s",
        runs["ours"],
        [Reference(k, runs[k], command, target) for k, command, _, target in references],
        note=note,
    )
    parts = ", ".join(
        f"{r.kind} {statistics.median(r.runs):.2f} s (ratio {case.ratio(r):.2f}, paired "
        f"{case.paired_ratio(r):.2f})"
        for r in case.references
    )
    print(f"  {name}: ours {statistics.median(case.ours):.2f} s; {parts}", flush=True)
    return case


# --- inputs -----------------------------------------------------------------------------------


def recording(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """A synthetic endoscopy recording (testkit/scenes.py): live image with a text overlay, a
    patient-info screen and an office scene among it, so analysis and reprocess have work."""
    frames = round(seconds * fps)
    parts = (
        ("endoscopy", 0.4),
        ("text_screen", 0.1),
        ("endoscopy", 0.3),
        ("office", 0.1),
        ("endoscopy", 0.1),
    )
    script = tuple(Scene(kind, max(1, round(frames * share))) for kind, share in parts)  # type: ignore[arg-type]
    make_scene_video(path, width=width, height=height, fps=fps, script=script)
    return path


def smart_source(
    path: Path, seconds: float, width: int, height: int, gaps: tuple[float, float]
) -> Path:
    """H.264 in MP4 as a recorder writes it: B-frames (x264 superfast: 3, adaptive), and GOPs
    of irregular length: keyframes forced at random intervals of ``gaps`` seconds (seeded), with
    x264's scene-cut detection on and a 10 s keyint cap."""
    rng = random.Random(10)
    times = [0.0]
    while times[-1] < seconds:
        times.append(round(times[-1] + rng.uniform(*gaps), 2))
    ffmpeg_run(
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}",
        "-c:v", "libx264", "-preset", "superfast", "-g", "250",
        "-force_key_frames", ",".join(f"{t:g}" for t in times[:-1]),
        "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def scaled_roi(width: int, height: int) -> Roi:
    sx, sy = Fraction(width, 1920), Fraction(height, 1080)
    x0, y0 = -(-ROI_1080.x * sx // 1), -(-ROI_1080.y * sy // 1)
    x1 = (ROI_1080.x + ROI_1080.width) * sx // 1
    y1 = (ROI_1080.y + ROI_1080.height) * sy // 1
    return Roi(int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def ellipse_overlay(path: Path, width: int, height: int, roi: Roi) -> Path:
    """A black picture, transparent inside the ellipse inscribed in ``roi`` (PNG, RGBA)."""
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = roi.x + roi.width / 2, roi.y + roi.height / 2
    inside = ((xs + 0.5 - cx) / (roi.width / 2)) ** 2 + ((ys + 0.5 - cy) / (roi.height / 2)) ** 2
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 3] = np.where(inside <= 1, 0, 255)
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgba"
        frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def frame_ranges(text: str) -> Ranges:
    """ "10-20,30" as ((10, 20), (30, 30))."""
    ranges = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        ranges.append((int(a), int(b or a)))
    return tuple(ranges)


def ranges_text(ranges: Ranges) -> str:
    return ",".join(f"{a}-{b}" for a, b in ranges)


def select_expr(cuts: Ranges) -> str:
    return "+".join(f"between(n,{a},{b})" for a, b in cuts)


# --- pinning ----------------------------------------------------------------------------------

X264_SEI = re.compile(rb"x264 - core (\d+)( r\d+)?[^\x00]*? threads=(\d+)")


def x264_build(path: Path) -> tuple[str, int]:
    """The x264 build ("core 164 r3095") and its ``threads=`` from the SEI x264 writes into
    its first access unit."""
    with path.open("rb") as f:
        head = f.read(16 * 1024 * 1024)
    found = X264_SEI.search(head)
    if found is None:
        raise RuntimeError(f"no x264 SEI in {path.name}")
    return f"core {found[1].decode()}{(found[2] or b'').decode()}", int(found[3])


def resolve_pinning(work: Path, cpus: tuple[int, ...], clip: Path) -> Pinning:
    """The thread counts the service's auto settings give on these CPUs: a PyAV decoder opened
    as the service opens it reports its count once it runs; x264 writes its own in the SEI."""
    with av.open(str(clip)) as inp:
        vin = inp.streams.video[0]
        vin.codec_context.thread_type = "AUTO"
        next(inp.decode(vin))
        decode_threads = vin.codec_context.thread_count
        frames = vin.frames
    probe = work / "threads.mp4"
    # The service's encoder on this picture size: ten frames are enough for its SEI.
    edit_video(clip, probe, EditPlan(remove=((10, frames - 1),)), encode=EncodeOptions())
    _, encode_threads = x264_build(probe)
    return Pinning(cpus, decode_threads, encode_threads)


# --- the sides --------------------------------------------------------------------------------


@dataclass
class Service:
    """Our side: the service in this process, and what its tasks answered."""

    session: aiohttp.ClientSession
    base: str
    data_dir: Path
    pinning: Pinning
    seen: set[str] = field(default_factory=set)

    async def task(self, path: str, body: Any) -> tuple[float, dict[str, Any]]:
        """POST an operation and follow its event stream (as the page and the CLI do) to its
        end event: the wall time from the POST to the client seeing SUCCESS, and the task's
        result. (Polling the status every 20 ms instead, in this process, on the same CPUs,
        costs about 0.1 s of CPU a job: no client of a real service polls on its worker's
        cores.)"""
        started = time.perf_counter()
        async with self.session.post(f"{self.base}{path}", json=body) as resp:
            answer = await resp.json()
            assert resp.status == 202, answer
        task_id = answer["task_id"]
        # A repeated submission while the first runs would be answered with that task: never
        # time a task twice.
        assert task_id not in self.seen, "the service answered with an earlier task"
        self.seen.add(task_id)
        url = f"{self.base}/api/task-status/{task_id}/events"
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as stream:
            while events := await read_events(stream, limit=1):
                if events[0].event == "end":
                    took = time.perf_counter() - started
                    status = json.loads(events[0].data)
                    assert status["state"] == "SUCCESS", status
                    return took, dict(status["result"])
        raise RuntimeError(f"the event stream of task {task_id} closed before its end event")

    def check_threads(self, result: dict[str, Any]) -> None:
        """Our output (if the task wrote one) was encoded with the pinned x264 thread count."""
        if "output_file" not in result:
            return
        _, threads = x264_build(self.data_dir / result["output_file"])
        if threads != self.pinning.encode_threads:
            raise RuntimeError(f"ours encoded with {threads} x264 threads, the references with "
                               f"{self.pinning.encode_threads}")  # fmt: skip


def ffmpeg_run(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)
    return time.perf_counter() - started


def x264_args(pinning: Pinning) -> list[str]:
    settings = Settings()
    return [
        "-c:v", "libx264", "-preset", settings.x264_preset, "-crf", str(settings.x264_crf),
        "-pix_fmt", "yuv420p", "-threads", str(pinning.encode_threads),
    ]  # fmt: skip


def ffmpeg_encode(
    pinning: Pinning, src: Path, dst: Path, filters: Sequence[str], overlay: Path | None = None
) -> tuple[str, Timed]:
    """The ffmpeg command line doing the work: decoder and encoder threads pinned, filters in
    one thread (our mask runs in one thread too); its text and its timed run."""
    args = ["-filter_threads", "1", "-filter_complex_threads", "1"]
    args += ["-threads", str(pinning.decode_threads), "-i", str(src)]
    if overlay is not None:
        args += ["-i", str(overlay), "-filter_complex", *filters]
    elif filters:
        args += ["-vf", *filters]
    args += [*x264_args(pinning), "-an", str(dst)]
    shown = " ".join(a if " " not in a else f"'{a}'" for a in args)
    shown = shown.replace(str(src), "SRC").replace(str(dst), "OUT")
    if overlay is not None:
        shown = shown.replace(str(overlay), "MASK.png")
    return f"ffmpeg {shown}", lambda rep: asyncio.to_thread(ffmpeg_run, *args)


def same_build(
    pinning: Pinning, op: str, src: Path, dst: Path | None, *options: str
) -> tuple[str, Timed]:
    """bench/same_build.py in a process of its own (on the same CPUs); its own wall time."""
    threads = [] if op == "copy" else ["--decode-threads", str(pinning.decode_threads)]
    if op == "transcode":
        threads += ["--encode-threads", str(pinning.encode_threads)]
    paths = [str(src)] if dst is None else [str(src), str(dst)]
    command = [sys.executable, str(SAME_BUILD), op, *paths, *options, *threads]

    def run() -> float:
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        return float(json.loads(done.stdout)["seconds"])

    shown = " ".join(["same_build.py", op, "SRC", *(["OUT"] if dst else []), *options, *threads])
    return shown, lambda rep: asyncio.to_thread(run)


def ffmpeg_decode(pinning: Pinning, src: Path) -> tuple[str, Timed]:
    """The ffmpeg command line decoding the video alone (the analysis case's reference)."""
    args = ["-threads", str(pinning.decode_threads), "-i", str(src), "-f", "null", "-"]
    shown = "ffmpeg " + " ".join(args).replace(str(src), "SRC")
    return shown, lambda rep: asyncio.to_thread(ffmpeg_run, *args)


# --- cases ------------------------------------------------------------------------------------


SMART_NOTE = "whole GOPs copied, the kept frames of cut GOPs re-encoded (see case 10)"


def nothing(result: dict[str, Any]) -> None:
    """No check of the result beyond its success."""


async def bench_clip(
    service: Service, work: Path, label: str, clip: Path, reps: int, only: set[str]
) -> list[Case]:
    """Cases 1-4 on one clip."""
    pinning = service.pinning
    with av.open(str(clip)) as probe:
        stream = probe.streams.video[0]
        w, h, frames = stream.width, stream.height, stream.frames
        assert not probe.streams.audio, "the references are video only"
    roi = scaled_roi(w, h)
    video_id = await upload(service.session, service.base, clip)
    cli_out, same_out = work / f"ffmpeg-{label}.mp4", work / f"same-{label}.mp4"
    crop = f"crop={roi.width}:{roi.height}:{roi.x}:{roi.y},pad={w}:{h}:{roi.x}:{roi.y}:black"
    overlay = ellipse_overlay(work / f"ellipse-{label}.png", w, h, roi)
    roi_arg = f"{roi.x},{roi.y},{roi.width},{roi.height}"
    cuts = tuple((a * frames // 500, b * frames // 500) for a, b in CUTS)
    print(f"{label} ({w}x{h}, {frames} frames):", flush=True)
    mask_body = {
        "mask_type": "custom",
        "roi": roi.to_dict(),
    }
    cases: list[Case] = []
    last: dict[str, Any] = {}

    def ours(path: str, body: dict[str, Any], check: Callable[[dict[str, Any]], None]) -> Timed:
        async def run(rep: int) -> float:
            took, result = await service.task(f"/api/{path}/{video_id}/", body)
            check(result)
            last.update(result)
            if rep == 0 and not result.get("frames_copied"):  # copied GOPs keep their SEI
                service.check_threads(result)
            return took

        return run

    def same_frames(case: Case) -> Case:
        """Every side wrote the same number of frames (the same cut), and the references with
        the pinned x264 thread count, or the case is void."""
        counts = {"ours": int(last["frames"])}
        for kind, path in (("ffmpeg-cli", cli_out), ("same-build", same_out)):
            with av.open(str(path)) as written:
                counts[kind] = written.streams.video[0].frames
            _, threads = x264_build(path)
            assert threads == pinning.encode_threads, f"{case.name}: {kind} used {threads}"
        assert len(set(counts.values())) == 1, f"{case.name}: frames written {counts}"
        return case

    def removed(expected: Ranges) -> Callable[[dict[str, Any]], None]:
        def check(result: dict[str, Any]) -> None:
            assert frame_ranges(result["removed_ranges"]) == expected, result["removed_ranges"]

        return check

    if "1" in only:
        for shape in ("rect", "ellipse"):
            filters = [crop] if shape == "rect" else ["[0:v][1:v]overlay=0:0"]
            cases.append(
                same_frames(
                    await compare(
                        "1",
                        f"1. mask {shape} {label}",
                        reps,
                        ours("video-apply-mask", {**mask_body, "shape": shape}, nothing),
                        [
                            (
                                "ffmpeg-cli",
                                *ffmpeg_encode(
                                    pinning,
                                    clip,
                                    cli_out,
                                    filters,
                                    (overlay if shape == "ellipse" else None),
                                ),
                                1.0,
                            ),
                            (
                                "same-build",
                                *same_build(
                                    pinning,
                                    "transcode",
                                    clip,
                                    same_out,
                                    "--roi",
                                    roi_arg,
                                    "--shape",
                                    shape,
                                ),
                                1.0,
                            ),
                        ],
                    )
                )
            )
    if "2" in only:
        cut = [f"select='not({select_expr(cuts)})',setpts=N/FRAME_RATE/TB"]
        for mode in ("reencode", "smart"):
            body = {"frame_ranges": ranges_text(cuts), "mode": mode}
            cases.append(
                same_frames(
                    await compare(
                        "2",
                        f"2. remove frames {label}, mode {mode}"
                        + (" (the default)" if mode == "smart" else ""),
                        reps,
                        ours("video-remove-frames", body, removed(cuts)),
                        [
                            ("ffmpeg-cli", *ffmpeg_encode(pinning, clip, cli_out, cut), 1.0),
                            (
                                "same-build",
                                *same_build(
                                    pinning,
                                    "transcode",
                                    clip,
                                    same_out,
                                    "--remove",
                                    ranges_text(cuts),
                                ),
                                1.0,
                            ),
                        ],
                        note=SMART_NOTE if mode == "smart" else "",
                    )
                )
            )
    if "3" in only:
        cases.append(
            await compare(
                "3",
                f"3. analysis {label}",
                reps,
                ours("video-analyze", {"sample_every": 1}, nothing),
                [
                    ("ffmpeg-cli", *ffmpeg_decode(pinning, clip), 1.3),
                    ("same-build", *same_build(pinning, "decode", clip, None), 1.3),
                ],
                note="the references only decode",
            )
        )
    if "4" in only:
        # The frames the analysis flags, learnt once (an untimed run), cut by every side.
        _, first = await service.task(f"/api/video-reprocess/{video_id}/", mask_body)
        flagged = frame_ranges(first["removed_ranges"])
        cut_and_mask = [f"select='not({select_expr(flagged)})',setpts=N/FRAME_RATE/TB,{crop}"]
        share = sum(b - a + 1 for a, b in flagged) / frames
        cases.append(
            same_frames(
                await compare(
                    "4",
                    f"4. reprocess {label}",
                    reps,
                    ours("video-reprocess", mask_body, removed(flagged)),
                    [
                        ("ffmpeg-cli", *ffmpeg_encode(pinning, clip, cli_out, cut_and_mask), 1.1),
                        (
                            "same-build",
                            *same_build(
                                pinning,
                                "transcode",
                                clip,
                                same_out,
                                "--roi",
                                roi_arg,
                                "--remove",
                                ranges_text(flagged),
                            ),
                            1.1,
                        ),
                    ],
                    note=(
                        f"every side cuts the {100 * share:.0f}% of frames the analysis flags "
                        f"({ranges_text(flagged)}); the references neither analyse nor check"
                    ),
                )
            )
        )
    return cases


async def bench_concurrency(service: Service, clip: Path, roi: Roi, reps: int) -> Case:
    """Case 8: four masks at once against the same four in sequence."""
    session, base = service.session, service.base
    videos = [await upload(session, base, clip) for _ in range(4)]
    body = {
        "mask_type": "custom",
        "roi": roi.to_dict(),
    }

    async def at_once(rep: int) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(service.task(f"/api/video-apply-mask/{v}/", body) for v in videos))
        return time.perf_counter() - started

    async def in_sequence(rep: int) -> float:
        started = time.perf_counter()
        for v in videos:
            await service.task(f"/api/video-apply-mask/{v}/", body)
        return time.perf_counter() - started

    return await compare(
        "8",
        "8. four masks at once vs in sequence",
        reps,
        at_once,
        [("service-sequential", "the same four masks, one after the other", in_sequence, 1.1)],
    )


async def bench_overhead(
    service: Service, work: Path, clip: Path, roi: Roi, reps: int, target: float
) -> list[Case]:
    """Case 9: the mask job (wall clock, POST to SUCCESS seen by the client) against its frame
    loop alone (write_checked, the edit and its check, called directly) on the same clip: what
    the service around it costs. Plus what the check costs: write_checked against edit_video
    alone (informational: the check is not optional)."""
    video_id = await upload(service.session, service.base, clip)
    plan = EditPlan(roi=roi, shape="rect")
    body = {
        "mask_type": "custom",
        "roi": roi.to_dict(),
    }

    async def job(rep: int) -> float:
        took, _ = await service.task(f"/api/video-apply-mask/{video_id}/", body)
        return took

    def checked() -> float:
        started = time.perf_counter()
        write_checked(clip, work / "checked.mp4", plan, encode=EncodeOptions())
        return time.perf_counter() - started

    def bare() -> float:
        started = time.perf_counter()
        edit_video(clip, work / "bare.mp4", plan, encode=EncodeOptions())
        return time.perf_counter() - started

    async def checked_async(rep: int) -> float:
        return await asyncio.to_thread(checked)

    return [
        await compare(
            "9",
            "9. mask job vs its frame loop alone",
            reps,
            job,
            [("frame-loop", "write_checked() called directly", checked_async, target)],
        ),
        await compare(
            "9",
            "9. (the check's cost) edit and check vs edit alone",
            reps,
            checked_async,
            [
                (
                    "frame-loop-unchecked",
                    "edit_video() called directly",
                    lambda rep: asyncio.to_thread(bare),
                    None,
                )
            ],
            note=(
                "informational: decoding every output frame alongside the encode, on a machine "
                "whose cores the encoder already keeps busy"
            ),
        ),
    ]


async def bench_smart(service: Service, work: Path, clip: Path, reps: int, target: float) -> Case:
    """Case 10: smart removal (three cuts) against the `-c copy` floor (ffmpeg's concat
    demuxer with in/out points; PyAV copying whole GOPs) and against the full re-encode."""
    with av.open(str(clip)) as probe:
        vin = probe.streams.video[0]
        frames, rate = vin.frames, vin.average_rate or Fraction(25)
        keyframes = sum(1 for p in probe.demux(vin) if p.is_keyframe)
    video_id = await upload(service.session, service.base, clip)
    cuts = tuple((a * frames // 500, b * frames // 500) for a, b in CUTS)
    kept: list[tuple[int, int]] = []
    start = 0
    for a, b in cuts:
        kept.append((start, a - 1))
        start = b + 1
    kept.append((start, frames - 1))
    listing = work / "concat.txt"
    listing.write_text(
        "ffconcat version 1.0\n"
        + "".join(
            f"file '{clip}'\ninpoint {float(a / rate):.6f}\noutpoint {float((b + 1) / rate):.6f}\n"
            for a, b in kept
        )
    )
    out = work / "copy.mp4"
    path = f"/api/video-remove-frames/{video_id}/"
    shares: list[str] = []

    async def smart(rep: int) -> float:
        took, result = await service.task(
            path, {"frame_ranges": ranges_text(cuts), "mode": "smart"}
        )
        assert frame_ranges(result["removed_ranges"]) == cuts, result
        shares.append(
            f"{result['frames_copied']} of {result['frames']} frames copied "
            f"({100 * result['frames_copied'] / result['frames']:.1f} %)"
            + ("" if result["mode"] == "smart" else f"; {result['mode_reason']}")
        )
        return took

    async def reencode(rep: int) -> float:
        took, _ = await service.task(path, {"frame_ranges": ranges_text(cuts), "mode": "reencode"})
        return took

    size_mb = (await asyncio.to_thread(clip.stat)).st_size / 1e6
    case = await compare(
        "10",
        f"10. smart remove, {frames} frames",
        reps,
        smart,
        [
            (
                "ffmpeg-cli",
                "ffmpeg -f concat -safe 0 -i LIST -c copy OUT (LIST: the kept spans "
                "as inpoint/outpoint of SRC)",
                lambda rep: asyncio.to_thread(
                    ffmpeg_run,
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    str(listing),
                    "-c",
                    "copy",
                    str(out),
                ),
                None,
            ),
            (
                "same-build",
                *same_build(service.pinning, "copy", clip, out, "--remove", ranges_text(cuts)),
                None,
            ),
            ("service-reencode", "the service's own mode reencode", reencode, target),
        ],
    )
    case.note = (
        f"{size_mb:.0f} MB source, {keyframes} GOPs of irregular length, B-frames; 3 cuts; "
        f"{shares[-1]}. The -c copy references are a floor, not the same work: they re-encode "
        "nothing and are not frame-exact (each kept span starts at the keyframe before it, so "
        "removed frames stay in); the target applies to the full re-encode"
    )
    return case


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def api_round(
    session: aiohttp.ClientSession, base: str, video_id: int, rnd: int
) -> dict[str, list[float]]:
    """One round of case 5: 100 submitters back to back (5 POSTs each), 100 submitters paced at
    200 POSTs/s in all for 5 s, then status GETs at 200/s for 5 s. Latencies in ms."""
    submit: list[float] = []
    task_ids: list[str] = []

    async def submitter(n: int) -> None:
        for k in range(5):
            roi = {"x": n, "y": k, "width": 64 + rnd, "height": 64}
            body = {"mask_type": "custom", "roi": roi}
            started = time.perf_counter()
            async with session.post(f"{base}/api/video-apply-mask/{video_id}/", json=body) as resp:
                task = await resp.json()
                assert resp.status == 202, task
                task_ids.append(task["task_id"])
            submit.append((time.perf_counter() - started) * 1000)

    burst_began = time.perf_counter()
    await asyncio.gather(*(submitter(n) for n in range(100)))
    burst_rate = len(submit) / (time.perf_counter() - burst_began)

    # 100 submitters at a steady pace: each posts every 0.5 s (200/s in all) for 5 s.
    paced: list[float] = []

    async def paced_submitter(n: int) -> None:
        phase = random.Random(n).random() * 0.5
        for k in range(10):
            await asyncio.sleep(max(0.0, paced_began + phase + k * 0.5 - time.perf_counter()))
            roi = {"x": n, "y": 8 + k, "width": 64 + rnd, "height": 64}
            started = time.perf_counter()
            async with session.post(
                f"{base}/api/video-apply-mask/{video_id}/", json={"mask_type": "custom", "roi": roi}
            ) as resp:
                await resp.read()
                assert resp.status == 202
            paced.append((time.perf_counter() - started) * 1000)

    paced_began = time.perf_counter()
    await asyncio.gather(*(paced_submitter(n) for n in range(100)))
    status_url = f"{base}/api/task-status/{task_ids[-1]}/"
    gets: list[float] = []

    async def get_once() -> None:
        started = time.perf_counter()
        async with session.get(status_url) as resp:
            await resp.read()
            assert resp.status == 200
        gets.append((time.perf_counter() - started) * 1000)

    pending = []
    began = time.perf_counter()
    for i in range(1000):  # 200 per second for 5 s
        await asyncio.sleep(max(0.0, began + i / 200 - time.perf_counter()))
        pending.append(asyncio.create_task(get_once()))
    await asyncio.gather(*pending)
    rate = len(gets) / (time.perf_counter() - began)
    return {"burst": submit, "paced": paced, "gets": gets, "rates": [burst_rate, rate]}


async def bench_api(work: Path, clip: Path, reps: int) -> list[Case]:
    """Case 5: the API alone (a server process with REDIS_URL, no worker, so jobs only queue):
    POST-to-202 latency with 100 concurrent submitters, status GETs paced at 200 per second;
    ``reps`` rounds, each giving its p99s."""
    rounds = []
    async with (
        service_process(work, "api", VIDCORRECT_MAX_QUEUED="100000") as (base, _, _pid),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        video_id = await upload(session, base, clip)
        for rnd in range(reps):
            rounds.append(await api_round(session, base, video_id, rnd))
    p99 = {k: [pct(r[k], 0.99) for r in rounds] for k in ("burst", "paced", "gets")}
    p50 = {k: statistics.median(pct(r[k], 0.5) for r in rounds) for k in ("burst", "paced", "gets")}
    burst_rate = statistics.median(r["rates"][0] for r in rounds)
    get_rate = statistics.median(r["rates"][1] for r in rounds)
    print(f"  5. p99 ms: paced {p99['paced']}, back to back {p99['burst']}, GET {p99['gets']}",
          flush=True)  # fmt: skip
    back_to_back = statistics.median(p99["burst"])
    return [
        Case(
            "5",
            "5. POST-to-202 p99, 100 submitters at 200/s in all (ms)",
            "ms",
            p99["paced"],
            limit=20.0,
            note=f"median p50 {p50['paced']:.1f} ms; 1000 submissions per round, each "
            "submitter posting every 0.5 s",
        ),
        Case(
            "5",
            "5. POST-to-202 p99, 100 submitters back to back (ms)",
            "ms",
            p99["burst"],
            limit=20.0,
            note=(
                f"median p50 {p50['burst']:.1f} ms; {burst_rate:.0f} submissions/s served: "
                "each submission waits behind the 99 others in flight, so its latency is about "
                "100 / that rate"
                + (
                    ". The 20 ms target is missed under this load (the row above is the steady "
                    "200/s one); the looser 200 ms it was once measured against is "
                    + ("met" if back_to_back <= 200.0 else "missed too")
                    if back_to_back > 20.0
                    else ""
                )
            ),
        ),
        Case(
            "5",
            "5. status GET p99 at 200/s (ms)",
            "ms",
            p99["gets"],
            limit=20.0,
            note=f"median p50 {p50['gets']:.1f} ms, {get_rate:.0f} requests/s served",
        ),
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fanout_round(
    work: Path, clip: Path, clients: int, rnd: int
) -> tuple[float, float, float, int]:
    """One round of case 6: p95 and p50 delivery latency (ms), server peak RSS (MB), deliveries."""
    latencies: list[float] = []
    peak_rss = 0.0
    async with (
        service_process(work, f"fanout{rnd}") as (base, environ, server_pid),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        video_id = await upload(session, base, clip)
        task_id = await submit_device_mask(session, base, video_id)
        url = f"{base}/api/task-status/{task_id}/events"
        streams = [await session.get(url) for _ in range(clients)]
        for stream in streams:  # everyone has the PENDING event before the job starts
            await read_events(stream, limit=1)
        worker = spawn(environ, "worker")
        try:

            async def watch_rss() -> None:
                nonlocal peak_rss
                while True:
                    peak_rss = max(peak_rss, _rss_mb(server_pid))
                    await asyncio.sleep(0.2)

            watcher = asyncio.create_task(watch_rss())
            await asyncio.gather(*(follow_latencies(stream, latencies) for stream in streams))
            watcher.cancel()
        finally:
            worker.terminate()
            worker.wait(10)
    return pct(latencies, 0.95), pct(latencies, 0.5), peak_rss, len(latencies)


async def bench_fanout(work: Path, clip: Path, reps: int, clients: int = 500) -> Case:
    """Case 6: ``clients`` SSE clients on one server process following a job that a worker
    process runs; delivery latency from the worker's write (the event's Redis stream id is the
    Redis clock at that moment) to each client, and the server's RSS; ``reps`` rounds."""
    rounds = [await fanout_round(work, clip, clients, rnd) for rnd in range(reps)]
    p95s = [r[0] for r in rounds]
    print(f"  6. {clients} SSE clients: p95 {[round(v) for v in p95s]} ms", flush=True)
    return Case(
        "6",
        f"6. SSE delivery p95, {clients} clients (ms)",
        "ms",
        p95s,
        limit=1000.0,
        note=(
            f"median p50 {statistics.median(r[1] for r in rounds):.0f} ms over "
            f"{rounds[0][3]} deliveries a round; server peak RSS "
            f"{max(r[2] for r in rounds):.0f} MB"
        ),
    )


async def upload_round(work: Path, clip: Path, size: int, rnd: int) -> tuple[float, float, float]:
    """One round of case 7, server side: RSS before and at peak (MB), and the upload's time."""
    head = await asyncio.to_thread(clip.read_bytes)
    chunk = bytes(1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        yield head
        sent = len(head)
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            sent += len(part)
            yield part

    async with (
        service_process(work, f"upload{rnd}") as (base, _, pid),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session,
    ):
        baseline = peak = _rss_mb(pid)

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, _rss_mb(pid))
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        async with session.post(
            f"{base}/api/videos/?filename=upload.mp4",
            data=body(),
            headers={"Content-Type": "video/mp4"},
        ) as resp:
            answer = await resp.json()
            assert resp.status == 201, answer
        took = time.perf_counter() - started
        watcher.cancel()
    shutil.rmtree(work / f"upload{rnd}", ignore_errors=True)
    return baseline, peak, took


async def bench_upload_memory(work: Path, clip: Path, reps: int, size: int = 2 * 1024**3) -> Case:
    """Case 7, server side: the server's RSS growth while a ``size`` byte upload streams in (a
    real clip followed by padding, a raw video/mp4 body in 1 MiB chunks); ``reps`` rounds."""
    rounds = [await upload_round(work, clip, size, rnd) for rnd in range(reps)]
    growth = [peak - base for base, peak, _ in rounds]
    print(f"  7. {size / 1024**3:.0f} GiB upload: RSS growth {[round(g, 1) for g in growth]} MB",
          flush=True)  # fmt: skip
    return Case(
        "7",
        f"7. server RSS growth during a {size / 1024**3:.0f} GiB upload (MB)",
        "MB",
        growth,
        limit=50.0,
        note=(
            f"RSS before {statistics.median(b for b, _, _ in rounds):.0f} MB; "
            f"{statistics.median(size / t / 1024**2 for _, _, t in rounds):.0f} MiB/s"
        ),
    )


def peak_rss_mb(script: str) -> float:
    """Peak RSS of a fresh Python process running ``script`` (MB), as that process's kernel
    record has it (VmHWM). Not getrusage: RUSAGE_CHILDREN gives the largest child so far, and a
    process's own ru_maxrss survives exec, so it starts at the forking harness's size."""
    report = (
        "\nfrom pathlib import Path as _P; print(next(line.split()[1] for line in "
        "_P('/proc/self/status').read_text().splitlines() if line.startswith('VmHWM:')))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script + report],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return int(ran.stdout.split()[-1]) / 1024


def bench_memory(work: Path, short: Path) -> Case:
    """Case 7: the worker's frame loop (the edit and its check, as a mask job runs them) on a
    5 min clip against a 20 s one (peak RSS, MB; once: it is not a timing)."""
    long_clip = make_video(work / "long.mp4", width=1920, height=1080, seconds=300)
    script = (
        "from pathlib import Path; from jobs.video import EditPlan, Roi; "
        "from jobs.video.checked import write_checked; "
        "write_checked(Path({!r}), Path({!r}), EditPlan(roi=Roi(550, 0, 1350, 1080)))"
    )
    short_mb = peak_rss_mb(script.format(str(short), str(work / "m1.mp4")))
    long_mb = peak_rss_mb(script.format(str(long_clip), str(work / "m2.mp4")))
    case = Case(
        "7",
        "7. peak RSS, 5 min vs 20 s 1080p (MB)",
        "MB",
        [long_mb],
        [Reference("short-clip", [short_mb], "the same frame loop on the 20 s clip", 1.1)],
        note="one run each (a peak, not a timing); also at most 400 MB",
    )
    if long_mb > 400:
        case.limit = 400.0
    return case


# --- the run ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, pinning_out: list[Pinning]) -> list[Case]:
    quick = args.quick
    reps = args.reps if args.reps is not None else 5
    only: set[str] = set(args.only.split(",")) if args.only else {
        str(n) for n in range(1, 11)
    }  # fmt: skip
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="vidcorrect-harness-") as tmp:
        work = Path(tmp)
        if quick:
            clips = {"240p25": recording(work / "q.mp4", 320, 240, 25, 4.0)}
        else:
            clips = {
                "1080p25": recording(work / "1080p25.mp4", 1920, 1080, 25, args.seconds),
                "720p50": recording(work / "720p50.mp4", 1280, 720, 50, args.seconds),
            }
        first = next(iter(clips.values()))
        pinning = resolve_pinning(work, tuple(sorted(os.sched_getaffinity(0))), first)
        pinning_out.append(pinning)
        print(f"pinned: CPUs {pinning.cpus}, decoder threads {pinning.decode_threads}, x264 "
              f"threads {pinning.encode_threads}; {reps} repetitions", flush=True)  # fmt: skip
        with av.open(str(first)) as probe:
            roi = scaled_roi(probe.streams.video[0].width, probe.streams.video[0].height)
        data = work / "data"
        async with running_service(data) as base, aiohttp.ClientSession() as session:
            service = Service(session, base, data, pinning)
            for label, clip in clips.items():
                cases += await bench_clip(service, work, label, clip, reps, only)
            if "8" in only:
                cases.append(await bench_concurrency(service, first, roi, reps))
            if "9" in only:
                cases += await bench_overhead(service, work, first, roi, reps, 1.02)
            if "10" in only:
                smart_clip = (
                    smart_source(work / "smart.mp4", 20.0, 320, 240, gaps=(0.3, 1.5))
                    if quick
                    else smart_source(work / "smart.mp4", args.smart_seconds, 1920, 1080,
                                      gaps=(0.5, 6.0))
                )  # fmt: skip
                cases.append(await bench_smart(service, work, smart_clip, reps, 0.05))
        if not quick:
            if "5" in only:
                cases += await bench_api(work, first, reps)
            if "6" in only:
                cases.append(await bench_fanout(work, first, reps))
            if "7" in only:
                cases.append(await bench_upload_memory(work, first, reps))
            if args.long and "7" in only:
                cases.append(bench_memory(work, first))
    return cases


@dataclass
class Gate:
    """The quick run's verdict: each gated case's ratio / its usual ratio, their geometric
    mean, and what failed."""

    scores: dict[str, float]
    mean: float
    failures: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "usual": {n: {"reference_kind": k, "ratio": v} for n, (k, v) in QUICK_GATES.items()},
            "case_limit": CASE_LIMIT,
            "mean_limit": MEAN_LIMIT,
            "scores": self.scores,
            "mean": self.mean,
            "passed": not self.failures,
            "failures": self.failures,
        }


def gate(cases: list[Case]) -> Gate:
    """Score every gated case (its ratio against its gated reference, the median of the
    repetitions' ratios, over its usual ratio): a case fails past CASE_LIMIT, the run past
    MEAN_LIMIT for the geometric mean of the scores."""
    scores: dict[str, float] = {}
    failures = []
    for case in cases:
        if case.number not in QUICK_GATES:
            continue
        kind, usual = QUICK_GATES[case.number]
        ref = case.reference(kind)
        assert ref is not None, f"{case.name} has no {kind} reference to gate on"
        ratio = case.paired_ratio(ref)
        scores[case.name] = ratio / usual
        if ratio > CASE_LIMIT * usual:
            failures.append(
                f"{case.name}: ours / {kind} = {ratio:.2f} (median of the repetitions' ratios) "
                f"> {CASE_LIMIT:g} x its usual {usual:g}"
            )
    mean = math.exp(statistics.fmean(math.log(v) for v in scores.values())) if scores else 1.0
    if mean > MEAN_LIMIT:
        failures.append(
            f"all gated cases: geometric mean of ratio / usual ratio = {mean:.2f} > {MEAN_LIMIT:g}"
        )
    return Gate(scores, mean, failures)


def fmt(value: float, unit: str) -> str:
    return f"{value:.2f}" if unit == "s" else f"{value:.1f}"


def spread(runs: Sequence[float], unit: str) -> str:
    if len(runs) == 1:
        return fmt(runs[0], unit)
    s = summary(runs)
    return f"{fmt(s['median'], unit)} ({fmt(s['min'], unit)}-{fmt(s['max'], unit)})"


def markdown(cases: list[Case], header: str) -> str:
    """The table (one row per case and reference), ready for the README."""
    lines = [
        header,
        "",
        "| case | ours: median (min-max) | reference | reference: median (min-max) | ratio "
        "| target | met |",
        "|---|---|---|---|---|---|---|",
    ]

    def verdict(met: bool | None) -> str:
        return "-" if met is None else ("yes" if met else "**no**")

    for case in cases:
        ours = spread(case.ours, case.unit)
        name = f"{case.name}" + ("" if case.unit != "s" else " (s)")
        if not case.references:
            lines.append(f"| {name} | {ours} | target | - | - | <= {case.limit:g} {case.unit} "
                         f"| {verdict(case.met)} |")  # fmt: skip
        for i, ref in enumerate(case.references):
            target = "-" if ref.target is None else f"<= {ref.target:.2f}"
            lines.append(
                f"| {name if i == 0 else ''} | {ours if i == 0 else ''} | {ref.kind} | "
                f"{spread(ref.runs, case.unit)} | {case.ratio(ref):.2f} | {target} | "
                f"{verdict(case.ref_met(ref))} |"
            )
    notes = [f"- {c.name}: {c.note}" for c in cases if c.note]
    commands: dict[str, str] = {}
    for case in cases:
        for ref in case.references:
            if ref.kind in ("ffmpeg-cli", "same-build"):
                commands.setdefault(f"case {case.number}, {ref.kind}", ref.command)
    lines += ["", *notes]
    if commands:
        lines += ["", "References as run (the first of each case; paths as SRC, OUT):", ""]
        lines += [f"- {k}: `{v}`" for k, v in commands.items()]
    return "\n".join(lines) + "\n"


def environment(pinning: Pinning, reps: int, quick: bool) -> dict[str, Any]:
    ffmpeg_version = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0].split(" Copyright")[0]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "x.mp4"
        ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=0.2",
                   "-c:v", "libx264", str(probe))  # fmt: skip
        cli_x264, _ = x264_build(probe)
        edit_video(probe, Path(tmp) / "y.mp4", EditPlan(), encode=EncodeOptions())
        pyav_x264, _ = x264_build(Path(tmp) / "y.mp4")
    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cpus": list(pinning.cpus),
        "decode_threads": pinning.decode_threads,
        "encode_threads": pinning.encode_threads,
        "ffmpeg_cli": f"{ffmpeg_version}, x264 {cli_x264}",
        "same_build": f"PyAV {av.__version__}, libavcodec {libavcodec}, x264 {pyav_x264}",
        "reps": reps,
        "quick": quick,
        "inject_delay_factor": inject_factor(),
    }


def write_report(
    cases: list[Case], env: dict[str, Any], verdict: Gate | None, json_path: Path
) -> str:
    header = (
        f"Measured {env['when']} on {env['machine']} with {env['cores']} cores"
        f"{' (quick smoke run)' if env['quick'] else ''}, {env['reps']} repetitions, the sides "
        f"alternating. Pinned: everything on CPUs {','.join(map(str, env['cpus']))}; "
        f"{env['decode_threads']} decoder and {env['encode_threads']} x264 threads on every "
        "side (ours: libavcodec's and x264's auto on those CPUs, checked in each output's SEI; "
        f"the references: explicit). ffmpeg-cli: {env['ffmpeg_cli']}. same-build: "
        f"{env['same_build']} (the libraries the service runs)."
    )
    text = markdown(cases, header)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.md").write_text(text)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(
        json.dumps(
            {
                "environment": env,
                "cases": [c.to_json() for c in cases],
                "gate": None if verdict is None else verdict.to_json(),
            },
            indent=2,
        )
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description="vidcorrect performance harness")
    parser.add_argument("--quick", action="store_true", help="tiny inputs and the gate (CI)")
    parser.add_argument("--long", action="store_true", help="add the 5 min 1080p memory case")
    parser.add_argument("--reps", type=int, help="repetitions per case (default 5)")
    parser.add_argument("--json", type=Path, default=OUT / "results.json", help="results file")
    parser.add_argument("--only", help="case numbers to run, e.g. 1,4,10")
    parser.add_argument("--cpus", help="CPUs to pin every side to, e.g. 0,1 (default: all allowed)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--smart-seconds", type=float, default=600.0, help="length of case 10's 1080p source"
    )
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        parser.error("the reference needs the ffmpeg command line (apt-get install ffmpeg)")
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.cpus:
        # Before any thread or child exists: all inherit it.
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    # The in-process service would log every status poll: keep the figures readable.
    configure_logging("console", "warning")
    pinning: list[Pinning] = []
    cases = asyncio.run(run(args, pinning))
    verdict = gate(cases) if args.quick else None
    env = environment(pinning[0], args.reps or 5, args.quick)
    print(write_report(cases, env, verdict, args.json))
    if verdict is not None:
        scores = ", ".join(f"{v:.2f}" for v in verdict.scores.values())
        print(f"gate: ratio / usual ratio per case {scores}; geometric mean {verdict.mean:.2f}")
        if verdict.failures:
            print("GATE FAILED:", *verdict.failures, sep="\n  ")
            sys.exit(1)
        print(f"gate passed (each at most {CASE_LIMIT:g}, the mean at most {MEAN_LIMIT:g})")


if __name__ == "__main__":
    main()
