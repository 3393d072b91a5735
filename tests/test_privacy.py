"""Uploaded file names are display metadata only: they never reach a log line."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from testkit.media import make_video
from tests.oracle import judge_mask
from tests.served import Served

PATIENT = "Doe_Jane_1961-03-04.mp4"
#: Any of these in a log line would identify the patient.
#: What a leak of the patient's file name looks like in a log (lower case). The birth year alone
#: only as a number of its own: "1961" inside a longer run of digits or hex (a timestamp's
#: microseconds, an id) is not the patient's (it made this test fail now and then).
TELLTALES = tuple(
    re.compile(pattern)
    for pattern in ("doe_jane", "jane", "1961-03-04", r"(?<![0-9a-z])1961(?![0-9])")
)


def leaks(text: str) -> list[str]:
    """The telltales found in `text`."""
    return [t.pattern for t in TELLTALES if t.search(text.lower())]


MALFORMED = [
    f"POST /api/videos/?filename={PATIENT}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    b"GET /api/videos/?filename=Doe Jane 1961-03-04 HTTP/1.1\r\nHost: x\r\n\r\n",
    f"GET /api/videos/ HTTP/1.1\r\nHost: x\r\nX-Name: {PATIENT}\x01\r\n\r\n".encode(),
]


async def _raw_status(port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1])


async def _finish(session: aiohttp.ClientSession, base: str, task_id: str) -> dict[str, Any]:
    for _ in range(600):
        async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
            status: dict[str, Any] = await resp.json()
        if status["state"] in ("SUCCESS", "FAILURE"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end")


async def test_a_patient_file_name_never_appears_in_the_logs(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=320, height=180, seconds=0.6, numbered=True)
    served = Served(tmp_path / "data", {"VIDCORRECT_LOG_LEVEL": "debug"})
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session)
            base = served.base
            form = aiohttp.FormData()
            form.add_field("file", clip.read_bytes(), filename=PATIENT, content_type="video/mp4")
            async with session.post(f"{base}/api/videos/", data=form) as resp:
                assert resp.status == 201
                video = await resp.json()
            assert video["filename"] == PATIENT  # kept, for display
            raw = {"Content-Type": "video/mp4"}
            async with session.post(
                f"{base}/api/videos/?filename={PATIENT}", data=clip.read_bytes(), headers=raw
            ) as resp:
                assert resp.status == 201
                assert (await resp.json())["filename"] == PATIENT
            text = aiohttp.FormData()
            text.add_field("file", b"Patient: Doe, Jane\n1961-03-04\n" * 50, filename=PATIENT)
            async with session.post(f"{base}/api/videos/", data=text) as resp:
                assert resp.status == 415
            async with session.get(f"{base}/api/videos/{video['id']}/") as resp:
                assert (await resp.json())["filename"] == PATIENT
            asked = {"mask_type": "custom", "roi": {"x": 8, "y": 8, "width": 200, "height": 150}}
            async with session.post(
                f"{base}/api/video-apply-mask/{video['id']}/", json=asked
            ) as resp:
                assert resp.status == 202
                task_id = (await resp.json())["task_id"]
            final = await _finish(session, base, task_id)
            assert final["state"] == "SUCCESS", final
            async with session.get(f"{base}/api/task-status/{task_id}/events") as resp:
                assert "event: end" in await resp.text()
            async with session.get(f"{base}{final['result']['output_url']}") as resp:
                assert resp.status == 200
                disposition = resp.headers["Content-Disposition"]
                assert "doe" not in disposition.lower()  # downloads are named by id
                (tmp_path / "out.mp4").write_bytes(await resp.read())
            judge_mask(tmp_path / "out.mp4", clip, asked, numbered=True)
        # Requests aiohttp cannot parse: it answers 400 itself, and its log of them would quote
        # the bytes (the query string, a header value).
        for malformed in MALFORMED:
            assert await _raw_status(served.port, malformed) == 400
    finally:
        assert served.stop() == 0

    lines = served.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    events = {record.get("event") for record in records}
    # The logs did record all of this, by ids:
    assert {"video stored", "request"} <= events, events
    refused = [e for e in events if e.startswith("malformed request refused")]
    assert refused, events
    assert any(r.get("video_id") == video["id"] for r in records)  # a number, as in job lines
    assert any(r.get("task_id") == task_id for r in records)
    for line in lines:
        assert not leaks(line), line


#: Content-Disposition headers aiohttp cannot read; it warned with the header's text, which
#: Python printed to the server's stderr.
UNREADABLE_DISPOSITIONS = [
    'form-data; name="file"; filename=Doe Jane 1961-03-04.mp4',  # unquoted, with spaces
    'form-data; name="file"; filename*=Doe_Jane_1961-03-04.mp4',  # extended, no charset
    'form-data; name="file"; filename="a.mp4"; filename="Doe_Jane_1961-03-04.mp4"',
    "form-data; name=file; filename=Doe_Jane;1961-03-04.mp4",
]


async def test_an_unreadable_content_disposition_never_reaches_the_logs(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=320, height=180, seconds=0.6)
    served = Served(tmp_path / "data", {"VIDCORRECT_LOG_LEVEL": "debug"})
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session)
            for disposition in UNREADABLE_DISPOSITIONS:
                body = (
                    f"--XyZ\r\nContent-Disposition: {disposition}\r\n"
                    "Content-Type: video/mp4\r\n\r\n".encode()
                    + clip.read_bytes()
                    + b"\r\n--XyZ--\r\n"
                )
                async with session.post(
                    f"{served.base}/api/videos/",
                    data=body,
                    headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
                ) as resp:
                    answer = await resp.json()
                    statuses.append(resp.status)
                    if resp.status == 201:  # stored, under a name of the server's
                        assert answer["filename"] == f"video-{answer['id']}.mp4", answer
                    else:
                        assert (resp.status, answer["error"]["code"]) == (400, "missing_file")
    finally:
        assert served.stop() == 0
    assert 201 in statuses, statuses
    output = served.log_path.read_text(encoding="utf-8", errors="replace")
    assert "request" in output  # the log did record the uploads
    assert not leaks(output), output
