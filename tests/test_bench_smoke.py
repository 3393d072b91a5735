"""The performance harness's smoke run, so it never rots (the full run is manual)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_harness_quick_run_reports_every_case() -> None:
    env = {**os.environ, "VIDCORRECT_LOG_LEVEL": "warning"}
    run = subprocess.run(
        [sys.executable, "bench/harness.py", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((ROOT / "bench" / "out" / "results.json").read_text())
    cases = [r["case"].split(" ")[0] for r in results]
    assert cases == ["1.", "1.", "2.", "2.", "3.", "4.", "8.", "9.", "9.", "10."]
    for result in results:
        assert result["ours_s"] > 0
        assert result["reference_s"] > 0
        assert result["ratio"] == result["ours_s"] / result["reference_s"]
    assert "| 1. mask rect 240p25 |" in run.stdout
