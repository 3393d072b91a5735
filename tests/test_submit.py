"""Duplicates, Idempotency-Key, backpressure and the legacy synchronous API."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.errors import Unprocessable
from jobs.model import Operation
from jobs.settings import Settings
from jobs.submit import KEYS_TTL, Submission
from jobs.task_pages import TaskQuery
from jobs.worker import in_process_worker
from server.app import create_app
from server.keys import RECORDS, REDIS, SETTINGS, SUBMITTER
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.oracle import judge_mask, judge_removal

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


async def test_identical_submission_returns_the_running_task(
    client: Client, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    first = await submit_mask(client, video["id"], DEVICE_MASK)
    resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=DEVICE_MASK)
    again = await resp.json()
    assert resp.status == 200
    assert again["duplicate"] is True
    assert again["task_id"] == first
    assert again["status"] == "pending"
    other = await submit_mask(client, video["id"], {**DEVICE_MASK, "shape": "ellipse"})
    assert other != first


async def test_identical_submission_after_the_end_is_a_new_task(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    first = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, first))[-1]
    assert await submit_mask(client, video["id"], DEVICE_MASK) != first
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)


async def test_idempotency_key_returns_the_same_task(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p)
    headers = {"Idempotency-Key": "upload-42-mask"}
    path = f"/api/video-apply-mask/{video['id']}/"
    resp = await client.post(path, json=DEVICE_MASK, headers=headers)
    assert resp.status == 202
    first = (await resp.json())["task_id"]
    resp = await client.post(path, json=DEVICE_MASK, headers=headers)
    assert resp.status == 200
    again = await resp.json()
    assert again["task_id"] == first
    assert again["duplicate"] is True
    # Remembered for KEYS_TTL, and no longer.
    redis = client.app[REDIS]
    keys = [key async for key in redis.scan_iter(client.app[SETTINGS].keys.idempotency("*"))]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= KEYS_TTL


async def test_idempotency_key_is_bound_to_its_request(
    client: Client, clip_720p: Path, clip_odd: Path
) -> None:
    """A key reused for another video, operation or parameters is refused: it must not hand out
    another request's task (and through it that video's output)."""
    one = await upload(client, clip_720p)
    two = await upload(client, clip_odd)
    headers = {"Idempotency-Key": "mask-of-the-day"}
    resp = await client.post(
        f"/api/video-apply-mask/{one['id']}/", json=DEVICE_MASK, headers=headers
    )
    assert resp.status == 202
    first = (await resp.json())["task_id"]
    custom = {"mask_type": "custom", "roi": {"x": 0, "y": 0, "width": 64, "height": 48}}
    for path, body in (
        (f"/api/video-apply-mask/{two['id']}/", custom),  # another video
        (f"/api/video-apply-mask/{one['id']}/", custom),  # other parameters
        (f"/api/video-analyze/{one['id']}/", {}),  # another operation
    ):
        resp = await client.post(path, json=body, headers=headers)
        message = await expect_error(resp, 422, "idempotency_key_reused")
        assert "Idempotency-Key" in message
        assert first not in message
    # Nothing new was queued, and the key still answers for its own request.
    tasks = (await (await client.get("/api/tasks/")).json())["tasks"]
    assert [task["task_id"] for task in tasks] == [first]
    resp = await client.post(
        f"/api/video-apply-mask/{one['id']}/", json=DEVICE_MASK, headers=headers
    )
    assert resp.status == 200
    assert (await resp.json())["task_id"] == first


async def test_concurrent_submissions_make_one_task(client: Client) -> None:
    """The keys are claimed atomically: of concurrent identical submissions (with the same key
    or none) exactly one makes a task; the same key for two videos at once makes one task and
    is refused (422) for the other. Before, each checked the key and then set it, so every one
    of them made a task."""
    submitter, records = client.app[SUBMITTER], client.app[RECORDS]
    for key in ("same-request", None):
        params = {"roi": [0, 0, 32, 32], "key": key}
        got = await asyncio.gather(
            *(submitter.submit(Operation.MASK, 1, params, key) for _ in range(6))
        )
        assert sorted(s.duplicate for s in got) == [False] + [True] * 5, got
        assert len({s.task.task_id for s in got}) == 1, got
    outcomes = await asyncio.gather(
        *(submitter.submit(Operation.MASK, video, {}, "k") for video in (1, 2)),
        return_exceptions=True,
    )
    made = [o for o in outcomes if isinstance(o, Submission)]
    refused = [o for o in outcomes if isinstance(o, Unprocessable)]
    assert [m.duplicate for m in made] == [False], outcomes
    assert [r.code for r in refused] == ["idempotency_key_reused"], outcomes
    tasks, _ = await records.list_tasks(TaskQuery(limit=50))
    assert len(tasks) == 3


async def test_idempotency_keys_must_be_visible_ascii(client: Client, clip_720p: Path) -> None:
    """A key of other bytes (aiohttp decodes them to lone surrogates, which have no UTF-8 form)
    was a 500 with a traceback; it, a key with a space and one of 256 characters are 400."""
    video = await upload(client, clip_720p)
    path = f"/api/video-apply-mask/{video['id']}/"
    body = json.dumps(DEVICE_MASK).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Idempotency-Key: \xff\xfe\r\nConnection: close\r\n\r\n"
        + body
    )
    answer = await reader.read()
    writer.close()
    head, _, raw = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert json.loads(raw)["error"]["code"] == "invalid_idempotency_key"
    for key in ("two words", "k" * 256):
        resp = await client.post(path, json=DEVICE_MASK, headers={"Idempotency-Key": key})
        await expect_error(resp, 400, "invalid_idempotency_key")
    resp = await client.post(path, json=DEVICE_MASK, headers={"Idempotency-Key": "k" * 255})
    assert resp.status == 202


async def test_full_queue_answers_429_and_keeps_what_it_accepted(
    aiohttp_client: AiohttpClient, settings: Settings, clip_720p: Path
) -> None:
    small = replace(settings, max_queued=10)
    client = await aiohttp_client(create_app(small))
    video = await upload(client, clip_720p)

    def body(n: int) -> dict[str, Any]:
        return {"mask_type": "custom", "roi": {"x": n, "y": 0, "width": 64, "height": 64}}

    async def submit(n: int) -> tuple[int, str | None, str | None]:
        resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=body(n))
        answer = await resp.json()
        return resp.status, answer.get("task_id"), resp.headers.get("Retry-After")

    answers = await asyncio.gather(*(submit(n) for n in range(100)))
    accepted = [task_id for status, task_id, _ in answers if status == 202]
    refused = [retry for status, _, retry in answers if status == 429]
    assert len(accepted) == 10
    assert len(refused) == 90
    assert set(refused) == {"10"}
    resp = await client.post(
        f"/api/video-apply-mask/{video['id']}/",
        json={"mask_type": "device", "device_name": "olympus_cv_1500"},
    )
    assert "VIDCORRECT_MAX_QUEUED" in await expect_error(resp, 429, "queue_full")

    records = client.app[RECORDS]
    for task_id in accepted:  # nothing accepted is dropped: all queued, all run to the end
        assert (await records.get_task(str(task_id))).state.value == "PENDING"
    async with in_process_worker(replace(small, max_jobs=4)):
        finals = await asyncio.gather(*(follow_task(client, str(t)) for t in accepted))
    assert {seen[-1]["state"] for seen in finals} == {"SUCCESS"}
    asked = {task_id: body(n) for n, (_, task_id, _) in enumerate(answers) if task_id}
    for seen in finals:
        final = seen[-1]
        output = await download(client, final, small.data_dir / f"{final['task_id']}.mp4")
        judge_mask(output, clip_720p, asked[final["task_id"]], numbered=True)


async def test_legacy_synchronous_mode_answers_with_the_result(
    aiohttp_client: AiohttpClient, settings: Settings, clip_720p: Path
) -> None:
    legacy = replace(settings, use_async_tasks=False)
    client = await aiohttp_client(create_app(legacy))
    video = await upload(client, clip_720p)
    async with in_process_worker(legacy):
        resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=DEVICE_MASK)
        answer = await resp.json()
        assert resp.status == 200, answer
        assert answer["task_id"] is None
        assert answer["result"]["frames"] == 50
        assert answer["result"]["verification"]["passed"] is True
        output = await download(client, answer, settings.data_dir / "mask.mp4")
        judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)
        resp = await client.post(
            f"/api/video-remove-frames/{video['id']}/", json={"frame_ranges": "0-9"}
        )
        answer = await resp.json()
        assert answer["result"]["frames"] == 40
        output = await download(client, answer, settings.data_dir / "removal.mp4")
        judge_removal(output, clip_720p, {"frame_ranges": "0-9"}, numbered=True)
