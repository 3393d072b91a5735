"""The analysis on the realistic corpus (testkit.realistic): quality per scene and its cost.

    .venv/bin/python bench/corpus.py              # the corpus at 640x360 and the 1080p scene
    .venv/bin/python bench/corpus.py --frames 125 # the cost case's 1080p length (frames)

Prints (and writes to bench/out/corpus.md) two tables:

- per scene: the suggested ROI's IoU with the true live image (pixel masks of the shapes), its
  confidence, the device recognised, text printed over the image found / extra, recall and
  false positives (frames) per label - the README's Detectors table;
- the cost: analyze_video (in this process, no service around it) against the ffmpeg command
  line decoding the same file (``ffmpeg -threads N -i f -f null -``, N the decoder threads
  libavcodec's auto gives here), and where the analysis' time goes on the 1080p recording:
  the decoding thread's CPU, and the analysis thread's CPU by step (cProfile with a per-thread
  CPU clock, enabled in the analysis thread: a profiler enabled in the calling thread would
  not see it).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.video.analyze import analyze_video
from testkit.realistic import (
    TABLE_HEAD,
    RealisticScene,
    Stretch,
    corpus,
    make_realistic_video,
    olympus_1080p,
    olympus_layout,
    score,
)

OUT = Path(__file__).resolve().parent / "out"
#: The analysis' own steps, as cProfile names them (file:function).
STEPS = {
    "copying each frame's samples (FrameSamples.add)": "detectors.py:add",
    "light cells' block sums (detectors.block_sums)": "detectors.py:block_sums",
    "tile statistics (detectors.tile_stats)": "detectors.py:tile_stats",
    "labels (detectors.classify)": "detectors.py:classify",
    "overlay and motion learning (_Learner._learned)": "analyze.py:_learned",
    "live-image light cells (_Learner._lit_cells)": "analyze.py:_lit_cells",
    "ROI fit, regions (end of the video)": "analyze.py:suggested_roi",
}
#: The analysis thread's entry point, as cProfile names it: its whole CPU time.
THREAD_RUN = "analyze.py:_run"


def ffmpeg_decode(path: Path) -> float:
    threads = str(min(16, (os.cpu_count() or 1) + 1))
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-threads", threads, "-i", str(path), "-f", "null", "-"],
        check=True,
    )
    return time.perf_counter() - started


def timed_analysis(path: Path) -> float:
    started = time.perf_counter()
    analyze_video(path)
    return time.perf_counter() - started


def profiled_run(path: Path) -> tuple[float, pstats.Stats]:
    """analyze_video(path) with the analysis thread profiled on its own CPU clock: the calling
    thread's CPU seconds, and the analysis thread's profile."""
    profile = cProfile.Profile(time.thread_time)

    def enable_in_new_thread(*_: object) -> None:
        threading.setprofile(None)
        profile.enable()  # replaces this hook for the rest of the thread's life

    threading.setprofile(enable_in_new_thread)
    started = time.thread_time()
    try:
        analyze_video(path)
    finally:
        threading.setprofile(None)
    caller = time.thread_time() - started
    return caller, pstats.Stats(profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--frames", type=int, default=125, help="frames of the 1080p cost case")
    args = parser.parse_args()
    lines = ["Quality (ROI IoU: pixel masks of the found and the true image):", "", TABLE_HEAD]
    with tempfile.TemporaryDirectory(prefix="vidcorrect-corpus-") as tmp:
        work = Path(tmp)
        for scene in (*corpus(640), olympus_1080p()):
            truth = make_realistic_video(scene, work / f"{scene.name}.mp4")
            result = score(truth, analyze_video(truth.path))
            lines.append(result.row())
            print(result.row(), result.found, flush=True)
        cost = RealisticScene(
            "olympus_1080p_cost",
            olympus_layout(1920),
            (Stretch("live", args.frames, "fast"),),
            seed=8,
        )
        path = make_realistic_video(cost, work / "cost.mp4").path
        ours, ref = [], []
        for _ in range(args.reps):  # alternating
            ours.append(timed_analysis(path))
            ref.append(ffmpeg_decode(path))
        a, d = statistics.median(ours), statistics.median(ref)
        lines += [
            "",
            f"Cost on a 1080p25 Olympus-layout recording of {args.frames} frames, median of "
            f"{args.reps} (alternating):",
            "",
            "| analysis (s) | ffmpeg decode (s) | ratio |",
            "|---|---|---|",
            f"| {a:.2f} ({min(ours):.2f}-{max(ours):.2f}) | {d:.2f} ({min(ref):.2f}-{max(ref):.2f})"
            f" | {a / d:.2f} |",
            "",
            "Where the CPU goes (one profiled run; cProfile with a per-thread CPU clock, "
            "cumulative; profiling slows the Python parts a little):",
            "",
            "| step | CPU s | share of the analysis thread |",
            "|---|---|---|",
        ]
        decode_cpu, thread = profiled_run(path)
        table = thread.stats  # type: ignore[attr-defined]

        def spent(key: str) -> float:
            file, func = key.split(":")
            return sum(
                float(ct)
                for (path_, _, name), (_, _, _, ct, _) in table.items()
                if name == func and path_.endswith(file)
            )

        total = spent(THREAD_RUN)
        for label, key in STEPS.items():
            lines.append(f"| {label} | {spent(key):.2f} | {spent(key) / total:.0%} |")
        lines.append(f"| the analysis thread in all | {total:.2f} | 100% |")
        lines.append(f"| the decoding thread (PyAV's loop, not libavcodec's threads) | "
                     f"{decode_cpu:.2f} | |")  # fmt: skip
    report = "\n".join(lines)
    OUT.mkdir(exist_ok=True)
    (OUT / "corpus.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
