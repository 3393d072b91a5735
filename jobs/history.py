"""Task history retention: finished tasks older than ``VIDCORRECT_TASK_RETENTION_DAYS`` go.

Runs as an arq cron job in the workers (arq's cron job ids keep several workers from running the
same round twice). With the default of 0 days nothing is ever deleted.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from jobs.errors import NotFound
from jobs.job_run import JobDeps
from jobs.redis_store import RedisTaskStore

log = structlog.get_logger("vidcorrect.history")

BATCH = 500


async def prune_history(ctx: dict[str, Any]) -> int:
    """arq cron job: delete expired finished tasks, their event logs and output files.

    Tasks that have not ended are kept however old they are. Returns the number deleted.
    """
    deps: JobDeps = ctx["deps"]
    days = deps.settings.task_retention_days
    if days <= 0:
        return 0
    cutoff = time.time() - days * 86400
    records: RedisTaskStore = ctx["records"]
    storage = deps.storage
    removed = 0
    while True:
        task_ids = await records.tasks_created_before(cutoff, limit=BATCH)
        progressed = False
        for task_id in task_ids:
            try:
                task = await records.get_task(task_id)
            except NotFound:
                continue
            if not task.state.finished:
                continue
            if task.result and "output_file" in task.result:
                storage.resolve(task.result["output_file"]).unlink(missing_ok=True)
            await records.delete_task(task)
            removed += 1
            progressed = True
        if not progressed or len(task_ids) < BATCH:
            break
    if removed:
        log.info("history pruned", removed=removed, retention_days=days)
    return removed
