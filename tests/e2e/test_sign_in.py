"""The page on a server with an API token: sign in once, then uploads, events and downloads
ride on the session cookie; signing out ends them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, expect

from jobs.settings import Settings
from server.access import SESSION_COOKIE
from tests.e2e.conftest import Service, fetch_output, running_service, screenshot
from tests.e2e.test_page import expect_done, start_mask_asked
from tests.oracle import judge_mask

TOKEN = "page-token-0123456789-abcdefghij"


@pytest.fixture
async def guarded_service(settings: Settings) -> AsyncIterator[Service]:
    """App and worker with VIDCORRECT_API_TOKEN set."""
    async with running_service(dataclasses.replace(settings, api_token=TOKEN)) as running:
        yield running


async def status_in_page(page: Page, url: str) -> int:
    """The status of a same-origin fetch from the page (its cookies, nothing added)."""
    status = await page.evaluate("(url) => fetch(url).then((r) => r.status)", url)
    assert isinstance(status, int)
    return status


async def test_sign_in_then_work_then_sign_out(
    page: Page, guarded_service: Service, clip_720p: Path, tmp_path: Path
) -> None:
    events: list[int] = []
    page.on("response", lambda r: events.append(r.status) if r.url.endswith("/events") else None)
    await page.goto(guarded_service.url("/"))
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.locator("#app-main")).to_be_hidden()
    await expect(page.locator("#token-input")).to_be_focused()
    assert await status_in_page(page, "/api/videos/") == 401
    await screenshot(page, "sign-in.png")

    await page.locator("#token-input").fill("not-the-token-0123456789")
    await page.locator("#sign-in-button").click()
    await expect(page.get_by_test_id("sign-in-error")).to_contain_text("not the API token")
    await expect(page.locator("#app-main")).to_be_hidden()

    await page.locator("#token-input").fill(TOKEN)
    await page.locator("#token-input").press("Enter")
    await expect(page.locator("#app-main")).to_be_visible()
    await expect(page.locator("#sign-in")).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_visible()

    cookies = {c.get("name"): c for c in await page.context.cookies()}
    session = cookies[SESSION_COOKIE]
    assert session.get("httpOnly") is True
    assert session.get("sameSite") == "Strict"
    assert session.get("secure") is False  # plain http on loopback
    assert TOKEN not in (session.get("value") or "")
    assert SESSION_COOKIE not in await page.evaluate("document.cookie")  # HttpOnly

    # Upload, the still frame, a mask followed over its event stream, the download.
    await page.locator("#file-input").set_input_files(clip_720p)
    await expect(page.locator("#video-title")).to_have_text(clip_720p.name)
    await page.wait_for_function(
        "() => { const i = document.getElementById('frame-img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    card, body = await start_mask_asked(page)
    await expect_done(card)
    assert 200 in events, events
    href = await card.get_by_test_id("task-download").get_attribute("href")
    assert href
    assert await status_in_page(page, href) == 200
    async with (
        aiohttp.ClientSession() as bare,  # the same URL without the cookie
        bare.get(guarded_service.url(href)) as resp,
    ):
        assert resp.status == 401
    output = await fetch_output(page, guarded_service, card, tmp_path / "out.mp4")
    judge_mask(output, clip_720p, body, numbered=True)

    await page.locator("#sign-out").click()
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.get_by_test_id("sign-in-error")).to_have_text("Signed out.")
    await expect(page.locator("#app-main")).to_be_hidden()
    assert SESSION_COOKIE not in {c.get("name") for c in await page.context.cookies()}
    assert await status_in_page(page, "/api/videos/") == 401

    # A reload asks again; signing in again shows the work done before.
    await page.reload()
    await expect(page.locator("#sign-in")).to_be_visible()
    await page.locator("#token-input").fill(TOKEN)
    await page.locator("#sign-in-button").click()
    await expect(page.get_by_test_id("video-item")).to_have_count(1)


async def test_an_open_server_shows_no_sign_in(page: Page, service: Service) -> None:
    await page.goto(service.url("/"))
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#app-main")).to_be_visible()
    await expect(page.locator("#sign-in")).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_hidden()
