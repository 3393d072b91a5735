"""The performance harness: each case and its reference side by side in one run.

    .venv/bin/python bench/harness.py                 # the full run (manual; minutes)
    .venv/bin/python bench/harness.py --quick         # the smoke run CI does (seconds)
    .venv/bin/python bench/harness.py --long          # adds the 5 min 1080p memory case

Inputs are generated: synthetic endoscopy recordings at 1080p25 and 720p50 (tests/scenes.py;
no audio track) and, for the memory case, a 5 min 1080p clip. Every case runs ours
and its reference alternately, ``--repeat`` times, and reports medians and the ratio ours/reference
(wall time). "Ours" goes through the whole service (HTTP POST to SUCCESS, embedded Redis and an
in-process worker, the output's own verification included) unless the case says otherwise. The
reference is the ffmpeg command line doing the same work with the same encoder settings. Results
go to ``bench/out/results.md`` and ``bench/out/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from fractions import Fraction
from functools import partial
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
from jobs.video import EncodeOptions, Roi
from jobs.video.checked import write_checked
from jobs.video.edit import EditPlan, edit_video
from tests.media import make_video
from tests.scenes import Scene, make_scene_video
from tests.sse import read_events

OUT = ROOT / "bench" / "out"
ROI_1080 = Roi(550, 0, 1350, 1080)  # olympus_cv_1500
CUTS = ((100, 149), (250, 259), (400, 424))  # three cuts, frames


@dataclass
class Result:
    case: str
    ours_s: float
    reference_s: float
    ratio: float
    target: float
    met: bool
    ours_runs: list[float]
    reference_runs: list[float]
    note: str = ""


def recording(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """A synthetic endoscopy recording (tests/scenes.py): live image with a text overlay, a
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


def scaled_roi(width: int, height: int) -> Roi:
    sx, sy = Fraction(width, 1920), Fraction(height, 1080)
    x0, y0 = -(-ROI_1080.x * sx // 1), -(-ROI_1080.y * sy // 1)
    x1 = (ROI_1080.x + ROI_1080.width) * sx // 1
    y1 = (ROI_1080.y + ROI_1080.height) * sy // 1
    return Roi(int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def ffmpeg(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)
    return time.perf_counter() - started


X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")


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


def select_expr(cuts: tuple[tuple[int, int], ...]) -> str:
    return "+".join(f"between(n,{a},{b})" for a, b in cuts)


async def service_task(
    session: aiohttp.ClientSession, base: str, path: str, body: Any, poll: float = 0.02
) -> float:
    """POST an operation and wait for SUCCESS, polling its status every ``poll`` seconds; the
    wall time."""
    started = time.perf_counter()
    async with session.post(f"{base}{path}", json=body) as resp:
        answer = await resp.json()
        assert resp.status == 202, answer
    task_id = answer["task_id"]
    while True:
        async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
            status = await resp.json()
        if status["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
            assert status["state"] == "SUCCESS", status
            return time.perf_counter() - started
        await asyncio.sleep(poll)


async def side_by_side(
    name: str,
    target: float,
    repeat: int,
    ours: Callable[[int], Awaitable[float]],
    reference: Callable[[], float],
    note: str = "",
) -> Result:
    ours_runs: list[float] = []
    ref_runs: list[float] = []
    for rep in range(repeat):
        ours_runs.append(await ours(rep))
        ref_runs.append(await asyncio.to_thread(reference))
    ours_s, ref_s = statistics.median(ours_runs), statistics.median(ref_runs)
    ratio = ours_s / ref_s
    print(f"  {name}: ours {ours_s:.2f} s, reference {ref_s:.2f} s, ratio {ratio:.2f}", flush=True)
    return Result(name, ours_s, ref_s, ratio, target, ratio <= target, ours_runs, ref_runs, note)


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
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
    )
    return int(ran.stdout.split()[-1]) / 1024


async def bench_clip(
    session: aiohttp.ClientSession,
    base: str,
    work: Path,
    label: str,
    clip: Path,
    fps: int,
    repeat: int,
) -> list[Result]:
    """Cases 1-4 on one clip."""
    with av.open(str(clip)) as probe:
        stream = probe.streams.video[0]
        w, h, frames = stream.width, stream.height, stream.frames
    roi = scaled_roi(w, h)
    video_id = await upload(session, base, clip)
    out = str(work / f"ref-{label}.mp4")
    crop = f"crop={roi.width}:{roi.height}:{roi.x}:{roi.y},pad={w}:{h}:{roi.x}:{roi.y}:black"
    overlay = ellipse_overlay(work / f"ellipse-{label}.png", w, h, roi)
    cuts = tuple((a * frames // 500, b * frames // 500) for a, b in CUTS)
    expr = select_expr(cuts)
    print(f"{label} ({w}x{h}, {frames} frames, {fps} fps):", flush=True)

    def custom(rep: int, shape: str = "rect") -> dict[str, Any]:
        # A slightly different ROI each time, or the service answers with the earlier task.
        return {
            "mask_type": "custom",
            "shape": shape,
            "roi": {"x": roi.x + rep, "y": roi.y, "width": roi.width - rep, "height": roi.height},
        }

    async def mask_rect(rep: int) -> float:
        return await service_task(session, base, f"/api/video-apply-mask/{video_id}/", custom(rep))

    async def mask_ellipse(rep: int) -> float:
        return await service_task(
            session, base, f"/api/video-apply-mask/{video_id}/", custom(rep, "ellipse")
        )

    async def remove(rep: int, mode: str = "reencode") -> float:
        ranges = ",".join(f"{a}-{b}" for a, b in cuts) + f",{frames - 1 - rep}"
        return await service_task(
            session,
            base,
            f"/api/video-remove-frames/{video_id}/",
            {"frame_ranges": ranges, "mode": mode},
        )

    async def remove_smart(rep: int) -> float:
        return await remove(rep, "smart")

    async def analyze(rep: int) -> float:
        return await service_task(
            session, base, f"/api/video-analyze/{video_id}/", {"sample_every": 1}
        )

    async def reprocess(rep: int) -> float:
        return await service_task(session, base, f"/api/video-reprocess/{video_id}/", custom(rep))

    src = str(clip)
    cut = f"select='not({expr})',setpts=N/FRAME_RATE/TB"
    ffmpeg_cut = partial(ffmpeg, "-i", src, "-vf", cut, *X264, "-c:a", "aac", out)
    return [
        await side_by_side(
            f"1. mask rect {label}",
            1.0,
            repeat,
            mask_rect,
            partial(ffmpeg, "-i", src, "-vf", crop, *X264, "-c:a", "copy", out),
        ),
        await side_by_side(
            f"1. mask ellipse {label}",
            1.0,
            repeat,
            mask_ellipse,
            partial(
                ffmpeg,
                "-i",
                src,
                "-i",
                str(overlay),
                "-filter_complex",
                "[0:v][1:v]overlay=0:0",
                *X264,
                "-c:a",
                "copy",
                out,
            ),
        ),
        await side_by_side(
            f"2. remove frames {label}, mode reencode",
            1.0,
            repeat,
            remove,
            ffmpeg_cut,
            note="the reference cuts video by frame number and keeps all audio",
        ),
        await side_by_side(
            f"2. remove frames {label}, mode smart (the default)",
            1.0,
            repeat,
            remove_smart,
            ffmpeg_cut,
            note="whole GOPs copied, the kept frames of cut GOPs re-encoded (see case 10)",
        ),
        await side_by_side(
            f"3. analysis {label}", 1.3, 1, analyze, partial(ffmpeg, "-i", src, "-f", "null", "-")
        ),
        await side_by_side(
            f"4. reprocess {label}",
            1.1,
            repeat,
            reprocess,
            partial(
                ffmpeg,
                "-i",
                src,
                "-vf",
                f"select='not({expr})',setpts=N/FRAME_RATE/TB,{crop}",
                *X264,
                "-an",
                out,
            ),
            note="the reference is one command that masks and cuts: no analysis, no check",
        ),
    ]


async def bench_concurrency(
    session: aiohttp.ClientSession, base: str, clip: Path, roi: Roi, repeat: int
) -> Result:
    """Case 8: four masks at once against the same four in sequence."""
    videos = [await upload(session, base, clip) for _ in range(4)]

    def body(n: int) -> dict[str, Any]:
        return {
            "mask_type": "custom",
            "roi": {
                "x": roi.x + 10 + n,
                "y": roi.y,
                "width": roi.width - 20 - n,
                "height": roi.height,
            },
        }

    sequence_runs: list[float] = []

    async def at_once_then_in_sequence(rep: int) -> float:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                service_task(session, base, f"/api/video-apply-mask/{v}/", body(2 * rep))
                for v in videos
            )
        )
        took = time.perf_counter() - started
        started = time.perf_counter()
        for v in videos:
            await service_task(session, base, f"/api/video-apply-mask/{v}/", body(2 * rep + 1))
        sequence_runs.append(time.perf_counter() - started)
        return took

    return await side_by_side(
        "8. four masks at once vs in sequence",
        1.1,
        repeat,
        at_once_then_in_sequence,
        lambda: sequence_runs[-1],
    )


async def bench_overhead(
    session: aiohttp.ClientSession,
    base: str,
    work: Path,
    clip: Path,
    roi: Roi,
    repeat: int,
    target: float,
) -> list[Result]:
    """Case 9: the job's processing time against its frame loop alone (the edit and its check,
    write_checked, called directly) on the same clip: what the service around it costs (a
    child process, progress publishing, Redis). Plus what the check itself costs: write_checked
    against edit_video alone (informational: the check is not optional)."""
    video_id = await upload(session, base, clip)
    plan = EditPlan(roi=roi, shape="rect")

    async def job(rep: int) -> float:
        body = {
            "mask_type": "custom",
            "roi": {"x": roi.x + rep, "y": roi.y, "width": roi.width - rep, "height": roi.height},
        }
        # Its own processing_time counts, so a slow poll: the polls' work (in this process,
        # on the cores the job uses) is not the job's.
        await service_task(session, base, f"/api/video-apply-mask/{video_id}/", body, poll=0.5)
        async with session.get(f"{base}/api/tasks/?video_id={video_id}&limit=1") as resp:
            task = (await resp.json())["tasks"][0]
        return float(task["result"]["processing_time"])

    def checked() -> float:
        started = time.perf_counter()
        write_checked(clip, work / "checked.mp4", plan, encode=EncodeOptions())
        return time.perf_counter() - started

    def bare() -> float:
        started = time.perf_counter()
        edit_video(clip, work / "bare.mp4", plan, encode=EncodeOptions())
        return time.perf_counter() - started

    async def checked_async(rep: int) -> float:
        return checked()

    return [
        await side_by_side(
            "9. mask job vs its frame loop alone",
            target,
            repeat,
            job,
            checked,
            note="the frame loop is write_checked: the edit and the output's check, as the job",
        ),
        await side_by_side(
            "9. (the check's cost) edit and check vs edit alone",
            0.0,
            repeat,
            checked_async,
            bare,
            note=(
                "informational: decoding every output frame alongside the encode, on a machine "
                "whose two cores the encoder already keeps busy"
            ),
        ),
    ]


async def bench_api(work: Path, clip: Path) -> list[Result]:
    """Case 5: the API alone (a server process with REDIS_URL, no worker, so jobs only queue):
    POST-to-202 latency with 100 concurrent submitters, status GETs paced at 200 per second."""
    async with (
        service_process(work, "api", VIDCORRECT_MAX_QUEUED="100000") as (base, _, _pid),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        video_id = await upload(session, base, clip)
        submit: list[float] = []
        task_ids: list[str] = []

        async def submitter(n: int) -> None:
            for k in range(5):
                body = {"mask_type": "custom", "roi": {"x": n, "y": k, "width": 64, "height": 64}}
                started = time.perf_counter()
                async with session.post(
                    f"{base}/api/video-apply-mask/{video_id}/", json=body
                ) as resp:
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
                body = {
                    "mask_type": "custom",
                    "roi": {"x": n, "y": 8 + k, "width": 64, "height": 64},
                }
                started = time.perf_counter()
                async with session.post(
                    f"{base}/api/video-apply-mask/{video_id}/", json=body
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

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    p50, p99 = pct(submit, 0.5), pct(submit, 0.99)
    s50, s99 = pct(paced, 0.5), pct(paced, 0.99)
    g50, g99 = pct(gets, 0.5), pct(gets, 0.99)
    print(
        f"  5. submit burst p50 {p50:.1f} ms p99 {p99:.1f} ms ({burst_rate:.0f}/s); paced "
        f"p50 {s50:.1f} ms p99 {s99:.1f} ms; status p50 {g50:.1f} ms p99 {g99:.1f} ms "
        f"at {rate:.0f}/s",
        flush=True,
    )
    return [
        Result(
            "5. POST-to-202 p99, 100 submitters at 200/s in all (ms; ref = 20 ms target)",
            s99,
            20.0,
            s99 / 20.0,
            1.0,
            s99 <= 20.0,
            paced,
            [20.0],
            f"p50 {s50:.1f} ms over {len(paced)} submissions, each submitter posting every 0.5 s",
        ),
        Result(
            "5. POST-to-202 p99, 100 submitters back to back (ms; ref = 200 ms requirement)",
            p99,
            200.0,
            p99 / 200.0,
            1.0,
            p99 <= 200.0,
            submit,
            [200.0],
            f"p50 {p50:.1f} ms over {len(submit)} submissions; {burst_rate:.0f} submissions/s "
            "served, so each waits behind the 99 others in flight (100 / rate)",
        ),
        Result(
            "5. status GET p99 at 200/s (ms; ref = 20 ms)",
            g99,
            20.0,
            g99 / 20.0,
            1.0,
            g99 <= 20.0,
            gets,
            [20.0],
            f"p50 {g50:.1f} ms, {rate:.0f} requests/s served",
        ),
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def bench_fanout(work: Path, clip: Path, clients: int = 500) -> Result:
    """Case 6: ``clients`` SSE clients on one server process following a job that a worker
    process runs; delivery latency from the worker's write (the event's Redis stream id is the
    Redis clock at that moment) to each client, and the server's RSS."""
    latencies: list[float] = []
    peak_rss = 0.0
    async with (
        service_process(work, "fanout") as (base, environ, server_pid),
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
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    p50 = latencies[len(latencies) // 2]
    print(
        f"  6. {clients} SSE clients: p50 {p50:.0f} ms, p95 {p95:.0f} ms, server RSS "
        f"{peak_rss:.0f} MB",
        flush=True,
    )
    return Result(
        f"6. SSE delivery p95, {clients} clients (ms; ref = 1 s target)",
        p95,
        1000.0,
        p95 / 1000.0,
        1.0,
        p95 <= 1000.0,
        latencies[-10:],
        [1000.0],
        f"p50 {p50:.0f} ms over {len(latencies)} deliveries; server peak RSS {peak_rss:.0f} MB",
    )


async def bench_upload_memory(work: Path, clip: Path, size: int = 2 * 1024**3) -> Result:
    """Case 7, server side: the server's RSS while a ``size`` byte upload streams in (a real
    clip followed by padding, sent as a raw video/mp4 body in 1 MiB chunks)."""
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
        service_process(work, "upload") as (base, _, pid),
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
    growth = peak - baseline
    print(
        f"  7. {size / 1024**3:.1f} GiB upload in {took:.1f} s: server RSS {baseline:.0f} -> "
        f"peak {peak:.0f} MB (+{growth:.1f} MB)",
        flush=True,
    )
    return Result(
        f"7. server RSS growth during a {size / 1024**3:.0f} GiB upload (MB; ref = 50 MB target)",
        growth,
        50.0,
        growth / 50.0,
        1.0,
        growth <= 50.0,
        [baseline, peak],
        [50.0],
        f"RSS {baseline:.0f} MB before, peak {peak:.0f} MB; {size / took / 1024**2:.0f} MiB/s",
    )


def bench_memory(work: Path, short: Path) -> Result:
    """Case 7: the worker's frame loop (the edit and its check, as a mask job runs them) on a
    5 min clip against a 20 s one (peak RSS, MB)."""
    long_clip = make_video(work / "long.mp4", width=1920, height=1080, seconds=300)
    script = (
        "from pathlib import Path; from jobs.video import EditPlan, Roi; "
        "from jobs.video.checked import write_checked; "
        "write_checked(Path({!r}), Path({!r}), EditPlan(roi=Roi(550, 0, 1350, 1080)))"
    )
    short_mb = peak_rss_mb(script.format(str(short), str(work / "m1.mp4")))
    long_mb = peak_rss_mb(script.format(str(long_clip), str(work / "m2.mp4")))
    ratio = long_mb / short_mb
    return Result(
        "7. peak RSS, 5 min vs 20 s 1080p (MB)",
        long_mb,
        short_mb,
        ratio,
        1.1,
        ratio <= 1.1 and long_mb <= 400,
        [long_mb],
        [short_mb],
    )


def smart_source(path: Path, seconds: float, width: int, height: int, gop: int = 50) -> Path:
    """H.264 in MP4 made fast by ffmpeg (testsrc2, ultrafast, closed GOPs of ``gop`` frames, 2 s
    by default, B-frames)."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-keyint_min", str(gop),
        "-sc_threshold", "0", "-bf", "2", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


async def bench_smart(
    session: aiohttp.ClientSession, base: str, clip: Path, target: float
) -> Result:
    """Case 10: smart removal against the full re-encode, both through the service, three cuts."""
    with av.open(str(clip)) as probe:
        frames = probe.streams.video[0].frames
    video_id = await upload(session, base, clip)
    cuts = tuple((a * frames // 500, b * frames // 500) for a, b in CUTS)
    ranges = ",".join(f"{a}-{b}" for a, b in cuts)
    path = f"/api/video-remove-frames/{video_id}/"
    shares: list[str] = []

    async def smart(rep: int) -> float:
        started = time.perf_counter()
        async with session.post(
            f"{base}{path}", json={"frame_ranges": ranges, "mode": "smart"}
        ) as resp:
            task_id = (await resp.json())["task_id"]
        while True:
            async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
                status = await resp.json()
            if status["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        result = status["result"]
        assert status["state"] == "SUCCESS", status
        assert result["mode"] == "smart", status
        shares.append(
            f"{result['frames_copied']} of {result['frames']} frames copied "
            f"({100 * result['frames_copied'] / result['frames']:.1f} %)"
        )
        return elapsed

    loop = asyncio.get_running_loop()

    def reencode() -> float:
        body = {"frame_ranges": ranges, "mode": "reencode"}
        future = asyncio.run_coroutine_threadsafe(service_task(session, base, path, body), loop)
        return future.result()

    size_mb = (await asyncio.to_thread(clip.stat)).st_size / 1e6
    result = await side_by_side(
        f"10. smart remove vs full re-encode, {frames} frames",
        target,
        1,
        smart,
        reencode,
    )
    result.note = f"{size_mb:.0f} MB source, 3 cuts; {shares[-1]}; reference = mode reencode"
    return result


async def run(args: argparse.Namespace) -> list[Result]:
    if args.smart_only:
        return await run_smart(args)
    quick = args.quick
    repeat = 1 if quick else args.repeat
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vidcorrect-harness-") as tmp:
        work = Path(tmp)
        if quick:
            clips = {"240p25": (recording(work / "q.mp4", 320, 240, 25, 4.0), 25)}
        else:
            clips = {
                "1080p25": (recording(work / "1080p25.mp4", 1920, 1080, 25, args.seconds), 25),
                "720p50": (recording(work / "720p50.mp4", 1280, 720, 50, args.seconds), 50),
            }
        first = next(iter(clips.values()))[0]
        with av.open(str(first)) as probe:
            roi = scaled_roi(probe.streams.video[0].width, probe.streams.video[0].height)
        async with running_service(work / "data") as base, aiohttp.ClientSession() as session:
            for label, (clip, fps) in clips.items():
                results += await bench_clip(session, base, work, label, clip, fps, repeat)
            results.append(await bench_concurrency(session, base, first, roi, repeat))
            results += await bench_overhead(
                session, base, work, first, roi, repeat, 10.0 if quick else 1.02
            )
            smart_clip = (
                smart_source(work / "smart.mp4", 4.0, 320, 240, gop=10)  # whole GOPs to copy
                if quick
                else smart_source(work / "smart.mp4", args.smart_seconds, 1920, 1080)
            )
            results.append(await bench_smart(session, base, smart_clip, 10.0 if quick else 0.05))
        if not quick:
            results += await bench_api(work, first)
            results.append(await bench_fanout(work, first))
            results.append(await bench_upload_memory(work, first))
        if args.long and not quick:
            results.append(bench_memory(work, first))
    return results


async def run_smart(args: argparse.Namespace) -> list[Result]:
    """Case 10 alone (--smart-only)."""
    with tempfile.TemporaryDirectory(prefix="vidcorrect-harness-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        clip = smart_source(work / "smart.mp4", args.smart_seconds, 1920, 1080)
        print(f"source generated in {time.perf_counter() - started:.0f} s", flush=True)
        async with running_service(work / "data") as base, aiohttp.ClientSession() as session:
            return [await bench_smart(session, base, clip, 0.05)]


def write_report(results: list[Result], quick: bool) -> str:
    OUT.mkdir(exist_ok=True)
    ffmpeg_version = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on {platform.machine()} with {__import__('os').cpu_count()} cores, "
        f"{ffmpeg_version.split(' Copyright')[0]}{' (quick smoke run)' if quick else ''}.",
        "",
        "| case | ours (s) | reference (s) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        target, met = (f"<= {r.target:.2f}", "yes" if r.met else "no") if r.target else ("-", "-")
        times = f"{r.ours_s:.2f} | {r.reference_s:.2f} | {r.ratio:.2f}"
        lines.append(f"| {r.case} | {times} | {target} | {met} |")
    notes = [f"- {r.case}: {r.note}" for r in results if r.note]
    text = "\n".join([*lines, *([""] if notes else []), *notes]) + "\n"
    (OUT / "results.md").write_text(text)
    (OUT / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description="vidcorrect performance harness")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one run: a smoke test")
    parser.add_argument("--long", action="store_true", help="add the 5 min 1080p memory case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--smart-seconds", type=float, default=600.0, help="length of case 10's 1080p source"
    )
    parser.add_argument("--smart-only", action="store_true", help="run case 10 alone")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        parser.error("the reference needs the ffmpeg command line (apt-get install ffmpeg)")
    # The in-process service would log every status poll: keep the figures readable.
    configure_logging("console", "warning")
    print(write_report(asyncio.run(run(args)), args.quick))


if __name__ == "__main__":
    main()
