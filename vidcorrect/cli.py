"""The ``vidcorrect`` command: ``serve`` the HTTP API, or run a ``worker``; the client's
commands (``submit``, ``status``, ...) talk to a running server."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from client import commands as client
from server import commands as server


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the service's commands and the client's."""
    parser = argparse.ArgumentParser(
        prog="vidcorrect", description="Mask and anonymize endoscopy videos in the background."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    server.add_commands(commands)
    client.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vidcorrect`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in client.COMMANDS:
        return client.run(args)
    return server.run(args)
