"""Where files live inside the data dir.

Files are addressed by generated names only; no client-supplied text ever becomes a path.

    data/
      videos/<id>/original.<ext>   uploads, never opened for writing after they are stored
      outputs/<task_id>.mp4        results, renamed into place when complete
      tmp/                         partial uploads and outputs (same filesystem: rename is atomic)
      redis/                       the embedded Redis's files (AOF)
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from jobs.errors import NotFound
from jobs.records import VideoRecord


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

    def ensure(self) -> None:
        """Create the folders (idempotent)."""
        for folder in (self.videos_dir, self.outputs_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)

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
        temp.write_text(json.dumps(asdict(video)), encoding="utf-8")
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
        final.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(final.parent)
        return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
