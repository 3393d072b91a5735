"""The page on a server with named users: it shows who is signed in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from playwright.async_api import Page, expect

from jobs.settings import Settings
from jobs.users import Role
from tests.e2e.conftest import running_service, screenshot
from tests.people import make_users


async def test_the_page_shows_who_is_signed_in(
    page: Page, settings: Settings, tmp_path: Path
) -> None:
    tokens = make_users(tmp_path / "users.json")
    configured = dataclasses.replace(settings, users_file=tmp_path / "users.json")
    async with running_service(configured) as service:
        await page.goto(service.url("/"))
        await expect(page.locator("#sign-in")).to_be_visible()
        await expect(page.get_by_test_id("signed-in-as")).to_be_hidden()
        await page.locator("#token-input").fill(tokens[Role.UPLOADER])
        await page.locator("#sign-in-button").click()
        await expect(page.locator("#app-main")).to_be_visible()
        label = page.get_by_test_id("signed-in-as")
        await expect(label).to_have_text("Signed in as uma (uploader)")
        await screenshot(page, "signed-in-as.png", full_page=False)
        await page.locator("#sign-out").click()
        await expect(page.locator("#sign-in")).to_be_visible()
        await expect(label).to_be_hidden()
        # Another user, another label.
        await page.locator("#token-input").fill(tokens[Role.REVIEWER])
        await page.locator("#sign-in-button").click()
        await expect(label).to_have_text("Signed in as rita (reviewer)")
