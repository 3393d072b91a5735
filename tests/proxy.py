"""A real TCP proxy between a client and the test server, that records every request's head and
can break event streams the way networks and proxies do: cut the first stream after some events,
or refuse event streams altogether."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from tests.api import Client

_EVENT_ID = re.compile(rb"^id: (\S+)$", re.MULTILINE)
_REFUSAL = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n"
    b"Connection: close\r\n\r\nNot Found"
)


def header_fields(head: str) -> dict[str, str]:
    """A request head's header fields, names lowercased (they are case-insensitive)."""
    fields = {}
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


class Proxy:
    """Forwards connections to ``upstream``; :attr:`heads` holds each request's head.

    ``cut_events_after``: the first event stream is closed mid-response after that many
    events (the rest of that chunk is not sent). ``refuse_events``: requests for ``/events``
    get a plain 404, as from a proxy that does not pass streams.
    """

    def __init__(
        self, upstream: Client, *, cut_events_after: int | None = None, refuse_events: bool = False
    ) -> None:
        self.upstream_host = upstream.server.host
        self.upstream_port = upstream.server.port
        self.cut_events_after = cut_events_after
        self.refuse_events = refuse_events
        self.heads: list[str] = []
        #: The id of the last event the cut stream delivered in full.
        self.cut_after_id: str | None = None
        self._server: asyncio.Server | None = None
        self._request = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def event_heads(self) -> list[str]:
        """Heads of the requests for an event stream, in order."""
        return [head for head in self.heads if "/events " in head.split("\r\n", 1)[0]]

    async def wait_for_event_requests(self, count: int) -> None:
        """Wait until ``count`` event streams have been asked for."""
        while len(self.event_heads()) < count:
            self._request.clear()
            await self._request.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        self.heads.append(head.decode("latin-1"))
        self._request.set()
        is_events = b"/events " in head.split(b"\r\n", 1)[0]
        if is_events and self.refuse_events:
            writer.write(_REFUSAL)
            await writer.drain()
            writer.close()
            return
        cut = is_events and self.cut_events_after is not None and self.cut_after_id is None
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        up_writer.write(head)
        upload = asyncio.create_task(_pump(reader, up_writer))
        try:
            if cut:
                await self._forward_until_cut(up_reader, writer)
            else:
                await _pump(up_reader, writer)
        finally:
            upload.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await upload
            for w in (writer, up_writer):
                w.close()

    async def _forward_until_cut(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """Forward the response up to the end of event number ``cut_events_after``, then stop
        (the caller closes the connection halfway through the chunked body)."""
        assert self.cut_events_after is not None
        seen, sent = b"", 0
        while chunk := await source.read(65536):
            seen += chunk
            body = seen.find(b"\r\n\r\n") + 4  # 3 while the head is incomplete
            ends = [body + m.end() for m in re.finditer(rb"\n\n", seen[body:])] if body > 3 else []
            upto = ends[self.cut_events_after - 1] if len(ends) >= self.cut_events_after else None
            sink.write(seen[sent:upto])
            await sink.drain()
            if upto is not None:
                ids = _EVENT_ID.findall(seen[:upto])
                self.cut_after_id = ids[-1].decode() if ids else ""
                return
            sent = len(seen)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
