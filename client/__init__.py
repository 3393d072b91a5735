"""The vidcorrect client: :class:`Client`, the Python API of a vidcorrect server for other
Python applications (:mod:`client.library`), and the ``vidcorrect`` command-line client built on
it (:mod:`client.commands`): submit, follow, cancel and list tasks over the HTTP API.

It is a separate program from the service: it speaks only HTTP, uses only the standard library
and imports nothing from ``server`` or ``jobs``.
"""

from client.library import (
    ApiError,
    Client,
    ClientError,
    LocalFileError,
    NoOutput,
    Unreachable,
)

__all__ = ["ApiError", "Client", "ClientError", "LocalFileError", "NoOutput", "Unreachable"]
