"""What a failed job's error means: worth another try (transient), or the code and message its
task ends with. The storage errors that mean a full disk are also the HTTP layer's 507."""

from __future__ import annotations

import errno
import os

from redis.exceptions import RedisError

from jobs.errors import Stalled, VidcorrectError
from jobs.video import InvalidVideo, VideoError

#: Storage errors worth another try: I/O errors, busy or stale (network) files, time-outs.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE})

#: Storage errors that mean "the disk is full" (EFBIG: a file-size limit was reached).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def transient_reason(exc: Exception) -> str | None:
    """Why ``exc`` is worth another try, in a few words for the task's status (the error's
    name); ``None`` if it is not (Redis errors, ``TRANSIENT_ERRNOS`` and a stalled frame loop
    are)."""
    if isinstance(exc, RedisError):
        return type(exc).__name__
    if isinstance(exc, Stalled):  # retried as a lost attempt: a hang may not come back
        return "its frame loop made no progress"
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return os.strerror(exc.errno or 0)
    return None


def describe_failure(exc: Exception, timeout: int) -> tuple[str, str]:
    """The error code and message a job that raised ``exc`` ends with (``timeout``: the job
    time limit, in seconds); ``internal_error`` for anything unexpected."""
    if isinstance(exc, TimeoutError):
        return "timeout", f"The job ran longer than its limit of {timeout} s and was stopped."
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return "no_space", (
            "The server ran out of storage space while writing the output "
            f"({os.strerror(exc.errno or 0)}); the partial output was removed and the original "
            "is untouched. Submit again once space has been freed."
        )
    if isinstance(exc, InvalidVideo):
        return "invalid_video", str(exc)
    if isinstance(exc, VideoError):
        return "encode_failed", str(exc)
    if isinstance(exc, VidcorrectError):
        return exc.code, exc.message
    return "internal_error", "The job failed unexpectedly; the error was logged with its task id."
