"""Small helpers for driving the HTTP API in tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

JsonDict = dict[str, Any]
#: The pytest-aiohttp client of the real app.
Client = TestClient[web.Request, web.Application]
FINISHED = {"SUCCESS", "FAILURE"}


async def upload(client: Client, path: Path, filename: str | None = None) -> JsonDict:
    """Upload a file as multipart/form-data; asserts 201 and returns the video.

    The filename is sent as browsers and curl send it, not percent-encoded."""
    form = aiohttp.FormData(quote_fields=False)
    form.add_field(
        "file", path.read_bytes(), filename=filename or path.name, content_type="video/mp4"
    )
    resp = await client.post("/api/videos/", data=form)
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body)


async def submit_mask(client: Client, video_id: int, body: JsonDict) -> str:
    """Submit a mask; asserts 202 and returns the task id."""
    resp = await client.post(f"/api/video-apply-mask/{video_id}/", json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    assert answer["status"] == "pending"
    return str(answer["task_id"])


#: A mask of one's own that fits a 320x240 clip.
CUSTOM_MASK: JsonDict = {
    "mask_type": "custom",
    "roi": {"x": 40, "y": 20, "width": 200, "height": 180},
}
#: Every operation that writes a video, as (route, body), for a clip of 320x240 and 40 frames
#: or more: a mask, a removal each way, a reprocess with the mask given.
EDITS: dict[str, tuple[str, JsonDict]] = {
    "mask": ("video-apply-mask", CUSTOM_MASK),
    "remove smart": ("video-remove-frames", {"frame_ranges": "30-34", "mode": "smart"}),
    "remove reencode": ("video-remove-frames", {"frame_ranges": "30-34", "mode": "reencode"}),
    "reprocess": ("video-reprocess", {**CUSTOM_MASK, "remove_labels": ["blank"]}),
}


async def run_task(client: Client, route: str, video_id: int, body: JsonDict) -> JsonDict:
    """Submit ``body`` to ``/api/{route}/{video_id}/`` (asserts 202) and follow the task to its
    end; returns its final status."""
    resp = await client.post(f"/api/{route}/{video_id}/", json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    return (await follow_task(client, answer["task_id"]))[-1]


async def follow_task(
    client: Client, task_id: str, timeout: float = 60.0, interval: float = 0.05
) -> list[JsonDict]:
    """Poll the status endpoint until the task ends; returns every status seen, in order."""
    seen: list[JsonDict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/task-status/{task_id}/")
        assert resp.status == 200
        status = dict(await resp.json())
        seen.append(status)
        if status["state"] in FINISHED:
            return seen
        await asyncio.sleep(interval)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s; last: {seen[-1]}")


async def expect_error(resp: aiohttp.ClientResponse, status: int, code: str | None = None) -> str:
    """Assert an error answer's status and shape; returns its message."""
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    if code is not None:
        assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str)
    assert message
    return message


async def download(client: Client, final: JsonDict, dest: Path) -> Path:
    """Download a finished task's output through its output_url (as a client would) to
    `dest`; asserts 200 and returns `dest`."""
    resp = await client.get(final["result"]["output_url"])
    assert resp.status == 200, await resp.text()
    dest.write_bytes(await resp.read())
    return dest
