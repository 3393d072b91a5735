"""The audio policy through the service: by default an edit's output has no audio stream at
all, ``"audio": "keep"`` keeps the tones where they belong, ``VIDCORRECT_AUDIO=keep`` changes
the default, anything else is 400. Outputs are judged with ffprobe and tests/oracle.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.errors import ConfigError
from jobs.settings import Settings
from server.app import create_app
from testkit.media import make_numbered_video
from tests.api import Client, download, expect_error, follow_task, upload
from tests.oracle import Verdict, judge_mask, judge_removal

WIDTH, HEIGHT = 320, 240
ROI = {"x": 40, "y": 20, "width": 240, "height": 200}
Judge = Callable[..., Verdict]

#: (route, body, oracle, removal mode expected) of each kind of edit.
EDITS: dict[str, tuple[str, dict[str, Any], Judge, str | None]] = {
    "mask": (
        "video-apply-mask",
        {"mask_type": "custom", "roi": ROI, "blacken_frames": "5"},
        judge_mask,
        None,
    ),
    "remove-smart": ("video-remove-frames", {"frame_ranges": "3-5,40"}, judge_removal, "smart"),
    "remove-reencode": (
        "video-remove-frames",
        {"frame_list": [7], "mode": "reencode"},
        judge_removal,
        "reencode",
    ),
    # Nothing labelled is removed, so the output is the masked source (the oracle's mask truth).
    "reprocess": (
        "video-reprocess",
        {"mask_type": "custom", "roi": ROI, "remove_labels": []},
        judge_mask,
        None,
    ),
}


@pytest.fixture(scope="session")
def toned(media_dir: Path) -> Path:
    """320x240, 25 fps, 72 numbered frames in six closed GOPs of 12, a tone per frame."""
    return make_numbered_video(
        media_dir / "toned.mp4",
        width=WIDTH,
        height=HEIGHT,
        frames=72,
        x264_params="keyint=12:min-keyint=12:scenecut=0:bframes=3",
    )


def stream_types(path: Path) -> list[str]:
    """The codec_type of every stream of `path`, as ``ffprobe -show_streams`` lists them."""
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return [stream["codec_type"] for stream in json.loads(shown)["streams"]]


async def run_edit(client: Client, route: str, video_id: int, body: dict[str, Any]) -> Any:
    resp = await client.post(f"/api/{route}/{video_id}/", json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    final = (await follow_task(client, answer["task_id"], timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    return final


@pytest.mark.parametrize("asked", [None, "keep"])
@pytest.mark.parametrize("edit", list(EDITS))
async def test_each_edit_drops_audio_unless_asked_to_keep_it(
    client: Client, worker: Worker, settings: Settings, toned: Path, edit: str, asked: str | None
) -> None:
    route, body, judge, mode = EDITS[edit]
    if asked is not None:
        body = {**body, "audio": asked}
    video = await upload(client, toned)
    final = await run_edit(client, route, video["id"], body)
    result = final["result"]
    assert final["params"]["audio"] == (asked or "drop")
    if mode is not None:
        assert result["mode"] == mode, result
    output = await download(client, final, settings.data_dir / f"{edit}.mp4")
    if asked == "keep":
        assert result["audio"] == "kept"
        assert stream_types(output) == ["video", "audio"]
    else:
        assert result["audio"] == "dropped"
        assert stream_types(output) == ["video"]
    # Drop: no audio stream (judge's audio=False); keep: every frame's tone where it belongs.
    verdict = judge(output, toned, body, numbered=True)
    assert (verdict.audio_frames_checked > 0) == (asked == "keep")


async def test_a_source_without_audio_says_none(
    client: Client, worker: Worker, settings: Settings, clip_odd: Path
) -> None:
    video = await upload(client, clip_odd)
    body = {"mask_type": "custom", "roi": ROI, "audio": "keep"}
    final = await run_edit(client, "video-apply-mask", video["id"], body)
    assert final["result"]["audio"] == "none"
    output = await download(client, final, settings.data_dir / "silent.mp4")
    assert stream_types(output) == ["video"]


async def test_vidcorrect_audio_keep_changes_the_default(
    aiohttp_client: AiohttpClient, worker: Worker, settings: Settings, toned: Path
) -> None:
    assert Settings.from_env({}).audio == "drop"
    assert Settings.from_env({"VIDCORRECT_AUDIO": "keep"}).audio == "keep"
    with pytest.raises(ConfigError, match="VIDCORRECT_AUDIO must be one of keep, drop"):
        Settings.from_env({"VIDCORRECT_AUDIO": "KEEP"})  # bad values: tests/test_settings.py
    # The default is resolved when the request is submitted: the worker needs no setting.
    client = await aiohttp_client(create_app(replace(settings, audio="keep")))
    video = await upload(client, toned)
    body = {"frame_ranges": "3-5,40"}
    final = await run_edit(client, "video-remove-frames", video["id"], body)
    assert final["params"]["audio"] == "keep"
    assert final["result"]["audio"] == "kept"
    output = await download(client, final, settings.data_dir / "kept.mp4")
    assert stream_types(output) == ["video", "audio"]
    judge_removal(output, toned, {**body, "audio": "keep"}, numbered=True)


@pytest.mark.parametrize("value", ["mute", "KEEP", True, None, 1, ["keep"]])
@pytest.mark.parametrize("edit", ["mask", "remove-smart", "reprocess"])
async def test_an_audio_value_other_than_keep_or_drop_is_400(
    client: Client, toned: Path, edit: str, value: Any
) -> None:
    route, body, _, _ = EDITS[edit]
    video = await upload(client, toned)
    resp = await client.post(f"/api/{route}/{video['id']}/", json={**body, "audio": value})
    message = await expect_error(resp, 400, "invalid_audio")
    assert '"keep" or "drop"' in message


async def test_analysis_takes_no_audio(client: Client, toned: Path) -> None:
    video = await upload(client, toned)
    resp = await client.post(f"/api/video-analyze/{video['id']}/", json={"audio": "keep"})
    assert "Unknown field(s) audio" in await expect_error(resp, 400)


async def test_the_resolved_policy_tells_requests_apart(client: Client, toned: Path) -> None:
    """Identical-request detection sees the policy: keep and drop are two tasks, an explicit
    drop is the same request as the default."""
    video = await upload(client, toned)
    route = f"/api/video-apply-mask/{video['id']}/"
    body = {"mask_type": "custom", "roi": ROI}
    first = await (await client.post(route, json=body)).json()
    same = await client.post(route, json={**body, "audio": "drop"})
    assert same.status == 200
    assert (await same.json())["task_id"] == first["task_id"]
    other = await client.post(route, json={**body, "audio": "keep"})
    assert other.status == 202
    assert (await other.json())["task_id"] != first["task_id"]
