"""Outputs have their index in front (faststart), so a browser plays them at once, and a
download still answers Range requests byte for byte.

Judged from the file's own bytes (the top-level MP4 boxes, read here without PyAV) and by
ffprobe, which must find every frame through that index; the pictures by the oracle."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
from arq.worker import Worker

from jobs.settings import Settings
from testkit.media import make_numbered_video
from tests.api import CUSTOM_MASK, Client, JsonDict, download, run_task, upload
from tests.oracle import judge_mask, judge_removal

#: Closed groups of 12 pictures, so that a smart removal copies most of them (smart_cut.py's
#: writer, not edit.py's).
CLOSED_GOPS = "keyint=12:min-keyint=12:scenecut=0"
FRAMES = 60

#: Both writers of outputs: edit.py (a mask) and smart_cut.py (a smart removal).
WRITERS: dict[str, tuple[str, JsonDict]] = {
    "mask": ("video-apply-mask", {**CUSTOM_MASK, "audio": "keep"}),
    "remove smart": (
        "video-remove-frames",
        {"frame_ranges": "30-34", "mode": "smart", "audio": "keep"},
    ),
}


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """The file's top-level ISO BMFF boxes as (type, offset, size), in file order."""
    boxes: list[tuple[str, int, int]] = []
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        elif size == 0:  # to the end of the file
            size = len(data) - offset
        assert size >= 8, f"a box of {size} bytes at {offset}"
        boxes.append((kind.decode("latin-1"), offset, size))
        offset += size
    assert offset == len(data), "the boxes do not end where the file does"
    return boxes


def ffprobe_frames(path: Path) -> int:
    """The video frames ffprobe counts by reading the packets through the index."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    return int(json.loads(out)["streams"][0]["nb_read_packets"])


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faststart")
    return make_numbered_video(
        folder / "numbered.mp4", width=320, height=240, frames=FRAMES, x264_params=CLOSED_GOPS
    )


@pytest.mark.parametrize("writer", list(WRITERS))
async def test_outputs_are_faststart_and_ranges_still_work(
    client: Client, worker: Worker, settings: Settings, numbered: Path, writer: str
) -> None:
    video = await upload(client, numbered)
    route, body = WRITERS[writer]
    final = await run_task(client, route, video["id"], body)
    assert final["state"] == "SUCCESS", final
    if writer == "remove smart":
        assert final["result"]["mode"] == "smart", final["result"]["mode_reason"]
    output = await download(client, final, settings.data_dir / f"{writer}.mp4")

    boxes = top_level_boxes(output)
    kinds = [kind for kind, _, _ in boxes]
    assert kinds[0] == "ftyp", kinds
    assert kinds.count("moov") == 1, kinds
    assert kinds.count("mdat") == 1, kinds
    assert kinds.index("moov") < kinds.index("mdat"), kinds
    moov_end = next(offset + size for kind, offset, size in boxes if kind == "moov")
    expected = FRAMES - (5 if writer == "remove smart" else 0)
    assert ffprobe_frames(output) == expected

    # Range requests: what a player asks for first (the head holding the index), a slice from
    # the middle and the tail, each exactly those bytes of the whole file.
    whole = output.read_bytes()
    url = final["result"]["output_url"]
    for first, last in ((0, moov_end - 1), (len(whole) // 2, len(whole) // 2 + 999)):
        resp = await client.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(whole)}"
        assert await resp.read() == whole[first : last + 1]
    resp = await client.get(url, headers={"Range": "bytes=-500"})
    assert resp.status == 206
    assert await resp.read() == whole[-500:]

    if writer == "mask":
        judge_mask(output, numbered, body, numbered=True)
    else:
        judge_removal(output, numbered, body, numbered=True)
