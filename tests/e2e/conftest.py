"""End-to-end fixtures: the real app on a local port, a real arq worker, headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Locator, Page, async_playwright

from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from testkit.media import make_video

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
VIEWPORT: Any = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Service:
    """The running app: where it listens, and how to use its API for test set-up."""

    base_url: str
    settings: Settings

    def url(self, path: str = "/") -> str:
        return self.base_url.rstrip("/") + path

    async def upload(self, path: Path) -> dict[str, Any]:
        """Upload a video through the API (set-up that is not under test)."""
        async with aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            with path.open("rb") as f:
                form.add_field("file", f, filename=path.name, content_type="video/mp4")
                async with session.post(self.url("/api/videos/"), data=form) as resp:
                    body: dict[str, Any] = await resp.json()
                    assert resp.status == 201, body
                    return body


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    async with in_process_worker(settings):
        server = TestServer(create_app(settings))
        await server.start_server()
        try:
            yield Service(str(server.make_url("/")), settings)
        finally:
            await server.close()


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    """App and worker with the default (fast) encoder preset."""
    async with running_service(settings) as running:
        yield running


@pytest.fixture(scope="session")
def clip_10s(media_dir: Path) -> Path:
    """1280x720, 25 fps, 10 s, H.264 + AAC, numbered: a job with room to be held mid-way."""
    return make_video(
        media_dir / "clip_10s.mp4", width=1280, height=720, seconds=10.0, numbered=True
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # The Content-Security-Policy allows no inline script or style: Chromium reports anything
    # it blocks on the console.
    opened.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def fetch_output(page: Page, service: Service, card: Locator, dest: Path) -> Path:
    """Download what a task card's download link points to, with the page's cookies, to
    `dest` (for the external oracle)."""
    href = await card.get_by_test_id("task-download").get_attribute("href")
    assert href
    response = await page.request.get(service.url(href))
    assert response.ok, response.status
    dest.write_bytes(await response.body())
    return dest


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)
