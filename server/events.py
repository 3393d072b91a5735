"""What an SSE client may send back: the ``Last-Event-ID`` it resumes after."""

from __future__ import annotations

import re

#: A Redis Stream id; ASCII digits only (``\d`` takes other scripts' digits, which Redis refuses).
EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
#: The largest part of a Redis stream id (each of its two parts is an unsigned 64-bit number).
_MAX_ID_PART = 2**64 - 1


def is_event_id(text: str) -> bool:
    """Whether ``text`` can be a stream id: two ASCII numbers joined by ``-``, each within 64
    bits (Redis refuses a larger one, which must be the client's 400, not a store error)."""
    if not EVENT_ID.fullmatch(text):
        return False
    return all(int(part) <= _MAX_ID_PART for part in text.split("-"))
