"""Frame removal and blackening through the service, and the check every output gets."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

import jobs.operations
from jobs.settings import Settings
from jobs.video import TextField
from jobs.video.edit import EditOutcome, EditPlan, edit_video
from jobs.video.timeline import to_output_ranges
from jobs.video.verify import LiveVerifier, Verification
from testkit.media import CodeRow, iter_frames, make_numbered_video, make_video
from tests.api import Client, download, expect_error, follow_task, upload
from tests.oracle import judge_mask, judge_removal


@pytest.fixture(scope="session")
def numbered(media_dir: Path) -> Path:
    """640x360 at 30000/1001 fps, 90 frames showing their own numbers, B-frames, audio."""
    return make_numbered_video(
        media_dir / "numbered.mp4", width=640, height=360, fps=Fraction(30000, 1001), frames=90
    )


def shown_numbers(path: Path) -> list[int]:
    """The frame number each frame of a numbered clip (or an edit of one) shows."""
    row = CodeRow.for_size(640, 360)
    return [row.read(frame.y) for frame in iter_frames(path)]


async def run_job(client: Client, path: str, body: Any) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    answer = await resp.json()
    assert resp.status == 202, answer
    final = (await follow_task(client, answer["task_id"]))[-1]
    return final


async def test_remove_ranges_frame_accurately(
    client: Client, worker: Worker, settings: Settings, numbered: Path
) -> None:
    video = await upload(client, numbered)
    body = {"frame_ranges": "0-4, 30-39,35-41,89", "audio": "keep"}
    final = await run_job(client, f"/api/video-remove-frames/{video['id']}/", body)
    assert final["state"] == "SUCCESS", final
    result = final["result"]
    removed = {*range(0, 5), *range(30, 42), 89}
    kept = [i for i in range(90) if i not in removed]
    assert result["frames"] == len(kept) == 72
    assert result["removed_frames"] == 18
    assert result["removed_ranges"] == "0-4,30-41,89"
    assert result["frame_map"] == [[5, 29, 0], [42, 88, 25]]
    verification = result["verification"]
    assert verification["passed"] is True
    assert verification["frames_checked"] == verification["frames_expected"] == 72
    assert shown_numbers(settings.data_dir / result["output_file"]) == kept
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_removal(output, numbered, body, numbered=True)


async def test_remove_frame_list(
    client: Client, worker: Worker, settings: Settings, numbered: Path
) -> None:
    video = await upload(client, numbered)
    body = {"frame_list": [3, 4, 90 - 1, 4]}
    final = await run_job(client, f"/api/video-remove-frames/{video['id']}/", body)
    assert final["state"] == "SUCCESS", final
    expected = [i for i in range(90) if i not in (3, 4, 89)]
    assert shown_numbers(settings.data_dir / final["result"]["output_file"]) == expected
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_removal(output, numbered, body, numbered=True)


async def test_blacken_frames_keeps_the_timeline(
    client: Client, worker: Worker, settings: Settings, numbered: Path
) -> None:
    video = await upload(client, numbered)
    body = {
        "mask_type": "custom",
        "roi": {"x": 0, "y": 0, "width": 640, "height": 360},
        "blacken_frames": "10-19,50",
        "audio": "keep",
    }
    final = await run_job(client, f"/api/video-apply-mask/{video['id']}/", body)
    assert final["state"] == "SUCCESS", final
    assert final["result"]["frames"] == 90
    assert final["result"]["blackened_ranges"] == "10-19,50"
    assert final["result"]["verification"]["max_luma_blackened"] <= 24
    frames = list(iter_frames(settings.data_dir / final["result"]["output_file"]))
    row = CodeRow.for_size(640, 360)
    for index, frame in enumerate(frames):
        if 10 <= index <= 19 or index == 50:
            assert int(frame.y.max()) <= 24, index
        else:
            assert row.read(frame.y) == index
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, numbered, body, numbered=True)


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"frame_ranges": "0-89"}, "removes_everything", "90 frames"),
        ({"frame_list": list(range(90))}, "removes_everything", "90 frames"),
        ({"frame_ranges": "80-95"}, "frame_out_of_range", "90 frames"),
        ({"frame_list": [90]}, "frame_out_of_range", "90 frames"),
        ({"frame_ranges": "10-5"}, "invalid_frames", "90 frames"),
        ({"frame_ranges": "ten"}, "invalid_frames", "90 frames"),
        ({"frame_list": [-1]}, "invalid_frames", "90 frames"),
        ({}, "invalid_frames", "90 frames"),
        ({"frame_list": [1], "frame_ranges": "2"}, "invalid_frames", "exactly one"),
        ({"detection_method": "magic"}, "invalid_request", "automatic"),
    ],
)
async def test_bad_removals_are_400_naming_the_frame_count(
    client: Client, numbered: Path, body: Any, code: str, words: str
) -> None:
    video = await upload(client, numbered)
    resp = await client.post(f"/api/video-remove-frames/{video['id']}/", json=body)
    assert words in await expect_error(resp, 400, code)


async def test_bad_blacken_frames_is_400(client: Client, numbered: Path) -> None:
    video = await upload(client, numbered)
    body = {"mask_type": "device", "device_name": "olympus_cv_1500", "blacken_frames": "85-99"}
    resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=body)
    assert "90 frames" in await expect_error(resp, 400, "frame_out_of_range")


async def test_automatic_removal_needs_an_analysis(client: Client, numbered: Path) -> None:
    video = await upload(client, numbered)
    resp = await client.post(
        f"/api/video-remove-frames/{video['id']}/", json={"detection_method": "automatic"}
    )
    message = await expect_error(resp, 409, "analysis_required")
    assert f"/api/video-analyze/{video['id']}/" in message


def leaky_write_checked(
    src: Path,
    dst: Path,
    plan: EditPlan,
    text_fields: tuple[TextField, ...] = (),
    **kwargs: Any,
) -> tuple[EditOutcome, Verification]:
    """write_checked with an encoder that forgets the mask; the check still knows the ROI the
    request asked for (module-level: it runs in the job's frame process)."""
    verifier = LiveVerifier(
        roi=plan.roi,
        shape=plan.shape,
        black_frames=to_output_ranges(plan.blacken, plan.remove),
        text_fields=text_fields,
    )
    forgetful = EditPlan(blacken=plan.blacken, remove=plan.remove)
    try:
        outcome = edit_video(src, dst, forgetful, on_video_packet=verifier, **kwargs)
    finally:
        verifier.close()
    return outcome, verifier.finish(dst, outcome.frames_out)


async def test_an_output_that_fails_its_check_is_deleted(
    client: Client,
    worker: Worker,
    settings: Settings,
    numbered: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A masking bug (here: an encoder that forgets the mask) must never publish a video."""
    monkeypatch.setattr(jobs.operations, "write_checked", leaky_write_checked)
    video = await upload(client, numbered)
    final = await run_job(
        client,
        f"/api/video-apply-mask/{video['id']}/",
        {"mask_type": "custom", "roi": {"x": 100, "y": 50, "width": 300, "height": 200}},
    )
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == "verification_failed"
    assert "Outside the region" in final["error"]["message"]
    assert final["result"] is None
    assert list((settings.data_dir / "outputs").iterdir()) == []
    assert list((settings.data_dir / "tmp").iterdir()) == []


@pytest.fixture(scope="session")
def short_gops(media_dir: Path) -> Path:
    """640x360, 25 fps, 72 frames in six closed GOPs of 12 with B-frames, audio."""
    return make_numbered_video(
        media_dir / "short-gops.mp4",
        width=640,
        height=360,
        frames=72,
        x264_params="keyint=12:min-keyint=12:scenecut=0:bframes=3",
    )


async def test_smart_removal_is_the_default(
    client: Client, worker: Worker, settings: Settings, short_gops: Path
) -> None:
    video = await upload(client, short_gops)
    body = {"frame_ranges": "3-5,40", "audio": "keep"}
    final = await run_job(client, f"/api/video-remove-frames/{video['id']}/", body)
    assert final["state"] == "SUCCESS", final
    result = final["result"]
    kept = [i for i in range(72) if i not in (3, 4, 5, 40)]
    assert result["mode"] == "smart", result
    assert (result["frames_copied"], result["frames_reencoded"]) == (48, 20)
    assert result["verification"]["method"] == "smart"
    assert result["verification"]["passed"] is True
    assert result["frame_map"] == [[0, 2, 0], [6, 39, 3], [41, 71, 37]]
    assert shown_numbers(settings.data_dir / result["output_file"]) == kept
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_removal(output, short_gops, body, numbered=True)


async def test_reencode_mode_and_fallback(
    client: Client, worker: Worker, settings: Settings, short_gops: Path, media_dir: Path
) -> None:
    video = await upload(client, short_gops)
    body = {"frame_list": [7], "mode": "reencode", "audio": "keep"}
    final = await run_job(client, f"/api/video-remove-frames/{video['id']}/", body)
    assert final["state"] == "SUCCESS", final
    assert final["result"]["mode"] == "reencode"
    assert final["result"]["mode_reason"] == "re-encode requested"
    assert final["result"]["verification"]["method"] == "decoded"
    output = await download(client, final, settings.data_dir / "reencoded.mp4")
    judge_removal(output, short_gops, body, numbered=True)
    # Not MP4: smart (the default) does not apply, the full re-encode runs and says why.
    mkv = make_video(
        media_dir / "smart.mkv", width=160, height=120, container_format="matroska", numbered=True
    )
    other = await upload(client, mkv)
    final = await run_job(client, f"/api/video-remove-frames/{other['id']}/", {"frame_list": [1]})
    assert final["state"] == "SUCCESS", final
    assert final["result"]["mode"] == "reencode"
    assert "not MP4/MOV" in final["result"]["mode_reason"]
    assert final["result"]["frames"] == 49
    output = await download(client, final, settings.data_dir / "from-mkv.mp4")
    judge_removal(output, mkv, {"frame_list": [1]}, numbered=True)
    message = await expect_error(
        await client.post(
            f"/api/video-remove-frames/{video['id']}/", json={"frame_list": [1], "mode": "fast"}
        ),
        400,
    )
    assert "smart" in message
