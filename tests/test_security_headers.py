"""Security headers on every response, and a page that needs no inline script or style."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from server.app import STATIC_DIR, create_app
from tests.api import Client, follow_task, submit_mask, upload

DEVICE = "olympus_cv_1500"
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


async def test_patient_media_and_api_answers_are_never_stored(
    client: Client, worker: Worker, clip_odd: Path
) -> None:
    """Originals, outputs, frames, event streams and JSON: ``Cache-Control: no-store``."""
    video = await upload(client, clip_odd)
    task_id = await submit_mask(client, video["id"], {"mask_type": "device", "device_name": DEVICE})
    await follow_task(client, task_id)
    for path in [
        f"/api/videos/{video['id']}/file",
        f"/api/videos/{video['id']}/frame?n=3",
        f"/api/tasks/{task_id}/output",
        f"/api/task-status/{task_id}/events",
        f"/api/task-status/{task_id}/",
        f"/api/videos/{video['id']}/",
        "/api/videos/",
        "/api/tasks/",
        "/api/videos/999/",
    ]:
        resp = await client.get(path)
        await resp.read()
        assert resp.headers.get("Cache-Control") == "no-store", (path, resp.status)
        assert_secure(resp.headers, path)


async def test_a_request_aiohttp_cannot_parse_gets_plain_text(client: Client) -> None:
    """The README's precise claim: aiohttp's own 400 (before any route or hook) is plain text,
    and the connection is closed after it."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /api/videos/?x=a b HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await reader.read()  # returns at EOF: the server closed
    writer.close()
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.0 400 ") or head.startswith(b"http/1.1 400 "), answer
    assert b"content-type: text/plain" in head


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
