"""The service's domain errors.

Every error a user can cause or see is a :class:`VidcorrectError`. Each subclass stands for one
kind of HTTP answer (the server maps them in one middleware), and carries a machine-readable
``code`` plus a message that tells the user what to fix. Messages never contain file paths,
uploaded filenames or file contents.

    VidcorrectError
    ├── InvalidRequest        bad parameters (400)
    ├── Unauthorized          no or a wrong API token / session (401)
    ├── Forbidden             a cross-site request (foreign Origin, Sec-Fetch-Site) (403)
    ├── NotFound              unknown video or task id (404)
    ├── ClientTooSlow         a request body that came too slowly; the connection is closed (408)
    │   └── UploadTooSlow     an upload stalled or trickled below the minimum rate
    ├── Conflict              the request does not fit the current state (409)
    ├── PayloadTooLarge       upload larger than allowed (413)
    ├── MisdirectedRequest    a Host header this service does not answer to (421)
    ├── UnsupportedMedia      not a video we can decode, or a body that is not JSON (415)
    ├── Unprocessable         well-formed but contradicts an earlier request (422)
    ├── Throttled             too many requests; retry after ``retry_after`` s (429)
    │   └── QueueFull         too many tasks wait already
    ├── ServerBusy            too many streams or uploads on this process; retry later (503)
    ├── ConfigError           the service's own configuration is unusable (start-up only)
    ├── VerificationFailed    a job's output failed its own check (a task error, never HTTP)
    └── FrameProcessCrashed   a job's frame process died (a task error, never HTTP)
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


class Unauthorized(VidcorrectError):
    """The API needs a token (``VIDCORRECT_API_TOKEN``) and the request brought none that fits."""

    code = "unauthorized"


class Forbidden(VidcorrectError):
    """The request comes from another site (its ``Origin`` or ``Sec-Fetch-Site`` says so)."""

    code = "forbidden"


class NotFound(VidcorrectError):
    """The video or task the request names does not exist."""

    code = "not_found"


class Conflict(VidcorrectError):
    """The request is valid but cannot be done in the current state."""

    code = "conflict"


class PayloadTooLarge(VidcorrectError):
    """The upload exceeds ``VIDCORRECT_MAX_UPLOAD_BYTES``."""

    code = "too_large"


class MisdirectedRequest(VidcorrectError):
    """The ``Host`` header names a host this service is not configured to answer to
    (``VIDCORRECT_ALLOWED_HOSTS``): a DNS-rebinding page, or a misconfigured proxy."""

    code = "unknown_host"


class UnsupportedMedia(VidcorrectError):
    """The upload is not a decodable video, or a JSON route got a body of another type."""

    code = "unsupported_media"


class Unprocessable(VidcorrectError):
    """The request is well-formed but contradicts an earlier one (e.g. an ``Idempotency-Key``
    reused for another request)."""

    code = "unprocessable"


class Throttled(VidcorrectError):
    """Too many requests of a kind; ``retry_after`` seconds is a sensible wait."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QueueFull(Throttled):
    """Too many tasks are waiting; ``retry_after`` seconds is a sensible wait."""

    code = "queue_full"


class ServerBusy(VidcorrectError):
    """This server process holds as many event streams or uploads as it is allowed; retry in
    ``retry_after`` seconds."""

    code = "server_busy"

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ClientTooSlow(VidcorrectError):
    """A request body did not arrive in time (a JSON body within ``VIDCORRECT_HEADER_TIMEOUT``:
    ``body_too_slow``); the answer closes the connection."""

    code = "too_slow"


class UploadTooSlow(ClientTooSlow):
    """An upload sent too little for too long (``VIDCORRECT_UPLOAD_IDLE_TIMEOUT``,
    ``VIDCORRECT_UPLOAD_MIN_RATE``); it was cut off and its partial file removed."""

    code = "upload_too_slow"


class ConfigError(VidcorrectError):
    """A configuration value cannot be used; raised at start-up."""

    code = "config_error"


class VerificationFailed(VidcorrectError):
    """A job's output did not pass the check it runs on itself; the output was deleted."""

    code = "verification_failed"


class FrameProcessCrashed(VidcorrectError):
    """The child process that ran a job's frame loop died (a signal, e.g. a segfault in a
    native decoder); the job failed, the worker carries on."""

    code = "worker_crash"
