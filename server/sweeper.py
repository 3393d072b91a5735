"""The retention sweeper: :func:`jobs.retention.sweep` at start-up and every hour, in each server
process, its deletions counted in ``vidcorrect_deleted_files_total``.

Several server processes may sweep the same data dir: deleting is idempotent and each counts
only the files it removed itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from jobs.retention import sweep
from server.keys import AUDIT, METRICS, RECORDS, SETTINGS, STORAGE

log = structlog.get_logger("vidcorrect.retention")

#: Seconds between two sweeps.
SWEEP_INTERVAL = 3600.0


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sweep in the background from start-up until shutdown."""
    task = asyncio.create_task(_sweep_forever(app))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep_forever(app: web.Application) -> None:
    while True:
        try:
            deleted = await sweep(app[RECORDS], app[STORAGE], app[SETTINGS], audit=app[AUDIT])
        except (RedisError, OSError) as error:  # the next round tries again
            log.warning("retention sweep failed", error=str(error))
        else:
            app[METRICS].count_deleted(deleted)
        await asyncio.sleep(SWEEP_INTERVAL)
