"""The service's domain errors: what went wrong, in the service's own terms.

Every error a user can cause or see is a :class:`VidcorrectError`, with a machine-readable
``code`` plus a message that tells the user what to fix. Messages never contain file paths,
uploaded filenames or file contents. Which answer each one becomes is the server's decision
(``server/errors.py``); the errors only the HTTP layer raises live in ``server/http_errors.py``.

    VidcorrectError
    ├── InvalidRequest        bad parameters
    │   └── InvalidCursor     a listing's cursor the service did not give out
    ├── NotFound              unknown video or task id
    ├── Conflict              the request does not fit the current state of a task or video
    │   └── RoiUncertain      reprocess without a mask, and the live image is not known surely
    ├── UnusableVideo         not a video the service can use (empty, undecodable, too large)
    ├── Unprocessable         well-formed but contradicts an earlier request
    ├── RetryLater            refused for now; worth trying again in ``retry_after`` s
    │   └── QueueFull         too many tasks wait already
    ├── ConfigError           the service's own configuration is unusable (start-up only)
    ├── VerificationFailed    a job's output failed its own check (a task error)
    ├── SourceChanged         a job's original changed while it ran (a task error)
    ├── FrameProcessCrashed   a job's frame process died (a task error)
    └── Stalled               a job's frame loop made no progress for too long (a task error)
"""

from __future__ import annotations


class VidcorrectError(Exception):
    """Base of all domain errors: ``code`` for programs, ``message`` for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(VidcorrectError):
    """The request's parameters are malformed or out of range."""

    code = "invalid_request"


class InvalidCursor(InvalidRequest):
    """A listing's ``cursor`` (task history, audit trail) is not one the service gave out."""

    code = "invalid_cursor"

    def __init__(
        self, message: str = "cursor is not one this server gave out; start without it."
    ) -> None:
        super().__init__(message)


class NotFound(VidcorrectError):
    """The video or task the request names does not exist."""

    code = "not_found"


class Conflict(VidcorrectError):
    """The request is valid but cannot be done in the current state."""

    code = "conflict"


class RoiUncertain(Conflict):
    """Reprocess was to keep the live image the analysis finds (no mask was given), and the
    analysis found none, or is not sure of it: nothing is written rather than a guess."""

    code = "roi_uncertain"


class UnusableVideo(VidcorrectError):
    """The upload, or a stored video, is not a video the service can use: empty, not
    decodable, beyond the size limits, or crashing the decoder."""

    code = "invalid_video"


class Unprocessable(VidcorrectError):
    """The request is well-formed but contradicts an earlier one (e.g. an ``Idempotency-Key``
    reused for another request)."""

    code = "unprocessable"


class RetryLater(VidcorrectError):
    """Refused for now, for too many of a kind at once; ``retry_after`` seconds is a sensible
    wait."""

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QueueFull(RetryLater):
    """Too many tasks are waiting; ``retry_after`` seconds is a sensible wait."""

    code = "queue_full"


class ConfigError(VidcorrectError):
    """A configuration value cannot be used; raised at start-up."""

    code = "config_error"


class VerificationFailed(VidcorrectError):
    """A job's output did not pass the check it runs on itself; the output was deleted."""

    code = "verification_failed"


class SourceChanged(VidcorrectError):
    """The original's bytes at a job's end are not those it started from (their SHA-256
    differs): the output was made from something else than the video recorded, so it was not
    published."""

    code = "source_changed"


class FrameProcessCrashed(VidcorrectError):
    """The child process that ran a job's frame loop died (a signal, e.g. a segfault in a
    native decoder); the job failed, the worker carries on."""

    code = "worker_crash"


class Stalled(VidcorrectError):
    """A job's frame loop reported no progress for ``VIDCORRECT_STALL_TIMEOUT`` seconds while
    its worker was alive (a hung decoder or frame process): it was killed, and the task is
    retried as a lost attempt; this is its error once it has had all its attempts."""

    code = "stalled"
