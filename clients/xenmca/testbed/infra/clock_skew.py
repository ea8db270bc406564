"""Hosts whose clocks disagree: a component started in a Linux time namespace.

`TestbedSpec.clock_skew_s` names hosts whose CLOCK_MONOTONIC and CLOCK_BOOTTIME run
ahead of the machine's by some seconds (time_namespaces(7), Linux 5.6+, root). Each
such host's agent is started under `unshare --time --monotonic S --boottime S`, so
the agent and the component it supervises read the skewed clocks, as two machines'
monotonic clocks would disagree. A runner driving the testbed from outside
(`xenmca run --target`) must then correct every timestamp by each host's measured
offset (infra.clock_offset); a local run could not, so skew is refused without agents.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

from xenmca.rpc.usage import UsageError

if TYPE_CHECKING:
    from xenmca.testbed.infra.spec import TestbedSpec

MAX_SKEW_S = 86_400
"""A day either way: enough to show any clock error, far from the clocks' limits."""


def time_namespace_prefix(skew_s: int) -> list[str]:
    """The command prefix that runs a program with its monotonic clocks skew_s ahead.

    Whole seconds: util-linux unshare parses the offsets as integers. No `--fork`:
    unshare enters the new namespace itself (setns to its time_for_children) and execs
    the program in place, so the launcher's process is the program (the same pid,
    whose parent is the launcher, as `lifecycle`'s die-with-parent check requires).
    """
    seconds = str(skew_s)
    return ["unshare", "--time", "--monotonic", seconds, "--boottime", seconds]


def check_clock_skew(spec: TestbedSpec, hosts: Sequence[str]) -> None:
    """UsageError unless every skewed host exists, the skew is sane, and it can be made."""
    if not spec.clock_skew_s:
        return
    if not spec.agents:
        raise UsageError(
            "clock skew needs agents (--agents): only a runner from outside corrects for it"
        )
    unknown = sorted(set(spec.clock_skew_s) - set(hosts))
    if unknown:
        raise UsageError(
            f"clock skew for unknown host(s) {', '.join(unknown)}; hosts: {', '.join(hosts)}"
        )
    for host, skew in spec.clock_skew_s.items():
        if not abs(skew) <= MAX_SKEW_S:
            raise UsageError(f"clock skew of {host}: {skew} s is beyond +-{MAX_SKEW_S} s")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise UsageError("clock skew needs root and util-linux unshare (Linux time namespaces)")
