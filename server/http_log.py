"""HTTP access logs through the service's structlog pipeline, and the HTTP metrics.

One line per request: ``method``, ``path`` (the route pattern, such as
``/api/task-status/{task_id}/``, never the query string, which can carry an upload's filename),
``status``, ``duration_ms`` and the ``request_id`` (with ``task_id``/``video_id`` when the path
names them, bound by the request context). Probes (``/healthz``, ``/readyz``, ``/metrics``) log
at debug level, so a health check every few seconds does not flood the log. aiohttp's own access
log is off (see :func:`server.access_log.silence_aiohttp_access_log`): it prints the raw request
line.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram

from server.access_log import route_of
from server.errors import CLIENT_GONE

log = structlog.get_logger("vidcorrect.access")

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpMetrics:
    """Request counts and latencies of this server process, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "vidcorrect_http_requests",
            "HTTP requests answered, by method, route pattern and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "vidcorrect_http_request_duration_seconds",
            "Time to answer HTTP requests (streams: until they closed), by method and route.",
            ["method", "route"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def access_log_middleware(metrics: HttpMetrics) -> Middleware:
    """Log and count every request. Sits inside the request context (for ``request_id``) and
    outside the error middleware (for the status clients really get)."""

    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:  # redirects and what the error middleware let pass
            status = error.status
            raise
        except (asyncio.CancelledError, ConnectionError):
            status = CLIENT_GONE
            raise
        finally:
            seconds = time.perf_counter() - started
            route = route_of(request)
            metrics.observe(request.method, route, status, seconds)
            (log.debug if request.path in PROBES else log.info)(
                "request",
                method=request.method,
                path=route,
                status=status,
                duration_ms=round(seconds * 1000, 1),
            )

    return access_log
