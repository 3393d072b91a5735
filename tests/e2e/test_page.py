"""The browser page, end to end: real server, worker, Redis and a headless Chromium."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from testkit.realistic import (
    RealisticScene,
    Stretch,
    centred_layout,
    make_realistic_video,
)
from testkit.scenes import SceneTruth, make_scene_video
from tests.e2e.conftest import Service, fetch_output, screenshot
from tests.oracle import judge_mask, judge_scene_removal
from tests.pausing import FrameProcess, catch_frame_process

#: A task card, its job's frame process held stopped, and the request body the page sent.
HeldTask = tuple[Locator, FrameProcess, dict[str, Any]]

DONE_TIMEOUT = 60_000


@pytest.fixture(scope="session")
def scenes(media_dir: Path) -> SceneTruth:
    """A synthetic recording: endoscopy, blanks, text screens and an office, 640x360."""
    return make_scene_video(media_dir / "scenes.mp4")


async def open_video(page: Page, service: Service, video: dict[str, Any]) -> None:
    """Open the page and select `video` in the list; wait until its still frame has loaded."""
    await page.goto(service.url("/"))
    item = page.locator(f"[data-testid=video-item][data-video-id='{video['id']}'] button")
    await item.click()
    await expect(page.locator("#video-title")).to_have_text(video["filename"])
    await page.wait_for_function(
        "() => { const i = document.getElementById('frame-img');"
        " return i.complete && i.naturalWidth > 0; }"
    )


def task_card(page: Page) -> Locator:
    """The newest task card."""
    return page.get_by_test_id("task-card").first


async def start_mask(page: Page) -> Locator:
    await page.locator("#start-mask").click()
    card = task_card(page)
    await expect(card).to_be_visible()
    return card


async def start_mask_asked(page: Page) -> tuple[Locator, dict[str, Any]]:
    """start_mask, and the request body the page sent (the oracle's ground truth)."""
    async with page.expect_request(
        lambda r: r.method == "POST" and "/api/video-apply-mask/" in r.url
    ) as sent:
        card = await start_mask(page)
    body = (await sent.value).post_data_json
    assert isinstance(body, dict), body
    return card, body


async def expect_done(card: Locator) -> None:
    await expect(card.get_by_test_id("task-percent")).to_have_text("100%", timeout=DONE_TIMEOUT)
    await expect(card).to_have_attribute("data-state", "SUCCESS")
    await expect(card.get_by_test_id("task-progress")).to_have_attribute("aria-valuenow", "100")


async def shows_running(card: Locator) -> bool:
    """Whether the card shows the worker encoding (what :func:`wait_running` waits for)."""
    valuenow = await card.get_by_test_id("task-progress").get_attribute("aria-valuenow")
    return (
        await card.get_attribute("data-state") == "PROGRESS"
        and "frame" in await card.get_by_test_id("task-status").inner_text()
        and re.match(r"^[1-9]", valuenow or "") is not None
    )


async def start_held_mask(page: Page, service: Service, video: dict[str, Any]) -> HeldTask:
    """Start a mask from the page and hold its frame process (caught as it starts) once the
    card shows it encoding: the task is surely mid-way, however fast the encoder is."""
    catching = asyncio.create_task(catch_frame_process(service.settings.data_dir, video["id"]))
    card, body = await start_mask_asked(page)
    frames = await catching
    try:
        await frames.run_until(lambda: shows_running(card))
        await wait_running(card)
    except BaseException:
        frames.resume()
        raise
    return card, frames, body


async def wait_running(card: Locator) -> None:
    """Wait until the worker has started encoding (so the task is truly mid-way)."""
    await expect(card).to_have_attribute("data-state", "PROGRESS", timeout=DONE_TIMEOUT)
    await expect(card.get_by_test_id("task-status")).to_contain_text("frame")
    await expect(card.get_by_test_id("task-progress")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9]")
    )


async def test_upload_through_the_page_lists_the_video(
    page: Page, service: Service, clip_720p: Path
) -> None:
    await page.goto(service.url("/"))
    await expect(page.locator("#videos-empty")).to_be_visible()
    await page.locator("#file-input").set_input_files(clip_720p)

    item = page.get_by_test_id("video-item").first
    props = item.get_by_test_id("video-item-props")
    await expect(props).to_contain_text("1280\u00d7720")
    await expect(props).to_contain_text("25 fps")
    await expect(props).to_contain_text("50 frames")
    await expect(props).to_contain_text("2.0 s")
    await expect(props).to_contain_text("audio aac")
    await expect(item).to_contain_text(clip_720p.name)
    thumb = item.get_by_test_id("video-thumb")
    await expect(thumb).to_have_attribute("src", re.compile(r"/frame\?n=0$"))
    await page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=video-thumb]');"
        " return i && i.complete && i.naturalWidth === 1280; }"
    )
    # The uploaded video is selected, with its still frame and the operations.
    await expect(page.locator("#video-title")).to_have_text(clip_720p.name)
    await expect(page.locator("#start-mask")).to_be_visible()
    await expect(page.locator("#device-select option")).to_have_count(1)
    await screenshot(page, "list.png")


async def test_a_non_video_upload_shows_the_servers_message(
    page: Page, service: Service, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 100)
    await page.goto(service.url("/"))
    await page.locator("#file-input").set_input_files(text)
    await expect(page.locator("#upload-error")).not_to_be_empty()
    await expect(page.get_by_test_id("video-item")).to_have_count(0)


async def test_draw_a_roi_and_mask_until_done(
    page: Page, service: Service, clip_720p: Path, tmp_path: Path
) -> None:
    video = await service.upload(clip_720p)
    await open_video(page, service, video)

    box = await page.get_by_test_id("roi-canvas").bounding_box()
    assert box is not None
    # Drag from 25 % to 75 % of the frame: 320,180 .. 960,540 in video pixels.
    await page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4)
    await page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=4)
    await page.mouse.up()
    values = [
        int(await page.locator(f"#roi-{k}").input_value()) for k in ("x", "y", "width", "height")
    ]
    for got, want in zip(values, (320, 180, 640, 360), strict=True):
        assert abs(got - want) <= 3, values
    await expect(page.locator("#mask-type")).to_have_value("custom")

    # Dragging past the frame's edge clamps the area inside the frame.
    await page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] + 40, box["y"] + box["height"] + 40, steps=4)
    await page.mouse.up()
    x, y, w, h = [
        int(await page.locator(f"#roi-{k}").input_value()) for k in ("x", "y", "width", "height")
    ]
    assert (x + w, y + h) == (1280, 720)

    # The keyboard can set it too.
    for key, value in (("x", "320"), ("y", "180"), ("width", "640"), ("height", "360")):
        await page.locator(f"#roi-{key}").fill(value)
    await page.locator("#shape-rect").check()
    await screenshot(page, "roi.png")

    card, body = await start_mask_asked(page)
    assert body["roi"] == {"x": 320, "y": 180, "width": 640, "height": 360}
    await expect_done(card)
    download = card.get_by_test_id("task-download")
    await expect(download).to_be_visible()
    output = await fetch_output(page, service, card, tmp_path / "out.mp4")
    judge_mask(output, clip_720p, body, numbered=True)
    await expect(card.get_by_test_id("task-verification")).to_contain_text(
        "Checked 50 of 50 frames: nothing visible outside the kept area (max brightness"
    )
    await expect(card.get_by_test_id("task-cancel")).to_be_hidden()
    await screenshot(page, "done.png")


async def test_the_keep_audio_box_chooses_the_edits_audio(
    page: Page, service: Service, clip_720p: Path, tmp_path: Path
) -> None:
    """Unchecked (the default), the edits ask for no audio; checked, they keep it."""
    video = await service.upload(clip_720p)
    await open_video(page, service, video)
    await expect(page.get_by_test_id("keep-audio")).not_to_be_checked()
    async with page.expect_request(
        lambda r: r.method == "POST" and "/api/video-remove-frames/" in r.url
    ) as sent:
        await page.locator("#remove-ranges").fill("3")
        await page.locator("#start-remove").click()
    removal = (await sent.value).post_data_json
    assert isinstance(removal, dict), removal
    assert removal["audio"] == "drop"

    for key, value in (("x", "320"), ("y", "180"), ("width", "640"), ("height", "360")):
        await page.locator(f"#roi-{key}").fill(value)
    await page.get_by_test_id("keep-audio").check()
    card, body = await start_mask_asked(page)
    assert body["audio"] == "keep"
    await expect_done(card)
    output = await fetch_output(page, service, card, tmp_path / "kept.mp4")
    judge_mask(output, clip_720p, body, numbered=True)  # the source's audio, sample for sample


async def test_an_octagon_is_drawn_asked_for_and_kept(
    page: Page, service: Service, clip_720p: Path, tmp_path: Path
) -> None:
    """The Octagon shape shows the corner field; the mask asks for it, an empty corner is
    refused in the page, and the output is black in the cut corners (the ffmpeg judge)."""
    video = await service.upload(clip_720p)
    await open_video(page, service, video)
    await expect(page.locator("#roi-corner")).to_be_hidden()
    for key, value in (("x", "320"), ("y", "60"), ("width", "640"), ("height", "600")):
        await page.locator(f"#roi-{key}").fill(value)
    await page.locator("#shape-octagon").check()
    await expect(page.locator("#roi-corner")).to_be_visible()
    await page.locator("#start-mask").click()
    await expect(page.locator("#op-error")).to_contain_text("corners cut")
    await page.locator("#roi-corner").fill("150")
    await screenshot(page, "octagon.png")
    card, body = await start_mask_asked(page)
    assert body["shape"] == "octagon"
    assert body["corner"] == 150
    await expect_done(card)
    output = await fetch_output(page, service, card, tmp_path / "octagon.mp4")
    judge_mask(output, clip_720p, body, numbered=True)


async def test_a_suggested_octagon_is_taken_with_its_corner(
    page: Page, service: Service, media_dir: Path
) -> None:
    """An octagonal live image: the analysis suggests an octagon, and "use it" checks the
    Octagon shape and fills in the corner the analysis found."""
    truth = make_realistic_video(
        RealisticScene(
            "page_octagon",
            centred_layout(640, "octagon"),
            (Stretch("live", 40, "fast"), Stretch("live", 20, "slow")),
            seed=13,
        ),
        media_dir / "page_octagon.mp4",
    )
    video = await service.upload(truth.path)
    await open_video(page, service, video)
    await page.locator("#start-analyze").click()
    card = task_card(page)
    await expect_done(card)
    task_id = await card.get_attribute("data-task-id")
    suggested = await page.evaluate(
        "async (id) => (await (await fetch(`/api/task-status/${id}/`)).json())"
        ".result.suggested_roi",
        task_id,
    )
    assert suggested["shape"] == "octagon", suggested
    await expect(page.locator("#analysis-roi")).to_contain_text(
        f"octagon with {suggested['corner']} px corners cut"
    )
    await page.locator("#accept-roi").click()
    await expect(page.locator("#shape-octagon")).to_be_checked()
    await expect(page.locator("#roi-corner")).to_have_value(str(suggested["corner"]))
    for key in ("x", "y", "width", "height"):
        await expect(page.locator(f"#roi-{key}")).to_have_value(str(suggested[key]))
    await screenshot(page, "suggested-octagon.png")


async def test_cancel_a_running_task(page: Page, service: Service, clip_10s: Path) -> None:
    video = await service.upload(clip_10s)
    await open_video(page, service, video)
    card, frames, _ = await start_held_mask(page, service, video)
    try:
        await expect(card.get_by_test_id("task-eta")).to_contain_text(
            re.compile(r"left|estimating")
        )
        await screenshot(page, "progress.png")

        await card.get_by_test_id("task-cancel").click()
        await expect(card.get_by_test_id("task-state")).to_have_text("Cancelled")
        assert not frames.alive(), "the cancel should have killed the held frame process"
    finally:
        frames.resume()
    await expect(card).to_have_attribute("data-state", "REVOKED")
    await expect(card.get_by_test_id("task-cancel")).to_be_hidden()
    await expect(card.get_by_test_id("task-download")).to_be_hidden()
    await screenshot(page, "cancelled.png")


async def test_a_running_task_survives_a_reload(
    page: Page, service: Service, clip_10s: Path, tmp_path: Path
) -> None:
    video = await service.upload(clip_10s)
    await open_video(page, service, video)
    card, frames, body = await start_held_mask(page, service, video)
    task_id = await card.get_attribute("data-task-id")
    try:
        await page.reload()  # while the task surely runs
        again = page.locator(f"[data-testid=task-card][data-task-id='{task_id}']")
        await expect(again).to_be_visible()
        await expect(page.locator("#video-title")).to_have_text(video["filename"])
        await wait_running(again)
    finally:
        frames.resume()
    await expect_done(again)
    await expect(again.get_by_test_id("task-download")).to_be_visible()
    output = await fetch_output(page, service, again, tmp_path / "out.mp4")
    judge_mask(output, clip_10s, body, numbered=True)
    # Remembered only while running.
    remembered = await page.evaluate("localStorage.getItem('vidcorrect.runningTasks')")
    assert task_id not in (remembered or "")


async def test_polling_takes_over_when_the_event_stream_fails(
    page: Page, service: Service, clip_720p: Path, tmp_path: Path
) -> None:
    video = await service.upload(clip_720p)
    await page.route("**/events*", lambda route: route.abort())
    await open_video(page, service, video)
    card, body = await start_mask_asked(page)
    note = card.get_by_test_id("task-note")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("checking every second")
    await expect_done(card)
    await expect(card.get_by_test_id("task-verification")).to_contain_text("Checked 50 of 50")
    await screenshot(page, "polling.png")
    output = await fetch_output(page, service, card, tmp_path / "out.mp4")
    judge_mask(output, clip_720p, body, numbered=True)


async def test_narrow_screen_has_no_horizontal_scrolling(
    page: Page, service: Service, clip_720p: Path
) -> None:
    video = await service.upload(clip_720p)
    await page.set_viewport_size({"width": 400, "height": 900})
    await open_video(page, service, video)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400
    await expect(page.locator("#roi-x")).to_be_visible()
    await screenshot(page, "narrow.png")


async def test_analysis_shows_its_timeline_and_suggestions(
    page: Page, service: Service, scenes: SceneTruth, tmp_path: Path
) -> None:
    video = await service.upload(scenes.path)
    await open_video(page, service, video)
    await expect(page.locator("#analysis")).to_be_hidden()
    await page.locator("#start-analyze").click()
    card = task_card(page)
    await expect(card).to_have_attribute("data-operation", "analyze")
    await expect_done(card)
    await expect(card.get_by_test_id("task-outcome")).to_contain_text("frames look sensitive")
    await expect(card.get_by_test_id("task-download")).to_be_hidden()

    analysis = page.locator("#analysis")
    await expect(analysis).to_be_visible()
    await expect(page.get_by_test_id("analysis-summary")).to_contain_text(
        f"of {scenes.frames} frames look sensitive"
    )
    segments = page.locator("#timeline [data-testid=segment]")
    labels = set(await segments.evaluate_all("els => els.map(e => e.dataset.label)"))
    assert labels == {"blank", "text_screen", "non_endoscopic"}
    assert await page.locator("#timeline").get_attribute("aria-label")

    await page.locator("#accept-roi").click()
    disc = scenes.disc
    got = [int(await page.locator(f"#roi-{k}").input_value()) for k in ("x", "y", "width")]
    for value, want in zip(got, (disc.x, disc.y, disc.width), strict=True):
        assert abs(value - want) <= 0.02 * scenes.width
    await expect(page.locator("#shape-ellipse")).to_be_checked()
    await page.locator("#accept-ranges").click()
    await expect(page.locator("#remove-ranges")).to_have_value(re.compile(r"^\d+(-\d+)?(,|$)"))
    await screenshot(page, "analysis.png")

    # The accepted ranges are cut.
    await page.locator("#start-remove").click()
    removal = task_card(page)
    await expect(removal).to_have_attribute("data-operation", "remove_frames")
    await expect_done(removal)
    await expect(removal.get_by_test_id("task-outcome")).to_contain_text("removed")
    await expect(removal.get_by_test_id("task-download")).to_be_visible()
    output = await fetch_output(page, service, removal, tmp_path / "out.mp4")
    judge_scene_removal(output, scenes, {"text_screen", "non_endoscopic"})


async def test_times_and_checks_are_put_in_plain_words(page: Page, service: Service) -> None:
    await page.goto(service.url("/"))
    words = await page.evaluate(
        """async () => {
            const f = await import("/static/js/format.js");
            return [
                f.formatEta(80), f.formatEta(42), f.formatEta(3725), f.formatEta(null),
                f.verificationSummary({passed: false, frames_checked: 10, frames_expected: 12,
                    max_luma_outside: 90, luma_limit: 24, problems: ["2 frames missing"]}),
            ];
        }"""
    )
    assert words == [
        "about 1 min 20 s left",
        "about 42 s left",
        "about 1 h 2 min left",
        "",
        "Verification failed. Checked 10 of 12 frames: 2 frames missing.",
    ]
