"""HTTP access logs: one JSON line per request through the structlog pipeline of a real
``vidcorrect serve`` process, with the route pattern and never the query string."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from jobs.settings import Settings
from tests.served import Served

SECRET = "Jane-Doe-1962"


async def test_each_request_logs_one_json_access_line(tmp_path: Path, settings: Settings) -> None:
    assert settings.redis_url is not None
    served = Served(
        tmp_path / "data",
        env={
            "REDIS_URL": settings.redis_url,
            "VIDCORRECT_KEY_PREFIX": settings.key_prefix,
            "VIDCORRECT_LOG_FORMAT": "json",
        },
    )
    base = served.base
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session, "/healthz")
            requests = [
                ("GET", f"/api/videos/?filename={SECRET}.mp4", 200),
                ("GET", "/api/task-status/abc123/", 404),
                ("POST", f"/api/video-apply-mask/7/?note={SECRET}", 404),
                ("GET", f"/no/such/{SECRET}", 404),
            ]
            for method, path, status in requests:
                async with session.request(method, base + path, json={}) as resp:
                    assert resp.status == status, await resp.text()
    finally:
        assert served.stop() == 0

    log_path = served.log_path
    text = log_path.read_text()
    assert SECRET not in text, "a query string or an unmatched path reached the log"
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "vidcorrect.access"]
    expected = [
        ("GET", "/api/videos/", 200),
        ("GET", "/api/task-status/{task_id}/", 404),
        ("POST", "/api/video-apply-mask/{video_id}/", 404),
        ("GET", "<unmatched>", 404),
    ]
    assert [(a["method"], a["path"], a["status"]) for a in access] == expected, access
    for line in access:
        assert line["event"] == "request"
        assert line["level"] == "info"
        assert isinstance(line["duration_ms"], int | float)
        assert 0 <= line["duration_ms"] < 10_000
        assert re.fullmatch(r"[0-9a-f]{12}", line["request_id"])
        assert line["timestamp"].endswith("Z")
    assert len({line["request_id"] for line in access}) == len(access)
    assert access[1]["task_id"] == "abc123"
    assert access[2]["video_id"] == 7
    # The 404 of the unknown task is the error middleware's answer; it logged nothing else, and
    # aiohttp's own access log (the raw request line) is off: /healthz polls left no line.
    assert not [line for line in lines if line.get("logger") == "aiohttp.access"]
