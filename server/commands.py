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
    users = commands.add_parser(
        "users", help="manage the users of VIDCORRECT_USERS_FILE (named tokens with roles)"
    )
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="add a user and print their new token once")
    add.add_argument("name", help="the user's name (letters, digits and . _ @ -)")
    add.add_argument("--role", required=True, help="uploader, reviewer or admin")
    add.add_argument(
        "--replace", action="store_true", help="give an existing user a new token (and role)"
    )
    remove = users_commands.add_parser("remove", help="remove a user (their token stops working)")
    remove.add_argument("name")
    users_commands.add_parser("list", help="list the users and their roles")
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the audit trail's hash chain; names the first bad entry (exit status 1)",
    )
    verify.add_argument(
        "--data-dir",
        type=Path,
        help="without REDIS_URL: the stopped server's data dir, whose Redis files are read",
    )


def run(args: argparse.Namespace) -> int:
    """Run the ``serve``, ``worker``, ``users`` or ``audit`` command ``args`` parsed; returns
    the exit status."""
    if args.command == "users":
        return run_users(args)
    if args.command == "audit":
        return run_audit(args)
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
            access="token" if settings.api_token or settings.users_file else "open",
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

    if settings.api_token is not None or settings.users_file is not None:
        return None
    if allow_anonymous or is_loopback(host):
        return None
    return (
        f"refusing to serve an open API on {host}, which other machines can reach: set "
        "VIDCORRECT_API_TOKEN, listen on 127.0.0.1, or pass --allow-anonymous to serve "
        "without a token on purpose"
    )


def run_users(args: argparse.Namespace) -> int:
    """``vidcorrect users add|remove|list`` on the file ``VIDCORRECT_USERS_FILE`` names."""
    from jobs.errors import ConfigError, InvalidRequest
    from jobs.settings import Settings
    from jobs.users import UsersFile, parse_role

    try:
        settings = Settings.from_env()
        if settings.users_file is None:
            raise ConfigError(
                "set VIDCORRECT_USERS_FILE to the users file (it is created by the first "
                "`users add`), as the server has it"
            )
        users = UsersFile(settings.users_file)
        if args.users_command == "add":
            token = users.add(args.name, parse_role(args.role), replace=args.replace)
            print(token)
            print(
                f"vidcorrect: {args.name} ({args.role}) added; the token above is shown only "
                "this once: hand it over now (the file keeps only its hash).",
                file=sys.stderr,
            )
        elif args.users_command == "remove":
            if not users.remove(args.name):
                raise InvalidRequest(f"There is no user {args.name!r}.")
            print(f"vidcorrect: {args.name} removed; their token no longer works.", file=sys.stderr)
        else:
            for entry in users.read()["users"]:
                print(f"{entry['name']}\t{entry['role']}\t{entry['created_at']}")
    except (ConfigError, InvalidRequest) as error:
        print(f"vidcorrect: {error.message}", file=sys.stderr)
        return 2
    return 0


def run_audit(args: argparse.Namespace) -> int:
    """``vidcorrect audit verify``: 0 when the chain holds, 1 naming the first bad entry, 2
    when the trail cannot be read."""
    import asyncio

    from jobs.errors import ConfigError
    from jobs.settings import Settings
    from server.embedded_redis import EmbeddedRedis

    try:
        settings = Settings.from_env(data_dir=args.data_dir)
        if settings.redis_url is not None:
            return asyncio.run(_verify(settings.redis_url, settings))
        with EmbeddedRedis(settings.data_dir / "redis") as embedded:
            return asyncio.run(_verify(embedded.url, settings))
    except ConfigError as error:
        print(
            f"vidcorrect: {error.message} (while the server runs, an admin can ask it: "
            "GET /api/audit/verify)",
            file=sys.stderr,
        )
        return 2


async def _verify(redis_url: str, settings: Settings) -> int:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from jobs.audit import AuditLog

    redis = Redis.from_url(redis_url)
    try:
        verdict = await AuditLog(redis, settings.keys).verify()
    except RedisError as error:
        print(f"vidcorrect: the audit trail cannot be read: {error}", file=sys.stderr)
        return 2
    finally:
        await redis.aclose()
    if verdict.ok:
        print(f"audit trail OK: {verdict.entries} entries, the hash chain holds")
        return 0
    print(
        f"audit trail BROKEN at entry {verdict.first_bad}: {verdict.reason} "
        f"({verdict.first_bad} entries before it check out)"
    )
    return 1
