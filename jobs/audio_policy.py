"""What an edit does with the source's sound: ``keep`` it (the first audio track, cut with the
frames) or ``drop`` it (no audio stream in the output). Staff speak names during a procedure, so
the service's default (``VIDCORRECT_AUDIO``) is ``drop``; each mask, removal and reprocess
request may choose with its ``audio`` field, and the task's params store the choice made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from jobs.errors import InvalidRequest

AudioPolicy = Literal["keep", "drop"]
AUDIO_POLICIES: tuple[AudioPolicy, ...] = ("keep", "drop")
#: The request field and the task params' key.
AUDIO_FIELD = "audio"
#: What a result says was done: the source's audio ``kept`` or ``dropped``, or ``none`` when
#: the source had no audio.
AudioApplied = Literal["kept", "dropped", "none"]
AUDIO_APPLIED: tuple[AudioApplied, ...] = ("kept", "dropped", "none")


def parse_audio(body: Mapping[str, Any], default: AudioPolicy) -> AudioPolicy:
    """The body's ``audio`` (``default`` when absent); 400 for anything but keep or drop."""
    value: object = body.get(AUDIO_FIELD, default)
    for policy in AUDIO_POLICIES:
        if value == policy:
            return policy
    raise InvalidRequest(
        f'{AUDIO_FIELD} must be "keep" or "drop", got {value!r}.', code="invalid_audio"
    )


def keeps_audio(params: Mapping[str, Any]) -> bool:
    """Whether a task's params ask for the audio to be kept. Tasks submitted before the policy
    existed carry no ``audio`` and were asked to keep it, as every edit then did."""
    asked: object = params.get(AUDIO_FIELD, "keep")
    return asked == "keep"


def audio_applied(written: bool, source_has_audio: bool) -> AudioApplied:
    """The result's ``audio``: whether the output has the source's audio, or why not."""
    if written:
        return "kept"
    return "dropped" if source_has_audio else "none"
