"""The ``vidcorrect`` command-line client: submit, follow, cancel and list tasks over the HTTP API.

It is a separate program from the service: it speaks only HTTP, uses only the standard library
and imports nothing from ``server`` or ``jobs``.
"""
