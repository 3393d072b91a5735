"""The output route of a task that writes no video (an analysis) answers 409, not a 500."""

from __future__ import annotations

from pathlib import Path

from arq.worker import Worker

from tests.api import Client, expect_error, follow_task, upload


async def test_an_analysis_has_no_output_to_download(
    client: Client, worker: Worker, clip_odd: Path
) -> None:
    video = await upload(client, clip_odd)
    resp = await client.post(f"/api/video-analyze/{video['id']}/", json={"sample_every": 10})
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "SUCCESS", final
    message = await expect_error(await client.get(f"/api/tasks/{task_id}/output"), 409, "no_output")
    assert f"/api/task-status/{task_id}/" in message
