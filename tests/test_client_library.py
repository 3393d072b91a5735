"""client.Client, the Python API other applications use, against the real server and worker.

The client is synchronous: each call runs in a thread while the server and the worker run in
the test's event loop, as they would in their own processes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from arq.worker import Worker

from client import ApiError, Client, NoOutput, Unreachable
from jobs.settings import Settings
from tests.api import Client as TestClient
from tests.oracle import judge_mask

T = TypeVar("T")
DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client call off the event loop that serves the app."""
    return await asyncio.to_thread(function, *args, **kwargs)


def library_client(client: TestClient) -> Client:
    return Client(str(client.make_url("")).rstrip("/"), None)


async def test_upload_submit_wait_and_download_through_the_library(
    client: TestClient, worker: Worker, clip_odd: Path, tmp_path: Path
) -> None:
    vc = library_client(client)
    sent: list[tuple[int, int | None]] = []
    video = await call(vc.upload, clip_odd, lambda done, total: sent.append((done, total)))
    size = clip_odd.stat().st_size
    assert sent[-1] == (size, size)
    assert [done for done, _ in sent] == sorted(done for done, _ in sent)
    assert video["frame_count"] == 60
    assert (await call(vc.video, video["id"]))["id"] == video["id"]
    assert "olympus_cv_1500" in {d["name"] for d in await call(vc.devices)}

    answer = await call(vc.submit, "mask", video["id"], DEVICE_MASK, idempotency_key="rec-77")
    assert answer["duplicate"] is False
    again = await call(vc.submit, "mask", video["id"], DEVICE_MASK, idempotency_key="rec-77")
    assert again["task_id"] == answer["task_id"]
    assert again["duplicate"] is True

    seen: list[dict[str, Any]] = []
    final = await call(vc.wait, answer["task_id"], seen.append)
    assert final["state"] == "SUCCESS", final
    assert seen[-1] == final
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
    assert {"PROGRESS", "SUCCESS"} <= {s["state"] for s in seen}
    # Waiting for a task that has ended answers at once, with its end.
    assert (await call(vc.wait, answer["task_id"]))["state"] == "SUCCESS"

    received: list[tuple[int, int | None]] = []
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    saved = await call(
        vc.download, final, output_dir, lambda done, total: received.append((done, total))
    )
    assert saved.parent == output_dir
    assert saved.name.startswith(f"video-{video['id']}-mask-")
    assert received[-1] == (saved.stat().st_size, saved.stat().st_size)
    judge_mask(saved, clip_odd, DEVICE_MASK, numbered=True)
    by_id = await call(vc.download, answer["task_id"], tmp_path / "by-id.mp4")
    assert by_id.read_bytes() == saved.read_bytes()

    page, cursor = await call(vc.tasks, video_id=video["id"], limit=1)
    assert [t["task_id"] for t in page] == [answer["task_id"]]
    assert cursor is not None  # a full page: there may be more
    assert await call(vc.tasks, video_id=video["id"], limit=1, cursor=cursor) == ([], None)
    listed = await call(lambda: list(vc.iter_tasks(state="SUCCESS")))
    assert [t["task_id"] for t in listed] == [answer["task_id"]]
    # The output's review: pending, then approved through the library (the API is open here,
    # so anyone may review).
    pending = await call(vc.review_state, answer["task_id"])
    assert pending == {"state": "pending", "by": None, "at": None, "comment": None}
    reviewed = await call(vc.review, answer["task_id"], "approved", "checked in the player")
    assert reviewed["review"]["state"] == "approved"
    approved = await call(vc.review_state, answer["task_id"])
    assert approved is not None
    assert (approved["state"], approved["comment"]) == ("approved", "checked in the player")
    with pytest.raises(ValueError, match="state must be one of"):
        vc.review(answer["task_id"], "APPROVED")


async def test_library_errors_say_what_went_wrong(
    client: TestClient, settings: Settings, clip_odd: Path, tmp_path: Path
) -> None:
    vc = library_client(client)
    with pytest.raises(ApiError) as missing:
        await call(vc.task, "0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "task_not_found")

    video = await call(vc.upload, str(clip_odd))
    with pytest.raises(ApiError) as refused:
        await call(vc.submit, "analyze", video["id"], callback_url="http://elsewhere.example/hook")
    assert (refused.value.status, refused.value.code) == (400, "callback_not_allowed")
    with pytest.raises(ValueError, match="operation must be one of"):
        await call(vc.submit, "blur", video["id"])

    # No worker: the task waits, and can be cancelled.
    queued = await call(vc.submit, "analyze", video["id"], {"sample_every": 3})
    with pytest.raises(NoOutput) as waiting:
        await call(vc.download, queued["task_id"], tmp_path / "x.mp4")
    assert waiting.value.state == "PENDING"
    cancelled = await call(vc.cancel, queued["task_id"])
    assert cancelled["state"] == "REVOKED"
    final = await call(vc.wait, queued["task_id"])
    assert final["state"] == "REVOKED"
    with pytest.raises(ApiError) as ended:
        await call(vc.cancel, queued["task_id"])
    assert (ended.value.status, ended.value.code) == (409, "already_finished")
    assert not (tmp_path / "x.mp4").exists()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(Unreachable, match="connection refused"):
        await call(Client(f"http://127.0.0.1:{closed}").task, "x")
    with pytest.raises(ValueError, match="http://host:port"):
        Client("ftp://127.0.0.1")
