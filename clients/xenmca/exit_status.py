"""The exit statuses every `xenmca` command shares (the README's table says the same).

A long-running component (``serve pcpu``, ``serve xen``, ``dom0``) exits 0 when
stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

OK = 0
"""Valid, or done: every check held, the command did what it was asked."""
FAILED = 1
"""It ran and a check failed (a scenario NOT VALID, a hazard missed, records refused)."""
USAGE = 2
"""A bad command line or bad input (a scenario file, a record, a token file, a request
the server refused as invalid or unauthorised)."""
NOT_RUN = 3
"""It could not run, or its verdict is unknown (a testbed that would not start, a server
out of reach, a bench section that failed, an unexpected error)."""
INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT)."""
BROKEN_PIPE = 141
"""Its reader went away (``xenmca status --json | head``): 128 + SIGPIPE, as a shell
command killed by SIGPIPE reports, without a traceback."""
