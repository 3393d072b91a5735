"""Broken and hostile inputs (tests/corpus.py) through the real HTTP API and a real worker.

Every input gets a clear answer: a 4xx at upload that says what is wrong (and nothing of it is
kept), or an accepted upload whose mask job ends with a clear state. After each, the same
worker masks a good video: nothing that came before may have broken it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import numpy.typing as npt
import pytest
from arq.worker import Worker
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange

from jobs.settings import Settings
from jobs.video import Roi
from testkit.media import make_video, plane_array, summarize
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.checks import C_FAR_DEV, NEUTRAL, Y_FAR_MAX, Regions, psnr
from tests.corpus import CORPUS, BadInput, JobEnds, Refused
from tests.oracle import device_roi, judge_mask

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}
#: Inside the ROI, the output against the source converted to 8-bit 4:2:0 (CRF 18).
INSIDE_PSNR = 35.0


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="session")
def small_clip(media_dir: Path) -> Path:
    """A good 320x240, 1 s numbered clip: the job that must still work after each bad input."""
    return make_video(media_dir / "small.mp4", width=320, height=240, seconds=1.0, numbered=True)


def kept_files(settings: Settings) -> list[Path]:
    """Every file under the data dir's videos/, outputs/ and tmp/ folders."""
    folders = ("videos", "outputs", "tmp")
    return [p for d in folders for p in (settings.data_dir / d).rglob("*") if p.is_file()]


async def post_file(client: Client, path: Path) -> aiohttp.ClientResponse:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("file", path.read_bytes(), filename=path.name, content_type="video/mp4")
    return await client.post("/api/videos/", data=form)


@pytest.mark.parametrize("bad", CORPUS, ids=str)
async def test_bad_input_gets_a_clear_answer_and_the_worker_carries_on(
    client: Client,
    worker: Worker,
    settings: Settings,
    corpus_dir: Path,
    small_clip: Path,
    bad: BadInput,
) -> None:
    path = bad.make(corpus_dir)
    resp = await post_file(client, path)
    expect = bad.expect
    if isinstance(expect, Refused):
        message = await expect_error(resp, expect.status, expect.code)
        assert expect.words in message
        assert path.name not in message  # no filename in answers
        assert kept_files(settings) == []
        assert (await (await client.get("/api/videos/")).json())["videos"] == []
    else:
        video = await resp.json()
        assert resp.status == 201, video
        await _mask_and_check(client, settings, path, video, expect)

    good = await upload(client, small_clip)
    final = (await follow_task(client, await submit_mask(client, good["id"], DEVICE_MASK)))[-1]
    assert final["state"] == "SUCCESS", final
    assert list((settings.data_dir / "tmp").iterdir()) == []
    output = await download(client, final, settings.data_dir / "good.mp4")
    judge_mask(output, small_clip, DEVICE_MASK, numbered=True)


async def _mask_and_check(
    client: Client, settings: Settings, source: Path, video: dict[str, Any], expect: JobEnds
) -> None:
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == expect.state, final
    assert list((settings.data_dir / "tmp").iterdir()) == []
    if expect.state == "FAILURE":
        assert final["error"]["code"] == expect.code
        assert expect.words in final["error"]["message"]
        assert list((settings.data_dir / "outputs").iterdir()) == []
        found = re.search(r"damage is at frame (\d+)", final["error"]["message"])
        assert found is not None, final["error"]
        assert 0 < int(found.group(1)) < video["frame_count"]
        return
    output = settings.data_dir / final["result"]["output_file"]
    summary = summarize(output)
    assert (summary.video_codec, summary.pix_fmt) == ("h264", "yuv420p")
    assert final["result"]["verification"]["passed"]
    asked = device_roi(DEVICE_MASK["device_name"], video["width"], video["height"])
    assert final["params"]["roi"] == asdict(asked)
    assert_masked_8bit(source, output, asked)
    # The external oracle, with the ROI re-derived from the request (not the one the service
    # says it used): ffmpeg decodes both files, the output at the source frames' times.
    downloaded = await download(client, final, settings.data_dir / "downloaded.mp4")
    judge_mask(downloaded, source, DEVICE_MASK)


def frames_420(path: Path) -> Iterator[tuple[float | None, list[npt.NDArray[np.uint8]]]]:
    """Each frame's time and its planes as limited-range 8-bit yuv420p (converted if need be)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            time = frame.time
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p", dst_color_range=ColorRange.MPEG)
            assert isinstance(frame, VideoFrame)
            yield time, [plane_array(p, frame).copy() for p in frame.planes[:3]]


def assert_masked_8bit(source: Path, output: Path, roi: Roi) -> None:
    """Every output frame: at the source frame's time, black and neutral outside ``roi``, and
    inside close to the source converted to 8-bit 4:2:0."""
    count = 0
    regions: Regions | None = None
    for (src_time, src), (out_time, out) in zip(
        frames_420(source), frames_420(output), strict=True
    ):
        where = f"frame {count}"
        assert out_time == src_time, where
        if regions is None:
            height, width = out[0].shape
            regions = Regions.of(width, height, roi, "rect", 2)
        assert out[0][regions.far].max() <= Y_FAR_MAX, where
        for plane in out[1:]:
            deviation = np.abs(plane[regions.c_far].astype(np.int16) - NEUTRAL)
            assert deviation.max() <= C_FAR_DEV, where
        assert psnr(out[0][regions.inner], src[0][regions.inner]) >= INSIDE_PSNR, where
        count += 1
    assert count > 0
