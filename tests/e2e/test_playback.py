"""A smart-cut output plays in Chromium: copied and re-encoded runs, joined, with audio."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page

from testkit.media import make_numbered_video
from tests.e2e.conftest import Service
from tests.oracle import judge_removal

CLOSED_GOPS = "keyint=12:min-keyint=12:scenecut=0:bframes=3:b-pyramid=normal"
FRAMES = 96  # eight GOPs of 12, 3.84 s at 25 fps
CUTS = "0-2,27-28,32-33,60-66"  # the very start, two cuts inside one GOP, across a boundary

PLAY = """async (src) => {
    const video = document.createElement("video");
    video.muted = true;
    video.src = src;
    document.body.append(video);
    const ended = new Promise((resolve) => {
        video.addEventListener("ended", () => resolve("ended"));
        video.addEventListener("error", () => resolve("error"));
    });
    await video.play();
    const how = await ended;
    const quality = video.getVideoPlaybackQuality();
    return {
        how,
        error: video.error ? video.error.message || String(video.error.code) : null,
        duration: video.duration,
        currentTime: video.currentTime,
        width: video.videoWidth,
        height: video.videoHeight,
        framesShown: quality.totalVideoFrames,
        corrupted: quality.corruptedVideoFrames,
        canPlay: video.canPlayType('video/mp4; codecs="avc1.64001e, mp4a.40.2"'),
    };
}"""


#: The removal, keeping the audio (which the playback plays along).
BODY = {"frame_ranges": CUTS, "mode": "smart", "audio": "keep"}


async def _remove_smart(service: Service, video_id: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            service.url(f"/api/video-remove-frames/{video_id}/"),
            json=BODY,
        ) as resp:
            task_id = (await resp.json())["task_id"]
        for _ in range(600):
            async with session.get(service.url(f"/api/task-status/{task_id}/")) as resp:
                status: dict[str, Any] = await resp.json()
            if status["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
                return status
            await asyncio.sleep(0.05)
    raise AssertionError("the removal did not finish")


async def test_a_smart_cut_output_plays_to_its_end_in_chromium(
    service: Service, page: Page, tmp_path: Path
) -> None:
    source = make_numbered_video(
        tmp_path / "numbered.mp4",
        width=320,
        height=240,
        frames=FRAMES,
        x264_params=CLOSED_GOPS,
    )
    video = await service.upload(source)
    status = await _remove_smart(service, video["id"])
    assert status["state"] == "SUCCESS", status
    result = status["result"]
    assert result["mode"] == "smart", result
    assert result["frames_copied"] > 0, result
    assert result["frames_reencoded"] > 0, result
    kept = result["frames"]

    await page.goto(service.url("/"))
    played = await page.evaluate(PLAY, result["output_url"])
    print(f"\nChromium played the smart cut: {played}")
    assert played["canPlay"] == "probably"  # Debian's Chromium decodes H.264 and AAC
    assert played["how"] == "ended", played
    assert played["error"] is None
    assert (played["width"], played["height"]) == (320, 240)
    assert abs(played["duration"] - kept / 25) < 0.1, played
    assert played["currentTime"] == played["duration"]
    assert played["corrupted"] == 0
    assert played["framesShown"] >= kept * 0.9, played  # the compositor may skip a few
    output = tmp_path / "output.mp4"
    async with (
        aiohttp.ClientSession() as session,
        session.get(service.url(result["output_url"])) as resp,
    ):
        assert resp.status == 200
        output.write_bytes(await resp.read())
    judge_removal(output, source, BODY, numbered=True)
