"""Moving files: uploads streamed from disk in chunks, downloads written to a temporary file
beside the target and renamed into place once complete."""

from __future__ import annotations

import contextlib
import http.client
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from client.api import Api, JsonDict, Unreachable

CHUNK = 1024 * 1024
#: Seconds the upload may wait for each read of the answer (the server probes the whole file
#: before it answers).
UPLOAD_TIMEOUT = 600.0
DOWNLOAD_TIMEOUT = 120.0
_DISPOSITION = re.compile(r'filename="([^"/\\]+)"')


class LocalFileError(Exception):
    """A file on this machine cannot be read or written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _chunks(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
            sent += len(chunk)
            progress(sent)


def upload(api: Api, path: Path, progress: Callable[[int], None]) -> JsonDict:
    """Upload ``path`` as a raw ``video/...`` body, a chunk at a time; returns the video record.

    ``progress`` gets the bytes sent so far after each chunk.
    """
    try:
        size = path.stat().st_size
        path.open("rb").close()  # unreadable files fail here, not halfway through the request
    except OSError as error:
        raise LocalFileError(f"cannot read {path}: {error.strerror}") from None
    guessed = mimetypes.guess_type(path.name)[0] or ""
    content_type = guessed if guessed.startswith("video/") else "application/octet-stream"
    headers = {"Content-Type": content_type, "Content-Length": str(size)}
    try:
        response = api.open(
            "POST",
            "/api/videos/",
            query={"filename": path.name},
            body=_chunks(path, progress),
            headers=headers,
            timeout=UPLOAD_TIMEOUT,
        )
    except Unreachable as error:
        if not error.lost:
            raise
        raise Unreachable(
            f"{error.message}; the server stopped the upload (it may be larger than the "
            "server's upload limit)",
            lost=True,
        ) from None
    return api.read_json(response)


def output_name(disposition: str | None, fallback: str) -> str:
    """The file name the server proposes in ``Content-Disposition``, if it is a plain name."""
    match = _DISPOSITION.search(disposition or "")
    name = match[1].strip() if match else ""
    return name if name and not name.startswith(".") else fallback


def download(
    api: Api,
    url_path: str,
    target: Path | None,
    fallback_name: str,
    progress: Callable[[int, int | None], None],
) -> Path:
    """Download ``url_path`` to ``target`` (a file, or a folder for the server's proposed
    name; default: the current folder); returns the path written.

    The bytes go to a temporary file in the target's folder, which is renamed into place only
    when complete, so the target never holds a partial video.
    """
    response = api.open("GET", url_path, timeout=DOWNLOAD_TIMEOUT)
    with response:
        name = output_name(response.headers.get("Content-Disposition"), fallback_name)
        if target is None:
            dest = Path(name)
        elif target.is_dir():
            dest = target / name
        else:
            dest = target
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        try:
            fd, temp_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
        except OSError as error:
            raise LocalFileError(f"cannot write to {dest.parent}: {error.strerror}") from None
        temp = Path(temp_name)
        try:
            received = _receive(api, response, fd, dest, lambda n: progress(n, total))
            if total is not None and received != total:
                raise api.unreachable(
                    f"the download ended after {received} of {total} bytes", lost=True
                )
            _with_umask_mode(temp)
            os.replace(temp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
    return dest


def _receive(
    api: Api,
    response: http.client.HTTPResponse,
    fd: int,
    dest: Path,
    progress: Callable[[int], None],
) -> int:
    received = 0
    with os.fdopen(fd, "wb") as handle:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as error:
                raise api.unreachable(error) from None
            if not chunk:
                break
            try:
                handle.write(chunk)
            except OSError as error:
                raise LocalFileError(f"cannot write {dest}: {error.strerror}") from None
            received += len(chunk)
            progress(received)
        handle.flush()
        os.fsync(handle.fileno())
    return received


def _with_umask_mode(path: Path) -> None:
    """Give the file the mode a plainly created file would have (mkstemp makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
