"""structlog set-up: configured once per process, JSON in production, console on a TTY.

Per-request and per-job context (``task_id``, ``video_id``, ...) is bound with
:func:`structlog.contextvars.bind_contextvars`, so every line logged while handling it carries them.
Never log patient data: no uploaded filenames, no file contents, no paths built from them.
"""

from __future__ import annotations

import logging
import sys

import structlog

from jobs.settings import LogFormat


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Route structlog and the standard library (aiohttp, arq) through one renderer."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        shared.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
