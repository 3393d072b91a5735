"""``GET /metrics``: Prometheus text exposition of the service, from any server process.

The registry belongs to the application (never prometheus-client's global one). It holds this
process's own numbers (HTTP requests, SSE clients) and a :class:`ServiceCollector` for what
lives in Redis, read with a few commands per scrape and no scan over the tasks: task counts by
operation and state (:mod:`jobs.task_counts`), job durations and frames that workers add up
(:mod:`jobs.stats`), the queue's depth and the workers' beats (:mod:`jobs.liveness`), Redis's
memory, the history's size and the webhook outbox's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.deletion import KINDS
from jobs.liveness import WorkerState, read_workers
from jobs.model import Operation, TaskState
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.stats import JobTotals, read_job_stats
from server.http_log import HttpMetrics
from server.limits import Slots

#: The text format every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: A scrape gives up on Redis after this long and reports ``vidcorrect_redis_up 0``.
REDIS_TIMEOUT = 3.0


@dataclass
class Snapshot:
    """What one scrape read from Redis."""

    redis_up: bool = False
    tasks: dict[tuple[str, str], int] = field(default_factory=dict)
    jobs: JobTotals = field(default_factory=JobTotals)
    queued: int = 0
    running: int = 0
    workers: list[WorkerState] = field(default_factory=list)
    #: Redis's ``INFO memory``: ``used_memory`` and ``maxmemory`` (0: no limit), in bytes.
    memory_used: int = 0
    memory_max: int = 0
    #: Keys in the Redis database (every deployment sharing it), task records in the history,
    #: webhook deliveries waiting.
    redis_keys: int = 0
    history_tasks: int = 0
    webhooks_pending: int = 0
    taken_at: float = 0.0


class ServiceCollector:
    """Turns the latest :class:`Snapshot` into metric families (prometheus-client collects
    synchronously; the handler refreshes the snapshot just before)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.snapshot = Snapshot()

    async def refresh(self, records: RedisTaskStore, redis: Redis) -> None:
        """Read the service's numbers from Redis (the tasks' from ``records``, the workers'
        from ``redis``); on failure keep only ``redis_up 0``."""
        keys = self._settings.keys
        snapshot = Snapshot(taken_at=time.time())
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                snapshot.tasks = await records.task_counts()
                snapshot.jobs = await read_job_stats(redis, keys)
                snapshot.queued, snapshot.running = await records.queue_counts()
                snapshot.workers = await read_workers(redis, keys)
                memory = await redis.info("memory")
                snapshot.memory_used = int(memory.get("used_memory", 0))
                snapshot.memory_max = int(memory.get("maxmemory", 0))
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.dbsize()
                    pipe.zcard(keys.tasks())
                    pipe.zcard(keys.webhooks)
                    counts = await pipe.execute()
                snapshot.redis_keys, snapshot.history_tasks, snapshot.webhooks_pending = (
                    int(count) for count in counts
                )
            snapshot.redis_up = True
        except (RedisError, OSError, TimeoutError):
            snapshot = Snapshot(taken_at=snapshot.taken_at)
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        """The Redis-backed metric families of the current snapshot."""
        snap = self.snapshot
        yield GaugeMetricFamily(
            "vidcorrect_redis_up",
            "1 if this scrape could read Redis, else 0.",
            1.0 if snap.redis_up else 0.0,
        )
        if not snap.redis_up:
            return
        yield self._tasks(snap)
        yield GaugeMetricFamily(
            "vidcorrect_queue_depth",
            "Tasks waiting for a worker (queued, deferred retries included; not running).",
            max(0, snap.queued - snap.running),
        )
        yield GaugeMetricFamily(
            "vidcorrect_queue_limit",
            "Waiting tasks past which submissions get 429 (VIDCORRECT_MAX_QUEUED).",
            self._settings.max_queued,
        )
        yield GaugeMetricFamily(
            "vidcorrect_jobs_running", "Jobs running on the workers now.", snap.running
        )
        yield from self._jobs(snap.jobs)
        yield from self._workers(snap)
        yield from self._redis(snap)

    @staticmethod
    def _redis(snap: Snapshot) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "vidcorrect_redis_memory_bytes",
            "Memory Redis uses (INFO memory used_memory), for every deployment sharing it.",
            snap.memory_used,
        )
        yield GaugeMetricFamily(
            "vidcorrect_redis_maxmemory_bytes",
            "Redis's memory limit (INFO memory maxmemory); 0: none.",
            snap.memory_max,
        )
        yield GaugeMetricFamily(
            "vidcorrect_redis_keys", "Keys in the Redis database (DBSIZE).", snap.redis_keys
        )
        yield GaugeMetricFamily(
            "vidcorrect_history_keys",
            "Task records in the history (one hash each; with its index entries and, for an "
            "hour after its end, its event log, what grows Redis's memory).",
            snap.history_tasks,
        )
        yield GaugeMetricFamily(
            "vidcorrect_webhooks_pending",
            "Webhook deliveries waiting to be made or retried.",
            snap.webhooks_pending,
        )

    @staticmethod
    def _tasks(snap: Snapshot) -> Metric:
        family = GaugeMetricFamily(
            "vidcorrect_tasks",
            "Tasks in the history by operation and state.",
            labels=["operation", "state"],
        )
        for operation in Operation:  # every series, zeros included, so alerts see them appear
            for state in TaskState:
                count = snap.tasks.get((operation.value, state.value), 0)
                family.add_metric([operation.value, state.value], count)
        return family

    @staticmethod
    def _jobs(jobs: JobTotals) -> Iterable[Metric]:
        durations = HistogramMetricFamily(
            "vidcorrect_job_duration_seconds",
            "Job runs by operation and the state they ended in (SUCCESS, FAILURE, REVOKED, or "
            "RETRY after a transient error), from start to end on the worker.",
            labels=["operation", "state"],
        )
        for (operation, state), series in sorted(jobs.durations.items()):
            durations.add_metric([operation, state], series.cumulative(), series.total)
        yield durations
        frames = CounterMetricFamily(
            "vidcorrect_frames_processed",
            "Frames the jobs went through, by operation and stage "
            "(analyze, encode, verify, stitch).",
            labels=["operation", "stage"],
        )
        for (operation, stage), count in sorted(jobs.frames.items()):
            frames.add_metric([operation, stage], count)
        yield frames

    def _workers(self, snap: Snapshot) -> Iterable[Metric]:
        timeout = self._settings.heartbeat_timeout
        alive = [w for w in snap.workers if w.age(snap.taken_at) < timeout]
        yield GaugeMetricFamily(
            "vidcorrect_workers_alive",
            f"Workers that beat within the heartbeat timeout ({timeout} s).",
            len(alive),
        )
        yield GaugeMetricFamily(
            "vidcorrect_processing_fps",
            "Frames per second the live workers are processing now, all jobs together.",
            round(sum(w.fps for w in alive), 2),
        )
        age = GaugeMetricFamily(
            "vidcorrect_worker_heartbeat_age_seconds",
            "Seconds since each worker's last beat (workers silent for an hour are dropped).",
            labels=["worker"],
        )
        running = GaugeMetricFamily(
            "vidcorrect_worker_jobs_running",
            "Jobs each live worker runs now.",
            labels=["worker"],
        )
        fps = GaugeMetricFamily(
            "vidcorrect_worker_processing_fps",
            "Frames per second each live worker is processing now.",
            labels=["worker"],
        )
        for worker in snap.workers:
            age.add_metric([worker.worker_id], round(worker.age(snap.taken_at), 3))
        for worker in alive:
            running.add_metric([worker.worker_id], worker.jobs)
            fps.add_metric([worker.worker_id], worker.fps)
        yield age
        yield running
        yield fps


class Metrics:
    """The application's registry and what feeds it."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.service = ServiceCollector(settings)
        self.registry.register(self.service)
        self._sse = Gauge(
            "vidcorrect_sse_clients",
            "Clients following task events (SSE) on this server process.",
            registry=self.registry,
        )
        self._uploads = Gauge(
            "vidcorrect_uploads_in_progress",
            "Uploads being received by this server process.",
            registry=self.registry,
        )
        self._deleted = Counter(
            "vidcorrect_deleted_files",
            "Files of patient data this server process deleted (the DELETE routes and the "
            "retention sweeps), by kind: original, output, orphan (a crash's temp file).",
            labelnames=["kind"],
            registry=self.registry,
        )
        for kind in KINDS:  # every series from the start, zeros included
            self._deleted.labels(kind=kind)

    def count_deleted(self, deleted: Mapping[str, int]) -> None:
        """Count files this process deleted (the endpoints, the retention sweeps), by kind."""
        for kind, count in deleted.items():
            self._deleted.labels(kind=kind).inc(count)

    def follow_streams(self, sse: Slots, uploads: Slots) -> None:
        """Report this process's open event streams and uploads."""
        self._sse.set_function(lambda: sse.count)
        self._uploads.set_function(lambda: uploads.count)

    async def exposition(self, records: RedisTaskStore, redis: Redis) -> bytes:
        """The text exposition, with the Redis-backed numbers read now."""
        await self.service.refresh(records, redis)
        return generate_latest(self.registry)
