"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (it can get work
done) and ``/metrics`` (Prometheus text format, see :mod:`server.metrics`)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from redis.exceptions import RedisError

from jobs.liveness import count_alive
from server.keys import METRICS, RECORDS, REDIS, SETTINGS
from server.metrics import CONTENT_TYPE

routes = web.RouteTableDef()

#: A Redis that has not answered a probe within this many seconds counts as unreachable.
PROBE_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers: 200 ``{"status": "ok"}``."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers and at least one worker beat within ``heartbeat_timeout``;
    otherwise 503 with the reason."""
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await request.app[RECORDS].ping()
            workers = await count_alive(request.app[REDIS], settings)
    except (RedisError, OSError, TimeoutError):
        return _not_ready("redis_unreachable", "Redis does not answer; no task can be queued.")
    if workers == 0:
        return _not_ready(
            "no_workers",
            f"No worker has reported in the last {settings.heartbeat_timeout} s; queued tasks "
            "wait until one does.",
            workers=0,
        )
    return web.json_response({"status": "ready", "redis": "ok", "workers": workers})


def _not_ready(reason: str, message: str, **extra: int) -> web.Response:
    return web.json_response(
        {"status": "not_ready", "reason": reason, "message": message, **extra},
        status=503,
        headers={"Retry-After": "5"},
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The service's metrics in the Prometheus text format (version 0.0.4)."""
    body = await request.app[METRICS].exposition(request.app[RECORDS], request.app[REDIS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
