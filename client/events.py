"""Following a task to its end: its Server-Sent Events, resumed with ``Last-Event-ID`` when the
stream drops, or the status route polled when the events route cannot be used."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from client.api import Api, ApiError, JsonDict, Unreachable

FINISHED = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
#: Seconds without a byte after which a stream counts as dropped (the server's heartbeat
#: comment comes every 15 s).
STREAM_TIMEOUT = 45.0
#: Seconds between polls when following without the event stream.
POLL_INTERVAL = 1.0
#: Streams in a row that drop before their first event before the client polls instead.
MAX_BARREN_STREAMS = 3
#: Seconds the server may stay unreachable while following before the client gives up.
GIVE_UP_AFTER = 60.0
#: Answers that mean "not now" (Redis away, a proxy between restarts): try again.
TRANSIENT = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Event:
    """One dispatched Server-Sent Event (``data`` lines joined with newlines)."""

    id: str | None
    event: str
    data: str
    retry: int | None


def parse_events(lines: Iterable[bytes]) -> Iterator[Event]:
    """The events of a ``text/event-stream`` body, as the EventSource specification reads it;
    an event cut off by the end of the stream is not dispatched."""
    data: list[str] = []
    event_id: str | None = None
    name = ""
    retry: int | None = None
    for raw in lines:
        line = raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
        if line == "":
            if data:
                yield Event(event_id, name or "message", "\n".join(data), retry)
            data, name, retry = [], "", None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and "\0" not in value:
            event_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)


class EventsUnavailable(Exception):
    """The events route answered, but not with an event stream (an older server, or a proxy)."""


StatusCallback = Callable[[JsonDict], None]


class Follower:
    """Follows one task, handing every status it sees to ``on_status``; :meth:`run` returns
    the final status."""

    def __init__(
        self,
        api: Api,
        task_id: str,
        on_status: StatusCallback,
        *,
        give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        self.api = api
        self.task_id = task_id
        self.on_status = on_status
        self.give_up_after = give_up_after
        self.last_event_id: str | None = None
        self.retry_seconds = 2.0
        self._down_since: float | None = None
        self._quoted = urllib.parse.quote(task_id, safe="")

    def run(self) -> JsonDict:
        """Follow the event stream; resume it where it dropped; poll if it cannot be used."""
        barren = 0
        while True:
            try:
                final, delivered = self._stream_once()
            except EventsUnavailable:
                return self.poll()
            except Unreachable as error:
                self._wait_for_server(error, self.retry_seconds)
                continue
            except ApiError as error:
                if error.status in TRANSIENT:
                    self._wait_for_server(error, error.retry_after or self.retry_seconds)
                    continue
                if error.status == 404 and error.code != "task_not_found":
                    return self.poll()  # no events route here
                raise
            if final is not None:
                return final
            barren = 0 if delivered else barren + 1
            if barren >= MAX_BARREN_STREAMS:
                return self.poll()
            # The stream ended without its end event (the server restarted, or the connection
            # dropped): resume after the last event seen; soon if this stream brought events,
            # else after the server's suggested retry interval.
            time.sleep(0.2 if delivered else self.retry_seconds)

    def _stream_once(self) -> tuple[JsonDict | None, bool]:
        """Read one connection of the stream; returns the final status if it came, and whether
        any event did."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        response = self.api.open(
            "GET",
            f"/api/task-status/{self._quoted}/events",
            headers=headers,
            timeout=STREAM_TIMEOUT,
        )
        delivered = False
        with response:
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                raise EventsUnavailable
            try:
                for event in parse_events(response):
                    if event.retry is not None:
                        self.retry_seconds = event.retry / 1000
                    if event.id is not None:
                        self.last_event_id = event.id
                    if event.event not in ("progress", "end"):
                        continue
                    status = json.loads(event.data)
                    delivered = True
                    self._down_since = None
                    self.on_status(status)
                    if event.event == "end" or status.get("state") in FINISHED:
                        return status, delivered
            except (OSError, http.client.HTTPException):
                pass  # dropped mid-stream: the caller resumes after the last event
        return None, delivered

    def poll(self) -> JsonDict:
        """Follow by asking the status route every second."""
        previous: JsonDict | None = None
        while True:
            try:
                status = self.api.get_json(f"/api/task-status/{self._quoted}/")
            except Unreachable as error:
                self._wait_for_server(error, POLL_INTERVAL)
                continue
            except ApiError as error:
                if error.status not in TRANSIENT:
                    raise
                self._wait_for_server(error, error.retry_after or POLL_INTERVAL)
                continue
            self._down_since = None
            if status != previous:
                self.on_status(status)
                previous = status
            if status.get("state") in FINISHED:
                return status
            time.sleep(POLL_INTERVAL)

    def _wait_for_server(self, error: Unreachable | ApiError, delay: float) -> None:
        """Sleep before trying again, or raise ``error`` once the server has been away for
        longer than :attr:`give_up_after`."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        elif now - self._down_since > self.give_up_after:
            raise error
        time.sleep(min(delay, 5.0))
