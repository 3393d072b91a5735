"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/openapi.json``.

Built as a dict from the same constants the handlers validate with, for the server's own
configuration: with an API token every protected operation lists the bearer and cookie schemes
and its 401; in the legacy synchronous mode the submissions' 200 carries the result and a
failed job is a 422. The page, its static files and the operations endpoints (``/healthz``,
``/readyz``, ``/metrics``) are not part of the JSON API and are not described here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobs.audit import Action
from jobs.model import TASK_ID_PATTERN, Operation, TaskState
from jobs.settings import Settings
from jobs.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TASK_ENDED,
    TIMESTAMP_HEADER,
)
from jobs.webhooks import EVENT_HEADER as WEBHOOK_EVENT_HEADER
from server.access import SESSION_COOKIE
from server.api_schemas import (
    DEVICE_NAME,
    EVENT_ID_PATTERN,
    STR,
    Schema,
    component_schemas,
    json_content,
    new_device,
    ref,
    request_bodies,
)
from server.keys import SETTINGS

routes = web.RouteTableDef()

OPENAPI_PATH = "/api/openapi.json"


class _Builder:
    """Collects the operations of one document."""

    def __init__(self, auth: bool) -> None:
        self.auth = auth
        self.paths: dict[str, dict[str, Schema]] = {}

    def error(self, description: str, *, headers: dict[str, Schema] | None = None) -> Schema:
        answer: Schema = {"description": description, "content": json_content(ref("Error"))}
        if headers:
            answer["headers"] = headers
        return answer

    def add(
        self,
        method: str,
        path: str,
        summary: str,
        responses: dict[str, Schema],
        *,
        errors: dict[str, str],
        parameters: list[Schema] | None = None,
        body: Schema | None = None,
        body_required: bool = False,
        open_route: bool = False,
    ) -> None:
        """One operation: its success ``responses`` and the ``errors`` it answers."""
        answers = dict(responses)
        for status, description in errors.items():
            headers = None
            if status == "429":
                headers = {"Retry-After": _header("Seconds to wait before trying again.")}
            if status in answers:  # a status both a result and an error (legacy 422)
                description = f"{answers[status]['description']} Or: {description}"
            answers[status] = self.error(description, headers=headers)
        forbidden = (
            "Another site's page sent this request: its Origin is not this server's own, or "
            "Sec-Fetch-Site is cross-site or same-site (cross_site_request)."
        )
        if self.auth and not open_route:
            forbidden += (
                " Or the signed-in user's role may not do this (forbidden_role; the message "
                "names the role needed)."
            )
        if "403" in answers:
            forbidden = f"{answers['403']['description']} Or: {forbidden}"
        answers["403"] = self.error(forbidden)
        answers["421"] = self.error(
            "The Host header is not one of this server's names (unknown_host): loopback names, "
            "the address it listens on, VIDCORRECT_ALLOWED_HOSTS."
        )
        answers["503"] = self.error(
            "Redis or the data dir is unreachable right now, or (uploads, event streams) this "
            "server process has as many open as it may (too_many_uploads, too_many_streams); "
            "try again after Retry-After.",
            headers={"Retry-After": _header("Seconds to wait.")},
        )
        answers["507"] = self.error(
            "The server's storage is full (no_space): nothing of the request was kept; try "
            "again after Retry-After.",
            headers={"Retry-After": _header("Seconds to wait.")},
        )
        operation: Schema = {
            "summary": summary,
            "operationId": f"{method}_{path}".replace("/", "_").strip("_"),
            "responses": answers,
        }
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = {"required": body_required, "content": json_content(body)}
        if self.auth and not open_route:
            answers["401"] = self.error(
                "No token: send Authorization: Bearer <token>, or the page's session cookie.",
                headers={"WWW-Authenticate": _header("Bearer")},
            )
        if open_route:
            operation["security"] = []
        self.paths.setdefault(path, {})[method] = operation


def _header(description: str) -> Schema:
    return {"description": description, "required": True, "schema": {"type": "string"}}


def _path_id(name: str, schema: Schema, example: Any) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": example}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


VIDEO_ID = _path_id("video_id", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}, 1)
#: The video the DELETE route's example names: not the one every other example names, so that
#: a client trying the examples in turn (schemathesis) keeps that one for the others.
DELETED_VIDEO_ID = _path_id("video_id", VIDEO_ID["schema"], 2)
TASK_ID = _path_id(
    "task_id", {"type": "string", "pattern": f"^{TASK_ID_PATTERN}$"}, "0123456789abcdef"
)
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[!-~]*$", "maxLength": 255},
    "description": "The same key with the same request within a day answers with the task it "
    "made the first time; with another request, 422 idempotency_key_reused. Up to 255 visible "
    "ASCII characters (else 400 invalid_idempotency_key); an empty value is no key.",
}


def build_openapi(settings: Settings) -> Schema:
    """The OpenAPI 3.1 document for a server running with ``settings``."""
    auth = settings.api_token is not None or settings.users_file is not None
    b = _Builder(auth)
    bodies = request_bodies()
    video, task = ("video_not_found", "task_not_found")
    submitted = {
        "202": {
            "description": "Queued: follow it at status_url or events_url.",
            "headers": {"Location": _header("The task's status URL.")},
            "content": json_content(ref("Submitted")),
        },
        "200": {
            "description": "An identical task is already queued or running (duplicate: true), "
            "or the Idempotency-Key was used before.",
            "content": json_content(ref("Submitted")),
        },
    }
    if not settings.use_async_tasks:
        submitted = {
            "200": {
                "description": "The job's result (USE_ASYNC_TASKS=false).",
                "content": json_content(ref("LegacyResult")),
            },
            "422": b.error("The job failed; the error says why."),
        }
    not_json = "A non-empty body not sent as Content-Type: application/json (json_required)."
    submit_errors = {
        "400": "The body is not valid JSON or its fields are wrong, or the Idempotency-Key is "
        "not 1 to 255 visible ASCII characters (invalid_idempotency_key); the message says which.",
        "404": f"There is no such video ({video}).",
        "408": "The JSON body did not arrive within VIDCORRECT_HEADER_TIMEOUT (body_too_slow); "
        "the connection is closed.",
        "409": "The request does not fit the video's state (e.g. analysis_required; for a "
        "reprocess without a mask, roi_uncertain when the video's latest analysis, with the "
        "same sample_every, recognised no device and is not sure of the live image).",
        "413": "The JSON body is larger than 1 MiB (body_too_large).",
        "415": not_json,
        "422": "The Idempotency-Key was used for another request in the last 24 hours "
        "(idempotency_key_reused).",
        "429": "Too many tasks are waiting (queue_full); submit again after Retry-After.",
    }
    for path, summary, body in (
        ("/api/video-apply-mask/{video_id}/", "Mask everything outside an ROI", "mask"),
        ("/api/video-remove-frames/{video_id}/", "Remove frames", "remove"),
        ("/api/video-analyze/{video_id}/", "Find sensitive frames and the live image", "analyze"),
        ("/api/video-reprocess/{video_id}/", "Analyze, mask and cut in one pass", "reprocess"),
    ):
        b.add(
            "post",
            path,
            summary,
            submitted,
            errors=submit_errors,
            parameters=[VIDEO_ID, IDEMPOTENCY_KEY],
            body=bodies[body],
        )

    b.add(
        "post",
        "/api/videos/",
        "Upload a video",
        {
            "201": {
                "description": "Stored and probed.",
                "headers": {"Location": _header("The video's URL.")},
                "content": json_content(ref("Video")),
            }
        },
        errors={
            "400": 'A malformed multipart body, or no "file" field in it.',
            "408": "Sent too slowly (upload_too_slow: VIDCORRECT_UPLOAD_MIN_RATE over "
            "VIDCORRECT_UPLOAD_IDLE_TIMEOUT); the connection is closed.",
            "413": "Larger than VIDCORRECT_MAX_UPLOAD_BYTES (too_large).",
            "415": "Not a decodable video, an empty body, another content type, or a video "
            "beyond VIDCORRECT_MAX_VIDEO_SIDE / VIDCORRECT_MAX_VIDEO_FRAMES.",
        },
        parameters=[_query("filename", STR, "The file's name (raw uploads), for display.")],
    )
    upload = b.paths["/api/videos/"]["post"]
    binary = {"type": "string", "format": "binary"}
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": binary},
                }
            },
            "video/mp4": {"schema": binary},
            "video/*": {"schema": binary},
            "application/octet-stream": {"schema": binary},
        },
    }
    b.add(
        "get",
        "/api/videos/",
        "List the videos",
        {"200": {"description": "Newest first.", "content": json_content(ref("VideoList"))}},
        errors={},
    )
    b.add(
        "get",
        "/api/videos/{video_id}/",
        "One video, its tasks and outputs",
        {"200": {"description": "The video.", "content": json_content(ref("VideoDetail"))}},
        errors={"404": f"No such video ({video})."},
        parameters=[VIDEO_ID],
    )
    b.add(
        "delete",
        "/api/videos/{video_id}/",
        "Delete a video: its original and every output made from it",
        {
            "204": {
                "description": "Deleted from the data dir: the original, its record, and every "
                "output of its tasks; its queued and running tasks were cancelled first (they "
                "end REVOKED). The task records stay, each output's marked with "
                "result.output_deleted_at."
            }
        },
        errors={"404": f"No such video, or deleted already ({video})."},
        parameters=[DELETED_VIDEO_ID],
    )
    b.add(
        "get",
        "/api/videos/{video_id}/file",
        "Download the original",
        {
            "200": {
                "description": "The original upload, untouched, typed by its container (FFmpeg "
                "also reads animated images such as GIF as video).",
                "content": {
                    "video/*": {"schema": binary},
                    "image/*": {"schema": binary},
                    "application/octet-stream": {"schema": binary},
                },
            }
        },
        errors={"404": f"No such video ({video})."},
        parameters=[VIDEO_ID],
    )
    b.add(
        "get",
        "/api/videos/{video_id}/frame",
        "A frame of the original as a JPEG",
        {"200": {"description": "The frame.", "content": {"image/jpeg": {"schema": binary}}}},
        errors={
            "400": "n is not a frame of the video (frame_out_of_range).",
            "404": f"No such video ({video}).",
            "415": "The original could not be decoded at that frame.",
        },
        parameters=[
            VIDEO_ID,
            _query("n", {"type": "integer", "minimum": 0, "default": 0}, "0-based frame number."),
        ],
    )
    _add_devices(b, not_json)
    b.add(
        "get",
        "/api/task-status/{task_id}/",
        "A task's state",
        {"200": {"description": "The task.", "content": json_content(ref("Task"))}},
        errors={"404": f"No such task ({task})."},
        parameters=[TASK_ID],
    )
    cancelled = {
        "202": {
            "description": "Cancelled, or cancelling.",
            "content": json_content(ref("Cancelled")),
        }
    }
    cancel_errors = {
        "404": f"No such task ({task}).",
        "409": "The task has already ended (already_finished).",
    }
    b.add(
        "post",
        "/api/task-status/{task_id}/cancel/",
        "Cancel a task",
        cancelled,
        errors=cancel_errors,
        parameters=[TASK_ID],
    )
    b.add(
        "delete",
        "/api/task-status/{task_id}/",
        "Cancel a task",
        cancelled,
        errors=cancel_errors,
        parameters=[TASK_ID],
    )
    b.add(
        "get",
        "/api/task-status/{task_id}/events",
        "A task's events (Server-Sent Events)",
        {
            "200": {
                "description": "event: progress (data: the task as JSON), then event: end; then "
                "the stream closes.",
                "content": {"text/event-stream": {"schema": ref("TaskEvent")}},
            }
        },
        errors={
            "400": "Last-Event-ID is not an id this stream sent (invalid_event_id).",
            "404": f"No such task ({task}).",
        },
        parameters=[
            TASK_ID,
            _query(
                "last_event_id",
                {"type": "string", "pattern": EVENT_ID_PATTERN},
                "Resume after this event (for clients that cannot set Last-Event-ID).",
            ),
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": EVENT_ID_PATTERN},
            },
        ],
    )
    b.add(
        "get",
        "/api/tasks/{task_id}/output",
        "Download a task's output",
        {"200": {"description": "The output video.", "content": {"video/mp4": {"schema": binary}}}},
        errors={
            **(
                {
                    "403": "The output is not approved yet (not_approved): with "
                    "VIDCORRECT_REQUIRE_APPROVAL only reviewers and admins download it before."
                }
                if settings.require_approval
                else {}
            ),
            "404": f"No such task ({task}), or its output was deleted (output_deleted).",
            "409": "The task has not succeeded (output_not_ready), or it is an analysis, "
            "which writes no video (no_output).",
        },
        parameters=[TASK_ID],
    )
    b.add(
        "post",
        "/api/tasks/{task_id}/review",
        "Review a task's output: approve, reject or set back to pending (reviewers)",
        {
            "200": {
                "description": "The task, with its review.",
                "content": json_content(ref("Task")),
            }
        },
        errors={
            "400": "The body is not a review (state approved, rejected or pending; an optional "
            "comment of at most 2000 characters); the message says what.",
            "404": f"No such task ({task}), or its output was deleted (output_deleted).",
            "408": "The JSON body did not arrive within VIDCORRECT_HEADER_TIMEOUT "
            "(body_too_slow); the connection is closed.",
            "409": "The task has not succeeded (output_not_ready), or it is an analysis, "
            "which writes no video (no_output).",
            "413": "The JSON body is larger than 1 MiB.",
            "415": not_json,
        },
        parameters=[TASK_ID],
        body=ref("ReviewRequest"),
        body_required=True,
    )
    b.add(
        "delete",
        "/api/tasks/{task_id}/output",
        "Delete a task's output",
        {
            "204": {
                "description": "The output file is deleted; the task's record stays, its "
                "result without output_file and output_url, with output_deleted_at."
            }
        },
        errors={
            "404": f"No such task ({task}), or its output was deleted already (output_deleted).",
            "409": "The task has not succeeded (output_not_ready), or it is an analysis, "
            "which writes no video (no_output).",
        },
        parameters=[TASK_ID],
    )
    states = [state.value for state in TaskState]
    operations = [op.value for op in Operation]
    b.add(
        "get",
        "/api/tasks/",
        "Task history, newest first",
        {"200": {"description": "A page of tasks.", "content": json_content(ref("TaskList"))}},
        errors={"400": "A filter, limit or cursor is not valid; the message says which."},
        parameters=[
            _query("video_id", {"type": "integer", "minimum": 1}, "Only this video's tasks."),
            _query(
                "state",
                {"enum": ["", *states, *(s.lower() for s in states)]},
                "Only tasks in this state (either case; empty: any).",
            ),
            _query(
                "operation",
                {"enum": ["", *operations, *(o.upper() for o in operations)]},
                "Only this operation (either case; empty: any).",
            ),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                "Page size.",
            ),
            _query("cursor", STR, "next_cursor of the previous page."),
        ],
    )
    _add_people(b)
    session = {
        "200": {
            "description": "Whether a token is needed and whether this client has access.",
            "content": json_content(ref("Session")),
        }
    }
    b.add("get", "/api/session/", "Access state", session, errors={}, open_route=True)
    b.add(
        "post",
        "/api/session/",
        "Sign in with the token (sets the session cookie)",
        session,
        errors={
            "400": 'The body is not {"token": "..."}.',
            **({"401": "That is not the token (bad_token)."} if auth else {}),
            "408": "The JSON body did not arrive within VIDCORRECT_HEADER_TIMEOUT "
            "(body_too_slow); the connection is closed.",
            "413": "The JSON body is larger than 1 MiB.",
            "415": not_json,
            **(
                {
                    "429": "Too many wrong tokens from this address (too_many_sign_ins); try "
                    "again after Retry-After."
                }
                if auth
                else {}
            ),
        },
        body={
            "type": "object",
            "required": ["token"],
            "additionalProperties": False,
            "properties": {"token": STR},
        },
        body_required=True,
        open_route=True,
    )
    b.add(
        "delete",
        "/api/session/",
        "Sign out (clears the cookie)",
        session,
        errors={},
        open_route=True,
    )
    b.add(
        "get",
        OPENAPI_PATH,
        "This document",
        {"200": {"description": "OpenAPI 3.1.", "content": json_content({"type": "object"})}},
        errors={},
        open_route=True,
    )
    if "401" in b.paths["/api/session/"]["post"]["responses"]:
        b.paths["/api/session/"]["post"]["responses"]["401"]["headers"] = {
            "WWW-Authenticate": _header("Bearer")
        }

    document: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "vidcorrect",
            "version": "0.1.0",
            "description": "Masks and anonymizes endoscopy videos in the background. Errors are "
            '{"error": {"code", "message"}} with a 4xx status.',
        },
        "paths": dict(sorted(b.paths.items())),
        "webhooks": _webhooks(),
        "components": {"schemas": component_schemas()},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "VIDCORRECT_API_TOKEN",
            },
            "sessionCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "Set by POST /api/session/ (the page).",
            },
        }
        document["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
    return document


def _webhooks() -> Schema:
    """What the workers POST to a submission's ``callback_url`` and ``VIDCORRECT_WEBHOOK_URL``
    when a task ends (jobs.webhooks)."""

    def header(name: str, description: str, schema: Schema) -> Schema:
        return {
            "name": name,
            "in": "header",
            "required": True,
            "schema": schema,
            "description": description,
        }

    return {
        "taskEnded": {
            "post": {
                "summary": "A task ended (SUCCESS, FAILURE or REVOKED)",
                "description": "Posted to the task's callback_url and to VIDCORRECT_WEBHOOK_URL, "
                "only on hosts of VIDCORRECT_WEBHOOK_HOSTS. Any 2xx is a delivery; anything else "
                "(redirects are not followed) is retried after 1, 2, 4 ... s, at most an hour "
                "apart, for a day: at least once, so de-duplicate on X-Vidcorrect-Delivery.",
                "security": [],
                "parameters": [
                    header(WEBHOOK_EVENT_HEADER, "What happened.", {"const": TASK_ENDED}),
                    header(
                        DELIVERY_HEADER,
                        "The delivery's id, the same on every attempt.",
                        {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    ),
                    header(
                        TIMESTAMP_HEADER,
                        "When this attempt was sent (epoch seconds).",
                        {"type": "string", "pattern": "^[0-9]+$"},
                    ),
                    header(
                        SIGNATURE_HEADER,
                        "sha256= and the hex HMAC-SHA256, keyed with VIDCORRECT_WEBHOOK_SECRET, "
                        "of the timestamp, a '.', and the body's bytes.",
                        {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                    ),
                    header(
                        "X-Vidcorrect-Attempt",
                        "1 for the first attempt, then 2, 3 ...",
                        {"type": "string", "pattern": "^[0-9]+$"},
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "description": "The task as GET /api/task-status/{task_id}/ answered when "
                    "it ended.",
                    "content": json_content(ref("Task")),
                },
                "responses": {
                    "2XX": {"description": "Delivered."},
                    "default": {"description": "Not delivered: tried again later."},
                },
            }
        }
    }


def _add_people(b: _Builder) -> None:
    """Who is signed in, and the audit trail."""
    b.add(
        "get",
        "/api/me/",
        "Who is signed in: name, role and what it may do",
        {"200": {"description": "The signed-in user.", "content": json_content(ref("Me"))}},
        errors={},
    )
    b.add(
        "get",
        "/api/audit/",
        "The audit trail, newest first (admins)",
        {"200": {"description": "A page of entries.", "content": json_content(ref("AuditPage"))}},
        errors={"400": "A filter, limit or cursor is not valid; the message says which."},
        parameters=[
            _query("since", STR, "Only entries at or after this ISO 8601 time."),
            _query("user", STR, "Only this user's entries."),
            _query(
                "action",
                {"enum": ["", *(action.value for action in Action)]},
                "Only this action (empty: any).",
            ),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                "Page size.",
            ),
            _query("cursor", STR, "next_cursor of the previous page."),
        ],
    )
    b.add(
        "get",
        "/api/audit/verify",
        "Check the audit trail's hash chain (admins)",
        {
            "200": {
                "description": "Whether the chain holds, and its first bad entry if not.",
                "content": json_content(ref("AuditVerdict")),
            }
        },
        errors={},
    )


def _add_devices(b: _Builder, not_json: str) -> None:
    """The device catalogue's operations (server.devices)."""
    name = _path_id(
        "name", {"type": "string", "pattern": DEVICE_NAME["pattern"]}, "olympus_cv_1500"
    )
    not_found = "There is no such device (device_not_found)."
    device = json_content(ref("Device"))
    b.add(
        "get",
        "/api/devices/",
        "The devices for device masks",
        {
            "200": {
                "description": "Every device, built in or added, with its image area and text "
                "fields on its own frame size.",
                "content": json_content(ref("DeviceList")),
            }
        },
        errors={},
    )
    b.add(
        "get",
        "/api/devices/{name}",
        "One device",
        {"200": {"description": "The device.", "content": device}},
        errors={"404": not_found},
        parameters=[name],
    )
    b.add(
        "post",
        "/api/devices/",
        "Add a device",
        {
            "201": {
                "description": "Added, and kept in the data dir.",
                "headers": {"Location": _header("The device's URL.")},
                "content": device,
            }
        },
        errors={
            "400": "The body is not valid JSON or not a valid device (invalid_device): a box "
            "reaching outside the frame, a text field overlapping the image area, two text "
            "fields of one name; the message says which.",
            "408": "The JSON body did not arrive within VIDCORRECT_HEADER_TIMEOUT "
            "(body_too_slow); the connection is closed.",
            "409": "There is already a device of that name (device_exists).",
            "413": "The JSON body is larger than 1 MiB (body_too_large).",
            "415": not_json,
        },
        body=new_device(),
        body_required=True,
    )
    b.add(
        "delete",
        "/api/devices/{name}",
        "Delete a device added through the API",
        {"204": {"description": "Deleted; tasks already submitted with it are unchanged."}},
        errors={
            "404": not_found,
            "409": "A built-in device cannot be deleted (builtin_device).",
        },
        parameters=[name],
    )


@routes.get(OPENAPI_PATH)
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this server (open: it holds no data)."""
    return web.json_response(build_openapi(request.app[SETTINGS]))
