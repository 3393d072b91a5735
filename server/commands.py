"""The service's subcommands of ``vidcorrect``: ``serve`` the HTTP API, or run a ``worker``.

Their options are declared here without loading the service: its imports (PyAV, numpy, arq,
aiohttp, ...) load only once one of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``serve`` and ``worker`` with their options."""
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API (with no REDIS_URL: also an embedded Redis and worker)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve without VIDCORRECT_API_TOKEN on an address other machines can reach",
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        help="folder for videos, outputs and Redis files (default: $VIDCORRECT_DATA_DIR or ./data)",
    )
    worker = commands.add_parser("worker", help="run an arq worker against REDIS_URL")
    worker.add_argument("--data-dir", type=Path, help="the same data dir the server uses")


def run(args: argparse.Namespace) -> int:
    """Run the ``serve`` or ``worker`` command ``args`` parsed; returns the exit status."""
    import structlog
    from aiohttp import web

    from jobs.errors import ConfigError
    from jobs.logs import configure_logging
    from jobs.settings import Settings
    from jobs.storage import private_umask
    from jobs.worker import ResilientWorker, worker_options
    from server.access_log import (
        redact_malformed_requests,
        silence_aiohttp_access_log,
        silence_multipart_warnings,
    )
    from server.app import create_app

    try:
        settings = Settings.from_env(data_dir=args.data_dir)
    except ConfigError as error:
        print(f"vidcorrect: {error.message}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    silence_aiohttp_access_log()
    private_umask()  # videos, outputs and Redis files: for this user only
    log = structlog.get_logger("vidcorrect")
    if args.command == "worker":
        if settings.embedded:
            print(
                "vidcorrect: a separate worker needs REDIS_URL (the server's Redis)",
                file=sys.stderr,
            )
            return 2
        ResilientWorker(**worker_options(settings, own_process=True)).run()
        return 0
    if refusal := anonymous_refusal(settings, args.host, args.allow_anonymous):
        print(f"vidcorrect: {refusal}", file=sys.stderr)
        return 2
    redact_malformed_requests()
    silence_multipart_warnings()
    try:
        app = create_app(settings.with_listen_host(args.host))
        log.info(
            "serving",
            url=f"http://{args.host}:{args.port}/",
            embedded=settings.embedded,
            access="token" if settings.api_token else "open",
            data_dir=str(settings.data_dir),
        )
        # Requests are logged by the app's own middleware (server/http_log.py). aiohttp's
        # keep-alive timer runs from a connection's start (and from each answer) until a whole
        # request head has come: it is the header timeout, and the idle limit between requests.
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=None,
            access_log=None,
            keepalive_timeout=settings.header_timeout,
        )
    except ConfigError as error:
        print(f"vidcorrect: {error.message}", file=sys.stderr)
        return 2
    return 0


def anonymous_refusal(settings: Settings, host: str, allow_anonymous: bool) -> str | None:
    """Why ``serve`` must not listen on ``host`` (``None`` when it may): with no API token, only
    on a loopback address, unless anonymous access was asked for."""
    from server.access import is_loopback

    if settings.api_token is not None or allow_anonymous or is_loopback(host):
        return None
    return (
        f"refusing to serve an open API on {host}, which other machines can reach: set "
        "VIDCORRECT_API_TOKEN, listen on 127.0.0.1, or pass --allow-anonymous to serve "
        "without a token on purpose"
    )
