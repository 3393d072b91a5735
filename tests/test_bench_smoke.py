"""The performance harness's quick run: it reports every case against both references, and its
gate fails when our side gets twice as slow (the full run is manual)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENCODE_CASES = {"1", "2", "3", "4", "10"}
INJECT = "BENCH_INJECT_DELAY_FACTOR"  # read by bench/harness.py only


def quick_run(
    json_path: Path, *args: str, slowdown: str | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != INJECT}
    environ["VIDCORRECT_LOG_LEVEL"] = "warning"
    if slowdown is not None:
        environ[INJECT] = slowdown
    return subprocess.run(
        [sys.executable, "bench/harness.py", "--quick", "--json", str(json_path), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_harness_quick_run_reports_every_case_against_both_references(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = quick_run(out)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["reps"] == 5
    assert env["decode_threads"] >= 1
    assert env["encode_threads"] >= 1
    cases: list[dict[str, Any]] = report["cases"]
    assert [c["case"] for c in cases] == ["1", "1", "2", "2", "3", "4", "8", "9", "9", "10"]
    for case in cases:
        kinds = [r["reference_kind"] for r in case["references"]]
        if case["case"] in ENCODE_CASES:
            assert {"ffmpeg-cli", "same-build"} <= set(kinds), case["name"]
        assert len(case["ours"]["runs"]) == 5
        assert case["ours"]["median"] == statistics.median(case["ours"]["runs"])
        verdicts = []
        for ref in case["references"]:
            assert len(ref["runs"]) == 5
            assert all(t > 0 for t in ref["runs"])
            assert ref["min"] <= ref["median"] <= ref["max"]
            assert ref["ratio"] == case["ours"]["median"] / ref["median"]
            if ref["target"] is None:
                assert ref["met"] is None
            else:
                assert ref["met"] is (ref["ratio"] <= ref["target"])
                verdicts.append(ref["met"])
        assert case["met"] is (all(verdicts) if verdicts else None), case["name"]
    # Case 10's target is against the full re-encode; the -c copy floors are informational.
    smart = cases[-1]
    assert [r["reference_kind"] for r in smart["references"]] == [
        "ffmpeg-cli",
        "same-build",
        "service-reencode",
    ]
    assert smart["target"] == 0.05
    assert isinstance(smart["met"], bool)
    gate = report["gate"]
    assert {n: g["reference_kind"] for n, g in gate["usual"].items()} == {
        "1": "same-build",
        "2": "same-build",
        "3": "same-build",
        "4": "same-build",
        "10": "ffmpeg-cli",
    }
    gated = [c["name"] for c in cases if c["case"] in gate["usual"]]
    assert sorted(gate["scores"]) == sorted(gated)
    assert all(score <= gate["case_limit"] for score in gate["scores"].values())
    assert gate["mean"] <= gate["mean_limit"]
    assert gate["passed"] is True
    assert gate["failures"] == []
    assert "| 1. mask rect 240p25 (s) |" in run.stdout
    assert "| same-build |" in run.stdout
    assert "gate passed" in run.stdout


def test_harness_quick_gate_fails_when_our_side_is_twice_as_slow(tmp_path: Path) -> None:
    # The encode cases whose references take a second or less here (cases 1, 2, 4): a 2x
    # slowdown of our side must fail the gate, at least through the mean of their scores.
    out = tmp_path / "results.json"
    run = quick_run(out, "--only", "1,2,4", slowdown="2")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "GATE FAILED" in run.stdout
    report = json.loads(out.read_text())
    assert report["environment"]["inject_delay_factor"] == 2.0
    gate = report["gate"]
    assert gate["passed"] is False
    assert gate["mean"] > gate["mean_limit"]
    assert any(f.startswith("all gated cases") for f in gate["failures"]), gate["failures"]
