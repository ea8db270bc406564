"""The local-calls check: every GET and CLEAR was local exactly when vCPU0 ran on its pCPU.

Xen makes a SAL call on the owning pCPU itself when dom0's vCPU0 runs there, and
by IPI otherwise (fw_emul.c sal_emulator: ``if (e->cpuid == smp_processor_id())``).
The coordinator reports each call (``get_local``/``get_ipi``/``clear_local``/
``clear_ipi``, with its pCPU and duration) and each placement: ``coordinator_started``
(``vcpu0_pcpu``, also after a restart) and ``vcpu_placement`` (a move). A call is
judged against every placement in force while it ran, from its start (its end
minus its duration) to its end, so a move during a call excuses either label.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from xenmca.testbed.check.events import of_kind, t_ns
from xenmca.testbed.check.result import CheckResult, RecordRef
from xenmca.testbed.run.data import RunData
from xenmca.vocab import type_name

LOCAL_CALLS = "local_calls"
_CALLS = ("get_local", "get_ipi", "clear_local", "clear_ipi")


@dataclass(frozen=True)
class Placements:
    """vCPU0's pCPU over time: a step function from the coordinator's events."""

    times: list[int]
    pcpus: list[int]

    def during(self, start: int, end: int) -> set[int]:
        """The pCPUs vCPU0 ran on at some time in [start, end] (empty before any is known)."""
        first = bisect_right(self.times, start) - 1
        last = bisect_right(self.times, end) - 1
        return {self.pcpus[i] for i in range(max(first, 0), last + 1) if i >= 0}


def placements(data: RunData) -> Placements:
    times: list[int] = []
    pcpus: list[int] = []
    for event in of_kind(data.events, "xen", "coordinator_started", "vcpu_placement"):
        key = "vcpu0_pcpu" if event["kind"] == "coordinator_started" else "pcpu"
        if event.get(key) is None:
            continue
        times.append(t_ns(event))
        pcpus.append(int(event[key]))
    return Placements(times, pcpus)


def check_local_calls(data: RunData) -> CheckResult:
    steps = placements(data)
    calls = of_kind(data.events, "xen", *_CALLS)
    wrong: list[RecordRef] = []
    for call in calls:
        end = t_ns(call)
        start = end - int(float(call.get("ms") or 0.0) * 1e6)
        pcpu = int(call["pcpu"])
        local = call["kind"].endswith("_local")
        ran_on = steps.during(start, end)
        if not ran_on:
            continue  # no placement known yet (events lost): nothing to judge against
        # Local is right if vCPU0 ran on the pCPU at some moment of the call; an IPI if
        # it ran elsewhere at some moment.
        if (pcpu in ran_on) if local else (ran_on != {pcpu}):
            continue
        what = call["kind"].split("_")[0].upper()
        where = ", ".join(str(p) for p in sorted(ran_on))
        note = f"{what} made {'locally' if local else 'by IPI'} while vCPU0 ran on pCPU {where}"
        record_id = call.get("record_id")
        wrong.append(
            RecordRef(
                pcpu, type_name(call["type"]), None if record_id is None else int(record_id), note
            )
        )
    detail = (
        f"{len(calls)} SAL calls on pCPUs judged against vCPU0's placement "
        f"({len(steps.times)} placements: the start and each move)"
    )
    if wrong:
        detail += f"; {len(wrong)} made the wrong way, first: {wrong[0].label()}"
    result = CheckResult(LOCAL_CALLS, "fail" if wrong else "pass", len(wrong), 0, detail)
    return result.naming(wrong, ordered=True)
