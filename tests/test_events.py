"""Live progress over Server-Sent Events, through the real server, worker and Redis."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from server.keys import EVENTS, REDIS, SETTINGS
from testkit.media import make_video
from testkit.sse import Event, read_events
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.metrics import scrape
from tests.oracle import judge_mask
from tests.pausing import advance, api_status, frozen, record_status
from tests.processes import ServerProcess, SpawnWorker, service_env

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


@pytest.fixture(scope="session")
def clip_8s(media_dir: Path) -> Path:
    """Long enough (200 frames of 720p) for a job to publish several progress events."""
    return make_video(media_dir / "events_8s.mp4", width=1280, height=720, seconds=8.0)


async def logged_ids(client: Client, task_id: str) -> list[str]:
    """The ids of the task's event log, straight from Redis."""
    key = client.app[SETTINGS].keys.task_events(task_id)
    rows = await client.app[REDIS].xrange(key)
    return [row[0].decode() for row in rows]


def states(events: list[Event]) -> list[str]:
    return [json.loads(e.data)["state"] for e in events]


async def test_full_event_sequence_then_end_and_close(
    client: Client, worker: Worker, settings: Settings, clip_8s: Path, tmp_path: Path
) -> None:
    """The job is held stopped and let go three times, each time until its status reports
    more frames: so it surely publishes three PROGRESS events, however fast the encoder is."""
    video = await upload(client, clip_8s)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    resp = await client.get(f"/api/task-status/{task_id}/events?last_event_id=0-0")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert resp.headers["Cache-Control"] == "no-store"
    reading = asyncio.create_task(read_events(resp))  # ends only when the server closes it
    async with frozen(settings.data_dir, video["id"]) as frames:
        reported = [await advance(frames, api_status(client, task_id)) for _ in range(3)]
    assert reported == sorted(set(reported)), reported
    events = await reading

    assert [e.event for e in events] == ["progress"] * (len(events) - 1) + ["end"]
    assert [e.id for e in events] == await logged_ids(client, task_id)
    assert events[0].retry == 2000
    assert all(e.retry is None for e in events[1:])
    seen = states(events)
    assert seen[:2] == ["PENDING", "STARTED"]
    assert seen[-1] == "SUCCESS"
    assert set(seen[2:-1]) == {"PROGRESS"}
    assert seen.count("PROGRESS") >= 3, "the job published progress as it went"
    reports = [json.loads(e.data)["status"] for e in events]
    for frames_seen in reported:
        assert any(f"frame {frames_seen}/" in r for r in reports), (frames_seen, reports)
    progress = [json.loads(e.data)["progress"] for e in events]
    assert progress == sorted(progress)
    status = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert json.loads(events[-1].data) == status
    judge_mask(await download(client, status, tmp_path / "out.mp4"), clip_8s, DEVICE_MASK)


async def test_resume_after_disconnect_misses_and_repeats_nothing(
    client: Client, worker: Worker, settings: Settings, clip_8s: Path, tmp_path: Path
) -> None:
    """The job is held from its start: the first connection drops surely mid-job, and the job
    publishes more progress before the second one is made."""
    video = await upload(client, clip_8s)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    url = f"/api/task-status/{task_id}/events"
    first = await client.get(url, params={"last_event_id": "0-0"})
    async with frozen(settings.data_dir, video["id"]) as frames:
        await advance(frames, api_status(client, task_id))
        before: list[Event] = []
        while not before or states(before)[-1] != "PROGRESS":
            before += await read_events(first, limit=1)
        first.close()  # a dropped connection, mid-job
        missed = await advance(frames, api_status(client, task_id))

    second = await client.get(url, headers={"Last-Event-ID": str(before[-1].id)})
    after = await read_events(second)
    assert after[-1].event == "end"
    assert any(f"frame {missed}/" in json.loads(e.data)["status"] for e in after)
    ids = [e.id for e in before + after]
    assert ids == await logged_ids(client, task_id)
    assert len(ids) == len(set(ids))
    output = await download(client, json.loads(after[-1].data), tmp_path / "out.mp4")
    judge_mask(output, clip_8s, DEVICE_MASK)


async def test_late_client_gets_final_state_and_end(
    client: Client, worker: Worker, clip_720p: Path, tmp_path: Path
) -> None:
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, task_id))[-1]
    resp = await client.get(f"/api/task-status/{task_id}/events")
    body = await resp.read()
    last_id = (await logged_ids(client, task_id))[-1]
    data = json.dumps(final)
    assert body == f"id: {last_id}\nevent: end\ndata: {data}\nretry: 2000\n\n".encode()
    output = await download(client, final, tmp_path / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)


async def test_a_finished_task_always_ends_the_stream(
    client: Client, worker: Worker, clip_720p: Path
) -> None:
    """Resuming a finished task at or past its last event id gets ``end`` again, then EOF; it
    used to get only heartbeats, forever."""
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, task_id))[-1]
    last_id = (await logged_ids(client, task_id))[-1]
    for resume in (last_id, "99999999999999-0"):
        async with asyncio.timeout(5):
            resp = await client.get(
                f"/api/task-status/{task_id}/events", headers={"Last-Event-ID": resume}
            )
            events = await read_events(resp)  # returns only when the server closes
        assert [(e.id, e.event) for e in events] == [(last_id, "end")], resume
        assert json.loads(events[0].data) == final


async def test_a_resume_past_the_live_ids_still_gets_the_end(
    client: Client, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)  # queued: no worker yet
    resp = await client.get(
        f"/api/task-status/{task_id}/events", headers={"Last-Event-ID": "99999999999999-0"}
    )
    assert resp.status == 200
    async with in_process_worker(settings), asyncio.timeout(60):
        events = await read_events(resp)
    assert [e.event for e in events] == ["end"]
    assert json.loads(events[0].data)["state"] == "SUCCESS"


async def test_a_finished_local_task_always_ends_its_stream(tmp_path: Path) -> None:
    """The degraded mode's in-memory event log does the same (no Redis involved)."""
    from jobs.memory_store import MemoryTaskStore
    from jobs.model import Operation, TaskRecord, TaskState
    from jobs.storage import Storage

    records = MemoryTaskStore(Storage(tmp_path))
    task = TaskRecord(task_id="local-x", operation=Operation.ANALYZE, video_id=1, params={})
    await records.create_task(task)
    await records.update_task(task, state=TaskState.SUCCESS)
    for resume in ("2-0", "7-0"):
        async with asyncio.timeout(2), records.follow("local-x", resume) as events:
            got = [(event.id, event.event) async for event in events]
        assert got == [("2-0", "end")], resume


async def test_clients_that_leave_are_freed_and_the_cap_answers_503(
    aiohttp_client: AiohttpClient, settings: Settings, clip_720p: Path
) -> None:
    """Clients that disconnect from a stream with nothing to say (a queued task) are noticed
    within seconds (``vidcorrect_sse_clients`` back to 0); past VIDCORRECT_MAX_SSE_CLIENTS
    the answer is 503 with Retry-After."""
    client = await aiohttp_client(create_app(replace(settings, max_sse_clients=30)))
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)  # queued: no worker
    url = str(client.make_url(f"/api/task-status/{task_id}/events"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for _ in range(2):  # twice: the slots freed by the first round are usable again
            responses = [await session.get(url) for _ in range(30)]
            assert [r.status for r in responses] == [200] * 30
            await asyncio.gather(*(read_events(r, limit=1) for r in responses))
            assert (await scrape(client))[1]["vidcorrect_sse_clients"] == 30
            refused = await session.get(url)
            await expect_error(refused, 503, "too_many_streams")
            assert refused.headers["Retry-After"] == "5"
            assert refused.headers["Content-Type"].startswith("application/json")
            for resp in responses:
                resp.close()  # drop the connection, as a closed browser tab does
            for _ in range(50):  # within 5 s
                if (await scrape(client))[1]["vidcorrect_sse_clients"] == 0:
                    break
                await asyncio.sleep(0.1)
            assert (await scrape(client))[1]["vidcorrect_sse_clients"] == 0
    assert client.app[EVENTS].client_count == 0


async def test_many_clients_share_one_reader_and_all_get_every_event(
    client: Client, settings: Settings, clip_8s: Path
) -> None:
    video = await upload(client, clip_8s)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)  # queued: no worker yet
    url = str(client.make_url(f"/api/task-status/{task_id}/events"))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        responses = [await session.get(url) for _ in range(200)]
        firsts = await asyncio.gather(*(read_events(r, limit=1) for r in responses))
        assert all(states(f) == ["PENDING"] for f in firsts)
        assert client.app[EVENTS].client_count == 200
        info = await client.app[REDIS].info("clients")
        assert info["connected_clients"] < 20  # no Redis connection per SSE client
        async with in_process_worker(settings):
            rests = await asyncio.gather(*(read_events(r) for r in responses))
    expected = await logged_ids(client, task_id)
    for first, rest in zip(firsts, rests, strict=True):
        assert [e.id for e in first + rest] == expected
        assert rest[-1].event == "end"
    assert client.app[EVENTS].client_count == 0
    output = await download(client, json.loads(rests[0][-1].data), settings.data_dir / "o.mp4")
    judge_mask(output, clip_8s, DEVICE_MASK)


async def test_unknown_task_and_bad_event_id(client: Client, clip_720p: Path) -> None:
    await expect_error(await client.get("/api/task-status/nope/events"), 404, "task_not_found")
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    resp = await client.get(
        f"/api/task-status/{task_id}/events", headers={"Last-Event-ID": "yesterday"}
    )
    await expect_error(resp, 400, "invalid_event_id")
    # Past 64 bits a part is no stream id Redis can read: the client's mistake (400), not a
    # store error (schemathesis found 503 store_unavailable for this one).
    for too_large in ("48544-43932613894867321557", "18446744073709551616-0"):
        resp = await client.get(f"/api/task-status/{task_id}/events?last_event_id={too_large}")
        await expect_error(resp, 400, "invalid_event_id")
    resp = await client.get(
        f"/api/task-status/{task_id}/events", headers={"Last-Event-ID": "18446744073709551615-0"}
    )
    assert resp.status == 200  # the largest stream id is still one
    resp.close()


async def test_shutdown_closes_open_streams(settings: Settings, clip_720p: Path) -> None:
    server = TestServer(create_app(settings))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("file", clip_720p.read_bytes(), filename="a.mp4")
        async with session.post(server.make_url("/api/videos/"), data=form) as resp:
            video = await resp.json()
        async with session.post(
            server.make_url(f"/api/video-apply-mask/{video['id']}/"), json=DEVICE_MASK
        ) as resp:
            task_id = (await resp.json())["task_id"]
        stream = await session.get(server.make_url(f"/api/task-status/{task_id}/events"))
        assert states(await read_events(stream, limit=1)) == ["PENDING"]
        async with asyncio.timeout(5):
            await server.close()
            assert await read_events(stream) == []  # the stream ended cleanly: EOF


async def test_redis_restart_keeps_history(
    tmp_path: Path, settings: Settings, clip_720p: Path
) -> None:
    redis_dir = tmp_path / "redis-aof"
    with EmbeddedRedis(redis_dir) as first:
        app = create_app(replace(settings, redis_url=first.url))
        server = TestServer(app)
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("file", clip_720p.read_bytes(), filename="a.mp4")
            async with session.post(server.make_url("/api/videos/"), data=form) as resp:
                video_id = (await resp.json())["id"]
            for shape in ("rect", "ellipse"):
                async with session.post(
                    server.make_url(f"/api/video-apply-mask/{video_id}/"),
                    json={**DEVICE_MASK, "shape": shape},
                ) as resp:
                    assert resp.status == 202
            async with session.get(server.make_url("/api/tasks/")) as resp:
                before = (await resp.json())["tasks"]
        await server.close()
    assert len(before) == 2

    with EmbeddedRedis(redis_dir) as second:  # same files, new process (and port)
        app = create_app(replace(settings, redis_url=second.url))
        server = TestServer(app)
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/api/tasks/")) as resp:
                after = (await resp.json())["tasks"]
            async with session.get(server.make_url(f"/api/videos/{video_id}/")) as resp:
                video = await resp.json()
        await server.close()
    assert after == before
    assert [t["task_id"] for t in video["tasks"]] == [t["task_id"] for t in before]


async def test_clients_resume_across_a_server_restart_without_gaps_or_repeats(
    settings: Settings, tmp_path: Path, spawn_worker: SpawnWorker, clip_8s: Path
) -> None:
    """A server process is restarted (same Redis, same port) while clients follow a job that a
    worker process runs: each client reconnects with the last id it got and receives exactly the
    events it missed, up to `end`."""
    server = ServerProcess(service_env(settings), tmp_path / "server.log")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("file", clip_8s.read_bytes(), filename="a.mp4")
            async with session.post(f"{server.base}/api/videos/", data=form) as resp:
                video = await resp.json()
            async with session.post(
                f"{server.base}/api/video-apply-mask/{video['id']}/", json=DEVICE_MASK
            ) as resp:
                task_id = (await resp.json())["task_id"]
            spawn_worker()
            url = f"{server.base}/api/task-status/{task_id}/events"
            streams = [await session.get(url, params={"last_event_id": "0-0"}) for _ in range(3)]
            redis = Redis.from_url(str(settings.redis_url))
            status_of = record_status(RedisTaskStore(redis, settings.keys), task_id)
            # The job is held stopped, and let go until two PROGRESS events are out; it is still
            # running (stopped) while the server restarts, and publishes another one after.
            async with frozen(settings.data_dir, video["id"]) as frames:
                for _ in range(2):
                    await advance(frames, status_of)
                before: list[list[Event]] = []
                for stream in streams:
                    seen: list[Event] = []
                    while states(seen).count("PROGRESS") < 2:
                        seen += await read_events(stream, limit=1)
                    before.append(seen)

                assert server.stop() == 0
                for stream, seen in zip(streams, before, strict=True):
                    seen += await read_events(stream)  # what was sent before the stream closed
                    stream.close()
                await advance(frames, status_of)
                await server.start()
            await redis.aclose()

            after = []
            for seen in before:
                async with session.get(url, headers={"Last-Event-ID": str(seen[-1].id)}) as resp:
                    assert resp.status == 200
                    after.append(await read_events(resp))
        async with Redis.from_url(str(settings.redis_url)) as redis:
            key = settings.keys.task_events(task_id)
            logged = [row[0].decode() for row in await redis.xrange(key)]
        for seen, rest in zip(before, after, strict=True):
            assert "PROGRESS" in states(rest), "the job should have gone on meanwhile"
            assert rest[-1].event == "end"
            assert [e.id for e in seen + rest] == logged
        final = json.loads(after[0][-1].data)
        assert final["state"] == "SUCCESS"
        judge_mask(settings.data_dir / final["result"]["output_file"], clip_8s, DEVICE_MASK)
    finally:
        server.kill()
