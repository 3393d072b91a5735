"""A small Server-Sent Events reader for tests: parses the stream exactly as sent."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


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
