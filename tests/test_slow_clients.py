"""Slow clients are cut off: a request head that takes too long, an upload that trickles or
stalls, and uploads past the per-process cap; a cut-off upload leaves no partial file, and a
client that leaves mid-upload costs one info line, no traceback.

Real sockets against a ``vidcorrect serve`` process with small limits set in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from jobs.settings import Settings
from testkit.media import make_video
from tests.served import Served

HEADER_TIMEOUT = 2
WINDOW = 2
MIN_RATE = 200  # bytes/s: 400 bytes per 2 s window
MAX_UPLOADS = 3
SEND_TIMEOUT = 2


@pytest.fixture
async def served(tmp_path: Path, settings: Settings) -> AsyncIterator[Served]:
    assert settings.redis_url is not None
    server = Served(
        settings.data_dir,
        {
            "REDIS_URL": settings.redis_url,
            "VIDCORRECT_KEY_PREFIX": settings.key_prefix,
            "VIDCORRECT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "VIDCORRECT_UPLOAD_IDLE_TIMEOUT": str(WINDOW),
            "VIDCORRECT_UPLOAD_MIN_RATE": str(MIN_RATE),
            "VIDCORRECT_MAX_CONCURRENT_UPLOADS": str(MAX_UPLOADS),
            "VIDCORRECT_SEND_TIMEOUT": str(SEND_TIMEOUT),
        },
    )
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait_ready(session, "/api/videos/")
        yield server
    finally:
        assert server.stop() == 0


def partial_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "tmp").glob("upload-*.part"))


async def _closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Everything the server sent until it closed the connection."""
    answer = await reader.read()
    writer.close()
    return answer


async def _take(reader: asyncio.StreamReader, into: bytearray, seconds: float) -> bool:
    """Add to ``into`` what the server sends within ``seconds``; True once it has closed the
    connection (end of stream, or a reset). Reads chunk by chunk: ``reader.read()`` (to the end)
    cancelled by a timeout throws away what it had read, which made a 408 whose closing came a
    moment after its bytes look like no answer at all."""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                into += chunk
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def test_a_slow_request_head_and_an_idle_connection_are_closed(served: Served) -> None:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /api/videos/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed_at = None
    for n in range(20):  # one header line every half second: 10 s if nobody stops it
        await asyncio.sleep(0.5)
        if reader.at_eof() or writer.is_closing():
            break
        try:
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            await writer.drain()
            async with asyncio.timeout(0.01):
                if await reader.read() == b"":
                    break
        except TimeoutError:
            continue
        except ConnectionError:
            break
    closed_at = time.monotonic() - started
    writer.close()
    assert closed_at < HEADER_TIMEOUT + 1.5, closed_at

    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    async with asyncio.timeout(HEADER_TIMEOUT + 3):
        assert await _closed_after(reader, writer) == b""  # nothing sent: closed, no answer
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5


def _upload_head(served: Served, length: int, multipart: bool) -> bytes:
    if multipart:
        kind = "multipart/form-data; boundary=XyZ"
        target = "/api/videos/"
    else:
        kind = "video/mp4"
        target = "/api/videos/?filename=slow.mp4"
    return (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Content-Type: {kind}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


MULTIPART_PREAMBLE = (
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n'
    b"Content-Type: video/mp4\r\n\r\n"
)


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
async def test_a_trickling_upload_is_cut_off_and_its_partial_file_removed(
    served: Served, settings: Settings, multipart: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(_upload_head(served, 1_000_000, multipart))
    if multipart:
        writer.write(MULTIPART_PREAMBLE)
    writer.write(b"\x00" * 1000)  # a good start, then 4 bytes every half second
    started = time.monotonic()
    saw_partial = False
    answer = bytearray()
    for _ in range(40):  # 20 s if nobody stops it
        await asyncio.sleep(0.5)
        saw_partial = saw_partial or bool(partial_files(settings))
        try:
            writer.write(b"\x00" * 4)
            await writer.drain()
        except ConnectionError:
            break
        if await _take(reader, answer, 0.01):
            break
    elapsed = time.monotonic() - started
    writer.close()
    assert saw_partial, "the upload should have been streaming to a temp file"
    assert elapsed < 2 * WINDOW + 2, elapsed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"x-content-type-options: nosniff" in head.lower()
    assert json.loads(body)["error"]["code"] == "upload_too_slow"
    for _ in range(20):
        if not partial_files(settings):
            break
        await asyncio.sleep(0.1)
    assert partial_files(settings) == []


async def test_uploads_past_the_cap_get_503_and_a_client_leaving_logs_one_line(
    served: Served, settings: Settings
) -> None:
    held = []
    for _ in range(MAX_UPLOADS):  # uploads that keep a good pace but do not end
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(_upload_head(served, 10_000_000, False) + b"\x00" * 5000)
        await writer.drain()
        held.append((reader, writer))

    async def keep_pace() -> None:
        while True:
            await asyncio.sleep(0.2)
            for _, writer in held:
                writer.write(b"\x00" * 1000)  # 5000 bytes/s, well above the minimum

    pacing = asyncio.create_task(keep_pace())
    for _ in range(50):
        if len(partial_files(settings)) == MAX_UPLOADS:
            break
        await asyncio.sleep(0.1)
    assert len(partial_files(settings)) == MAX_UPLOADS
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{served.base}/api/videos/?filename=one-more.mp4",
            data=b"\x00" * 1000,
            headers={"Content-Type": "video/mp4"},
        ) as resp:
            body = await resp.json()
            assert resp.status == 503, body
            assert resp.headers["Retry-After"] == "5"
            assert body["error"]["code"] == "too_many_uploads"
        pacing.cancel()
        for _, writer in held:  # the clients leave mid-upload
            writer.close()
        for _ in range(50):
            if not partial_files(settings):
                break
            await asyncio.sleep(0.1)
        assert partial_files(settings) == []
        async with session.get(f"{served.base}/metrics") as resp:
            assert "vidcorrect_uploads_in_progress 0.0" in await resp.text()
    await asyncio.sleep(0.2)
    lines = [json.loads(line) for line in served.log_path.read_text().splitlines() if line]
    gone = [line for line in lines if line.get("event") == "client went away before the answer"]
    assert len(gone) == MAX_UPLOADS, gone
    assert all(line["level"] == "info" and line["path"] == "/api/videos/" for line in gone)
    assert not [line for line in lines if line["level"] in ("error", "critical")], lines
    assert not [line for line in lines if "exception" in line or "Traceback" in str(line)]


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
async def test_a_slow_json_body_is_cut_off_with_408(served: Served, trickle: bool) -> None:
    """A JSON body must arrive whole within VIDCORRECT_HEADER_TIMEOUT: one that stalls after its
    first byte, or comes a byte at a time, gets 408 body_too_slow and the connection closes
    (before, it was held for as long as the client liked).

    The trickle stops a quarter second before the deadline: its last byte comes later than an
    idle timer of that length would allow (so only a deadline for the whole body passes), and
    the server closes with nothing unread. A byte still unread when a socket closes makes the
    kernel reset the connection, and the client's kernel may then drop the 408 it had received
    but not yet read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST /api/session/ HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
    )
    started = time.monotonic()
    answer = bytearray()
    for _ in range(80):  # 20 s if nobody stops it (steps of 0.25 s)
        try:
            if trickle and time.monotonic() - started < HEADER_TIMEOUT - 0.25:
                writer.write(b" ")
                await writer.drain()
        except ConnectionError:
            break
        if await _take(reader, answer, 0.25):
            break
    elapsed = time.monotonic() - started
    writer.close()
    assert elapsed < HEADER_TIMEOUT + 1.5, elapsed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "body_too_slow"


async def test_a_download_its_client_does_not_read_is_cut_off(
    served: Served, tmp_path: Path
) -> None:
    """A client that opens a download and reads nothing (its TCP window full) has its connection
    closed after VIDCORRECT_SEND_TIMEOUT; before, the server waited for it forever. Seen from
    the client: when it reads at last, the download breaks off short of the file's size."""
    clip = make_video(tmp_path / "clip.mp4", width=160, height=120, seconds=0.4)
    size = 16 * 1024 * 1024  # an MP4 "free" box pads it past every socket buffer
    padded = clip.read_bytes() + (size - clip.stat().st_size).to_bytes(4, "big") + b"free"
    padded += bytes(size - len(padded))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{served.base}/api/videos/?filename=big.mp4",
            data=padded,
            headers={"Content-Type": "video/mp4"},
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        video_id = (await resp.json())["id"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window that fills at once
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    host = f"127.0.0.1:{served.port}"
    writer.write(f"GET /api/videos/{video_id}/file HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(SEND_TIMEOUT + 3)  # reading nothing
    received = 0
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(30):
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
    writer.close()
    assert 0 < received < size, received
    lines = [json.loads(line) for line in served.log_path.read_text().splitlines() if line]
    assert not [line for line in lines if line["level"] in ("error", "critical")], lines
    assert any("VIDCORRECT_SEND_TIMEOUT" in line["event"] for line in lines), lines
