"""The one usage error of every `xenmca` command: a bad command line or unusable input."""

from __future__ import annotations


class UsageError(Exception):
    """A bad option value, options that cannot go together, or an input file that cannot be used.

    The message is one line naming the problem; `xenmca` prints it as
    ``<command>: error: <message>`` on stderr and exits 2 (the README's exit statuses).
    """
