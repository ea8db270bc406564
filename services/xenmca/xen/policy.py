"""Coordinator policies: named sets of choices, one per way the shipped code and xenmca differ.

A policy is a value of every knob below. ``xenmca`` is the design this testbed
defends; ``xen-ia64-2006`` and ``xen-ia64-2009`` replay what Xen/ia64 shipped
(xen/arch/ia64/xen/fw_emul.c ``sal_emulator`` and xen/arch/ia64/linux-xen/mca.c
``ia64_log_queue``, as of commits 758fbf680d and cb5985adb8). Any knob can be
overridden on top of a named policy (``--policy-option after_clear=head``), so a
single safeguard of the default can be removed and its checker seen to fail.

This module holds only the vocabulary (names, choices, documentation); the
strategy objects each choice selects are built by ``xenmca.xen.strategies``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_POLICY = "xenmca"


@dataclass(frozen=True)
class Knob:
    """One way policies differ: its choices, and what each does."""

    name: str
    summary: str
    choices: Mapping[str, str]


KNOBS: tuple[Knob, ...] = (
    Knob(
        "routing",
        "which queue an interrupt of each record type joins",
        {
            "own-queue": "every record type has its own queue and virtual interrupt",
            "mca-on-cmc": "an MCA is signalled on the CMC path and joins the CMC queue "
            "(mca.c ia64_mca_ucmc_handler: ia64_log_queue(SAL_INFO_TYPE_MCA, VIRQ_MCA_CMC))",
        },
    ),
    Knob(
        "entries",
        "what one queue entry stands for",
        {
            "per-type": "one entry per (pCPU, record type); an interrupt for a listed pair "
            "marks it, so it is requeued after its CLEAR",
            "per-slot": "one static entry per (pCPU, queue); an interrupt for a listed slot is "
            "dropped, whatever its record type (cb5985adb8: sal_entry[cpu][queue_type])",
            "per-interrupt": "one entry per interrupt (758fbf680d: xmalloc in ia64_log_queue)",
        },
    ),
    Knob(
        "delivery",
        "how dom0 vCPU0 learns that an entry waits",
        {
            "tracked": "one virtual interrupt in flight per type, bound to its entry; the next "
            "is injected after CLEAR; re-injected when dom0 makes no progress or re-attaches",
            "virq-bit": "one pending VIRQ bit per type, raised by each pCPU interrupt and "
            "cleared when dom0's handler runs: interrupts coalesce, polls raise none "
            "(send_guest_vcpu_virq in ia64_mca_cmc_int_handler only)",
        },
    ),
    Knob(
        "get_failure",
        "what a trapped GET whose SAL call failed does to its entry",
        {
            "keep": "the entry stays queued (at the tail) and its pCPU is held for a backoff",
            "drop": "the entry is freed while the record stays in firmware "
            "(fw_emul.c: r9 == 0 after smp_call_function_single failed)",
        },
    ),
    Knob(
        "clear_target",
        "which record a trapped CLEAR clears",
        {
            "read-record": "exactly the record dom0 read, named by its id; anything else is -5",
            "queue-head": "the current record of whatever entry is at the queue head "
            "(fw_emul.c SAL_CLEAR_STATE_INFO: list_entry(sal_queue[in1].next))",
        },
    ),
    Knob(
        "after_clear",
        "where an entry goes after its CLEAR",
        {
            "tail-if-more": "to the tail when its pCPU has more records, else freed",
            "head": "back to the head of its queue (cb5985adb8: list_add after r9 >= 0)",
            "free": "freed (758fbf680d: xfree(e))",
        },
    ),
    Knob(
        "clear_failure",
        "what a trapped CLEAR whose SAL call failed does to its entry",
        {
            "keep": "the entry stays queued (at the tail), the record is delivered again",
            "head": "back to the head, as after a successful CLEAR (cb5985adb8: a failed IPI "
            "sets r9 = 0, and r9 >= 0 re-adds the entry)",
            "free": "freed while the record stays in firmware (758fbf680d: xfree(e))",
        },
    ),
    Knob(
        "poll_count",
        "what a poll of a throttled line counts as found",
        {
            "new-records": "only records the coordinator has not seen before",
            "pending-records": "any record SAL_GET_STATE_INFO returns, already pending or not "
            "(ia64_log_queue increments IA64_LOG_COUNT on every GET that returns a record)",
        },
    ),
    Knob(
        "storm_scope",
        "where storms are detected and what a storm throttles",
        {
            "per-line": "each pCPU's CMC and CPE line has its own history, mode and interval",
            "global": "one history per type for all pCPUs; a storm masks every pCPU's line "
            "and one polling cascade visits them all (mca.c: static cmc_history, "
            "cpumask_raise_softirq(cpu_online_map, CMC_DISABLE_SOFTIRQ))",
        },
    ),
    Knob(
        "ipi",
        "how a SAL call made on another pCPU is retried",
        {
            "retry": "retried with backoff on UNAVAILABLE or DEADLINE_EXCEEDED (GET is "
            "idempotent; CLEAR is by record id or compared before it clears)",
            "single": "one attempt, as smp_call_function_single",
        },
    ),
)

KNOB_NAMES: tuple[str, ...] = tuple(k.name for k in KNOBS)

POLICIES: dict[str, dict[str, str]] = {
    "xenmca": {
        "routing": "own-queue",
        "entries": "per-type",
        "delivery": "tracked",
        "get_failure": "keep",
        "clear_target": "read-record",
        "after_clear": "tail-if-more",
        "clear_failure": "keep",
        "poll_count": "new-records",
        "storm_scope": "per-line",
        "ipi": "retry",
    },
    "xen-ia64-2006": {
        "routing": "mca-on-cmc",
        "entries": "per-interrupt",
        "delivery": "virq-bit",
        "get_failure": "drop",
        "clear_target": "queue-head",
        "after_clear": "free",
        "clear_failure": "free",
        "poll_count": "pending-records",
        "storm_scope": "global",
        "ipi": "single",
    },
    "xen-ia64-2009": {
        "routing": "mca-on-cmc",
        "entries": "per-slot",
        "delivery": "virq-bit",
        "get_failure": "drop",
        "clear_target": "queue-head",
        "after_clear": "head",
        "clear_failure": "head",
        "poll_count": "pending-records",
        "storm_scope": "global",
        "ipi": "single",
    },
}

POLICY_SUMMARIES: dict[str, str] = {
    "xenmca": "the default: every invariant of DESIGN section 3",
    "xen-ia64-2006": "Xen/ia64 as first shipped (3092011efc, 9b0990ce13, 758fbf680d)",
    "xen-ia64-2009": "Xen/ia64 after cb5985adb8 (static entries, re-added at the head)",
}

SAL_MODES: tuple[str, ...] = ("extended", "plain")
"""Firmware the coordinator talks to: xenmca's extended SAL (clear by id, counters) or plain SAL."""


class PolicyError(ValueError):
    """An unknown policy, knob or choice; the message is one line naming it."""


@dataclass(frozen=True)
class PolicySpec:
    """A named policy with some knobs overridden: what ``--policy`` and ``--policy-option`` say."""

    name: str = DEFAULT_POLICY
    options: Mapping[str, str] = field(default_factory=dict)

    def choices(self) -> dict[str, str]:
        """Every knob's choice: the named policy's, then the overrides."""
        if self.name not in POLICIES:
            raise PolicyError(f"unknown policy {self.name!r} (known: {', '.join(POLICIES)})")
        merged = dict(POLICIES[self.name])
        for knob, choice in self.options.items():
            check_choice(knob, choice)
            merged[knob] = choice
        return merged

    @property
    def label(self) -> str:
        """``xenmca`` or ``xenmca+after_clear=head``."""
        extra = "".join(f"+{k}={v}" for k, v in sorted(self.options.items()))
        return self.name + extra


def knob(name: str) -> Knob:
    for candidate in KNOBS:
        if candidate.name == name:
            return candidate
    raise PolicyError(f"unknown policy knob {name!r} (known: {', '.join(KNOB_NAMES)})")


def check_choice(name: str, choice: str) -> None:
    choices = knob(name).choices
    if choice not in choices:
        raise PolicyError(f"{name}: unknown choice {choice!r} (known: {', '.join(choices)})")


def parse_option(text: str) -> tuple[str, str]:
    """``KNOB=CHOICE`` checked against the knobs; PolicyError otherwise."""
    name, sep, choice = text.partition("=")
    if not sep:
        raise PolicyError(f"policy option {text!r} is not KNOB=CHOICE")
    name = name.strip().replace("-", "_")
    choice = choice.strip()
    check_choice(name, choice)
    return name, choice


def policy_names() -> list[str]:
    return list(POLICIES)
