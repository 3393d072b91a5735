"""The client's subcommands of ``vidcorrect``: their options, what they do, their exit statuses.

stdout carries results (a task id, the saved file's path, a status, a table, or JSON with
``--json``); stderr carries progress, narration and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TextIO

from client import bodies, report, transfer
from client.api import Api, ApiError, JsonDict, Unreachable
from client.events import FINISHED, Follower
from client.progress import TransferBar, megabytes, task_view
from client.transfer import LocalFileError


class Exit(IntEnum):
    """Exit statuses of the client's commands."""

    OK = 0
    #: The task ended FAILURE.
    FAILURE = 1
    #: Bad command line: unknown option, no such file, malformed value.
    USAGE = 2
    #: The task ended REVOKED (cancelled).
    REVOKED = 3
    #: The server refused the request (an HTTP error; its message is printed).
    API_ERROR = 4
    #: The server could not be reached, or the connection to it was lost.
    UNREACHABLE = 5
    #: A local file could not be read or written.
    LOCAL_FILE = 6
    #: Stopped with Ctrl-C.
    INTERRUPTED = 130


COMMANDS = frozenset({"submit", "status", "cancel", "tasks", "download", "devices"})
DEFAULT_URL = "http://127.0.0.1:8080"
SUBMIT_PATHS = {
    "mask": "/api/video-apply-mask/{}/",
    "remove": "/api/video-remove-frames/{}/",
    "analyze": "/api/video-analyze/{}/",
    "reprocess": "/api/video-reprocess/{}/",
}
#: The CLI's operation names, as the API names them.
API_OPERATIONS = {
    "mask": "mask",
    "remove": "remove_frames",
    "analyze": "analyze",
    "reprocess": "reprocess",
}
END_STATUS = {"SUCCESS": Exit.OK, "FAILURE": Exit.FAILURE, "REVOKED": Exit.REVOKED}


class UsageError(Exception):
    """The command line asks for something that cannot be done as given."""


class Interrupted(Exception):
    """Ctrl-C; the message says what goes on and how to pick it up again."""


@dataclass(frozen=True)
class Console:
    """Where the command writes: results to ``out``, the rest to ``err``."""

    out: TextIO
    err: TextIO
    json: bool = False
    quiet: bool = False

    def result(self, text: str) -> None:
        """A result line on stdout."""
        print(text, file=self.out, flush=True)

    def result_json(self, value: Any) -> None:
        """A JSON result on stdout (one line)."""
        print(json.dumps(value), file=self.out, flush=True)

    def note(self, text: str) -> None:
        """Narration on stderr (not with ``--quiet``)."""
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def error(self, text: str) -> None:
        """An error on stderr, always."""
        print(f"vidcorrect: {text}", file=self.err, flush=True)


Handler = Callable[[Api, argparse.Namespace, Console], int]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client's subcommands to the ``vidcorrect`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help=f"the server (default: $VIDCORRECT_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--token",
        help="API token, sent as Authorization: Bearer (default: $VIDCORRECT_API_TOKEN; the "
        "variable keeps it out of the process list)",
    )
    common.add_argument("--json", action="store_true", help="print results as JSON")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or narration")

    following = argparse.ArgumentParser(add_help=False)
    following.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to save the result: a file, or a folder for the server's name "
        "(default: video-<id>-<operation>-<task>.mp4 here)",
    )

    submit = commands.add_parser(
        "submit",
        help="upload a video (or name one by id) and queue an operation on it",
        description="Queue an operation on a video: a file is uploaded first, a number is taken "
        "as the id of a video the server has. Prints the task id; --follow shows its progress "
        "and saves the result.",
    )
    operations = submit.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    specs = {
        "mask": "black out everything outside the endoscope image",
        "remove": "cut frames out",
        "analyze": "find blank, text and non-endoscopic frames and the endoscope image",
        "reprocess": "analysis, then mask and removal of the flagged frames, in one job",
    }
    for name, summary in specs.items():
        op = operations.add_parser(
            name, parents=[common, following], help=summary, description=summary + "."
        )
        op.add_argument("video", metavar="VIDEO_FILE_OR_ID", help="a video file, or a video id")
        _add_operation_options(name, op)
        op.add_argument(
            "--follow", action="store_true", help="follow the task to its end, then download"
        )
        op.add_argument(
            "--no-download", action="store_true", help="with --follow: do not save the output"
        )
        op.add_argument(
            "--idempotency-key",
            metavar="KEY",
            help="a key of your own: submitting again with it answers with the same task",
        )
        op.set_defaults(client=_submit)

    status = commands.add_parser("status", parents=[common], help="show a task")
    status.add_argument("task", metavar="TASK")
    status.add_argument("--follow", action="store_true", help="follow the task to its end")
    status.set_defaults(client=_status)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a queued or running task")
    cancel.add_argument("task", metavar="TASK")
    cancel.set_defaults(client=_cancel)

    tasks = commands.add_parser(
        "tasks", parents=[common], help="list tasks, newest first (the task history)"
    )
    tasks.add_argument("--video", type=int, metavar="ID", help="only this video's tasks")
    tasks.add_argument(
        "--state",
        type=str.upper,
        choices=("PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"),
        help="only tasks in this state",
    )
    tasks.add_argument("--operation", choices=tuple(API_OPERATIONS), help="only this operation")
    tasks.add_argument("--limit", type=int, metavar="N", help="tasks per page (1-500, default 50)")
    tasks.add_argument("--cursor", help="the next page (as the previous page said)")
    tasks.add_argument("--all", action="store_true", help="every page")
    tasks.set_defaults(client=_tasks)

    download = commands.add_parser(
        "download",
        parents=[common, following],
        help="save a task's output (following the task first if it has not ended)",
    )
    download.add_argument("task", metavar="TASK")
    download.set_defaults(client=_download)

    devices = commands.add_parser(
        "devices", parents=[common], help="list the devices --device knows"
    )
    devices.set_defaults(client=_devices)


def _add_operation_options(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "mask":
        bodies.add_mask_options(parser, required=True)
        parser.add_argument(
            "--blacken",
            metavar="RANGES",
            help="also make these frames black, keeping the timeline (e.g. 100-200,450)",
        )
    elif name == "remove":
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument(
            "--frames", type=bodies.frame_numbers, metavar="N,N,...", help="e.g. 3,4,90"
        )
        group.add_argument("--ranges", metavar="RANGES", help="inclusive, e.g. 10-20,30,45-50")
        group.add_argument(
            "--automatic",
            action="store_true",
            help="the frames the latest successful analysis flagged",
        )
    elif name == "analyze":
        parser.add_argument(
            "--sample-every", type=int, metavar="N", help="analyze every n-th frame"
        )
    else:
        bodies.add_mask_options(parser, required=False)
        parser.add_argument(
            "--remove-labels",
            type=bodies.labels,
            metavar="LABELS",
            help=f"labels whose frames are removed, from {', '.join(bodies.LABELS)} "
            "(default: text_screen,non_endoscopic)",
        )
        parser.add_argument(
            "--sample-every", type=int, metavar="N", help="analyze every n-th frame"
        )
    if name in bodies.EDITS:
        bodies.add_audio_option(parser)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run a client subcommand; returns its exit status. Errors become one line on stderr."""
    console = Console(out or sys.stdout, err or sys.stderr, json=args.json, quiet=args.quiet)
    url = args.url or os.environ.get("VIDCORRECT_URL") or DEFAULT_URL
    token = args.token or os.environ.get("VIDCORRECT_API_TOKEN") or None
    try:
        api = Api(url, token)
    except ValueError as error:
        console.error(str(error))
        return Exit.USAGE
    handler: Handler = args.client
    try:
        return handler(api, args, console)
    except UsageError as error:
        console.error(str(error))
        return Exit.USAGE
    except ApiError as error:
        console.error(_explain(error, api))
        return Exit.API_ERROR
    except Unreachable as error:
        console.error(error.message)
        return Exit.UNREACHABLE
    except LocalFileError as error:
        console.error(error.message)
        return Exit.LOCAL_FILE
    except Interrupted as error:
        console.error(str(error))
        return Exit.INTERRUPTED
    except KeyboardInterrupt:
        console.error("interrupted")
        return Exit.INTERRUPTED
    except BrokenPipeError:  # stdout went away (`vidcorrect tasks | head -1`): nothing to say
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), console.out.fileno())
        return Exit.OK


def _explain(error: ApiError, api: Api) -> str:
    """The server's message, its status and code, and what to do about the usual ones."""
    text = f"{error.message} (HTTP {error.status}, {error.code})"
    if error.status == 401:
        text += (
            "; the server refused the token"
            if api.token
            else "; give the API token with --token or VIDCORRECT_API_TOKEN"
        )
    elif error.code == "not_approved":
        text += "; the output is not approved yet: a reviewer approves it first"
    elif error.code == "forbidden_role":
        text += "; your token's role may not do this: ask an admin"
    elif error.retry_after is not None:
        text += f"; try again in {error.retry_after:g} s"
    return text


def _task_path(task_id: str, suffix: str = "") -> str:
    return f"/api/task-status/{urllib.parse.quote(task_id, safe='')}/{suffix}"


def _submit(api: Api, args: argparse.Namespace, console: Console) -> int:
    try:
        body = bodies.build(args.operation, args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    video_id, video = _video(api, args.video, console)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = api.send_json("POST", SUBMIT_PATHS[args.operation].format(video_id), body, headers)
    if answer.get("task_id") is None and "result" in answer:
        # USE_ASYNC_TASKS=false: the server answered when the job had ended.
        final = {"state": "SUCCESS", "video_id": video_id, "result": answer["result"]}
        final["operation"] = API_OPERATIONS[args.operation]
        return _finish(api, final, args, console)
    task_id = str(answer["task_id"])
    console.note(str(answer.get("message") or f"Queued task {task_id}"))
    if not args.follow:
        if console.json:
            console.result_json({**answer, "video": video} if video else answer)
        else:
            console.result(task_id)
        return Exit.OK
    if not console.json:
        console.result(task_id)
    final = _follow(api, task_id, console)
    return _finish(api, final, args, console)


def _video(api: Api, given: str, console: Console) -> tuple[int, JsonDict | None]:
    """The video to work on: ``given`` is uploaded if it is a file, else taken as an id."""
    path = Path(given)
    if path.is_file():
        return _upload(api, path, given, console)
    if given.isascii() and given.isdigit():
        return int(given), None
    if path.exists():
        raise UsageError(f"{given} is not a file")
    raise UsageError(f"{given} is neither a file nor a video id")


def _upload(api: Api, path: Path, shown: str, console: Console) -> tuple[int, JsonDict]:
    size = path.stat().st_size
    console.note(f"Uploading {shown} ({megabytes(size)})")
    bar = TransferBar(console.err, "Uploading", size, show=not console.quiet)
    try:
        video = transfer.upload(api, path, bar.update)
    except KeyboardInterrupt:
        raise Interrupted("upload interrupted; the server keeps nothing of it") from None
    finally:
        bar.close()
    console.note(
        f"Uploaded as video {video['id']}: {video.get('width')}x{video.get('height')}, "
        f"{float(video.get('fps') or 0):g} fps, {video.get('frame_count')} frames"
    )
    return int(video["id"]), video


def _follow(api: Api, task_id: str, console: Console) -> JsonDict:
    view = task_view(console.err, quiet=console.quiet)
    try:
        return Follower(api, task_id, view.update).run()
    except Unreachable as error:
        raise Unreachable(
            f"{error.message}; task {task_id} goes on there: `vidcorrect download {task_id}` "
            "picks it up",
            lost=error.lost,
        ) from None
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped following; task {task_id} goes on. Pick it up with "
            f"`vidcorrect download {task_id}`, stop it with `vidcorrect cancel {task_id}`"
        ) from None
    finally:
        view.close()


def _finish(api: Api, final: JsonDict, args: argparse.Namespace, console: Console) -> int:
    """Report a task's end, save its output if it has one; returns the end's exit status."""
    state = str(final.get("state"))
    output: Path | None = None
    if state == "SUCCESS":
        result = final.get("result") or {}
        console.note(report.finished_line(final))
        if result.get("output_url") and not getattr(args, "no_download", False):
            output = _save(api, final, args.output, console)
    elif state == "FAILURE":
        error = final.get("error") or {}
        console.error(
            f"task {final.get('task_id')} failed: {error.get('message')} ({error.get('code')})"
        )
    else:
        console.error(f"task {final.get('task_id')} was cancelled ({state})")
    if console.json:
        console.result_json({**final, "output_path": str(output) if output else None})
    elif output is not None:
        console.result(str(output))
    elif state == "SUCCESS" and "total_frames" in (final.get("result") or {}):
        for line in report.analysis_lines(final["result"]):
            console.result(line)
    return END_STATUS.get(state, Exit.FAILURE)


def _save(api: Api, final: JsonDict, target: Path | None, console: Console) -> Path:
    result = final["result"]
    task = str(final.get("task_id") or "sync")
    fallback = f"video-{final.get('video_id')}-{final.get('operation')}-{task[:8]}.mp4"
    bar = TransferBar(console.err, "Downloading", None, show=not console.quiet)

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done)

    try:
        path = transfer.download(api, str(result["output_url"]), target, fallback, progress)
    except KeyboardInterrupt:
        raise Interrupted("download interrupted; nothing was saved") from None
    finally:
        bar.close()
    console.note(f"Saved the output ({megabytes(path.stat().st_size)}):")
    return path


def _status(api: Api, args: argparse.Namespace, console: Console) -> int:
    task = api.get_json(_task_path(args.task))
    if not args.follow:
        _show_task(task, console)
        return Exit.OK
    if task.get("state") not in FINISHED:
        task = _follow(api, str(task["task_id"]), console)
    _show_task(task, console)
    return END_STATUS.get(str(task.get("state")), Exit.FAILURE)


def _show_task(task: JsonDict, console: Console) -> None:
    if console.json:
        console.result_json(task)
        return
    for line in report.task_lines(task):
        console.result(line)


def _cancel(api: Api, args: argparse.Namespace, console: Console) -> int:
    answer = api.send_json("POST", _task_path(args.task, "cancel/"))
    if console.json:
        console.result_json(answer)
    else:
        console.result(f"{answer.get('task_id')}  {answer.get('state')}  {answer.get('message')}")
    return Exit.OK


def _tasks(api: Api, args: argparse.Namespace, console: Console) -> int:
    query: dict[str, object] = {
        "video_id": args.video,
        "state": args.state,
        "operation": API_OPERATIONS[args.operation] if args.operation else None,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    tasks: list[JsonDict] = []
    while True:
        page = api.get_json("/api/tasks/", query)
        tasks += page.get("tasks") or []
        cursor = page.get("next_cursor")
        if not (args.all and cursor):
            break
        query["cursor"] = cursor
    if console.json:
        console.result_json({"tasks": tasks, "next_cursor": cursor})
        return Exit.OK
    for line in report.tasks_table(tasks):
        console.result(line)
    if cursor:
        console.note(f"More: add --cursor {cursor} (or --all)")
    return Exit.OK


def _download(api: Api, args: argparse.Namespace, console: Console) -> int:
    task = api.get_json(_task_path(args.task))
    if task.get("state") not in FINISHED:
        task = _follow(api, str(task["task_id"]), console)
    return _finish(api, task, args, console)


def _devices(api: Api, args: argparse.Namespace, console: Console) -> int:
    answer = api.get_json("/api/devices/")
    if console.json:
        console.result_json(answer)
    else:
        for line in report.device_lines(answer.get("devices") or []):
            console.result(line)
    return Exit.OK
