"""Where files live inside the data dir.

Files are addressed by generated names only; no client-supplied text ever becomes a path.

    data/
      videos/<id>/original.<ext>   uploads, never opened for writing after they are stored
      outputs/<task_id>.mp4        results, renamed into place when complete
      tmp/                         partial uploads and outputs (same filesystem: rename is atomic)
      devices/<name>.json          devices added through the API (jobs.device_catalogue)
      redis/                       the embedded Redis's files (AOF)

Everything in it is private to the service's user: folders 0700, files 0600. The processes set
the umask 077 at start-up (:func:`private_umask`), and the code that creates a folder or file
here asks for those modes itself, so they hold when the code runs inside another process too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from jobs.errors import NotFound
from jobs.model import VideoRecord


@dataclass(frozen=True)
class Storage:
    """The data dir's layout. Paths in records are stored relative to :attr:`root`."""

    root: Path

    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def devices_dir(self) -> Path:
        """The devices users added (see jobs.device_catalogue)."""
        return self.root / "devices"

    def ensure(self) -> None:
        """Create the folders (idempotent), private to this user. The data dir and its folders
        from an earlier version, created 0755, are tightened to 0700."""
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for folder in (self.root, self.videos_dir, self.outputs_dir, self.tmp_dir):
            folder.mkdir(mode=DIR_MODE, exist_ok=True)
            _make_private(folder, DIR_MODE)

    def original_name(self, video_id: int, extension: str) -> str:
        """The stored name (relative to the root) of a video's original upload."""
        return f"videos/{video_id}/original.{extension}"

    def video_sidecar(self, video_id: int) -> Path:
        """The copy of a video's record kept next to its original (read when Redis is away)."""
        return self.videos_dir / str(video_id) / "video.json"

    def save_video(self, video: VideoRecord) -> None:
        """Write the video's sidecar record atomically."""
        path = self.video_sidecar(video.id)
        temp = path.with_suffix(".json.part")
        with open_private(temp) as handle:
            handle.write(json.dumps(asdict(video)).encode("utf-8"))
        os.replace(temp, path)

    def load_video(self, video_id: int) -> VideoRecord:
        """A video's record from its sidecar, or :class:`NotFound`."""
        try:
            data = json.loads(self.video_sidecar(video_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(
                f"There is no video with id {video_id}.", code="video_not_found"
            ) from None
        return VideoRecord(**data)

    def output_name(self, task_id: str) -> str:
        """The stored name (relative to the root) of a task's output video."""
        return f"outputs/{task_id}.mp4"

    def temp_path(self, purpose: str, suffix: str = "") -> Path:
        """A fresh, unique path in the tmp folder (nothing is created)."""
        return self.tmp_dir / f"{purpose}-{uuid.uuid4().hex}{suffix}.part"

    def remove_temps(self, purpose: str) -> None:
        """Remove the temp files made for `purpose` (a task id: what its lost or stopped work
        left half written)."""
        for leftover in self.tmp_dir.glob(f"{purpose}-*"):
            leftover.unlink(missing_ok=True)

    def resolve(self, name: str) -> Path:
        """The absolute path of a stored name, refusing anything that would leave the data dir."""
        root = self.root.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError("stored name escapes the data dir")
        return path

    def commit(self, temp: Path, name: str) -> Path:
        """Make a finished temp file durable, then atomically rename it to its stored name."""
        final = self.resolve(name)
        final.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        with temp.open("rb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # whoever wrote it (PyAV, a child process)
            os.fsync(handle.fileno())
        os.replace(temp, final)
        fsync_dir(final.parent)
        return final


#: Modes of what the service creates in the data dir: for its own user only.
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """Make every file and folder this process (and its children: redis-server, frame
    processes) creates private to its user. Called at the start of ``serve`` and ``worker``."""
    os.umask(0o077)


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing (created, or emptied), mode 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a file left by an earlier run may have had another mode
    return os.fdopen(fd, "wb")


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file's bytes, read in chunks. It blocks for seconds on a large
    video: call it in a thread, never on the event loop."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _make_private(folder: Path, mode: int) -> None:
    with contextlib.suppress(PermissionError):  # not ours (a mount point): its owner decides
        os.chmod(folder, mode)


def fsync_dir(folder: Path) -> None:
    """Make the entries just created, renamed or removed in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
