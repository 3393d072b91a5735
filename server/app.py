"""The aiohttp application: routes, middlewares and the resources it opens and closes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from arq.connections import create_pool
from redis.asyncio import Redis

from jobs.audit import AuditLog
from jobs.device_catalogue import DeviceCatalogue
from jobs.event_hub import EventHub
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.storage import Storage
from jobs.submit import Submitter
from jobs.users import UserDirectory
from jobs.worker import in_process_worker
from server import audit_trail, auth, devices, monitoring, openapi, tasks, videos
from server.access import Access, Revocations, SignInThrottle
from server.access_log import logged_ids, route_of
from server.embedded_redis import EmbeddedRedis
from server.errors import error_middleware
from server.headers import add_security_headers
from server.http_log import access_log_middleware
from server.json_body import MAX_JSON_BODY
from server.keys import (
    ACCESS,
    AUDIT,
    DEVICES,
    EVENTS,
    METRICS,
    RECORDS,
    REDIS,
    REVOCATIONS,
    SETTINGS,
    SIGN_IN_THROTTLE,
    SSE_SLOTS,
    STORAGE,
    SUBMITTER,
    TASKS,
    UPLOAD_SLOTS,
)
from server.limits import Slots
from server.local import LocalJobs
from server.metrics import Metrics
from server.request_guard import request_guard_middleware
from server.sweeper import sweeper_ctx
from server.task_router import TaskRouter

log = structlog.get_logger("vidcorrect.server")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(settings: Settings) -> web.Application:
    """Build the application. Without ``settings.redis_url`` it runs an embedded Redis and an
    in-process arq worker; with it, it only serves and workers run separately."""
    metrics = Metrics(settings)
    app = web.Application(
        middlewares=[
            request_context_middleware,
            access_log_middleware(metrics.http),
            audit_trail.audit_middleware,
            error_middleware,
            request_guard_middleware(settings),
            auth.access_middleware,
        ],
        client_max_size=MAX_JSON_BODY,
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    users = UserDirectory(settings.users_file) if settings.users_file is not None else None
    app[ACCESS] = Access(settings.api_token, users)
    app[REVOCATIONS] = Revocations(settings.keys)
    app[SIGN_IN_THROTTLE] = SignInThrottle()
    app[SSE_SLOTS] = Slots(
        settings.max_sse_clients, "too_many_streams", "event streams", "VIDCORRECT_MAX_SSE_CLIENTS"
    )
    app[UPLOAD_SLOTS] = Slots(
        settings.max_concurrent_uploads,
        "too_many_uploads",
        "uploads",
        "VIDCORRECT_MAX_CONCURRENT_UPLOADS",
    )
    metrics.follow_streams(app[SSE_SLOTS], app[UPLOAD_SLOTS])
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(bound_stalled_sends)
    app[STORAGE] = Storage(settings.data_dir)
    app[STORAGE].ensure()
    app[DEVICES] = DeviceCatalogue(app[STORAGE].devices_dir)
    if settings.embedded:
        app.cleanup_ctx.append(embedded_redis_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(local_jobs_ctx)
    app.cleanup_ctx.append(sweeper_ctx)
    if settings.embedded:
        app.cleanup_ctx.append(in_process_worker_ctx)
    app.on_shutdown.append(close_event_streams)
    app.add_routes(videos.routes)
    app.add_routes(tasks.routes)
    app.add_routes(devices.routes)
    app.add_routes(monitoring.routes)
    app.add_routes(auth.routes)
    app.add_routes(audit_trail.routes)
    app.add_routes(openapi.routes)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    return app


async def index(request: web.Request) -> web.FileResponse:
    """The browser page."""
    return web.FileResponse(STATIC_DIR / "index.html")


async def bound_stalled_sends(request: web.Request, response: web.StreamResponse) -> None:
    """Before an answer is sent: have the kernel close its connection when the client takes
    none of it, or acknowledges none of it, for ``VIDCORRECT_SEND_TIMEOUT`` seconds
    (``TCP_USER_TIMEOUT``). A write that cannot proceed otherwise waits forever (aiohttp's
    ``sendfile`` and ``drain`` have no timeout), holding the connection and its handler."""
    if sys.platform != "linux":
        return
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    milliseconds = request.app[SETTINGS].send_timeout * 1000
    with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to bound
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, the route and the ids the path names to every log line of this
    request (the route, not the path as sent: a client's path may carry anything)."""
    with structlog.contextvars.bound_contextvars(
        request_id=uuid.uuid4().hex[:12],
        method=request.method,
        path=route_of(request),
        **logged_ids(request),
    ):
        return await handler(request)


async def embedded_redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run a private redis-server with its append-only file in the data dir."""
    settings = app[SETTINGS]
    embedded = EmbeddedRedis(settings.data_dir / "redis")
    await asyncio.to_thread(embedded.start)
    app[SETTINGS] = settings.with_redis(embedded.url)
    log.info("embedded redis started", port=embedded.port)
    try:
        yield
    finally:
        await asyncio.to_thread(embedded.stop)
        log.info("embedded redis stopped")


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The process's Redis pool, the records on top of it, and the event reader."""
    settings = app[SETTINGS]
    pool = await create_pool(settings.redis_settings(), default_queue_name=settings.queue_name)
    app[REDIS] = pool
    assert settings.redis_url is not None  # set by now, embedded or not
    reader = Redis.from_url(settings.redis_url, single_connection_client=True)
    app[EVENTS] = EventHub(pool, settings.keys, reader)
    app[RECORDS] = RedisTaskStore(pool, settings.keys, app[EVENTS])
    app[AUDIT] = AuditLog(pool, settings.keys)
    app[SUBMITTER] = Submitter(pool, app[RECORDS], settings)
    app[EVENTS].start()
    try:
        yield
    finally:
        await app[EVENTS].stop()
        await pool.aclose()


async def close_event_streams(app: web.Application) -> None:
    """At shutdown, end the SSE streams so their connections close cleanly."""
    if TASKS in app:
        app[TASKS].close_streams()


async def local_jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """The runner of the degraded mode (jobs run here while Redis is away), and the router
    that sends each task to its store."""
    local = LocalJobs(app[SETTINGS], app[STORAGE])
    app[TASKS] = TaskRouter(app[RECORDS], app[SUBMITTER], local)
    try:
        yield
    finally:
        await local.close()


async def in_process_worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """An arq worker in this process, for the one-command embedded mode."""
    async with in_process_worker(app[SETTINGS]) as worker:
        log.info("in-process worker started", max_jobs=worker.max_jobs)
        yield
