"""The ``vidcorrect`` command line: the one entry point over the service and the client.

It only dispatches: ``serve`` and ``worker`` to :mod:`server.commands`, the client's commands
(``submit``, ``status``, ...) to :mod:`client.commands`, so neither package imports the other.
"""
