"""JSON Schemas of the API's bodies and answers, for the OpenAPI document (server.openapi).

Request bodies are exactly as strict as the handlers that parse them (jobs.mask_request,
jobs.frame_request, jobs.device_catalogue), so schemathesis's invalid data is refused and valid
data is not called invalid; answers follow the shapes server.record_json renders.
"""

from __future__ import annotations

from typing import Any

from jobs.audio_policy import AUDIO_APPLIED, AUDIO_POLICIES
from jobs.audit import Action, Outcome
from jobs.device_catalogue import MAX_DESCRIPTION, MAX_FRAME_SIDE, MAX_TEXT_FIELDS, NAME_PATTERN
from jobs.frame_request import LABELS, MAX_SAMPLE_EVERY, MAX_SELECTION_ITEMS, REMOVAL_MODES
from jobs.mask_request import DEVICE_KEYS, MAX_BLACKEN_REGIONS, SHAPES
from jobs.model import Operation, TaskState
from jobs.review import MAX_COMMENT, ReviewState
from jobs.settings import MAX_WEBHOOK_URL
from jobs.users import Permission, Role

Schema = dict[str, Any]

_REF = "#/components/schemas/"
#: A Redis Stream id, or empty (the same as not sending one).
EVENT_ID_PATTERN = r"^([0-9]{1,20}-[0-9]{1,20})?$"
#: Frame selections such as "10-20,30,45-50" (what jobs.frame_request parses).
RANGES_PATTERN = r"^\s*[0-9]+\s*(-\s*[0-9]+\s*)?(,\s*[0-9]+\s*(-\s*[0-9]+\s*)?)*$"


def ref(name: str) -> Schema:
    """A reference to one of :func:`component_schemas`."""
    return {"$ref": _REF + name}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    return {"anyOf": [schema, {"type": "null"}]}


def json_content(schema: Schema) -> dict[str, Schema]:
    """A ``content`` map with ``schema`` as ``application/json``."""
    return {"application/json": {"schema": schema}}


INT = {"type": "integer"}
STR = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
SIZE = {"type": "integer", "minimum": 1}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: A submission's ``audio`` (jobs.audio_policy).
AUDIO = {
    "enum": list(AUDIO_POLICIES),
    "description": "keep: the source's first audio track, cut with the frames; drop: no audio "
    "stream in the output. Default: the server's VIDCORRECT_AUDIO (drop unless set).",
}
#: A device's or a text field's name.
DEVICE_NAME: Schema = {
    "type": "string",
    "pattern": f"^{NAME_PATTERN}$",
    "examples": ["olympus_cv_1500"],
}


#: Every submission's ``callback_url`` (jobs.webhooks).
CALLBACK_URL = {
    "type": "string",
    "format": "uri",
    "maxLength": MAX_WEBHOOK_URL,
    "description": "Where to POST the task's JSON when it ends (SUCCESS, FAILURE or REVOKED), "
    "signed with HMAC-SHA256 (X-Vidcorrect-Signature), retried for a day. http(s) only, on a "
    "host of the server's VIDCORRECT_WEBHOOK_HOSTS; else 400 callback_not_allowed.",
}


def _box(extra: dict[str, Schema] | None = None) -> Schema:
    """A box x, y, width, height in pixels of a device's frame (plus ``extra`` properties), as
    a new device gives it: every key, nothing else (the box must also lie inside the frame)."""
    side = {"type": "integer", "maximum": MAX_FRAME_SIDE}
    edges = {"x": {**side, "minimum": 0}, "y": {**side, "minimum": 0}}
    sizes = {"width": {**side, "minimum": 1}, "height": {**side, "minimum": 1}}
    properties = {**(extra or {}), **edges, **sizes}
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def component_schemas() -> dict[str, Schema]:
    """The shapes of the answers (and of the error), by name."""
    roi = {
        "type": "object",
        "properties": {key: COUNT for key in ("x", "y", "width", "height")},
        "required": ["x", "y", "width", "height"],
    }
    video = {
        "type": "object",
        "required": [
            "id",
            "filename",
            "size_bytes",
            "width",
            "height",
            "fps",
            "frame_count",
            "duration",
            "codec",
            "pix_fmt",
            "has_audio",
            "audio_codec",
            "created_at",
            "sha256",
        ],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "filename": {**STR, "description": "The uploaded name, for display only."},
            "size_bytes": COUNT,
            "width": COUNT,
            "height": COUNT,
            "fps": {"type": "number", "minimum": 0},
            "frame_count": COUNT,
            "duration": {"type": "number", "minimum": 0},
            "codec": STR,
            "pix_fmt": STR,
            "has_audio": {"type": "boolean"},
            "audio_codec": nullable(STR),
            "created_at": {**STR, "format": "date-time"},
            "sha256": nullable(
                {
                    **SHA256,
                    "description": "SHA-256 (hex) of the original's bytes, hashed as they were "
                    "uploaded; null for a video uploaded before versions recorded it.",
                }
            ),
        },
    }
    task = {
        "type": "object",
        "required": [
            "task_id",
            "state",
            "progress",
            "status",
            "result",
            "error",
            "eta_seconds",
            "attempt",
            "mode",
            "video_id",
            "operation",
            "params",
            "created_at",
            "started_at",
            "finished_at",
            "submitted_by",
            "review",
        ],
        "properties": {
            "task_id": STR,
            "state": {"enum": [state.value for state in TaskState]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "status": STR,
            "result": nullable(
                {
                    "type": "object",
                    "properties": {
                        "source_sha256": {
                            **SHA256,
                            "description": "SHA-256 (hex) of the original the task read, "
                            "hashed again at its end: unchanged, else the task failed with "
                            "source_changed.",
                        },
                        "output_sha256": {
                            **SHA256,
                            "description": "SHA-256 (hex) of the output file's bytes, as "
                            "published.",
                        },
                        "audio": {
                            "enum": list(AUDIO_APPLIED),
                            "description": "Edits only: the source's audio kept or dropped, "
                            "or none when the source has no audio.",
                        },
                        "parts": {
                            "type": "array",
                            "description": "A long video edited in chunks across workers: one "
                            "entry per chunk, its source frames (inclusive), the worker that "
                            "encoded it, its runs, and whether it was finished before a resume "
                            "and reused.",
                            "items": {
                                "type": "object",
                                "required": [
                                    "index",
                                    "start_frame",
                                    "end_frame",
                                    "worker_id",
                                    "attempts",
                                    "reused",
                                ],
                                "properties": {
                                    "index": INT,
                                    "start_frame": INT,
                                    "end_frame": INT,
                                    "worker_id": STR,
                                    "attempts": {"type": "integer", "minimum": 1},
                                    "reused": {"type": "boolean"},
                                },
                            },
                        },
                        "workers": {
                            "type": "array",
                            "items": STR,
                            "description": "A chunked edit: the distinct workers that "
                            "encoded its parts.",
                        },
                    },
                }
            ),
            "error": nullable(ref("ErrorDetail")),
            "eta_seconds": nullable({"type": "number", "minimum": 0}),
            "attempt": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["queued", "local"]},
            "video_id": INT,
            "operation": {"enum": [op.value for op in Operation]},
            "params": {"type": "object"},
            "callback_url": nullable(
                {**STR, "description": "Where the task's end is posted (a webhook), if given."}
            ),
            "created_at": STR,
            "started_at": nullable(STR),
            "finished_at": nullable(STR),
            "submitted_by": {
                **nullable(STR),
                "description": "The user who submitted it; null when the API is open.",
            },
            "review": {
                **nullable(ref("Review")),
                "description": "The review of its output (null for an analysis).",
            },
        },
    }
    output = {
        "type": "object",
        "required": ["task_id", "operation", "output_file", "output_url", "finished_at"],
        "properties": {
            "task_id": STR,
            "operation": {"enum": [op.value for op in Operation]},
            "output_file": STR,
            "output_url": STR,
            "finished_at": nullable(STR),
        },
    }
    return {
        "ErrorDetail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": STR, "message": STR},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {**STR, "description": "For programs, e.g. invalid_roi."},
                        "message": {**STR, "description": "For people: what to fix."},
                    },
                }
            },
        },
        "Roi": roi,
        "Video": video,
        "VideoList": {
            "type": "object",
            "required": ["videos"],
            "properties": {"videos": {"type": "array", "items": ref("Video")}},
        },
        "VideoDetail": {
            "allOf": [
                ref("Video"),
                {
                    "type": "object",
                    "required": ["tasks", "more_tasks_url", "outputs"],
                    "properties": {
                        "tasks": {"type": "array", "items": ref("Task")},
                        "more_tasks_url": nullable(STR),
                        "outputs": {"type": "array", "items": output},
                    },
                },
            ]
        },
        "Task": task,
        "TaskList": {
            "type": "object",
            "required": ["tasks", "next_cursor"],
            "properties": {
                "tasks": {"type": "array", "items": ref("Task")},
                "next_cursor": nullable(STR),
            },
        },
        "Submitted": {
            "type": "object",
            "required": [
                "task_id",
                "status",
                "duplicate",
                "message",
                "status_url",
                "events_url",
                "mode",
            ],
            "properties": {
                "task_id": STR,
                "status": {"enum": [state.value.lower() for state in TaskState]},
                "duplicate": {"type": "boolean"},
                "message": STR,
                "status_url": STR,
                "events_url": STR,
                "mode": {"enum": ["queued", "local"]},
            },
        },
        "LegacyResult": {
            "type": "object",
            "required": ["task_id", "result"],
            "properties": {"task_id": {"type": "null"}, "result": {"type": "object"}},
        },
        "Cancelled": {
            "type": "object",
            "required": ["task_id", "state", "message"],
            "properties": {
                "task_id": STR,
                "state": {"enum": [state.value for state in TaskState]},
                "message": STR,
            },
        },
        "TextField": {
            "type": "object",
            "description": "A box where the device burns in patient data, by name.",
            "required": ["name", "x", "y", "width", "height"],
            "properties": {"name": STR, **{key: COUNT for key in ("x", "y", "width", "height")}},
        },
        "Device": {
            "type": "object",
            "required": [
                "name",
                "description",
                "frame_width",
                "frame_height",
                "roi",
                "text_fields",
                "builtin",
            ],
            "properties": {
                "name": STR,
                "description": STR,
                "frame_width": INT,
                "frame_height": INT,
                "roi": ref("Roi"),
                "text_fields": {"type": "array", "items": ref("TextField")},
                "builtin": {
                    "type": "boolean",
                    "description": "Shipped with the service (it cannot be deleted).",
                },
            },
        },
        "DeviceList": {
            "type": "object",
            "required": ["devices"],
            "properties": {"devices": {"type": "array", "items": ref("Device")}},
        },
        "TaskEvent": {
            "type": "object",
            "description": "One Server-Sent Event: its data is the task as the status endpoint "
            "answers it.",
            "required": ["event", "data"],
            "properties": {
                "event": {"enum": ["progress", "end"]},
                "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
                "retry": {"type": "integer", "minimum": 0},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": ref("Task"),
                },
            },
        },
        "Review": {
            "type": "object",
            "required": ["state", "by", "at", "comment"],
            "properties": {
                "state": {"enum": [state.value for state in ReviewState]},
                "by": {**nullable(STR), "description": "The reviewer's name."},
                "at": nullable(STR),
                "comment": nullable(STR),
            },
        },
        "ReviewRequest": {
            "type": "object",
            "required": ["state"],
            "additionalProperties": False,
            "properties": {
                "state": {"enum": [state.value for state in ReviewState]},
                "comment": nullable({"type": "string", "maxLength": MAX_COMMENT}),
            },
        },
        "Me": {
            "type": "object",
            "required": ["name", "role", "permissions", "auth_required"],
            "properties": {
                "name": {**nullable(STR), "description": "null when the API is open."},
                "role": nullable({"enum": [role.value for role in Role]}),
                "permissions": {
                    "type": "array",
                    "items": {"enum": [permission.value for permission in Permission]},
                },
                "auth_required": {"type": "boolean"},
            },
        },
        "AuditEntry": {
            "type": "object",
            "description": "One entry of the hash-chained audit trail, as stored.",
            "required": ["seq", "at", "user", "action", "outcome", "status", "ids", "prev", "hash"],
            "properties": {
                "seq": COUNT,
                "at": STR,
                "user": {
                    **nullable(STR),
                    "description": "Who: a user name, null when the API is open, "
                    "(retention) for the retention sweep.",
                },
                "action": {"enum": [action.value for action in Action]},
                "outcome": {"enum": [outcome.value for outcome in Outcome]},
                "status": {
                    **nullable(INT),
                    "description": "The HTTP status the request was answered with (null for "
                    "the retention sweep's deletions).",
                },
                "ids": {
                    "type": "object",
                    "properties": {
                        "video_id": INT,
                        "task_id": STR,
                        "device": STR,
                        "review": {"enum": [state.value for state in ReviewState]},
                    },
                },
                "prev": SHA256,
                "hash": SHA256,
            },
        },
        "AuditPage": {
            "type": "object",
            "required": ["entries", "next_cursor"],
            "properties": {
                "entries": {"type": "array", "items": ref("AuditEntry")},
                "next_cursor": nullable(STR),
            },
        },
        "AuditVerdict": {
            "type": "object",
            "required": ["ok", "entries", "first_bad", "reason"],
            "properties": {
                "ok": {"type": "boolean"},
                "entries": COUNT,
                "first_bad": nullable(COUNT),
                "reason": nullable(STR),
            },
        },
        "Session": {
            "type": "object",
            "required": ["auth_required", "authenticated"],
            "additionalProperties": False,
            "properties": {
                "auth_required": {"type": "boolean"},
                "authenticated": {"type": "boolean"},
            },
        },
    }


def _mask_variants(extra: dict[str, Schema]) -> list[Schema]:
    """The two kinds of mask body, each with the route's ``extra`` fields."""
    shape = {
        "enum": list(SHAPES),
        "default": "rect",
        "description": "The kept area in the roi: the rectangle, the ellipse inscribed in it, "
        "or an octagon (the rectangle with its corners cut off at 45 degrees, see corner).",
    }
    corner = {
        "type": "integer",
        "minimum": 1,
        "description": 'With shape "octagon" only, and required with it: the pixels cut off '
        "each corner along both edges, at most half the roi's shorter side.",
    }
    regions = {
        "type": "array",
        "maxItems": MAX_BLACKEN_REGIONS,
        "description": "Boxes made black inside the kept area (text printed over the image), "
        "checked black by the output's check as the outside is; inside the frame.",
        "items": {
            "type": "object",
            "required": ["x", "y", "width", "height"],
            "additionalProperties": False,
            "properties": {"x": COUNT, "y": COUNT, "width": SIZE, "height": SIZE},
        },
    }
    extra = {"blacken_regions": regions, **extra}
    device = {
        "type": "object",
        "title": "device mask",
        "required": ["mask_type", "device_name"],
        "additionalProperties": False,
        "properties": {
            "mask_type": {"const": "device"},
            "device_name": {
                **DEVICE_NAME,
                "description": "A device of GET /api/devices/ (else 400 unknown_device).",
            },
            "shape": shape,
            "corner": corner,
            **extra,
        },
    }
    # Pixels; the ROI must also lie inside the video's frame (a 400 says so).
    edges = {"x": COUNT, "y": COUNT, "width": SIZE, "height": SIZE}
    aliases = {alias: edges[key] for key, alias in zip(edges, DEVICE_KEYS, strict=True)}
    roi_in_body = {
        "type": "object",
        "description": "x, y, width and height, or the endoscope_image_* keys; other keys are "
        "ignored.",
        "properties": {**edges, **aliases},
    }
    custom = {
        "type": "object",
        "title": "custom mask",
        "required": ["mask_type"],
        "additionalProperties": False,
        "anyOf": [{"required": ["roi"]}, {"required": list(DEVICE_KEYS)}],
        "properties": {
            "mask_type": {"const": "custom"},
            "roi": roi_in_body,
            **aliases,
            "shape": shape,
            "corner": corner,
            **extra,
        },
    }
    return [device, custom]


def new_device() -> Schema:
    """The body of ``POST /api/devices/``, as strict as jobs.device_catalogue.parse_device."""
    return {
        "type": "object",
        "required": ["name", "frame_width", "frame_height", "roi"],
        "additionalProperties": False,
        "properties": {
            "name": DEVICE_NAME,
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
            "frame_width": {"type": "integer", "minimum": 1, "maximum": MAX_FRAME_SIDE},
            "frame_height": {"type": "integer", "minimum": 1, "maximum": MAX_FRAME_SIDE},
            "roi": {**_box(), "description": "The endoscope image area, inside the frame."},
            "text_fields": {
                "type": "array",
                "maxItems": MAX_TEXT_FIELDS,
                "description": "Boxes inside the frame and outside the image area, with "
                "distinct names.",
                "items": _box({"name": DEVICE_NAME}),
            },
        },
    }


def request_bodies() -> dict[str, Schema]:
    """The JSON bodies of the four submissions, as strict as their handlers."""
    ranges = {"type": "string", "pattern": RANGES_PATTERN, "examples": ["10-20,30"]}
    sample_every = nullable({"type": "integer", "minimum": 1, "maximum": MAX_SAMPLE_EVERY})
    remove_labels = nullable({"type": "array", "items": {"enum": list(LABELS)}})
    frame_list = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_SELECTION_ITEMS,
        "items": {"type": "integer", "minimum": 0},
    }
    mode = {
        "enum": list(REMOVAL_MODES),
        "default": "smart",
        "description": "smart: copy the groups of pictures kept whole and re-encode only "
        "around the cuts (H.264 in MP4/MOV; otherwise the full re-encode runs and "
        "result.mode_reason says why); reencode: re-encode every frame.",
    }
    reprocess_options = {
        "remove_labels": remove_labels,
        "sample_every": sample_every,
        "blacken_found_regions": {
            "type": "boolean",
            "default": True,
            "description": "Without a mask: blacken the text the analysis finds printed over "
            "the image (its overlay_regions with inside_roi true).",
        },
        "audio": AUDIO,
        "callback_url": CALLBACK_URL,
    }
    return {
        "mask": {
            "oneOf": _mask_variants(
                {"blacken_frames": ranges, "audio": AUDIO, "callback_url": CALLBACK_URL}
            )
        },
        "remove": {
            "oneOf": [
                {
                    "type": "object",
                    "required": [name],
                    "additionalProperties": False,
                    "properties": {
                        name: schema,
                        "mode": mode,
                        "audio": AUDIO,
                        "callback_url": CALLBACK_URL,
                    },
                }
                for name, schema in (
                    ("frame_list", frame_list),
                    ("frame_ranges", ranges),
                    ("detection_method", {"const": "automatic"}),
                )
            ]
        },
        "analyze": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"sample_every": sample_every, "callback_url": CALLBACK_URL},
        },
        "reprocess": {
            "oneOf": [
                {
                    "type": "object",
                    "title": "mask from the analysis",
                    "additionalProperties": False,
                    "properties": reprocess_options,
                },
                *_mask_variants(reprocess_options),
            ]
        },
    }
