"""The review view in Chromium: original and output side by side, in sync, stepped frame by
frame, jumped to from the analysis timeline, approved and rejected by a reviewer, and refused
(403 not_approved) to an uploader until then.

Which frame a player shows is read back from its pixels: the numbered clip burns each frame's
number into it (testkit.media.CodeRow), and the page's test draws the <video> onto a canvas and
reads the blocks, independently of the page's own frame counter."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from jobs.settings import Settings
from jobs.users import Role, UsersFile
from testkit.media import CODE_BITS, CodeRow, make_numbered_video
from testkit.scenes import Scene, SceneTruth, make_scene_video
from tests.e2e.conftest import VIEWPORT, Service, running_service, screenshot
from tests.oracle import judge_mask, judge_removal, judge_scene_removal

WIDTH, HEIGHT, FPS, FRAMES = 640, 360, 25, 75
#: What the numbered clip's removal cuts: the output has FRAMES - 10 frames, and original frame
#: 50 (two one-second steps from the start) lies in the cut.
CUT = (45, 54)
ROW = CodeRow.for_size(WIDTH, HEIGHT)
FINAL = ("SUCCESS", "FAILURE", "REVOKED")

#: A reprocess's mask that keeps the whole frame (the scene oracle compares whole pictures).
FULL_FRAME = {"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT}
#: What the reprocess removes (the blank scene stays: an analysis may keep its first frame).
REMOVED_LABELS = ("text_screen", "non_endoscopic")
#: Draws a <video>'s current picture onto a canvas and reads the burned-in frame number.
READ_NUMBER = """([selector, row]) => {
    const video = document.querySelector(selector);
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    g.drawImage(video, 0, 0);
    const q = Math.floor(row.block / 4);
    let value = 0;
    for (let bit = 0; bit < row.bits; bit += 1) {
        const x0 = row.x + bit * row.block;
        const d = g.getImageData(x0 + q, row.y + q, row.block - 2 * q, row.block - 2 * q).data;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) {
            sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        }
        value = (value << 1) | (sum / (d.length / 4) > 128 ? 1 : 0);
    }
    return value;
}"""
ADMIN_TOKEN = "review-page-admin-token-0123456789"
ROW_ARG = {"x": ROW.x, "y": ROW.y, "block": ROW.block, "bits": CODE_BITS}


class Api:
    """The API for test set-up (not under test), as `token`'s user when given."""

    def __init__(self, service: Service, token: str | None = None) -> None:
        self.service = service
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def upload(self, path: Path) -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=self.headers) as session:
            form = aiohttp.FormData()
            with path.open("rb") as f:
                form.add_field("file", f, filename=path.name, content_type="video/mp4")
                async with session.post(self.service.url("/api/videos/"), data=form) as resp:
                    body: dict[str, Any] = await resp.json()
                    assert resp.status == 201, body
                    return body

    async def run(self, route: str, video_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Submit and wait for the task's end (generous: the machine is shared)."""
        async with aiohttp.ClientSession(headers=self.headers) as session:
            url = self.service.url(f"/api/{route}/{video_id}/")
            async with session.post(url, json=body) as resp:
                answer = await resp.json()
                assert resp.status == 202, answer
            for _ in range(2400):
                status_url = self.service.url(f"/api/task-status/{answer['task_id']}/")
                async with session.get(status_url) as resp:
                    status: dict[str, Any] = await resp.json()
                if status["state"] in FINAL:
                    assert status["state"] == "SUCCESS", status
                    return status
                await asyncio.sleep(0.1)
        raise AssertionError(f"the task did not end: {status}")

    async def download(self, task: dict[str, Any], dest: Path) -> Path:
        async with (
            aiohttp.ClientSession(headers=self.headers) as session,
            session.get(self.service.url(task["result"]["output_url"])) as resp,
        ):
            assert resp.status == 200, await resp.text()
            dest.write_bytes(await resp.read())
        return dest

    async def audit(self) -> list[dict[str, Any]]:
        """The whole audit trail (an admin's token)."""
        async with (
            aiohttp.ClientSession(headers=self.headers) as session,
            session.get(self.service.url("/api/audit/?limit=500")) as resp,
        ):
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            entries: list[dict[str, Any]] = body["entries"]
            return entries

    async def task(self, task_id: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(headers=self.headers) as session,
            session.get(self.service.url(f"/api/task-status/{task_id}/")) as resp,
        ):
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            return body


@pytest.fixture(scope="session")
def numbered_640(media_dir: Path) -> Path:
    return make_numbered_video(
        media_dir / "numbered_640.mp4", width=WIDTH, height=HEIGHT, frames=FRAMES
    )


@pytest.fixture(scope="session")
def short_scenes(media_dir: Path) -> SceneTruth:
    """Four seconds of recording with a text screen and a blank between endoscopy."""
    script = (
        Scene("endoscopy", 30),
        Scene("text_screen", 15),
        Scene("endoscopy", 20),
        Scene("blank", 10),
        Scene("endoscopy", 25),
    )
    return make_scene_video(media_dir / "short_scenes.mp4", script=script)


async def number_shown(page: Page, which: str) -> int:
    value = await page.evaluate(READ_NUMBER, [f"#review-{which}", ROW_ARG])
    assert isinstance(value, int)
    return value


async def settled(page: Page, original: int, output: int | None = None) -> None:
    """Wait until the page says both players stand still on these frames (their pictures
    decoded), then check the pictures themselves."""
    await expect(page.get_by_test_id("original-figure")).to_have_attribute(
        "data-frame", str(original)
    )
    if output is not None:
        await expect(page.get_by_test_id("output-figure")).to_have_attribute(
            "data-frame", str(output)
        )
    for figure in ("original-figure", "output-figure"):
        await expect(page.get_by_test_id(figure)).to_have_attribute("data-settled", "true")


async def playable(page: Page) -> None:
    """Both players have their files (nothing refused) and a picture."""
    await expect(page.get_by_test_id("original-refused")).to_be_empty()
    await expect(page.get_by_test_id("output-refused")).to_be_empty()
    ready = await page.evaluate(
        "() => ['review-original', 'review-output'].map((id) =>"
        " document.getElementById(id).readyState)"
    )
    assert min(ready) >= 2, ready


async def shows(page: Page, original: int, output_source: int) -> None:
    """Both players stand on a frame: the original's picture is frame `original`, the
    output's the source frame `output_source` (a removal's output shows its source's
    numbers)."""
    assert await number_shown(page, "original") == original
    assert await number_shown(page, "output") == output_source


async def test_review_plays_both_in_sync_and_steps_frame_by_frame(
    admin_service: Service, browser: Browser, numbered_640: Path, tmp_path: Path
) -> None:
    service = admin_service
    api = Api(service, ADMIN_TOKEN)
    video = await api.upload(numbered_640)
    body = {"frame_ranges": f"{CUT[0]}-{CUT[1]}"}
    task = await api.run("video-remove-frames", video["id"], body)
    assert task["result"]["frames"] == FRAMES - 10
    judge_removal(
        await api.download(task, tmp_path / "removal.mp4"), numbered_640, body, numbered=True
    )
    async with signed_in(browser, service, ADMIN_TOKEN) as page:
        await review_steps_and_plays(page, service, task)


async def review_steps_and_plays(page: Page, service: Service, task: dict[str, Any]) -> None:
    await page.goto(service.url(f"/#review={task['task_id']}"))
    await expect(page.get_by_test_id("review")).to_be_visible()
    await settled(page, 0, 0)
    await playable(page)
    await shows(page, 0, 0)
    removed = page.get_by_test_id("removed-range")
    await expect(removed).to_have_count(1)
    await expect(removed).to_have_attribute("data-start", str(CUT[0]))
    await expect(removed).to_have_attribute("data-end", str(CUT[1]))
    checks = page.get_by_test_id("review-checks")
    await expect(checks).to_contain_text(f"{FRAMES - 10} of {FRAMES}")
    await expect(checks).to_contain_text(task["result"]["output_sha256"][:12])

    # Frame by frame and second by second, with the keys; the output follows the original,
    # past the cut (frame 50 was removed: the output holds the next kept frame, 55).
    steps = [
        ("ArrowRight", 1, 1),
        ("Shift+ArrowRight", 26, 26),
        ("ArrowLeft", 25, 25),
        ("Shift+ArrowRight", 50, 45),
        ("ArrowRight", 51, 45),
        ("Shift+ArrowLeft", 26, 26),
        ("Shift+ArrowLeft", 1, 1),
        ("ArrowLeft", 0, 0),
    ]
    for key, original, output in steps:
        before = await number_shown(page, "original")
        await page.keyboard.press(key)
        await settled(page, original, output)
        source_of_output = output if output < CUT[0] else output + 10
        await shows(page, original, source_of_output)
        step = {"ArrowRight": 1, "ArrowLeft": -1}.get(key)
        if step is not None:  # exactly one frame, judged by the pictures
            assert await number_shown(page, "original") - before == step
        kept = not CUT[0] <= original <= CUT[1]
        await expect(page.get_by_test_id("output-figure")).to_have_attribute(
            "data-kept", str(kept).lower()
        )
        if original == 50:
            await screenshot(page, "review-removal-in-cut.png", full_page=False)

    # Playback: space plays both, space again pauses them on one frame; both moved on, and
    # the output shows the same source frame as the original.
    await page.keyboard.press("Space")
    await page.wait_for_function(
        "() => !document.getElementById('review-original').paused"
        " && !document.getElementById('review-output').paused"
        " && document.getElementById('review-output').currentTime > 0.4"
    )
    await expect(page.locator("#review-play")).to_have_attribute("aria-pressed", "true")
    await page.keyboard.press("Space")
    await expect(page.locator("#review-play")).to_have_attribute("aria-pressed", "false")
    frame = int(await page.get_by_test_id("original-figure").get_attribute("data-frame") or "-1")
    assert frame > 0
    out_frame = frame if frame < CUT[0] else max(CUT[0], frame - 10)
    await settled(page, frame, out_frame)
    shown = await number_shown(page, "original")
    assert shown == frame
    if not CUT[0] <= frame <= CUT[1]:
        assert await number_shown(page, "output") == frame
    played = await page.evaluate(
        """() => ["review-original", "review-output"].map((id) => {
            const v = document.getElementById(id);
            return {quality: v.getVideoPlaybackQuality().corruptedVideoFrames, error: v.error};
        })"""
    )
    assert played == [{"quality": 0, "error": None}] * 2, played
    await screenshot(page, "review-removal.png")


async def test_review_jumps_from_the_analysis_timeline(
    admin_service: Service, browser: Browser, short_scenes: SceneTruth, tmp_path: Path
) -> None:
    service = admin_service
    api = Api(service, ADMIN_TOKEN)
    video = await api.upload(short_scenes.path)
    body = {"mask_type": "custom", "roi": FULL_FRAME, "remove_labels": list(REMOVED_LABELS)}
    task = await api.run("video-reprocess", video["id"], body)
    output = await api.download(task, tmp_path / "reprocess.mp4")
    judge_scene_removal(output, short_scenes, set(REMOVED_LABELS))
    async with signed_in(browser, service, ADMIN_TOKEN) as page:
        await review_jumps(page, service, video, task)


async def review_jumps(
    page: Page, service: Service, video: dict[str, Any], task: dict[str, Any]
) -> None:
    result = task["result"]
    segments = result["analysis"]["segments"]
    text = next(s for s in segments if s["label"] == "text_screen")
    await page.goto(service.url(f"/#review={task['task_id']}"))
    await settled(page, 0)
    await playable(page)
    buttons = page.get_by_test_id("review-segment")
    await expect(buttons).to_have_count(len(segments))
    await expect(page.get_by_test_id("removed-range")).not_to_have_count(0)

    await page.locator(f"[data-testid=review-segment][data-start='{text['start_frame']}']").click()
    await settled(page, text["start_frame"])
    time = await page.evaluate("() => document.getElementById('review-original').currentTime")
    assert int(time * video["fps"]) == text["start_frame"]
    # The text screen went: the output holds on the next kept frame.
    await expect(page.get_by_test_id("output-figure")).to_have_attribute("data-kept", "false")
    kept_after = next(a for a, _, n in result["frame_map"] if a > text["start_frame"])
    new_start = next(n for a, _, n in result["frame_map"] if a == kept_after)
    await expect(page.get_by_test_id("output-figure")).to_have_attribute(
        "data-frame", str(new_start)
    )
    out_time = await page.evaluate("() => document.getElementById('review-output').currentTime")
    assert int(out_time * video["fps"]) == new_start
    await screenshot(page, "review-reprocess-timeline.png")

    # Back to the video's page.
    await page.locator("#review-close").click()
    await expect(page.get_by_test_id("review")).to_be_hidden()
    await expect(page.locator("#video-title")).to_have_text(video["filename"])
    # ... and into the review again from the task's card.
    card = page.locator(f"[data-testid=task-card][data-task-id='{task['task_id']}']")
    await card.get_by_test_id("task-review-open").click()
    await expect(page.get_by_test_id("review")).to_be_visible()
    await expect(page.locator("#review-heading")).to_have_text(
        f"Review: Reprocess of {video['filename']}"
    )
    await settled(page, 0)
    # A narrow window: the sign-off and the checks go under the players.
    await page.set_viewport_size({"width": 760, "height": 1000})
    await expect(page.get_by_test_id("review-segment").first).to_be_visible()
    await screenshot(page, "review-narrow.png")


@pytest.fixture
async def admin_service(settings: Settings) -> AsyncIterator[Service]:
    """A service with VIDCORRECT_API_TOKEN: whoever has it is the admin (sees originals)."""
    async with running_service(dataclasses.replace(settings, api_token=ADMIN_TOKEN)) as running:
        yield running


@pytest.fixture
async def approval_service(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Service, dict[str, str]]]:
    """A service with people (a reviewer, an uploader) and VIDCORRECT_REQUIRE_APPROVAL on."""
    users_file = tmp_path / "users.json"
    tokens = {
        "rita": UsersFile(users_file).add("rita", Role.REVIEWER),
        "uli": UsersFile(users_file).add("uli", Role.UPLOADER),
        "ada": UsersFile(users_file).add("ada", Role.ADMIN),
    }
    gated = dataclasses.replace(settings, users_file=users_file, require_approval=True)
    async with running_service(gated) as running:
        yield running, tokens


@asynccontextmanager
async def signed_in(browser: Browser, service: Service, token: str) -> AsyncIterator[Page]:
    """A new page, signed in through the page's form; no JavaScript errors on it by the end."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        await page.goto(service.url("/"))
        await page.locator("#token-input").fill(token)
        await page.locator("#sign-in-button").click()
        await expect(page.get_by_test_id("signed-in-as")).to_be_visible()
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


MASK = {"mask_type": "custom", "roi": {"x": 80, "y": 40, "width": 480, "height": 280}}


async def test_reviewer_rejects_and_approves_and_the_uploader_is_told_why_not(
    approval_service: tuple[Service, dict[str, str]],
    browser: Browser,
    numbered_640: Path,
    tmp_path: Path,
) -> None:
    service, tokens = approval_service
    uploads = Api(service, tokens["uli"])
    video = await uploads.upload(numbered_640)
    task = await uploads.run("video-apply-mask", video["id"], MASK)
    reviews = Api(service, tokens["rita"])
    judge_mask(
        await reviews.download(task, tmp_path / "mask.mp4"), numbered_640, MASK, numbered=True
    )

    async with signed_in(browser, service, tokens["uli"]) as uploader:
        await uploader_is_refused(uploader, service, video, task)
        async with signed_in(browser, service, tokens["rita"]) as reviewer:
            await reviewer_signs_off(reviewer, service, task, reviews)
        await uploader_gets_the_approved(uploader, service, task)

    # The trail: the uploader's three refused downloads (the review view's player and its
    # download button, the card's link) are one denied entry each; the page's HEAD questions
    # are none; the reviewer's two decisions are there.
    trail = await Api(service, tokens["ada"]).audit()
    mine = [e for e in trail if e["ids"].get("task_id") == task["task_id"]]
    denied = [e for e in mine if e["action"] == "download" and e["outcome"] == "denied"]
    assert [e["user"] for e in denied] == ["uli"] * 3, denied
    decisions = [(e["user"], e["ids"].get("review")) for e in mine if e["action"] == "review"]
    assert sorted(decisions) == [("rita", "approved"), ("rita", "rejected")], decisions


async def uploader_is_refused(
    uploader: Page, service: Service, video: dict[str, Any], task: dict[str, Any]
) -> None:
    """The output is not approved: the page says so and why; no sign-off for an uploader."""
    await expect(uploader.get_by_test_id("signed-in-as")).to_have_text(
        "Signed in as uli (uploader)"
    )
    await uploader.goto(service.url(f"/#review={task['task_id']}"))
    refused = uploader.get_by_test_id("output-refused")
    await expect(refused).to_contain_text("not_approved")
    await expect(refused).to_contain_text("HTTP 403")
    await expect(uploader.get_by_test_id("review-state")).to_have_text("Waiting for review")
    await expect(uploader.get_by_test_id("review-approve")).to_be_hidden()
    await expect(uploader.get_by_test_id("review-not-reviewer")).to_contain_text("uploader")
    await uploader.get_by_test_id("review-download").click()
    await expect(uploader.get_by_test_id("review-download-error")).to_contain_text("not_approved")
    await screenshot(uploader, "review-uploader-not-approved.png")
    # On the video's page, the task card's download link says the same.
    await uploader.goto(service.url(f"/#video={video['id']}"))
    await uploader.reload()
    card = uploader.get_by_test_id("task-card").first
    await expect(card.get_by_test_id("task-review")).to_have_text("Not reviewed yet")
    await card.get_by_test_id("task-download").click()
    await expect(card.get_by_test_id("task-error")).to_contain_text("not_approved")
    await screenshot(uploader, "review-card-not-approved.png")


async def reviewer_signs_off(
    reviewer: Page, service: Service, task: dict[str, Any], api: Api
) -> None:
    """The reviewer sees both, rejects with a comment, then approves."""
    reviews_sent: list[str] = []
    reviewer.on(
        "request",
        lambda r: reviews_sent.append(r.url) if r.method == "POST" and "/review" in r.url else None,
    )
    await reviewer.goto(service.url(f"/#review={task['task_id']}"))
    await settled(reviewer, 0, 0)
    await playable(reviewer)
    await reviewer.get_by_test_id("review-comment").fill("Overlay still visible at 0:02")
    await reviewer.get_by_test_id("review-reject").click()
    await expect(reviewer.get_by_test_id("review-state")).to_have_text("Rejected")
    await expect(reviewer.get_by_test_id("review-who")).to_contain_text("by rita")
    await expect(reviewer.get_by_test_id("review-comment-shown")).to_contain_text(
        "Overlay still visible"
    )
    assert (await api.task(task["task_id"]))["review"]["state"] == "rejected"
    await screenshot(reviewer, "review-rejected.png")
    await reviewer.get_by_test_id("review-comment").fill("Fine after all")
    await reviewer.get_by_test_id("review-approve").click()
    await expect(reviewer.get_by_test_id("review-state")).to_have_text("Approved")
    review = (await api.task(task["task_id"]))["review"]
    assert review["state"] == "approved"
    assert review["by"] == "rita"
    assert review["comment"] == "Fine after all"
    # Space right after the click plays (and pauses) the videos; it does not press Approve again.
    await reviewer.keyboard.press("Space")
    await expect(reviewer.locator("#review-play")).to_have_attribute("aria-pressed", "true")
    await reviewer.keyboard.press("Space")
    await expect(reviewer.locator("#review-play")).to_have_attribute("aria-pressed", "false")
    assert len(reviews_sent) == 2, reviews_sent
    await screenshot(reviewer, "review-approved.png")


async def uploader_gets_the_approved(
    uploader: Page, service: Service, task: dict[str, Any]
) -> None:
    """Approved: the uploader's page plays the output now, and its download is allowed."""
    await uploader.goto(service.url(f"/#review={task['task_id']}"))
    await uploader.reload()
    await expect(uploader.get_by_test_id("review-state")).to_have_text("Approved")
    await expect(uploader.get_by_test_id("output-refused")).to_be_empty()
    await expect(uploader.get_by_test_id("output-figure")).to_have_attribute("data-settled", "true")
    assert await number_shown(uploader, "output") == 0
    # The original is not the uploader's to see: the output plays alone, and stops on a frame.
    await expect(uploader.get_by_test_id("original-refused")).to_contain_text("forbidden_role")
    await uploader.locator("#review-players").focus()
    await uploader.keyboard.press("Space")
    await uploader.wait_for_function(
        "() => !document.getElementById('review-output').paused"
        " && document.getElementById('review-output').currentTime > 0.4"
    )
    await uploader.keyboard.press("Space")
    await expect(uploader.locator("#review-play")).to_have_attribute("aria-pressed", "false")
    await expect(uploader.get_by_test_id("output-figure")).to_have_attribute("data-settled", "true")
    frame = await uploader.get_by_test_id("output-figure").get_attribute("data-frame")
    assert frame is not None
    assert int(frame) > 0
    assert await number_shown(uploader, "output") == int(frame)
    # The review's download button, and the card's link, download it now: the same bytes.
    for where in ("review", "card"):
        if where == "card":
            await uploader.goto(service.url(f"/#video={task['video_id']}"))
            await uploader.reload()
            link = uploader.get_by_test_id("task-card").first.get_by_test_id("task-download")
        else:
            link = uploader.get_by_test_id("review-download")
        async with uploader.expect_download() as started:
            await link.click()
        saved = await (await started.value).path()
        digest = hashlib.sha256(Path(saved).read_bytes()).hexdigest()
        assert digest == task["result"]["output_sha256"]


async def test_frame_arithmetic_of_the_review(page: Page, service: Service) -> None:
    """js/frames.js: the output frame of each original frame, and back, from a frame map or
    (a result without one) from removed_ranges."""
    await page.goto(service.url("/"))
    got = await page.evaluate(
        """async () => {
            const f = await import("/static/js/frames.js");
            const m = f.FrameMapping.of({frame_map: [[0, 44, 0], [55, 74, 45]], frames: 65}, 75);
            const r = f.FrameMapping.of({removed_ranges: "0-2,10-20,38-39"}, 40);
            return {
                toOutput: [0, 44, 45, 54, 55, 74].map((s) => m.toOutput(s)),
                toSource: [0, 44, 45, 64].map((o) => m.toSource(o)),
                removed: m.removedRanges(),
                runs: r.runs,
                outputFrames: r.outputFrames,
                rangesRemoved: r.removedRanges(),
                times: [f.frameTime(0, 25), f.frameAt(0.059, 25, 75), f.frameAt(99, 25, 75)],
                clock: f.clock(61.5),
            };
        }"""
    )
    assert got["toOutput"] == [
        {"frame": 0, "kept": True},
        {"frame": 44, "kept": True},
        {"frame": 45, "kept": False},
        {"frame": 45, "kept": False},
        {"frame": 45, "kept": True},
        {"frame": 64, "kept": True},
    ]
    assert got["toSource"] == [0, 44, 55, 74]
    assert got["removed"] == [[45, 54]]
    assert got["runs"] == [[3, 9, 0], [21, 37, 7]]
    assert got["outputFrames"] == 24
    assert got["rangesRemoved"] == [[0, 2], [10, 20], [38, 39]]
    assert got["times"] == [0.02, 1, 74]
    assert got["clock"] == "1:01.50"
