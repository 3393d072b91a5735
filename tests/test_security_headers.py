"""Security headers on every response, and a page that needs no inline script or style."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from server.app import STATIC_DIR, create_app
from tests.api import Client, upload

EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    parts = (part.split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


def assert_secure(headers: Mapping[str, str], what: str) -> None:
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, (what, name)
    csp = policy(headers.get("Content-Security-Policy") or "")
    assert csp["default-src"] == ["'self'"], what
    assert csp["script-src"] == ["'self'"], what
    assert csp["frame-ancestors"] == ["'none'"], what
    assert csp["object-src"] == ["'none'"], what
    assert not any("unsafe" in source for sources in csp.values() for source in sources), what


async def test_every_kind_of_response_has_the_headers(
    aiohttp_client: AiohttpClient, client: Client, settings: Settings, clip_odd: Path
) -> None:
    video = await upload(client, clip_odd)
    for method, path in [
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/static/style.css"),
        ("GET", "/api/videos/"),
        ("GET", f"/api/videos/{video['id']}/file"),
        ("GET", f"/api/videos/{video['id']}/frame"),
        ("GET", "/api/videos/999/"),
        ("GET", "/api/nothing/"),
        ("DELETE", "/api/videos/"),
        ("POST", f"/api/video-apply-mask/{video['id']}/"),
        ("GET", "/static/missing.js"),
    ]:
        resp = await client.request(method, path)
        await resp.read()
        assert_secure(resp.headers, f"{method} {path} -> {resp.status}")
    guarded = await aiohttp_client(create_app(replace(settings, api_token="t" * 40)))
    resp = await guarded.get("/api/videos/")
    assert resp.status == 401
    assert_secure(resp.headers, "401")


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("a <script> without src")
        if tag == "style":
            self.problems.append("a <style> element")
        if "style" in names:
            self.problems.append(f"a style attribute on <{tag}>")
        self.problems += [f"{name} on <{tag}>" for name in names if name.startswith("on")]
        self.problems += [
            f"javascript: URL on <{tag}>"
            for _, value in attrs
            if value and value.strip().lower().startswith("javascript:")
        ]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_the_page_has_no_inline_script_or_style() -> None:
    finder = _InlineFinder()
    finder.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert finder.problems == []
    for script in STATIC_DIR.rglob("*.js"):
        text = script.read_text(encoding="utf-8")
        for needle in ("eval(", "new Function", "innerHTML", 'setAttribute("style"', "cssText"):
            assert needle not in text, (script.name, needle)
