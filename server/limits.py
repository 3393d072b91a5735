"""Per-process caps on long-lived requests: event streams and uploads.

Each holds a connection, a handler and (for uploads) a temp file for as long as its client
likes, so a server process takes at most so many at once and answers the next one 503 with
``Retry-After`` (:class:`server.http_errors.ServerBusy`) instead of growing without bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from server.http_errors import ServerBusy

#: Seconds a client refused for being one too many is asked to wait.
BUSY_RETRY_AFTER = 5


class Slots:
    """At most ``limit`` holders at once; :meth:`take` raises :class:`ServerBusy` past it."""

    def __init__(self, limit: int, code: str, what: str, setting: str) -> None:
        self.limit = limit
        self._code = code
        self._what = what
        self._setting = setting
        self._held = 0

    @property
    def count(self) -> int:
        """Slots held now."""
        return self._held

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block, or raise :class:`ServerBusy` when none is free."""
        if self._held >= self.limit:
            raise ServerBusy(
                f"This server already has {self._held} {self._what} open ({self._setting}); "
                f"try again in {BUSY_RETRY_AFTER} s.",
                code=self._code,
                retry_after=BUSY_RETRY_AFTER,
            )
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
