"""The review of an output: ``pending`` until a reviewer approves or rejects it, with an
optional comment. Kept in the task's record (:attr:`TaskRecord.review`); with
``VIDCORRECT_REQUIRE_APPROVAL`` on, only an approved output may be downloaded by an uploader."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from jobs.errors import Conflict, InvalidRequest
from jobs.model import JsonDict, TaskRecord, TaskState, utc_now
from jobs.outputs import stored_output
from jobs.task_store import TaskStore


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


#: Longest review comment (characters).
MAX_COMMENT = 2000
PENDING_REVIEW: JsonDict = {"state": "pending", "by": None, "at": None, "comment": None}


def review_of(task: TaskRecord) -> JsonDict:
    """The task's review as the API shows it: ``{"state", "by", "at", "comment"}``."""
    return dict(task.review) if task.review else dict(PENDING_REVIEW)


def is_approved(task: TaskRecord) -> bool:
    return bool(review_of(task)["state"] == ReviewState.APPROVED)


def parse_review(body: Any) -> tuple[ReviewState, str | None]:
    """The state and comment of a review request ``{"state": ..., "comment": ...}``."""
    states = ", ".join(s.value for s in ReviewState)
    if not isinstance(body, dict) or "state" not in body:
        raise InvalidRequest(
            f'Send the review as a JSON object: {{"state": one of {states}, "comment": '
            '"optional text"}.'
        )
    unknown = sorted(set(body) - {"state", "comment"})
    if unknown:
        raise InvalidRequest(f"Unknown field(s) {', '.join(unknown)}; allowed: state, comment.")
    try:
        state = ReviewState(body["state"])
    except (ValueError, TypeError):
        raise InvalidRequest(f"state must be one of {states}, got {body['state']!r}.") from None
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise InvalidRequest("comment must be text (or null).")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidRequest(f"comment must be at most {MAX_COMMENT} characters.")
    if comment is not None and not comment.isprintable() and not _printable_lines(comment):
        raise InvalidRequest("comment must be printable text (line breaks allowed).")
    return state, (comment.strip() or None) if comment is not None else None


def _printable_lines(text: str) -> bool:
    return all(line.isprintable() for line in text.replace("\r\n", "\n").split("\n"))


async def set_review(
    store: TaskStore, task_id: str, state: ReviewState, comment: str | None, by: str | None
) -> TaskRecord:
    """Record a review of ``task_id``'s output; :class:`Conflict` when it has no output to
    review (not succeeded, an analysis), NotFound when the output was deleted."""
    task = await store.get_task(task_id)
    stored_output(task)  # raises unless there is an output
    review = {"state": state.value, "by": by, "at": utc_now(), "comment": comment}
    updated = await store.transition(task_id, frozenset({TaskState.SUCCESS}), review=review)
    if updated is None:  # pragma: no cover - a succeeded task never changes state
        raise Conflict(f"Task {task_id} can no longer be reviewed.", code="output_not_ready")
    return updated
