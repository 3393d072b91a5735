"""Receiving an upload: streamed to a temp file in chunks, size-limited while it streams."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from jobs.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from jobs.storage import open_private

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
        raise InvalidRequest('The multipart upload has no "file" field.', code="missing_file")
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


async def receive_to_file(chunks: AsyncIterator[bytes], path: Path, limit: int) -> int:
    """Write ``chunks`` to ``path``; returns the size. Past ``limit`` bytes the partial file is
    removed and :class:`PayloadTooLarge` raised. File writes run off the event loop."""
    loop = asyncio.get_running_loop()
    size = 0
    handle = await loop.run_in_executor(None, open_private, path)
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The upload is larger than the limit of {limit} bytes "
                    "(VIDCORRECT_MAX_UPLOAD_BYTES)."
                )
            await loop.run_in_executor(None, handle.write, chunk)
    except BaseException:
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            await loop.run_in_executor(None, handle.close)
        await loop.run_in_executor(None, functools.partial(path.unlink, missing_ok=True))
        raise
    await loop.run_in_executor(None, handle.close)
    return size


def display_filename(raw: str | None, fallback: str) -> str:
    """A filename fit for display: its last path part, printable, at most 255 characters."""
    if not raw:
        return fallback
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or fallback
