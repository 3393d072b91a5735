"""Review of outputs: pending, approved or rejected by a reviewer with a comment, and the
approval gate (``VIDCORRECT_REQUIRE_APPROVAL``) on downloads, for the API and the CLI."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from jobs.users import Role
from server.app import create_app
from tests.api import Client, expect_error, follow_task
from tests.oracle import judge_mask
from tests.people import API_TOKEN, bearer, clean_env, make_users, vidcorrect

MASK = {"mask_type": "custom", "roi": {"x": 40, "y": 20, "width": 200, "height": 180}}


@pytest.fixture
def tokens(tmp_path: Path) -> dict[Role, str]:
    return make_users(tmp_path / "users.json")


@pytest.fixture
def approval_settings(settings: Settings, tmp_path: Path, tokens: dict[Role, str]) -> Settings:
    return replace(
        settings,
        users_file=tmp_path / "users.json",
        api_token=API_TOKEN,
        require_approval=True,
    )


@pytest.fixture
async def gated(aiohttp_client: AiohttpClient, approval_settings: Settings) -> Client:
    return await aiohttp_client(create_app(approval_settings))


async def _masked_task(gated: Client, uploader: dict[str, str], clip: Path) -> str:
    """Upload ``clip`` and mask it as the uploader; the id of the task, once it succeeded."""
    form = aiohttp.FormData()
    form.add_field("file", clip.read_bytes(), filename="clip.mp4", content_type="video/mp4")
    resp = await gated.post("/api/videos/", data=form, headers=uploader)
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    resp = await gated.post(f"/api/video-apply-mask/{video_id}/", json=MASK, headers=uploader)
    assert resp.status == 202, await resp.text()
    task_id = str((await resp.json())["task_id"])
    final = (await follow_task(gated, task_id, timeout=180))[-1]
    assert final["state"] == "SUCCESS", final
    return task_id


async def test_review_and_the_approval_gate(
    gated: Client,
    aiohttp_client: AiohttpClient,
    approval_settings: Settings,
    worker: Worker,
    tokens: dict[Role, str],
    clip_odd: Path,
    tmp_path: Path,
) -> None:
    uploader, reviewer = bearer(tokens[Role.UPLOADER]), bearer(tokens[Role.REVIEWER])
    # The test client follows tasks with the uploader's session cookie.
    assert (await gated.post("/api/session/", json={"token": tokens[Role.UPLOADER]})).status == 200
    task_id = await _masked_task(gated, uploader, clip_odd)
    output_url = f"/api/tasks/{task_id}/output"
    task = await (await gated.get(f"/api/task-status/{task_id}/", headers=uploader)).json()
    assert task["review"] == {"state": "pending", "by": None, "at": None, "comment": None}
    assert task["submitted_by"] == "uma"

    # Pending: the uploader is refused, saying why; the reviewer downloads it to review it.
    message = await expect_error(await gated.get(output_url, headers=uploader), 403, "not_approved")
    assert "pending, not approved" in message
    assert "VIDCORRECT_REQUIRE_APPROVAL" in message
    resp = await gated.get(output_url, headers=reviewer)
    assert resp.status == 200
    reviewed = tmp_path / "reviewed.mp4"
    reviewed.write_bytes(await resp.read())
    await asyncio.to_thread(judge_mask, reviewed, clip_odd, MASK, numbered=True)

    # The CLI says why too.
    here = tmp_path / "cwd"
    here.mkdir()
    env = clean_env(VIDCORRECT_API_TOKEN=tokens[Role.UPLOADER])
    base = str(gated.make_url("")).rstrip("/")
    ran = await vidcorrect("download", task_id, "--url", base, env=env, cwd=here)
    assert ran.code != 0
    assert "not_approved" in ran.err, ran.err
    assert "not approved yet: a reviewer approves it first" in ran.err
    assert "Traceback" not in ran.err
    assert list(here.iterdir()) == []

    # Only reviewers review.
    body = {"state": "approved", "comment": "Checked: no faces, no names."}
    resp = await gated.post(f"/api/tasks/{task_id}/review", json=body, headers=uploader)
    assert "needs the reviewer role" in await expect_error(resp, 403, "forbidden_role")
    resp = await gated.post(f"/api/tasks/{task_id}/review", json=body, headers=reviewer)
    assert resp.status == 200, await resp.text()
    review = (await resp.json())["review"]
    assert review["state"] == "approved"
    assert review["by"] == "rita"
    assert review["comment"] == "Checked: no faces, no names."
    assert review["at"].endswith("Z")
    task = await (await gated.get(f"/api/task-status/{task_id}/", headers=uploader)).json()
    assert task["review"] == review

    # Approved: the uploader downloads it (the bytes the reviewer saw), with the CLI too.
    resp = await gated.get(output_url, headers=uploader)
    assert resp.status == 200
    assert await resp.read() == reviewed.read_bytes()
    ran = await vidcorrect("download", task_id, "--url", base, env=env, cwd=here)
    assert ran.code == 0, ran.err
    (saved,) = here.iterdir()
    assert saved.read_bytes() == reviewed.read_bytes()

    # Rejected: refused again; an admin still downloads it.
    resp = await gated.post(
        f"/api/tasks/{task_id}/review", json={"state": "rejected"}, headers=reviewer
    )
    assert (await resp.json())["review"]["comment"] is None
    message = await expect_error(await gated.get(output_url, headers=uploader), 403, "not_approved")
    assert "rejected, not approved" in message
    assert (await gated.get(output_url, headers=bearer(tokens[Role.ADMIN]))).status == 200

    # Without the setting, outputs are downloaded as soon as they exist.
    ungated = await aiohttp_client(create_app(replace(approval_settings, require_approval=False)))
    assert (await ungated.get(output_url, headers=uploader)).status == 200

    # With the API open (and the setting on), anyone may approve, and must before downloading.
    open_settings = replace(approval_settings, users_file=None, api_token=None)
    anyone = await aiohttp_client(create_app(open_settings))
    await expect_error(await anyone.get(output_url), 403, "not_approved")
    resp = await anyone.post(f"/api/tasks/{task_id}/review", json={"state": "approved"})
    assert (await resp.json())["review"]["by"] is None
    assert (await anyone.get(output_url)).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"state": "ok"},
        {"state": None},
        {"state": "approved", "extra": 1},
        {"state": "approved", "comment": 5},
        {"state": "approved", "comment": "x" * 2001},
        {"state": "approved", "comment": "bell \x07"},
    ],
)
async def test_a_bad_review_is_400_saying_what_to_fix(
    gated: Client, tokens: dict[Role, str], body: object
) -> None:
    resp = await gated.post(
        "/api/tasks/abc/review", json=body, headers=bearer(tokens[Role.REVIEWER])
    )
    message = await expect_error(resp, 400, "invalid_request")
    assert "state" in message or "comment" in message or "field" in message


async def test_only_an_output_is_reviewed(
    gated: Client, worker: Worker, tokens: dict[Role, str], clip_odd: Path
) -> None:
    reviewer = bearer(tokens[Role.REVIEWER])
    approve = {"state": "approved"}
    resp = await gated.post("/api/tasks/0123456789abcdef/review", json=approve, headers=reviewer)
    await expect_error(resp, 404, "task_not_found")
    form = aiohttp.FormData()
    form.add_field("file", clip_odd.read_bytes(), filename="clip.mp4", content_type="video/mp4")
    video_id = (await (await gated.post("/api/videos/", data=form, headers=reviewer)).json())["id"]
    resp = await gated.post(
        f"/api/video-analyze/{video_id}/", json={"sample_every": 50}, headers=reviewer
    )
    task_id = (await resp.json())["task_id"]
    assert (await gated.post("/api/session/", json={"token": tokens[Role.REVIEWER]})).status == 200
    final = (await follow_task(gated, task_id, timeout=180))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["review"] is None  # an analysis writes no output
    resp = await gated.post(f"/api/tasks/{task_id}/review", json=approve, headers=reviewer)
    await expect_error(resp, 409, "no_output")
