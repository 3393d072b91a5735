"""Webhooks: each task's end POSTed, signed, to a real local HTTP receiver, retried while it is
down, only to the allowed hosts, never followed through a redirect."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.errors import ConfigError
from jobs.model import Operation, TaskRecord, TaskState
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings, webhook_target
from jobs.webhooks import Deliverer
from jobs.worker import in_process_worker
from server.app import create_app
from testkit.media import make_video
from tests.api import Client, expect_error, follow_task, upload

SECRET = "webhook-secret-for-the-tests-0123456789"
#: Seconds a test waits for a delivery (the machine is shared and loaded).
WAIT = 60.0


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording the POSTs it gets; ``answers`` are the statuses
    of its next answers (then 200)."""

    port: int
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.answers.pop(0) if self.answers else 200
        async with self.arrived:
            self.received.append(Received(request.path, dict(request.headers), body))
            self.arrived.notify_all()
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status, text="ok")

    async def wait_for(self, predicate: Callable[[list[Received]], bool]) -> list[Received]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: predicate(self.received)), WAIT)
        return self.received

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free port, not started (a test starts it when it should be up)."""
    running = Receiver(free_port())
    yield running
    await running.stop()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks allowed to 127.0.0.1 (any port), signed with :data:`SECRET`."""
    return replace(settings, webhook_hosts=("127.0.0.1",), webhook_secret=SECRET)


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    return make_video(media_dir / "webhook_clip.mp4", width=160, height=120, seconds=1.0)


def verify(received: Received, now: float) -> dict[str, object]:
    """Check the request as a receiver would (HMAC-SHA256 over ``timestamp.body``, a fresh
    timestamp); returns the posted JSON."""
    timestamp = received.headers["X-Vidcorrect-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(received.headers["X-Vidcorrect-Signature"], f"sha256={expected}")
    assert abs(now - int(timestamp)) < 600
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Vidcorrect-Event"] == "task.ended"
    body = json.loads(received.body)
    assert isinstance(body, dict)
    return body


async def submit_analysis(client: Client, video_id: int, callback_url: str | None) -> str:
    body = {"sample_every": 5} if callback_url is None else {"callback_url": callback_url}
    resp = await client.post(f"/api/video-analyze/{video_id}/", json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    return str(answer["task_id"])


async def outbox(redis_url: str, settings: Settings) -> list[str]:
    redis = Redis.from_url(redis_url)
    try:
        return [m.decode() for m in await redis.zrange(settings.keys.webhooks, 0, -1)]
    finally:
        await redis.aclose()


async def test_a_task_s_end_is_posted_signed_to_its_callback_and_the_global_url(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    receiver: Receiver,
    short_clip: Path,
    redis_url: str,
) -> None:
    settings = replace(settings, webhook_url=receiver.url("/all"))
    await receiver.start()
    client = await aiohttp_client(create_app(settings))
    video = await upload(client, short_clip)
    async with in_process_worker(settings):
        task_id = await submit_analysis(client, video["id"], receiver.url("/mine?ref=42"))
        final = (await follow_task(client, task_id))[-1]
        assert final["state"] == "SUCCESS", final
        assert final["callback_url"] == receiver.url("/mine?ref=42")
        received = await receiver.wait_for(lambda got: len(got) >= 2)
    assert sorted(r.path for r in received) == ["/all", "/mine"]
    now = time.time()
    for request in received:
        assert verify(request, now) == final  # the body GET /api/task-status/ answers with
    deliveries = {r.headers["X-Vidcorrect-Delivery"] for r in received}
    assert len(deliveries) == 2  # one delivery per target, each with its own id
    assert await outbox(redis_url, settings) == []


async def test_a_cancelled_task_is_posted_too(
    client: Client, settings: Settings, receiver: Receiver, short_clip: Path
) -> None:
    await receiver.start()
    video = await upload(client, short_clip)
    task_id = await submit_analysis(client, video["id"], receiver.url("/hook"))
    resp = await client.delete(f"/api/task-status/{task_id}/")  # no worker: it never started
    assert resp.status == 202, await resp.text()
    assert receiver.received == []  # the server queued it; workers deliver
    async with in_process_worker(settings):
        (request,) = await receiver.wait_for(lambda got: len(got) >= 1)
    body = verify(request, time.time())
    assert body["task_id"] == task_id
    assert body["state"] == "REVOKED"


async def test_a_receiver_that_is_down_gets_the_same_delivery_once_it_is_up(
    client: Client, settings: Settings, receiver: Receiver, short_clip: Path, redis_url: str
) -> None:
    receiver.answers = [302, 500]  # then 200: a redirect is not followed, an error is retried
    video = await upload(client, short_clip)
    redis = Redis.from_url(redis_url)
    try:
        async with in_process_worker(settings):
            task_id = await submit_analysis(client, video["id"], receiver.url("/hook"))
            final = (await follow_task(client, task_id))[-1]
            # The task ended while nobody listened: a delivery never holds up a job.
            assert final["state"] == "SUCCESS", final
            (delivery_id,) = await outbox(redis_url, settings)
            deadline = time.monotonic() + WAIT
            key = settings.keys.webhook(delivery_id)
            while int(await cast(Awaitable[bytes | None], redis.hget(key, "attempts")) or 0) < 2:
                assert time.monotonic() < deadline, "no attempt failed against a closed port"
                await asyncio.sleep(0.1)
            assert receiver.received == []
            await receiver.start()
            received = await receiver.wait_for(lambda got: len(got) >= 3)
            # Done when it is out of the outbox (the 200 has reached the worker).
            while await outbox(redis_url, settings):
                assert time.monotonic() < deadline + WAIT, "the delivery was not removed"
                await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    assert [r.path for r in received] == ["/hook", "/hook", "/hook"]  # never /elsewhere
    assert {r.headers["X-Vidcorrect-Delivery"] for r in received} == {delivery_id}
    attempts = [int(r.headers["X-Vidcorrect-Attempt"]) for r in received]
    assert attempts == sorted(attempts)
    assert attempts[0] >= 3  # two attempts failed while it was down
    assert len({r.body for r in received}) == 1  # the same body on every attempt
    for request in received:
        assert verify(request, time.time())["task_id"] == task_id


@pytest.mark.parametrize(
    "callback_url",
    [
        "http://example.org/hook",  # a host not allowed
        "http://127.0.0.2/hook",
        "http://127.0.0.1.example.org/hook",
        "ftp://127.0.0.1/hook",
        "http://user:secret@127.0.0.1/hook",
        "http://127.0.0.1/hook#part",
        "//127.0.0.1/hook",
        "http://127.0.0.1:99999/hook",
        "http://127.0.0.1/" + "a" * 2100,
        42,
        "",
    ],
)
async def test_a_callback_url_off_the_allowed_hosts_is_refused(
    client: Client, short_clip: Path, callback_url: object, redis_url: str, settings: Settings
) -> None:
    video = await upload(client, short_clip)
    resp = await client.post(
        f"/api/video-analyze/{video['id']}/", json={"callback_url": callback_url}
    )
    message = await expect_error(resp, 400, "callback_not_allowed")
    assert "VIDCORRECT_WEBHOOK_HOSTS: 127.0.0.1" in message
    resp = await client.get("/api/tasks/")
    assert (await resp.json())["tasks"] == []


async def test_without_webhook_hosts_every_callback_is_refused(
    aiohttp_client: AiohttpClient, settings: Settings, short_clip: Path
) -> None:
    plain = replace(settings, webhook_hosts=(), webhook_secret=None)
    client = await aiohttp_client(create_app(plain))
    video = await upload(client, short_clip)
    resp = await client.post(
        f"/api/video-analyze/{video['id']}/", json={"callback_url": "http://127.0.0.1/hook"}
    )
    message = await expect_error(resp, 400, "callback_not_allowed")
    assert "sends no webhooks" in message


def test_webhook_settings() -> None:
    env = {
        "VIDCORRECT_WEBHOOK_HOSTS": "hooks.example.org:8443, Backend.Local",
        "VIDCORRECT_WEBHOOK_URL": "https://hooks.example.org:8443/vidcorrect",
        "VIDCORRECT_WEBHOOK_SECRET": SECRET,
    }
    settings = Settings.from_env(env)
    assert settings.webhook_hosts == ("hooks.example.org:8443", "backend.local")
    assert SECRET not in repr(settings)
    assert webhook_target("http://backend.local:8000/x", settings) == (
        "http",
        "backend.local",
        8000,
    )
    assert webhook_target("https://hooks.example.org/x", settings) is None  # port 443
    assert webhook_target("http://hooks.example.org:8443/x", settings) is not None
    with pytest.raises(ConfigError, match="VIDCORRECT_WEBHOOK_SECRET"):
        Settings.from_env({**env, "VIDCORRECT_WEBHOOK_SECRET": "short"})
    with pytest.raises(ConfigError, match="VIDCORRECT_WEBHOOK_URL"):
        Settings.from_env({**env, "VIDCORRECT_WEBHOOK_URL": "https://elsewhere.example.org/"})
    with pytest.raises(ConfigError, match="VIDCORRECT_WEBHOOK_HOSTS"):
        Settings.from_env({**env, "VIDCORRECT_WEBHOOK_HOSTS": "bad host"})


async def test_a_delivery_is_given_up_after_a_day_and_dropped_when_its_host_is_no_longer_allowed(
    settings: Settings, redis_url: str, receiver: Receiver
) -> None:
    """Driven directly (no worker): one pass of the delivery loop over a real outbox."""
    redis = Redis.from_url(redis_url)
    try:
        records = RedisTaskStore(redis, settings.keys, webhook_url=receiver.url("/down"))
        task = TaskRecord(uuid.uuid4().hex, Operation.ANALYZE, 1, {})
        await records.create_task(task)
        await records.update_task(task, state=TaskState.FAILURE)
        (delivery_id,) = await outbox(redis_url, settings)
        # A day old, and the receiver is down: this attempt is the last.
        await redis.hset(settings.keys.webhook(delivery_id), "created", repr(time.time() - 86401))
        assert await Deliverer(redis, settings).deliver_due() == 1
        assert await outbox(redis_url, settings) == []
        assert not await redis.exists(settings.keys.webhook(delivery_id))

        # A host taken off VIDCORRECT_WEBHOOK_HOSTS: its deliveries go, unsent.
        await receiver.start()
        hooked = TaskRecord(
            uuid.uuid4().hex, Operation.ANALYZE, 1, {}, callback_url=receiver.url("/mine")
        )
        await records.create_task(hooked)
        await records.update_task(hooked, state=TaskState.SUCCESS)
        assert len(await outbox(redis_url, settings)) == 2  # the callback and the global URL
        closed = replace(settings, webhook_hosts=("backend.example",))
        assert await Deliverer(redis, closed).deliver_due() == 2
        assert await outbox(redis_url, settings) == []
        assert receiver.received == []
        # Updates of a task that has ended queue nothing more.
        await records.update_task(await records.get_task(hooked.task_id), status="noted")
        assert await outbox(redis_url, settings) == []
    finally:
        await redis.aclose()
