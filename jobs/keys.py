"""Every Redis key of the service, built here and nowhere else.

``P`` is :attr:`Settings.key_prefix` (``vidcorrect``): several deployments (and each test) can
share one Redis. The strings are part of the stored data: changing one orphans what is stored.

===============================  ======  ===================================  ====================
Key                              Type    Written by                           Lifetime
===============================  ======  ===================================  ====================
``P:video:next_id``              string  server, at upload (the id counter)   kept
``P:video:<id>``                 string  server, at upload: JSON of the       until the video is
                                         :class:`VideoRecord`                 deleted (DELETE,
                                                                              original retention)
``P:videos``                     zset    server, at upload: id -> id          as the video's record
``P:task:<task_id>``             hash    submitter (create), workers (state,  kept; deleted by the
                                         progress), server (cancel),          history retention
                                         recovery; one JSON value per field
``P:tasks``                      zset    submitter: task id -> creation (ms)  as the task hash
``P:video:<id>:tasks``           zset    submitter: the same, per video       as the task hash
``P:task:<task_id>:events``      stream  each write of the task hash: the     ~1000 entries while
                                         record's fields (JSON) as a          it runs; 1 h once
                                         ``progress`` or ``end`` entry        it has ended
``P:task:<task_id>:cancel``      string  server, when a client cancels        1 day
``P:task:<task_id>:recovering``  string  recovery: the lock of the worker     max(10 s, the
                                         that re-queues a lost task           heartbeat timeout)
``P:running``                    zset    workers: task id -> last heartbeat;  kept; a task leaves
                                         recovery                             when its run ends
``P:idem:<digest>``              string  submitter: the task of an            1 day (``KEYS_TTL``)
                                         ``Idempotency-Key`` (SHA-256)
``P:same:<fingerprint>``         string  submitter: the task of a request     1 day (``KEYS_TTL``)
                                         (operation, video, parameters)
``P:stats:tasks``                hash    each state change (Lua, in its       kept
                                         MULTI); started by a first scrape
``P:stats:jobs``                 hash    workers: run durations, frames       kept
``P:workers``                    zset    workers: worker id -> last beat      kept; entries silent
                                                                              for 1 h are dropped
``P:worker:<worker_id>``         hash    workers: jobs, max_jobs, fps         1 h after its last
                                                                              beat; deleted at a
                                                                              clean stop
``P:session:<id>:revoked``       string  server, at sign-out                  until the session's
                                                                              cookie expires
``P:queue``                      zset    arq: the jobs queued by the          arq's
                                         submitter, recovery and retries
===============================  ======  ===================================  ====================

arq names its other keys itself, from the queue name (``P:queue:health-check``, beaten by each
worker) or from the job id, without the prefix (``arq:job:<job_id>``, ``arq:in-progress:``,
``arq:retry:``, ``arq:result:`` kept an hour, and ``arq:abort``). A task's job id is its task id
for its first attempt and ``<task_id>-a<attempt>`` after (:mod:`jobs.queueing`); a lost
attempt's queue entry and ``arq:job:``/``arq:in-progress:``/``arq:retry:`` keys are deleted by
recovery when it re-queues the task.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """The keys under one prefix."""

    prefix: str

    @property
    def queue(self) -> str:
        """The arq queue (arq's sorted set of job ids by when they are due)."""
        return f"{self.prefix}:queue"

    @property
    def video_next_id(self) -> str:
        """Counter of video ids."""
        return f"{self.prefix}:video:next_id"

    def video(self, video_id: int) -> str:
        """JSON of one video's record."""
        return f"{self.prefix}:video:{video_id}"

    @property
    def videos(self) -> str:
        """Sorted set of the video ids."""
        return f"{self.prefix}:videos"

    def task(self, task_id: str) -> str:
        """Hash of one task's record (``task("")`` is the prefix every task hash shares)."""
        return f"{self.prefix}:task:{task_id}"

    def tasks(self, video_id: int | None = None) -> str:
        """Sorted set of task ids by creation time (ms): all tasks, or one video's."""
        if video_id is None:
            return f"{self.prefix}:tasks"
        return f"{self.prefix}:video:{video_id}:tasks"

    def task_events(self, task_id: str) -> str:
        """A task's event log: a capped stream whose entry ids are the SSE event ids."""
        return f"{self.prefix}:task:{task_id}:events"

    def cancel(self, task_id: str) -> str:
        """Set when a client asked to cancel the task; its running job polls it."""
        return f"{self.prefix}:task:{task_id}:cancel"

    def recovering(self, task_id: str) -> str:
        """Held by the one worker that re-queues (or fails) a task that lost its worker."""
        return f"{self.prefix}:task:{task_id}:recovering"

    @property
    def running(self) -> str:
        """Sorted set of running task ids by their last heartbeat (epoch seconds)."""
        return f"{self.prefix}:running"

    def idempotency(self, digest: str) -> str:
        """The task an ``Idempotency-Key`` (its digest) was answered with."""
        return f"{self.prefix}:idem:{digest}"

    def same_request(self, fingerprint: str) -> str:
        """The task of a request (its fingerprint: operation, video and parameters)."""
        return f"{self.prefix}:same:{fingerprint}"

    @property
    def task_counts(self) -> str:
        """Hash of task counts by operation and state (see :mod:`jobs.task_counts`)."""
        return f"{self.prefix}:stats:tasks"

    @property
    def job_stats(self) -> str:
        """Hash of job durations and frame counts (see :mod:`jobs.stats`)."""
        return f"{self.prefix}:stats:jobs"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids by their last beat (see :mod:`jobs.liveness`)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Hash of what one worker is doing."""
        return f"{self.prefix}:worker:{worker_id}"

    def revoked_session(self, session_id: str) -> str:
        """Marks a signed-out page session until its cookie would have expired."""
        return f"{self.prefix}:session:{session_id}:revoked"
