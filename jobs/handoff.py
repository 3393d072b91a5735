"""The end of a run that handed its task over to other jobs (:mod:`jobs.chunked`)."""

from __future__ import annotations


class HandedOff(Exception):
    """Raised by an operation's body once the task's work is queued as chunk jobs: the run
    ends, the task does not (it stays running; its stitch job ends it)."""


#: What :func:`jobs.runner.run_task` returns for a run that handed its task over.
HANDED_OFF = "HANDED_OFF"
