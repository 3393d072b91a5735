"""No client-supplied path reaches the filesystem: ids only, checked against strict patterns.

Requests are written byte for byte on a socket, so no client library tidies ``..`` or percent
escapes away before the server sees them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

from jobs.settings import Settings
from tests.api import Client, download, follow_task, submit_mask, upload
from tests.oracle import judge_mask

#: What a route's id is replaced with: parent steps, encoded, absolute, NUL, backslashes.
HOSTILE_IDS = [
    "..",
    "../..",
    "1/../../../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fpyproject.toml",
    "%2E%2E%2F%2E%2E%2Fpyproject.toml",
    "..%252f..%252fpyproject.toml",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "1%00",
    "%00../pyproject.toml",
    "1%00.mp4",
    "..\\..\\pyproject.toml",
    "..%5c..%5cpyproject.toml",
    "1;/../../pyproject.toml",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/pyproject.toml",
]
#: Every route that takes an id, with the id's place marked.
ID_ROUTES = [
    ("GET", "/api/videos/{}/"),
    ("GET", "/api/videos/{}/file"),
    ("GET", "/api/videos/{}/frame?n=0"),
    ("POST", "/api/video-apply-mask/{}/"),
    ("POST", "/api/video-remove-frames/{}/"),
    ("POST", "/api/video-analyze/{}/"),
    ("POST", "/api/video-reprocess/{}/"),
    ("GET", "/api/task-status/{}/"),
    ("GET", "/api/task-status/{}/events"),
    ("POST", "/api/task-status/{}/cancel/"),
    ("DELETE", "/api/task-status/{}/"),
    ("GET", "/api/tasks/{}/output"),
]
#: Bytes that must never come back: files outside the data dir, and the stored video.
SECRETS = (b"root:x:0:0", b"[build-system]", b"ftyp", b"\x00\x00\x00")


async def raw_request(port: int, method: str, target: str) -> tuple[int, str, bytes]:
    """Send ``method target`` exactly as given; returns status, content type and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"{}" if method == "POST" else b""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    header_block, _, payload = answer.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers.get("Content-Type", ""), payload


def assert_refused(
    status: int, content_type: str, payload: bytes, what: str, *, json_error: bool = True
) -> None:
    assert status in (400, 404), (what, status, payload[:200])
    for secret in SECRETS:
        assert secret not in payload, (what, payload[:200])
    if json_error:
        assert content_type.startswith("application/json"), (what, content_type)
        error = json.loads(payload)["error"]
        assert set(error) == {"code", "message"}, what


@pytest.fixture
async def done_task(
    client: Client, worker: Worker, settings: Settings, clip_odd: Path
) -> dict[str, Any]:
    """A video (id 1) with a finished mask, so real files sit next to what is attacked."""
    video = await upload(client, clip_odd)
    asked = {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 64, "height": 64}}
    task_id = await submit_mask(client, video["id"], asked)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    judge_mask(await download(client, final, settings.data_dir / "out.mp4"), clip_odd, asked)
    return final


async def test_hostile_ids_never_reach_a_file(client: Client, done_task: dict[str, Any]) -> None:
    port = client.server.port
    assert port is not None
    # The same request with the real ids works: the refusals below are the ids' doing.
    status, _, payload = await raw_request(port, "GET", f"/api/tasks/{done_task['task_id']}/output")
    assert status == 200
    assert b"ftyp" in payload
    checked = 0
    for method, route in ID_ROUTES:
        for hostile in HOSTILE_IDS:
            target = route.format(hostile)
            status, content_type, payload = await raw_request(port, method, target)
            assert_refused(status, content_type, payload, f"{method} {target}")
            checked += 1
    assert checked == len(ID_ROUTES) * len(HOSTILE_IDS)


async def test_static_files_stay_in_the_static_folder(client: Client) -> None:
    port = client.server.port
    assert port is not None
    status, _, payload = await raw_request(port, "GET", "/static/app.js")
    assert status == 200
    assert b"import" in payload
    targets = [f"/static/{hostile}" for hostile in HOSTILE_IDS]
    targets += ["/static/../pyproject.toml", "/static/js/../../pyproject.toml", "/../README.md"]
    for target in targets:
        status, content_type, payload = await raw_request(port, "GET", target)
        # aiohttp's static handler answers a name that is no file with a bare 404.
        assert_refused(status, content_type, payload, target, json_error=False)


@pytest.mark.parametrize(
    "name",
    [
        "../../../../../../tmp/evil.mp4",
        "/etc/cron.d/evil.mp4",
        "..\\..\\evil.mp4",
        "evil\x00.mp4",
        "%2e%2e%2fevil.mp4",
    ],
)
async def test_upload_filenames_are_display_text_only(
    client: Client, settings: Settings, clip_odd: Path, name: str
) -> None:
    resp = await client.post(
        "/api/videos/",
        data=clip_odd.read_bytes(),
        params={"filename": name},
        headers={"Content-Type": "video/mp4"},
    )
    video = await resp.json()
    assert resp.status == 201, video
    assert "/" not in video["filename"]
    assert "\\" not in video["filename"]
    assert "\x00" not in video["filename"]
    root = settings.data_dir
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert files == ["outputs", "tmp", "videos", "videos/1", "videos/1/original.mp4",
                     "videos/1/video.json"]  # fmt: skip
    # Multipart, written by hand: client libraries refuse a NUL in a header.
    boundary = "vidcorrect-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + clip_odd.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    again = await client.post(
        "/api/videos/",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    stored = await again.json()
    if "\x00" in name:  # aiohttp's multipart parser refuses control characters in headers
        assert again.status == 400, stored
        assert stored["error"]["code"] == "invalid_multipart"
        return
    assert again.status == 201, stored
    assert "/" not in stored["filename"]
    assert (settings.data_dir / "videos" / "2" / "original.mp4").is_file()
