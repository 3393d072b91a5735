"""A task's output as a stored file: whether it has one, and its stored name."""

from __future__ import annotations

from jobs.errors import Conflict, NotFound
from jobs.model import TaskRecord, TaskState


def stored_output(task: TaskRecord) -> str:
    """The stored name of ``task``'s output; :class:`Conflict` while it has not succeeded or
    when it writes no video, :class:`NotFound` once its output was deleted."""
    if task.state is not TaskState.SUCCESS or task.result is None:
        raise Conflict(
            f"Task {task.task_id} is {task.state.value}; its output can be downloaded once it "
            "has succeeded.",
            code="output_not_ready",
        )
    if "output_deleted_at" in task.result:
        raise NotFound(
            f"The output of task {task.task_id} was deleted at {task.result['output_deleted_at']}.",
            code="output_deleted",
        )
    if "output_file" not in task.result:  # an analysis: its result is the answer
        raise Conflict(
            f"Task {task.task_id} ({task.operation.value}) writes no video; its findings are "
            f"in its result at /api/task-status/{task.task_id}/.",
            code="no_output",
        )
    return str(task.result["output_file"])
