"""The audit trail: an entry for each upload, submission, cancel, download, review, deletion and
device change, chained by SHA-256; ``vidcorrect audit verify`` and ``GET /api/audit/verify``
catch an edited entry; ``GET /api/audit/`` pages and filters; it survives a restart."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.retention import sweep
from jobs.settings import Settings
from jobs.users import Role
from server.app import create_app
from server.keys import AUDIT, RECORDS, STORAGE
from tests.api import Client, JsonDict, expect_error
from tests.people import API_TOKEN, bearer, clean_env, make_users, vidcorrect
from tests.served import Served

#: A file name with patient data in it: it must never reach the trail.
PATIENT_FILE = "Jane-Doe-1957-03-02-colonoscopy.mp4"
DEVICE = {
    "name": "acme_9000",
    "description": "Acme 9000, 720p",
    "frame_width": 1280,
    "frame_height": 720,
    "roi": {"x": 400, "y": 0, "width": 880, "height": 720},
    "text_fields": [{"name": "patient_name", "x": 10, "y": 10, "width": 300, "height": 30}],
}


@pytest.fixture
def tokens(tmp_path: Path) -> dict[Role, str]:
    return make_users(tmp_path / "users.json")


@pytest.fixture
def audit_settings(settings: Settings, tmp_path: Path, tokens: dict[Role, str]) -> Settings:
    return replace(settings, users_file=tmp_path / "users.json", api_token=API_TOKEN)


@pytest.fixture
async def audited(aiohttp_client: AiohttpClient, audit_settings: Settings) -> Client:
    return await aiohttp_client(create_app(audit_settings))


def chain_fault(entries: list[JsonDict]) -> int | None:
    """The first entry (oldest first) whose hash or link is wrong, checked here independently:
    SHA-256 over the entry's JSON with sorted keys and no spaces, without its hash."""
    prev = "0" * 64
    for seq, entry in enumerate(entries):
        body = {k: v for k, v in entry.items() if k != "hash"}
        digest = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        if entry["seq"] != seq or entry["prev"] != prev or entry["hash"] != digest:
            return seq
        prev = entry["hash"]
    return None


async def all_entries(client: Client, admin: dict[str, str], **query: Any) -> list[JsonDict]:
    """Every entry the listing gives for ``query``, page by page (newest first)."""
    found: list[JsonDict] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/audit/", params=params, headers=admin)
        page = await resp.json()
        assert resp.status == 200, page
        found += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def _upload(client: Client, headers: dict[str, str], clip: Path) -> int:
    form = aiohttp.FormData()
    form.add_field("file", clip.read_bytes(), filename=PATIENT_FILE, content_type="video/mp4")
    resp = await client.post("/api/videos/", data=form, headers=headers)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def test_each_action_is_one_chained_entry_without_patient_data(
    audited: Client, audit_settings: Settings, tokens: dict[Role, str], clip_odd: Path
) -> None:
    uploader, reviewer, admin = (bearer(tokens[r]) for r in Role)
    video_id = await _upload(audited, uploader, clip_odd)
    resp = await audited.post(
        f"/api/video-analyze/{video_id}/", json={"sample_every": 50}, headers=uploader
    )
    task_id = (await resp.json())["task_id"]
    resp = await audited.post(f"/api/task-status/{task_id}/cancel/", headers=uploader)
    assert resp.status == 202  # no worker: it never started
    resp = await audited.get(f"/api/tasks/{task_id}/output", headers=reviewer)
    await expect_error(resp, 409, "output_not_ready")
    # Ranges a player asks for after the first byte are not each an entry; the first is.
    resp = await audited.get(
        f"/api/videos/{video_id}/file", headers={**reviewer, "Range": "bytes=100-199"}
    )
    assert resp.status == 206
    resp = await audited.get(f"/api/videos/{video_id}/file", headers=reviewer)
    assert resp.status == 200
    resp = await audited.post(
        f"/api/tasks/{task_id}/review", json={"state": "approved"}, headers=uploader
    )
    await expect_error(resp, 403, "forbidden_role")
    assert (await audited.post("/api/devices/", json=DEVICE, headers=admin)).status == 201
    assert (await audited.delete("/api/devices/acme_9000", headers=admin)).status == 204
    assert (await audited.delete(f"/api/videos/{video_id}/", headers=admin)).status == 204
    # Not audited: reads, and requests that never signed in.
    await audited.get("/api/videos/", headers=uploader)
    await expect_error(await audited.delete(f"/api/videos/{video_id}/"), 401)

    entries = await all_entries(audited, admin)
    summary = [(e["action"], e["user"], e["outcome"], e["status"]) for e in reversed(entries)]
    assert summary == [
        ("upload", "uma", "ok", 201),
        ("submit", "uma", "ok", 202),
        ("cancel", "uma", "ok", 202),
        ("download", "rita", "refused", 409),
        ("download_original", "rita", "ok", 200),
        ("review", "uma", "denied", 403),
        ("add_device", "adam", "ok", 201),
        ("delete_device", "adam", "ok", 204),
        ("delete_video", "adam", "ok", 204),
    ]
    oldest_first = list(reversed(entries))
    assert oldest_first[0]["ids"] == {"video_id": video_id}
    assert oldest_first[1]["ids"] == {"video_id": video_id, "task_id": task_id}
    assert oldest_first[2]["ids"] == {"task_id": task_id}
    assert oldest_first[6]["ids"] == {}
    assert oldest_first[7]["ids"] == {"device": "acme_9000"}
    assert chain_fault(oldest_first) is None
    for entry in entries:
        datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    # Nothing of the file's name (nor the patient's) is stored.
    redis = Redis.from_url(audit_settings.redis_url or "")
    stored = b"".join(await redis.lrange(audit_settings.keys.audit, 0, -1))
    await redis.aclose()
    assert b"Jane" not in stored
    assert b"colonoscopy" not in stored
    assert b".mp4" not in stored


async def test_the_listing_pages_and_filters(
    audited: Client, tokens: dict[Role, str], clip_odd: Path
) -> None:
    uploader, admin = bearer(tokens[Role.UPLOADER]), bearer(tokens[Role.ADMIN])
    videos = [await _upload(audited, uploader, clip_odd) for _ in range(3)]
    middle = datetime.now(UTC).isoformat()
    videos += [await _upload(audited, admin, clip_odd) for _ in range(2)]
    await audited.delete(f"/api/videos/{videos[0]}/", headers=admin)

    everything = await all_entries(audited, admin)
    assert len(everything) == 6
    assert [e["seq"] for e in everything] == [5, 4, 3, 2, 1, 0]  # newest first
    for limit in (1, 2, 4):
        assert await all_entries(audited, admin, limit=limit) == everything
    resp = await audited.get("/api/audit/", params={"limit": 2}, headers=admin)
    first = await resp.json()
    assert [e["seq"] for e in first["entries"]] == [5, 4]
    assert first["next_cursor"] is not None

    uma = await all_entries(audited, admin, user="uma")
    assert [e["ids"]["video_id"] for e in uma] == videos[2::-1]
    uploads = await all_entries(audited, admin, action="upload", limit=2)
    assert [e["ids"]["video_id"] for e in uploads] == videos[::-1]
    assert await all_entries(audited, admin, user="adam", action="delete_video") == [everything[0]]
    recent = await all_entries(audited, admin, since=middle)
    assert [e["seq"] for e in recent] == [5, 4, 3]
    assert await all_entries(audited, admin, user="nobody") == []

    for params, wrong in (
        ({"cursor": "x"}, "invalid_cursor"),
        ({"action": "dance"}, "invalid_request"),
        ({"since": "yesterday"}, "invalid_request"),
        ({"limit": "0"}, "invalid_request"),
    ):
        await expect_error(
            await audited.get("/api/audit/", params=params, headers=admin), 400, wrong
        )


async def test_verify_catches_an_edited_entry(
    audited: Client, audit_settings: Settings, tokens: dict[Role, str], clip_odd: Path
) -> None:
    uploader, admin = bearer(tokens[Role.UPLOADER]), bearer(tokens[Role.ADMIN])
    for _ in range(4):
        await _upload(audited, uploader, clip_odd)
    env = clean_env(
        REDIS_URL=audit_settings.redis_url or "",
        VIDCORRECT_KEY_PREFIX=audit_settings.key_prefix,
    )
    ran = await vidcorrect("audit", "verify", env=env)
    assert ran.code == 0, ran.err
    assert "audit trail OK: 4 entries" in ran.out
    verdict = await (await audited.get("/api/audit/verify", headers=admin)).json()
    assert verdict == {"ok": True, "entries": 4, "first_bad": None, "reason": None}

    # Someone rewrites who uploaded video 3, in Redis itself.
    redis = Redis.from_url(audit_settings.redis_url or "")
    key = audit_settings.keys.audit
    original = await redis.lindex(key, 2)
    entry = json.loads(original)
    entry["user"] = "mallory"
    await redis.lset(key, 2, json.dumps(entry, sort_keys=True, separators=(",", ":")))
    ran = await vidcorrect("audit", "verify", env=env)
    assert ran.code == 1
    assert "BROKEN at entry 2" in ran.out
    assert "its hash does not match its content" in ran.out
    verdict = await (await audited.get("/api/audit/verify", headers=admin)).json()
    assert verdict["ok"] is False
    assert verdict["first_bad"] == 2
    # Recomputing its hash too does not help: the next entry's link gives it away.
    entry["hash"] = hashlib.sha256(
        json.dumps(
            {k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":")
        ).encode()
    ).hexdigest()
    await redis.lset(key, 2, json.dumps(entry, sort_keys=True, separators=(",", ":")))
    ran = await vidcorrect("audit", "verify", env=env)
    assert ran.code == 1
    assert "BROKEN at entry 3" in ran.out
    # So does removing an entry.
    await redis.lset(key, 2, original)
    assert (await vidcorrect("audit", "verify", env=env)).code == 0
    await redis.lrem(key, 1, await redis.lindex(key, 1))
    ran = await vidcorrect("audit", "verify", env=env)
    assert ran.code == 1
    assert "BROKEN at entry 1" in ran.out
    await redis.aclose()


async def test_the_trail_survives_a_restart(
    tmp_path: Path, tokens: dict[Role, str], clip_odd: Path
) -> None:
    """The embedded Redis's append-only file keeps the trail across a stop and a start."""
    data_dir = tmp_path / "data"
    env = {"VIDCORRECT_USERS_FILE": str(tmp_path / "users.json")}
    uploader, admin = bearer(tokens[Role.UPLOADER]), bearer(tokens[Role.ADMIN])
    async with aiohttp.ClientSession() as session:
        served = Served(data_dir, env)
        try:
            await served.wait_ready(session)
            form = aiohttp.FormData()
            form.add_field("file", clip_odd.read_bytes(), filename=PATIENT_FILE)
            async with session.post(
                f"{served.base}/api/videos/", data=form, headers=uploader
            ) as resp:
                assert resp.status == 201
        finally:
            assert served.stop() == 0
        served = Served(data_dir, env)
        try:
            await served.wait_ready(session)
            async with session.delete(f"{served.base}/api/videos/1/", headers=admin) as resp:
                assert resp.status == 204
            async with session.get(f"{served.base}/api/audit/", headers=admin) as resp:
                entries = (await resp.json())["entries"]
        finally:
            assert served.stop() == 0
    oldest_first = list(reversed(entries))
    assert [(e["action"], e["user"]) for e in oldest_first] == [
        ("upload", "uma"),
        ("delete_video", "adam"),
    ]
    assert chain_fault(oldest_first) is None
    # Checked from the stopped server's own Redis files.
    ran = await vidcorrect("audit", "verify", "--data-dir", str(data_dir), env=clean_env())
    assert ran.code == 0, ran.err
    assert "audit trail OK: 2 entries" in ran.out


async def test_retention_deletions_are_entries_of_the_sweep(
    audited: Client, audit_settings: Settings, tokens: dict[Role, str], clip_odd: Path
) -> None:
    uploader, admin = bearer(tokens[Role.UPLOADER]), bearer(tokens[Role.ADMIN])
    old = await _upload(audited, uploader, clip_odd)
    fresh = await _upload(audited, uploader, clip_odd)
    records = audited.app[RECORDS]
    video = await records.get_video(old)
    await records.save_video(replace(video, created_at="2020-01-01T00:00:00.000Z"))
    short = replace(audit_settings, original_retention_days=1)
    deleted = await sweep(records, audited.app[STORAGE], short, audit=audited.app[AUDIT])
    assert deleted == {"original": 1}
    entries = await all_entries(audited, admin, action="delete_video")
    assert [(e["user"], e["outcome"], e["status"], e["ids"]) for e in entries] == [
        ("(retention)", "ok", None, {"video_id": old})
    ]
    assert (await audited.get(f"/api/videos/{fresh}/", headers=admin)).status == 200
    assert chain_fault(list(reversed(await all_entries(audited, admin)))) is None
