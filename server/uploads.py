"""Receiving an upload: streamed to a temp file in chunks, size- and pace-limited while it
streams, and hashed (SHA-256) as it is written."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from jobs.errors import InvalidRequest
from jobs.storage import open_private
from server.http_errors import PayloadTooLarge, UnsupportedMedia, UploadTooSlow

CHUNK = 1024 * 1024
#: What aiohttp's multipart reader raises for a body that is not well-formed multipart.
MULTIPART_ERRORS = (HttpProcessingError, ValueError, RuntimeError, KeyError, TypeError)


async def upload_source(request: web.Request) -> tuple[AsyncIterator[bytes], str | None]:
    """The upload's byte chunks and its client-side filename, from either upload form:
    ``multipart/form-data`` with a ``file`` field, or a raw ``video/*`` body with ``?filename=``.
    """
    if request.content_type == "multipart/form-data":
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    return _part_chunks(part), part.filename
                if isinstance(part, BodyPartReader):
                    await part.release()
        except MULTIPART_ERRORS:
            raise _malformed() from None
        raise InvalidRequest(
            'The multipart upload has no "file" field (or its Content-Disposition header could '
            'not be read: send form-data; name="file"; filename="..." as browsers and curl -F '
            "do).",
            code="missing_file",
        )
    if request.content_type.startswith("video/") or request.content_type == (
        "application/octet-stream"
    ):
        return request.content.iter_chunked(CHUNK), request.query.get("filename")
    raise UnsupportedMedia(
        'Upload as multipart/form-data with a "file" field, or as a raw body with '
        f"Content-Type video/... and ?filename=; got {request.content_type or 'no type'}."
    )


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk
    except MULTIPART_ERRORS:
        raise _malformed() from None


def _malformed() -> InvalidRequest:
    return InvalidRequest(
        'The multipart/form-data body is malformed; send the video in a "file" field as '
        "browsers and curl -F do.",
        code="invalid_multipart",
    )


@dataclass(frozen=True)
class Received:
    """An upload written to its temp file: how many bytes, and their SHA-256 (hex)."""

    size: int
    sha256: str


async def receive_to_file(
    chunks: AsyncIterator[bytes], path: Path, limit: int, pace: UploadPace
) -> Received:
    """Write ``chunks`` to ``path`` (mode 0600), hashing them as they are written; returns
    their size and hash. Past ``limit`` bytes :class:`PayloadTooLarge` is raised, below
    ``pace`` :class:`UploadTooSlow`; on any failure (the client gone too) the partial file is
    removed. File writes and hashing run off the event loop."""
    loop = asyncio.get_running_loop()
    size = 0
    digest = hashlib.sha256()
    handle = await loop.run_in_executor(None, open_private, path)
    try:
        async for chunk in pace.paced(chunks):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The upload is larger than the limit of {limit} bytes "
                    "(VIDCORRECT_MAX_UPLOAD_BYTES)."
                )
            await loop.run_in_executor(None, _hash_and_write, digest, handle, chunk)
    except BaseException:
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            await loop.run_in_executor(None, handle.close)
        await loop.run_in_executor(None, functools.partial(path.unlink, missing_ok=True))
        raise
    await loop.run_in_executor(None, handle.close)
    return Received(size, digest.hexdigest())


def _hash_and_write(digest: hashlib._Hash, handle: BinaryIO, chunk: bytes) -> None:
    digest.update(chunk)
    handle.write(chunk)


@dataclass(frozen=True)
class UploadPace:
    """The least an upload must send: ``min_rate`` bytes a second on average over every span
    of ``window`` seconds, and at least one byte (``VIDCORRECT_UPLOAD_IDLE_TIMEOUT``,
    ``VIDCORRECT_UPLOAD_MIN_RATE``). A client that trickles or stalls holds a connection, a
    handler and a temp file; it is cut off instead."""

    window: float
    min_rate: int

    @property
    def least(self) -> int:
        """Bytes each window must bring."""
        return max(1, int(self.min_rate * self.window))

    def too_slow(self) -> UploadTooSlow:
        return UploadTooSlow(
            f"The upload sent fewer than {self.least} bytes in {self.window:g} s "
            "(VIDCORRECT_UPLOAD_IDLE_TIMEOUT, VIDCORRECT_UPLOAD_MIN_RATE), so it was cut off "
            "and nothing of it was kept; send it again over a faster connection."
        )

    @contextlib.asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """The upload's first bytes (a multipart preamble and part headers) within a window."""
        try:
            async with asyncio.timeout(self.window):
                yield
        except TimeoutError:
            raise self.too_slow() from None

    async def paced(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, ended by :class:`UploadTooSlow` when a window brings too little."""
        loop = asyncio.get_running_loop()
        iterator = aiter(chunks)
        started, received = loop.time(), 0
        pending: asyncio.Future[bytes | None] | None = None
        try:
            while True:
                if pending is None:  # one read at a time, never cancelled while pacing
                    pending = asyncio.ensure_future(anext(iterator, None))
                deadline = started + self.window
                if not pending.done():
                    await asyncio.wait({pending}, timeout=max(0.0, deadline - loop.time()))
                if pending.done():
                    chunk = pending.result()
                    pending = None
                    if chunk is None:
                        return
                    received += len(chunk)
                    yield chunk
                if loop.time() >= deadline:
                    if received < self.least:
                        raise self.too_slow()
                    started, received = loop.time(), 0
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
