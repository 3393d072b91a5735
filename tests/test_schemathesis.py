"""schemathesis against a served process: no 5xx and no answer its OpenAPI document does not
describe, with the API token set (so every protected operation is also tried without it) and
without.

Bounded for CI: a fixed seed, 10 examples per operation and phase (5 for the open run), one
worker; each run takes about 15-25 s here. Two checks stay off on purpose:
``positive_data_acceptance`` (a schema cannot say that an ROI must fit the video's frame, that
frame numbers must exist in it, or that a cursor must be one the server gave out, so some
schema-valid requests are rightly 400s) and ``use_after_free`` (``DELETE
/api/task-status/{id}/`` cancels a task; its record stays, REVOKED, as the README says).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from testkit.media import make_video
from tests.served import Served

TOKEN = "schemathesis-token-0123456789"
RUN_TIMEOUT = 170.0
EXCLUDED_CHECKS = "positive_data_acceptance,use_after_free"


async def _seed(session: aiohttp.ClientSession, served: Served, clip: Path) -> None:
    """A video (id 1, the document's example) with a finished mask, so the operations on ids
    reach their real work and not only 404s; and video 2, the example of ``DELETE
    /api/videos/{video_id}/``, for it to delete (video 1 stays for the others)."""
    for video_id in (1, 2):
        form = aiohttp.FormData()
        form.add_field("file", clip.read_bytes(), filename="clip.mp4", content_type="video/mp4")
        async with session.post(f"{served.base}/api/videos/", data=form) as resp:
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["id"] == video_id
    roi = {"x": 0, "y": 0, "width": 64, "height": 48}
    async with session.post(
        f"{served.base}/api/video-apply-mask/1/", json={"mask_type": "custom", "roi": roi}
    ) as resp:
        assert resp.status == 202
        task_id = (await resp.json())["task_id"]
    for _ in range(400):
        async with session.get(f"{served.base}/api/task-status/{task_id}/") as resp:
            if (await resp.json())["state"] == "SUCCESS":
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the seed mask did not finish")


async def _schemathesis(served: Served, report: Path, examples: int, headers: list[str]) -> str:
    """Run ``st run`` on the served document; returns its output."""
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{served.base}/api/openapi.json",
        "--max-examples", str(examples), "--seed", "20261128", "--workers", "1",
        "--request-timeout", "10", "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
        "--report", "json", "--report-json-path", str(report),
        *headers,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=report.parent,  # its crash cache goes there, not into the checkout
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"schemathesis ran longer than {RUN_TIMEOUT} s") from None
    return output.decode(errors="replace")


@pytest.mark.parametrize(
    ("token", "examples"), [(TOKEN, 10), (None, 5)], ids=["with-token", "open"]
)
async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    tmp_path: Path, token: str | None, examples: int
) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=160, height=96, seconds=0.4)
    env = {"VIDCORRECT_API_TOKEN": token} if token else {}
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    served = Served(tmp_path / "data", env)
    report = tmp_path / "schemathesis.json"
    try:
        async with aiohttp.ClientSession(headers=auth) as session:
            await served.wait_ready(session)
            await _seed(session, served, clip)
        headers = ["-H", f"Authorization: Bearer {token}"] if token else []
        output = await _schemathesis(served, report, examples, headers)
    finally:
        assert served.stop() == 0

    assert report.is_file(), output
    results: dict[str, Any] = json.loads(report.read_text())
    cases = results["test_cases"]
    print(  # the figures, for the record (pytest -s shows them)
        f"\nschemathesis ({'token' if token else 'open'}): {cases['generated']} cases, "
        f"{len(results['failures'])} failures, {len(results['errors'])} errors, "
        f"{results['operations']['tested']}/{results['operations']['total']} operations, "
        f"{results['running_time']:.1f} s"
    )
    assert results["failures"] == [], output
    assert results["errors"] == [], output
    assert cases["with_failures"] == 0, output
    assert results["exit_code"] == 0, output
    assert results["complete"] is True, output
    assert results["operations"]["tested"] == results["operations"]["total"] >= 19, output
    assert cases["generated"] >= 300, output
    # The server's own log agrees: no request it failed to handle.
    log = served.log_path.read_text(errors="replace")
    assert '"request failed"' not in log
    assert '"status": 5' not in log
    if token:
        assert '"status": 401' in log  # schemathesis tried without the token, and was refused
