"""The Python client of a vidcorrect server, for another Python application (a hospital's
backend that keeps its own video records, a script): :class:`Client`.

Synchronous and standard library only (``urllib``/``http.client``), so it fits a Django view, a
Celery task or a plain script alike, and it imports nothing of the service. The
``vidcorrect`` command-line client is built on it. Every call is one or a few HTTP requests;
failures are exceptions:

- :class:`ApiError`: the server refused the request; ``status``, ``code`` and ``message`` are
  the API's (404 ``task_not_found``, 400 ``invalid_roi``, 429 ``queue_full`` with
  ``retry_after`` ...);
- :class:`Unreachable`: no answer (refused, unknown host, timed out, connection lost);
- :class:`LocalFileError`: a file on this machine cannot be read or written;
- :class:`NoOutput`: :meth:`Client.download` of a task that has no output (yet).

Example::

    from client import Client

    vc = Client("https://vidcorrect.hospital.local", token=os.environ["VIDCORRECT_API_TOKEN"])
    video = vc.upload(Path("colonoscopy.mp4"))
    task = vc.submit("mask", video["id"], {"mask_type": "device",
                                           "device_name": "olympus_cv_1500"})
    final = vc.wait(task["task_id"], progress=lambda s: print(s["progress"], s["status"]))
    if final["state"] == "SUCCESS":
        vc.download(final, Path("masked.mp4"))
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from client import transfer
from client.api import Api, ApiError, ClientError, JsonDict, Unreachable
from client.events import Follower
from client.transfer import LocalFileError

__all__ = [
    "OPERATIONS",
    "REVIEW_STATES",
    "ApiError",
    "Client",
    "ClientError",
    "LocalFileError",
    "NoOutput",
    "Unreachable",
]

#: The operations and the route each is submitted to (``{}``: the video id).
OPERATIONS = {
    "mask": "/api/video-apply-mask/{}/",
    "remove_frames": "/api/video-remove-frames/{}/",
    "analyze": "/api/video-analyze/{}/",
    "reprocess": "/api/video-reprocess/{}/",
}
#: The review states of a task's output (``POST /api/tasks/{id}/review``).
REVIEW_STATES = ("pending", "approved", "rejected")

#: Called with the bytes sent or received so far and the total (``None`` when unknown).
TransferProgress = Callable[[int, int | None], None]
#: Called with each status of a task seen while waiting (the JSON of
#: ``GET /api/task-status/{task_id}/``).
StatusProgress = Callable[[JsonDict], None]


class NoOutput(ClientError):
    """The task has no output to download: it has not succeeded (``state``), or it is an
    analysis, whose findings are its ``result``."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class Client:
    """One vidcorrect server, called with an API token (``Authorization: Bearer``).

    ``url`` is the server's base address (``http://host:port``; ``https`` with a certificate
    the system trusts); ``token`` is ``VIDCORRECT_API_TOKEN`` or a user's token, ``None`` for an
    open server. Redirects are never followed (they would carry the token elsewhere). A
    ``Client`` holds no connection between calls and may be shared by threads.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        #: The HTTP layer (:class:`client.api.Api`): for routes this class has no method for.
        self.api = Api(url, token)

    @property
    def url(self) -> str:
        """The server's base address, without a trailing slash."""
        return self.api.base

    # Videos

    def upload(self, path: Path | str, progress: TransferProgress | None = None) -> JsonDict:
        """Upload a video file (streamed from disk); returns its record (``id``, ``width``,
        ``height``, ``fps``, ``frame_count``, ``sha256`` ...). ``progress`` gets the bytes sent
        so far and the file's size after each chunk. The server keeps only the file's name for
        display; it probes the whole file before it answers (415 for what it cannot use)."""
        path = Path(path)
        try:
            size: int | None = path.stat().st_size
        except OSError:
            size = None  # transfer.upload says why
        report = progress or _ignore_transfer
        return transfer.upload(self.api, path, lambda sent: report(sent, size))

    def video(self, video_id: int) -> JsonDict:
        """A video's record, with its tasks and outputs."""
        return self.api.get_json(f"/api/videos/{int(video_id)}/")

    def devices(self) -> list[JsonDict]:
        """The device catalogue (the names a ``"mask_type": "device"`` mask may use)."""
        return list(self.api.get_json("/api/devices/").get("devices") or [])

    # Tasks

    def submit(
        self,
        operation: str,
        video_id: int,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> JsonDict:
        """Queue an operation (``mask``, ``remove_frames``, ``analyze``, ``reprocess``) on a
        video with the request ``body`` of its route (see the README's API section); returns
        the server's answer: ``task_id``, ``status``, ``duplicate`` (an identical task was
        already queued or running: that one is answered), ``message``, ``status_url``.

        ``idempotency_key``: a key of yours (a UUID, your own record's id) that makes a retried
        submission answer with the same task instead of queuing another. ``callback_url``:
        where the server POSTs the task's JSON when it ends (a webhook; the host must be in the
        server's ``VIDCORRECT_WEBHOOK_HOSTS``, else 400 ``callback_not_allowed``).

        A server with ``USE_ASYNC_TASKS=false`` answers only once the job has ended, with
        ``{"task_id": None, "result": {...}}``.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
        sent = dict(body or {})
        if callback_url is not None:
            sent["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.api.send_json(
            "POST", OPERATIONS[operation].format(int(video_id)), sent, headers
        )

    def task(self, task_id: str) -> JsonDict:
        """A task's status: ``state`` (PENDING, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE,
        REVOKED), ``progress`` (0-100), ``status`` (words), ``result`` or ``error`` once it
        has ended, and the rest of ``GET /api/task-status/{task_id}/``."""
        return self.api.get_json(task_path(task_id))

    def tasks(
        self,
        *,
        video_id: int | None = None,
        state: str | None = None,
        operation: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> tuple[list[JsonDict], str | None]:
        """One page of the task history, newest first, and the cursor of the next page
        (``None``: this was the last)."""
        query: dict[str, object] = {
            "video_id": video_id,
            "state": state,
            "operation": operation,
            "limit": limit,
            "cursor": cursor,
        }
        page = self.api.get_json("/api/tasks/", query)
        next_cursor = page.get("next_cursor")
        return list(page.get("tasks") or []), str(next_cursor) if next_cursor else None

    def iter_tasks(
        self,
        *,
        video_id: int | None = None,
        state: str | None = None,
        operation: str | None = None,
    ) -> Iterator[JsonDict]:
        """Every task of the history that matches, newest first, page after page."""
        cursor: str | None = None
        while True:
            page, cursor = self.tasks(
                video_id=video_id, state=state, operation=operation, cursor=cursor
            )
            yield from page
            if cursor is None:
                return

    def wait(self, task_id: str, progress: StatusProgress | None = None) -> JsonDict:
        """Follow a task until it ends; returns its final status (``state`` SUCCESS, FAILURE
        or REVOKED: check it). ``progress`` is called with each status seen on the way (the
        task's event stream, resumed when it drops; the status route polled every second when
        no stream can be had), the final one included. Raises :class:`Unreachable` once the
        server has been away for a minute; the task goes on there, and calling ``wait`` again
        picks it up. A task that has already ended returns at once."""
        return self.follow(task_id, progress)

    def follow(self, task_id: str, progress: StatusProgress | None = None) -> JsonDict:
        """:meth:`wait` (the same: the CLI's name for it)."""
        return Follower(self.api, task_id, progress or _ignore_status).run()

    def cancel(self, task_id: str) -> JsonDict:
        """Cancel a queued or running task (it ends REVOKED): the server's answer, with the
        task's ``state`` now. 409 ``already_finished`` if it has ended."""
        return self.api.send_json("POST", task_path(task_id, "cancel/"))

    def download(
        self,
        task: str | Mapping[str, Any],
        target: Path | str | None = None,
        progress: TransferProgress | None = None,
    ) -> Path:
        """Save a succeeded task's output (``task``: its id, or its final status as
        :meth:`wait` returns it) to ``target``: a file, or a folder for the server's name
        (default: that name in the current folder). Returns the path written. The bytes go to
        a hidden temporary file beside it, renamed into place once complete. Raises
        :class:`NoOutput` for a task that has not succeeded or has no output (an analysis),
        :class:`ApiError` 404 ``output_deleted`` once the output was deleted."""
        status: Mapping[str, Any] = self.task(task) if isinstance(task, str) else task
        state = str(status.get("state"))
        result = status.get("result") or {}
        if state != "SUCCESS" or not result.get("output_url"):
            what = "has no output file" if state == "SUCCESS" else f"is {state}, not SUCCESS"
            raise NoOutput(f"task {status.get('task_id')} {what}", state)
        fallback = output_fallback_name(status)
        return transfer.download(
            self.api,
            str(result["output_url"]),
            None if target is None else Path(target),
            fallback,
            progress or _ignore_transfer,
        )

    # Review (the server's review and sign-off of outputs)

    def review_state(self, task_id: str) -> Any:
        """The task's ``review``: its output's review, ``{"state", "by", "at", "comment"}``
        with ``state`` pending, approved or rejected; ``None`` for a task with nothing to
        review (an analysis) and from a server without review."""
        return self.task(task_id).get("review")

    def review(self, task_id: str, state: str, comment: str | None = None) -> JsonDict:
        """Set the review of a task's output (``POST /api/tasks/{task_id}/review``; a reviewer's
        token): ``state`` one of :data:`REVIEW_STATES`, with an optional ``comment``. Returns
        the server's answer (the task, with its new ``review``)."""
        if state not in REVIEW_STATES:
            raise ValueError(f"state must be one of {', '.join(REVIEW_STATES)}, got {state!r}")
        body: JsonDict = {"state": state}
        if comment is not None:
            body["comment"] = comment
        quoted = urllib.parse.quote(task_id, safe="")
        return self.api.send_json("POST", f"/api/tasks/{quoted}/review", body)


def task_path(task_id: str, suffix: str = "") -> str:
    """The status route of a task (``suffix``: ``events``, ``cancel/``)."""
    return f"/api/task-status/{urllib.parse.quote(task_id, safe='')}/{suffix}"


def output_fallback_name(status: Mapping[str, Any]) -> str:
    """The name an output is saved under when the server proposes none:
    ``video-<id>-<operation>-<task>.mp4``, never the uploaded file's name."""
    task = str(status.get("task_id") or "sync")
    return f"video-{status.get('video_id')}-{status.get('operation')}-{task[:8]}.mp4"


def _ignore_transfer(done: int, total: int | None) -> None:
    return None


def _ignore_status(status: JsonDict) -> None:
    return None
