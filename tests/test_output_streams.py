"""What an output's container holds besides the pictures (issue 15): one video stream and at
most one audio stream, no chapters, no subtitle, data or attachment streams, and no tags but
the muxer's own technical ones, whatever the source carried.

The sources are made here with the ffmpeg command line from a testkit clip (numbered, short
closed GOPs): an MP4 with global and per-stream tags, chapters (which the MP4 muxer also writes
as a text track), a mov_text subtitle track and a timecode (tmcd) data track; and a Matroska
file with tags, chapters, SRT subtitles and an attachment. The patient's name
(tests.hidden.NAME) is in every tag, chapter title, subtitle text and the attachment, and must
occur in no form (tests.hidden.found_forms) anywhere in the output's bytes. Every operation that
writes a video runs through the real service; ffprobe judges its output.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

from jobs.settings import Settings
from testkit.media import make_numbered_video
from tests.api import EDITS, Client, download, run_task, upload
from tests.hidden import NAME, found_forms

#: Closed groups of 10 pictures, so that a smart removal copies most of them.
SHORT_GOPS = "keyint=10:min-keyint=10:scenecut=0"
#: The tags an output may hold: what the MP4 muxer writes of its own in every file, none of
#: them taken from the source. Container: the ftyp box (major_brand, minor_version,
#: compatible_brands) and the muxer's version (encoder, "Lavf..."). Streams: the media
#: header's language field, which has no "absent" value ("und": undetermined), the handler
#: box's name (FFmpeg's default names for a video and a sound track) and the sample entry's
#: vendor (zeros).
ALLOWED_FORMAT_TAGS: dict[str, re.Pattern[str]] = {
    "major_brand": re.compile(r"isom|mp42"),
    "minor_version": re.compile(r"[0-9]+"),
    "compatible_brands": re.compile(r"[a-z0-9]+"),
    "encoder": re.compile(r"Lavf[0-9.]+"),
}
ALLOWED_STREAM_TAGS: dict[str, re.Pattern[str]] = {
    "language": re.compile(r"und"),
    "handler_name": re.compile(r"VideoHandler|SoundHandler"),
    "vendor_id": re.compile(r"\[0\]\[0\]\[0\]\[0\]"),
}

_METADATA = f""";FFMETADATA1
title=Patient {NAME}
comment=Patient {NAME}, born 1970-01-01
artist={NAME}
description=Colonoscopy of {NAME}

[CHAPTER]
TIMEBASE=1/1000
START=0
END=1000
title=Chapter {NAME}

[CHAPTER]
TIMEBASE=1/1000
START=1000
END=2000
title=Second chapter {NAME}
"""

_SUBTITLES = f"""1
00:00:00,000 --> 00:00:01,500
Patient {NAME}

2
00:00:01,500 --> 00:00:02,000
{NAME}, born 1970-01-01
"""


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's streams, chapters and format of ``path``."""
    run = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_streams",
            "-show_chapters",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    return dict(json.loads(run.stdout))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("streams")
    base = make_numbered_video(
        folder / "base.mp4", width=320, height=240, frames=50, x264_params=SHORT_GOPS
    )
    metadata = folder / "metadata.txt"
    metadata.write_text(_METADATA, encoding="utf-8")
    subtitles = folder / "subtitles.srt"
    subtitles.write_text(_SUBTITLES, encoding="utf-8")
    notes = folder / "notes.txt"
    notes.write_text(f"Patient {NAME}\n", encoding="utf-8")
    inputs = ["-i", str(base), "-i", str(metadata), "-i", str(subtitles)]
    common = ["-map", "0", "-map", "2", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy"]
    mp4 = folder / "tagged.mp4"
    ffmpeg(
        *inputs,
        *common,
        "-c:s",
        "mov_text",
        "-metadata:s:v:0",
        f"handler_name=Video of {NAME}",
        "-metadata:s:a:0",
        f"handler_name=Voice of {NAME}",
        "-metadata:s:s:0",
        f"handler_name=Subtitles of {NAME}",
        "-metadata:s:s:0",
        "language=deu",
        "-timecode",
        "01:00:00:00",
        str(mp4),
    )
    mkv = folder / "tagged.mkv"
    ffmpeg(
        *inputs,
        *common,
        "-c:s",
        "srt",
        "-metadata:s:v:0",
        f"title=Video of {NAME}",
        "-metadata:s:a:0",
        f"title=Voice of {NAME}",
        "-metadata:s:s:0",
        f"title=Subtitles of {NAME}",
        "-attach",
        str(notes),
        "-metadata:s:t:0",
        "mimetype=text/plain",
        "-metadata:s:t:0",
        f"filename={NAME}.txt",
        str(mkv),
    )
    made = {"mp4": mp4, "mkv": mkv}
    # The sources do carry all of it.
    kinds = {
        name: sorted({s["codec_type"] for s in ffprobe(p)["streams"]}) for name, p in made.items()
    }
    assert kinds == {
        "mp4": ["audio", "data", "subtitle", "video"],
        "mkv": ["attachment", "audio", "subtitle", "video"],
    }, kinds
    for path in made.values():
        assert len(ffprobe(path)["chapters"]) == 2
        assert "ascii" in found_forms(path)
    return made


@pytest.mark.parametrize("operation", list(EDITS))
@pytest.mark.parametrize("kind", ["mp4", "mkv"])
async def test_output_holds_the_pictures_and_sound_only(
    client: Client,
    worker: Worker,
    settings: Settings,
    sources: dict[str, Path],
    kind: str,
    operation: str,
) -> None:
    video = await upload(client, sources[kind], filename=f"tagged.{kind}")
    route, body = EDITS[operation]
    final = await run_task(client, route, video["id"], body)
    assert final["state"] == "SUCCESS", final
    if operation == "remove smart" and kind == "mp4":  # copies groups of pictures (not MKV's)
        assert final["result"]["mode"] == "smart", final["result"]["mode_reason"]
    output = await download(client, final, settings.data_dir / "downloaded.mp4")

    probed = ffprobe(output)
    kinds = [stream["codec_type"] for stream in probed["streams"]]
    assert kinds in (["video"], ["video", "audio"]), kinds
    assert probed["chapters"] == []
    tags = probed["format"].get("tags", {})
    assert set(tags) <= set(ALLOWED_FORMAT_TAGS), tags
    assert all(ALLOWED_FORMAT_TAGS[name].fullmatch(value) for name, value in tags.items()), tags
    for stream in probed["streams"]:
        tags = stream.get("tags", {})
        assert set(tags) <= set(ALLOWED_STREAM_TAGS), tags
        assert all(ALLOWED_STREAM_TAGS[name].fullmatch(value) for name, value in tags.items()), tags
    assert found_forms(output) == []
