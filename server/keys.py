"""Typed keys of the aiohttp application's state."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis

from jobs.audit import AuditLog
from jobs.device_catalogue import DeviceCatalogue
from jobs.event_hub import EventHub
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.storage import Storage
from jobs.submit import Submitter
from server.access import Access, Revocations, SignInThrottle
from server.limits import Slots
from server.metrics import Metrics
from server.task_router import TaskRouter

#: The effective settings (with the embedded Redis's URL once it runs).
SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
#: The devices for device masks: built in, and added by users (in the data dir).
DEVICES = web.AppKey("devices", DeviceCatalogue)
#: The process's Redis pool, for what is no task data: the arq queue, worker liveness, job
#: statistics, session revocations.
REDIS = web.AppKey("redis", ArqRedis)
#: Videos, and the tasks in Redis (the history).
RECORDS = web.AppKey("records", RedisTaskStore)
#: The process's one reader of task event logs, shared by all SSE clients.
EVENTS = web.AppKey("events", EventHub)
SUBMITTER = web.AppKey("submitter", Submitter)
#: Every task of this process, wherever it lives (Redis, or memory in the degraded mode).
TASKS = web.AppKey("tasks", TaskRouter)
#: The process's Prometheus registry and the collectors that feed it.
METRICS = web.AppKey("metrics", Metrics)
#: The API token (or none) and the page's session cookies.
ACCESS = web.AppKey("access", Access)
#: Page sessions signed out before their cookie expired.
REVOCATIONS = web.AppKey("revocations", Revocations)
#: Failed sign-ins per client address.
SIGN_IN_THROTTLE = web.AppKey("sign_in_throttle", SignInThrottle)
#: This process's event streams (``VIDCORRECT_MAX_SSE_CLIENTS``).
SSE_SLOTS = web.AppKey("sse_slots", Slots)
#: This process's uploads being received (``VIDCORRECT_MAX_CONCURRENT_UPLOADS``).
UPLOAD_SLOTS = web.AppKey("upload_slots", Slots)
#: The audit trail (in Redis).
AUDIT = web.AppKey("audit", AuditLog)
