"""A small Server-Sent Events reader for tests: parses the stream exactly as sent."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from jobs.keys import Keys
from jobs.model import TaskRecord
from server.record_json import task_json

#: An entry of a task's event log: its id and fields.
LogEntry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True)
class Event:
    """One dispatched event (fields as sent; data lines joined with newlines)."""

    id: str | None
    event: str | None
    data: str
    retry: int | None


async def read_events(
    resp: aiohttp.ClientResponse, limit: int | None = None, comments: list[str] | None = None
) -> list[Event]:
    """Read events until the server closes the stream (or ``limit`` events have come)."""
    events: list[Event] = []
    fields: dict[str, list[str]] = {}
    while limit is None or len(events) < limit:
        raw = await resp.content.readline()
        if not raw:
            break
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        if line == "":
            if fields:
                events.append(
                    Event(
                        id=fields.get("id", [None])[-1],
                        event=fields.get("event", [None])[-1],
                        data="\n".join(fields.get("data", [])),
                        retry=int(fields["retry"][-1]) if "retry" in fields else None,
                    )
                )
                fields = {}
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    return events


async def logged_events(redis: Redis, keys: Keys, task_id: str) -> list[LogEntry]:
    """A task's event log straight from Redis, each entry's data as the server sends it to a
    client (the log holds the record; what a client gets is the server's rendering of it)."""
    rows = await redis.xrange(keys.task_events(task_id))
    return [
        (
            entry_id,
            {
                **fields,
                b"data": json.dumps(
                    task_json(TaskRecord.from_fields(json.loads(fields[b"data"])))
                ).encode(),
            },
        )
        for entry_id, fields in rows
    ]
