"""The ``vidcorrect`` client, run as its console script against the real server and worker."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import re
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import av
import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from client.bodies import add_audio_option, add_mask_options, build
from client.report import analysis_lines
from jobs.device_catalogue import builtin_devices
from jobs.settings import Settings
from jobs.video import Roi
from jobs.video.analyze import Analysis, SuggestedRoi
from jobs.worker import in_process_worker
from server.app import create_app
from testkit.media import make_video
from tests.api import Client, upload
from tests.checks import assert_masked
from tests.oracle import judge_mask
from tests.pausing import catch_frame_process
from tests.proxy import Proxy, header_fields
from vidcorrect.cli import main

TIMEOUT = 120.0
TASK_ID = re.compile(r"^[0-9a-f]{32}$")
PROGRESS_LINE = re.compile(r"^\s*(\d{1,3})%  (PENDING|STARTED|PROGRESS|RETRY|SUCCESS)\s")
TOKEN = "s3cret-token-for-tests"


def _script() -> list[str]:
    script = Path(sys.executable).parent / "vidcorrect"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vidcorrect"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCORRECT_")}
    return {**env, **extra}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def progress(self) -> list[tuple[int, str]]:
        """The (percent, state) of every progress line on stderr."""
        found = (PROGRESS_LINE.match(line) for line in self.err.splitlines())
        return [(int(m[1]), m[2]) for m in found if m]


async def vidcorrect(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    """Run the real console script (not on a terminal) and wait for it."""
    process = await asyncio.create_subprocess_exec(
        *_script(),
        *args,
        cwd=cwd,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


def assert_clean(ran: Ran) -> None:
    assert "Traceback" not in ran.err, ran.err


def frames_and_size(path: Path) -> tuple[int, int, int]:
    """Frames decoded, width and height of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.codec_context.width, stream.codec_context.height


DEVICE = "olympus_cv_1500"


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """The client's working directory (apart from the server's data dir)."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


async def test_submit_mask_of_a_file_follows_and_saves_the_masked_video(
    client: Client, worker: Worker, clip_720p: Path, here: Path
) -> None:
    ran = await vidcorrect(
        here, "submit", "mask", str(clip_720p), "--device", DEVICE, "--follow",
        "--url", base_url(client),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert_clean(ran)
    task_id, saved = ran.out.splitlines()
    assert TASK_ID.match(task_id)
    output = here / saved
    assert saved == f"video-1-mask-{task_id[:8]}.mp4"
    assert sorted(p.name for p in here.iterdir()) == [saved], "no temp file is left"

    # Progress lines, one per change, in order, ending in SUCCESS; no carriage returns off a TTY.
    assert "\r" not in ran.err
    progress = ran.progress
    assert progress[-1] == (100, "SUCCESS")
    assert any(state == "PROGRESS" for _, state in progress)
    percents = [p for p, _ in progress]
    assert percents == sorted(percents)
    assert "Uploaded as video 1: 1280x720, 25 fps, 50 frames" in ran.err
    assert "output checked: 50 frames decoded" in ran.err

    assert frames_and_size(output) == (50, 1280, 720)
    roi = builtin_devices()[DEVICE].roi_for(1280, 720)
    await asyncio.to_thread(assert_masked, clip_720p, output, roi, "rect")
    asked = {"mask_type": "device", "device_name": DEVICE}  # what --device asks for
    await asyncio.to_thread(judge_mask, output, clip_720p, asked, numbered=True)
    status = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert status["state"] == "SUCCESS"
    assert status["params"]["mask_type"] == "device"


async def test_audio_is_sent_only_when_given(
    aiohttp_client: AiohttpClient,
    client: Client,
    worker: Worker,
    settings: Settings,
    clip_720p: Path,
    here: Path,
) -> None:
    """``--audio keep|drop`` reaches the body of mask, remove and reprocess; without it the body
    has no audio and the server's default applies (keep on a second server, so that a client
    sending drop on its own would show)."""
    keeping = await aiohttp_client(create_app(replace(settings, audio="keep")))
    video = await upload(client, clip_720p)
    vid = str(video["id"])
    followed = ("--follow", "--no-download")
    cases = [
        (client, ("mask", vid, "--device", DEVICE, "--audio", "keep", *followed), "keep"),
        (client, ("remove", vid, "--frames", "3", "--audio", "keep"), "keep"),
        (client, ("reprocess", vid, "--audio", "keep"), "keep"),
        (keeping, ("mask", vid, "--rect", "0,0,640,360"), "keep"),
        (keeping, ("remove", vid, "--ranges", "4-5"), "keep"),
        (keeping, ("reprocess", vid, "--audio", "drop"), "drop"),
    ]  # fmt: skip
    errs = []
    for server, args, applied in cases:
        ran = await vidcorrect(here, "submit", *args, "--url", base_url(server))
        assert ran.code == 0, ran.err
        errs.append(ran.err)
        task_id = ran.out.splitlines()[0]
        status = await (await client.get(f"/api/task-status/{task_id}/")).json()
        assert status["params"]["audio"] == applied, args
    assert "50 frames; audio kept; output checked" in errs[0]  # the followed mask


async def test_on_a_terminal_progress_is_a_bar_redrawn_in_place(
    client: Client, worker: Worker, clip_odd: Path, here: Path
) -> None:
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *_script(), "submit", "mask", str(clip_odd), "--ellipse", "100,0,400,362",
        "--follow", "-o", str(here / "masked.mp4"), "--url", base_url(client),
        cwd=here, env=_env(), stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    terminal, (out, _) = await asyncio.wait_for(
        asyncio.gather(asyncio.to_thread(_read_until_closed, master), process.communicate()),
        TIMEOUT,
    )
    assert process.returncode == 0, terminal
    assert out.decode().splitlines()[1] == str(here / "masked.mp4")
    screen = terminal.decode()
    assert re.search(r"\rUploading  \[#+\]  100%", screen), screen
    assert re.search(r"\rEncoding  \[[#-]{24}\]\s+\d+%  frame \d+/60", screen), screen
    assert "\x1b[K" in screen
    assert not re.search(PROGRESS_LINE.pattern, screen, re.M), "no log lines on a terminal"
    assert frames_and_size(here / "masked.mp4") == (60, 642, 362)
    roi = Roi(100, 0, 400, 362)
    await asyncio.to_thread(assert_masked, clip_odd, here / "masked.mp4", roi, "ellipse")
    asked = {"mask_type": "custom", "roi": asdict(roi), "shape": "ellipse"}  # --ellipse
    await asyncio.to_thread(judge_mask, here / "masked.mp4", clip_odd, asked, numbered=True)


def _read_until_closed(fd: int) -> bytes:
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except OSError:  # EIO: the other side of the terminal has closed
        pass
    finally:
        os.close(fd)
    return data


async def test_a_dropped_event_stream_is_resumed_after_the_last_event(
    client: Client, settings: Settings, clip_720p: Path, here: Path
) -> None:
    # No worker yet: the task waits, the first stream delivers its PENDING event and is cut.
    async with Proxy(client, cut_events_after=1).running() as proxy:
        process = await asyncio.create_subprocess_exec(
            *_script(), "submit", "mask", str(clip_720p), "--device", DEVICE, "--follow",
            "--url", proxy.url,
            cwd=here, env=_env(VIDCORRECT_API_TOKEN=TOKEN),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        await asyncio.wait_for(proxy.wait_for_event_requests(2), 30)
        async with in_process_worker(settings):
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    ran = Ran(process.returncode, out.decode(), err.decode())
    assert ran.code == 0, ran.err
    assert_clean(ran)
    first, second = proxy.event_heads()[:2]
    assert "last-event-id" not in header_fields(first)
    assert proxy.cut_after_id
    assert header_fields(second)["last-event-id"] == proxy.cut_after_id
    states = [state for _, state in ran.progress]
    assert states.count("PENDING") == 1, ran.err
    assert states[-1] == "SUCCESS"
    # The token goes with every request, and never to the output.
    assert all(header_fields(h)["authorization"] == f"Bearer {TOKEN}" for h in proxy.heads)
    assert TOKEN not in ran.out + ran.err
    assert frames_and_size(here / ran.out.splitlines()[1]) == (50, 1280, 720)
    asked = {"mask_type": "device", "device_name": DEVICE}
    saved = here / ran.out.splitlines()[1]
    await asyncio.to_thread(judge_mask, saved, clip_720p, asked, numbered=True)


async def test_without_an_event_stream_the_client_polls(
    client: Client, worker: Worker, clip_720p: Path, here: Path
) -> None:
    video = await upload(client, clip_720p)
    async with Proxy(client, refuse_events=True).running() as proxy:
        ran = await vidcorrect(
            here, "submit", "analyze", str(video["id"]), "--sample-every", "2", "--follow",
            "--url", proxy.url,
        )  # fmt: skip
    assert ran.code == 0, ran.err
    assert_clean(ran)
    task_id = ran.out.splitlines()[0]
    assert len(proxy.event_heads()) == 1
    polls = [h for h in proxy.heads if h.startswith(f"GET /api/task-status/{task_id}/ ")]
    assert polls
    assert ran.progress[-1] == (100, "SUCCESS")
    assert re.fullmatch(r"frames      50, sensitive \d+ \([\d.]+%\)", ran.out.splitlines()[1])
    result = (await (await client.get(f"/api/task-status/{task_id}/")).json())["result"]
    assert ran.out.splitlines()[1:] == analysis_lines(result)
    assert any(line.startswith("device      ") for line in ran.out.splitlines())  # a new field


def test_the_analysis_report_shows_confidence_evidence_device_and_where_overlays_are() -> None:
    found = SuggestedRoi(
        Roi(320, 0, 640, 720),
        shape="ellipse",
        confidence=0.87,
        fit_residual=0.0123,
        frames_used=48,
        frame_share=0.96,
        moving_frames=40,
    )
    analysis = Analysis(
        total_frames=50,
        sample_every=1,
        segments=(),
        suggested_roi=found,
        overlay_regions=(Roi(0, 0, 200, 40), Roi(0, 680, 200, 40)),
        detection_method="automatic",
        inside_regions=(Roi(600, 20, 80, 20),),
    )
    lines = analysis_lines({**analysis.to_dict(), "suggested_device": DEVICE})
    assert "suggested   --ellipse 320,0,640,720 (confidence 0.87)" in lines
    assert (
        "evidence    ellipse fit, residual 0.012, 48 frames used (96.0% of those analysed), "
        "the picture moved in 40"
    ) in lines
    assert f"device      --device {DEVICE}" in lines
    assert "overlays    2 static text-like region(s) outside the ROI" in lines
    assert "overlays    1 static text-like region(s) inside the ROI" in lines

    unsure = replace(analysis, suggested_roi=replace(found, confidence=0.3), inside_regions=())
    lines = analysis_lines({**unsure.to_dict(), "suggested_device": None})
    assert "suggested   --ellipse 320,0,640,720 (confidence 0.30)" in lines
    assert "device      none recognised" in lines
    assert not any("inside the ROI" in line for line in lines)

    octagon = replace(analysis, suggested_roi=replace(found, shape="octagon", corner=120))
    lines = analysis_lines({**octagon.to_dict(), "suggested_device": None})
    assert "suggested   --octagon 320,0,640,720 --corner 120 (confidence 0.87)" in lines

    # An older server's result: no confidence, evidence, device nor inside_roi.
    older = {**analysis.to_dict(), "suggested_roi": Roi(320, 0, 640, 720).to_dict()}
    older["overlay_regions"] = [r.to_dict() for r in analysis.overlay_regions]
    lines = analysis_lines(older)
    assert "suggested   --rect 320,0,640,720" in lines
    assert not any(line.startswith(("evidence", "device")) for line in lines)
    assert "overlays    2 static text-like region(s) outside the ROI" in lines


@pytest.fixture(scope="session")
def slow_clip(media_dir: Path) -> Path:
    """1280x720, 8 s: 200 frames, so that a job held a few frames in is mid-job."""
    return make_video(media_dir / "slow.mp4", width=1280, height=720, seconds=8.0, audio=False)


async def test_cancel_stops_a_followed_running_task_which_exits_revoked(
    client: Client, settings: Settings, slow_clip: Path, here: Path
) -> None:
    url = base_url(client)
    process = await asyncio.create_subprocess_exec(
        *_script(), "submit", "mask", str(slow_clip), "--rect", "320,0,640,720", "--follow",
        "--url", url,
        cwd=here, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    errors = bytearray()

    async def collect_errors() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            errors.extend(line)

    async def progress_shown() -> bool:  # the CLI prints a line per 10 % (and per state)
        return re.search(rb"PROGRESS  Encoding frame [1-9]", errors) is not None

    collecting = asyncio.create_task(collect_errors())
    # The job's frame process is caught as it starts (the upload's probe reads the file under
    # tmp/, not videos/) and let go in steps until the CLI shows its frames; it is held while
    # the CLI cancels it.
    catching = asyncio.create_task(catch_frame_process(settings.data_dir))
    async with in_process_worker(settings):
        task_id = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode().strip()
        assert TASK_ID.match(task_id)
        frames = await catching
        try:
            await frames.run_until(progress_shown, timeout=TIMEOUT)
            cancel = await vidcorrect(here, "cancel", task_id, "--url", url)
            assert cancel.code == 0, cancel.err
            assert cancel.out.startswith(f"{task_id}  ")
            out = await asyncio.wait_for(process.stdout.read(), TIMEOUT)
            await asyncio.wait_for(process.wait(), TIMEOUT)
            await collecting
            err = bytes(errors)
            assert not frames.alive(), "the cancel should have killed the held frame process"
        finally:
            frames.resume()
    assert process.returncode == 3, err
    assert out == b"", "no output path"
    rest = err.decode()
    assert re.search(r"REVOKED\s+Cancelled", rest), rest
    assert f"vidcorrect: task {task_id} was cancelled (REVOKED)" in rest
    assert list(here.iterdir()) == [], "nothing is saved"

    status = await vidcorrect(here, "status", task_id, "--json", "--url", url)
    assert status.code == 0
    assert json.loads(status.out)["state"] == "REVOKED"
    again = await vidcorrect(here, "cancel", task_id, "--url", url)
    assert again.code == 4
    assert f"Task {task_id} has already ended as REVOKED" in again.err
    assert "(HTTP 409, already_finished)" in again.err


async def test_status_tasks_and_cancel_of_queued_tasks(
    client: Client, clip_720p: Path, here: Path
) -> None:
    url = base_url(client)
    video = await upload(client, clip_720p)
    vid = str(video["id"])
    ids = []
    for every in ("1", "2"):
        ran = await vidcorrect(
            here, "submit", "analyze", vid, "--sample-every", every, "--url", url
        )
        assert ran.code == 0, ran.err
        assert "Analysis of video 1 queued" in ran.err
        ids.append(ran.out.strip())
    first, second = ids

    status = await vidcorrect(here, "status", first, "--url", url)
    assert status.code == 0
    assert f"task       {first}" in status.out
    assert "state      PENDING (0%)" in status.out
    assert "operation  analyze of video 1" in status.out

    listed = await vidcorrect(
        here, "tasks", "--video", vid, "--operation", "analyze", "--state", "pending",
        "--json", "--url", url,
    )  # fmt: skip
    assert listed.code == 0, listed.err
    assert [t["task_id"] for t in json.loads(listed.out)["tasks"]] == [second, first]

    page = await vidcorrect(here, "tasks", "--limit", "1", "--url", url)
    header, row = page.out.splitlines()
    assert header.split() == ["TASK", "STATE", "PROGRESS", "OPERATION", "VIDEO", "CREATED"]
    assert row.split()[:5] == [second, "PENDING", "0%", "analyze", vid]
    assert "More: add --cursor " in page.err
    everything = await vidcorrect(here, "tasks", "--limit", "1", "--all", "--json", "--url", url)
    assert [t["task_id"] for t in json.loads(everything.out)["tasks"]] == [second, first]

    devices = await vidcorrect(here, "devices", "--url", url)
    assert devices.out.startswith("olympus_cv_1500  keeps x 550, y 0, 1350x1080 of a 1920x1080")

    cancel = await vidcorrect(here, "cancel", first, "--url", url)
    assert cancel.code == 0
    assert cancel.out.strip() == f"{first}  REVOKED  Cancelled."
    followed = await vidcorrect(here, "status", first, "--follow", "--url", url)
    assert followed.code == 3
    assert "state      REVOKED" in followed.out


async def test_bad_input_is_a_clear_error_without_traceback(
    client: Client, clip_720p: Path, here: Path
) -> None:
    url = base_url(client)
    missing = await vidcorrect(here, "submit", "mask", "999", "--device", DEVICE, "--url", url)
    assert missing.code == 4
    assert missing.err.strip() == (
        "vidcorrect: There is no video with id 999. (HTTP 404, video_not_found)"
    )
    assert missing.out == ""

    video = await upload(client, clip_720p)
    outside = await vidcorrect(
        here, "submit", "mask", str(video["id"]), "--rect", "0,0,2000,720", "--url", url
    )
    assert outside.code == 4
    assert "reaches outside the video's 1280x720 frame" in outside.err

    unknown_task = await vidcorrect(here, "status", "nope", "--url", url)
    assert unknown_task.code == 4
    assert "There is no task with id 'nope'." in unknown_task.err

    no_file = await vidcorrect(here, "submit", "mask", "absent.mp4", "--device", DEVICE)
    assert no_file.code == 2
    assert "absent.mp4 is neither a file nor a video id" in no_file.err
    malformed = await vidcorrect(here, "submit", "mask", "1", "--rect", "1,2,3")
    assert malformed.code == 2
    assert "expected X,Y,WIDTH,HEIGHT" in malformed.err
    mixed = await vidcorrect(here, "submit", "mask", "1", "--rect", "1,2,3,4", "--shape", "rect")
    assert mixed.code == 2
    assert "--shape goes with --device" in mixed.err
    for ran in (missing, outside, unknown_task, no_file, malformed, mixed):
        assert_clean(ran)


async def test_an_upload_over_the_server_limit_is_refused_with_its_message(
    aiohttp_client: AiohttpClient, settings: Settings, clip_720p: Path, here: Path
) -> None:
    small = await aiohttp_client(create_app(replace(settings, max_upload_bytes=10_000)))
    ran = await vidcorrect(
        here, "submit", "mask", str(clip_720p), "--device", DEVICE, "--url", base_url(small)
    )
    assert ran.code == 4
    assert_clean(ran)
    assert "The upload is larger than the limit of 10000 bytes" in ran.err
    assert "(HTTP 413, too_large)" in ran.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["status", "3f0c", "--url", url]) == 5
    captured = capsys.readouterr()
    assert captured.err == f"vidcorrect: the server isn't reachable at {url} (connection refused)\n"
    assert captured.out == ""
    assert main(["tasks", "--url", "ftp://example.org"]) == 2
    assert "must look like http://host:port" in capsys.readouterr().err


def test_the_client_loads_nothing_of_the_service() -> None:
    code = (
        "import sys\n"
        "from vidcorrect.cli import main\n"
        "main(['tasks', '--url', 'http://127.0.0.1:9'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jobs', 'av', 'numpy', 'arq', 'redis', 'aiohttp', 'structlog'} or m == 'server.app'))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        (
            ["--octagon", "10,20,300,200", "--corner", "40"],
            {
                "mask_type": "custom",
                "roi": {"x": 10, "y": 20, "width": 300, "height": 200},
                "shape": "octagon",
                "corner": 40,
            },
        ),
        (
            ["--device", "olympus_cv_1500", "--shape", "octagon", "--corner", "90"],
            {
                "mask_type": "device",
                "device_name": "olympus_cv_1500",
                "shape": "octagon",
                "corner": 90,
            },
        ),
        (["--octagon", "10,20,300,200"], "--corner goes with --octagon"),
        (["--rect", "10,20,300,200", "--corner", "4"], "--corner goes with --octagon"),
        (["--ellipse", "10,20,300,200", "--shape", "octagon"], "--shape goes with --device"),
    ],
)
def test_the_octagon_options_make_the_api_fields(
    options: list[str], fields: dict[str, object] | str
) -> None:
    parser = argparse.ArgumentParser()
    add_mask_options(parser, required=True)
    add_audio_option(parser)
    parser.add_argument("--blacken")
    args = parser.parse_args(options)
    if isinstance(fields, str):
        with pytest.raises(ValueError, match=fields):
            build("mask", args)
    else:
        assert build("mask", args) == fields
