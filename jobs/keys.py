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
``P:chunked``                    zset    hand-off of a long task: task id ->  until the task has
                                         hand-off time (jobs.chunked)         ended and its parts
                                                                              are removed
``P:task:<task_id>:chunks``      hash    hand-off: the chunk plan, edit plan  as ``P:chunked``
                                         and result fields (``spec``); chunk
                                         jobs: each part's outcome
                                         (``part:<i>``) and attempts
                                         (``attempts:<i>``); the resumes
                                         (``generation``)
``P:task:<task_id>:chunks:       set     chunk jobs: the indices of finished  as ``P:chunked``
done``                                   parts (counted once each)
``P:task:<task_id>:chunks:       hash    chunk jobs: frames done and rate of  as ``P:chunked``
progress``                               each running chunk; the most frames
                                         published
``P:task:<task_id>:chunks:       list    hand-off: chunk indices not queued   as ``P:chunked``
pending``                                yet (``VIDCORRECT_MAX_CHUNKS_PER_
                                         TASK``); each finished chunk pops one
``P:task:<task_id>:chunks:       string  the chunk job that publishes the     a few seconds,
publisher``                              task's aggregate progress            renewed
``P:task:<task_id>:stitch:<n>``  string  the chunk that completed attempt     1 day
                                         ``n``'s set (SET NX): it queues the
                                         stitch
``P:task:<task_id>:stitching:    string  the stitch job of attempt ``n``      1 day (dropped when
<n>``                                    that runs (SET NX)                   a shutdown
                                                                              interrupts it)
``P:chunks:running``             zset    chunk jobs: ``<task_id>:<index>`` -> kept; a chunk leaves
                                         last heartbeat; chunk recovery       when its run ends
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
``P:webhooks``                   zset    each write that ends a task (in its  kept; a delivery
                                         MULTI), delivery loop: delivery id   leaves when it is
                                         -> when it is due (epoch s)          delivered, given up
``P:webhook:<delivery_id>``      hash    the same: url, task id, the ended    as its entry in
                                         record (JSON), created, attempts     ``P:webhooks``
``P:audit``                      list    server: one JSON entry per audited   kept (append-only;
                                         action, hash-chained                 see jobs.audit)
                                         (:mod:`jobs.audit`)
``P:queue``                      zset    arq: the jobs queued by the          arq's
                                         submitter, recovery and retries
===============================  ======  ===================================  ====================

arq names its other keys itself, from the queue name (``P:queue:health-check``, beaten by each
worker) or from the job id, without the prefix (``arq:job:<job_id>``, ``arq:in-progress:``,
``arq:retry:``, ``arq:result:`` kept an hour, and ``arq:abort``). A task's job id is its task id
for its first attempt and ``<task_id>-a<attempt>`` after (:mod:`jobs.queueing`); a lost
attempt's queue entry and ``arq:job:``/``arq:in-progress:``/``arq:retry:`` keys are deleted by
recovery when it re-queues the task. A chunk's job id is
``<task_id>:chunk:<index>:<attempt>.<chunk attempt>`` and a stitch's ``<task_id>:stitch:<attempt>``
(:mod:`jobs.chunked`).
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

    @property
    def webhooks(self) -> str:
        """The webhook outbox: sorted set of delivery ids by when each is due (epoch seconds)."""
        return f"{self.prefix}:webhooks"

    def webhook(self, delivery_id: str) -> str:
        """Hash of one webhook delivery: where, which task, the record it posts, its attempts."""
        return f"{self.prefix}:webhook:{delivery_id}"

    def revoked_session(self, session_id: str) -> str:
        """Marks a signed-out page session until its cookie would have expired."""
        return f"{self.prefix}:session:{session_id}:revoked"

    @property
    def audit(self) -> str:
        """The audit trail: a list of hash-chained JSON entries, entry ``seq`` at index ``seq``."""
        return f"{self.prefix}:audit"

    @property
    def chunked(self) -> str:
        """Sorted set of the tasks handed off to chunk jobs, by hand-off time (epoch seconds)."""
        return f"{self.prefix}:chunked"

    def chunks(self, task_id: str) -> str:
        """Hash of a chunked task: its spec, each part's outcome and each chunk's attempts."""
        return f"{self.prefix}:task:{task_id}:chunks"

    def chunks_done(self, task_id: str) -> str:
        """Set of the indices of a chunked task's finished parts."""
        return f"{self.prefix}:task:{task_id}:chunks:done"

    def chunks_progress(self, task_id: str) -> str:
        """Hash of the frames done and rate of each chunk of a task, and the most published."""
        return f"{self.prefix}:task:{task_id}:chunks:progress"

    def chunks_pending(self, task_id: str) -> str:
        """List of the chunk indices of a task not queued yet (the per-task limit)."""
        return f"{self.prefix}:task:{task_id}:chunks:pending"

    def chunks_publisher(self, task_id: str) -> str:
        """Held by the one chunk job that publishes a task's aggregate progress."""
        return f"{self.prefix}:task:{task_id}:chunks:publisher"

    def stitch_claim(self, task_id: str, attempt: int) -> str:
        """Set by the chunk that completed attempt ``attempt``'s parts: it queues the stitch."""
        return f"{self.prefix}:task:{task_id}:stitch:{attempt}"

    def stitching(self, task_id: str, attempt: int) -> str:
        """Held by the stitch job of attempt ``attempt`` that runs."""
        return f"{self.prefix}:task:{task_id}:stitching:{attempt}"

    @property
    def chunks_running(self) -> str:
        """Sorted set of running chunks (``<task_id>:<index>``) by their last heartbeat."""
        return f"{self.prefix}:chunks:running"

    def chunk_keys(self, task_id: str) -> tuple[str, ...]:
        """Every key of a chunked task's chunk state (removed when the task has ended)."""
        return (
            self.chunks(task_id),
            self.chunks_done(task_id),
            self.chunks_progress(task_id),
            self.chunks_pending(task_id),
            self.chunks_publisher(task_id),
        )
