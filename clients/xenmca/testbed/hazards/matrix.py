"""The hazards Xen/ia64 shipped, each a built-in scenario run under the shipped policy
(a checker must catch it) and under xenmca's (every check must hold).

Every hazard names the code it comes from (xen-project/xen at the commits of
DESIGN section 1, and Linux arch/ia64), the checker that catches it, and what
in xenmca's design prevents it. The shipped runs use plain SAL, as the real
firmware was; the default policy runs on xenmca's extended firmware and on
plain SAL, since it must keep every invariant on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xenmca.testbed.scenario.overrides import PolicyOverride

SHIPPED = "shipped"
DEFAULT_EXTENDED = "xenmca"
DEFAULT_PLAIN = "xenmca-plain"
VARIANTS: tuple[str, ...] = (SHIPPED, DEFAULT_EXTENDED, DEFAULT_PLAIN)

DEFAULT_OVERRIDES: dict[str, PolicyOverride] = {
    DEFAULT_EXTENDED: PolicyOverride(xen="xenmca", dom0="xenmca", options={}, sal="extended"),
    DEFAULT_PLAIN: PolicyOverride(xen="xenmca", dom0="xenmca", options={}, sal="plain"),
}


@dataclass(frozen=True)
class Hazard:
    """One shipped hazard: its scenario, the policy that has it, and who catches it."""

    name: str
    """The built-in scenario (scenarios/<name>.yaml)."""
    title: str
    shipped: PolicyOverride
    check: str
    """The checker that must fail under the shipped policy."""
    source: str
    """Where the behaviour comes from."""
    prevention: str
    """What in xenmca's design keeps the invariant."""

    def override(self, variant: str) -> PolicyOverride:
        return self.shipped if variant == SHIPPED else DEFAULT_OVERRIDES[variant]

    @property
    def shipped_label(self) -> str:
        label = self.shipped.xen or "xenmca"
        if self.shipped.dom0 and self.shipped.dom0 != "xenmca":
            label += f" + dom0 {self.shipped.dom0}"
        return label


def _shipped(xen: str, dom0: str = "xenmca", **extra: Any) -> PolicyOverride:
    return PolicyOverride(xen=xen, dom0=dom0, options={}, sal="plain", **extra)


HAZARDS: tuple[Hazard, ...] = (
    Hazard(
        "hazard-clear-unread",
        "CLEAR acts on the queue head, not on the record dom0 read",
        _shipped("xen-ia64-2006"),
        "cleared_before_logged",
        "xen/arch/ia64/xen/fw_emul.c sal_emulator, SAL_CLEAR_STATE_INFO (3092011efc, "
        "758fbf680d): `e = list_entry(sal_queue[in1].next, ...)`, the head's current record "
        "is cleared whatever dom0 read; a second CLEAR (here, dom0's retry after a lost "
        "reply; in 2006, two dom0 vCPUs' handlers) clears a record nobody read.",
        "dom0's CLEAR names the record it read; the coordinator clears only that one, by "
        "id on extended firmware or after comparing the current record's id on plain SAL, "
        "and answers -5 to anything else.",
    ),
    Hazard(
        "hazard-starvation",
        "a busy pCPU's entry re-added at the head starves the others",
        _shipped("xen-ia64-2009"),
        "fairness",
        "fw_emul.c sal_emulator after cb5985adb8: `if (r9 >= 0) list_add(&e->list, "
        "&sal_queue[in1])` puts the cleared entry back at the head, so its pCPU is served "
        "again while it has records.",
        "an entry whose pCPU has more records goes to the tail (round robin); the fairness "
        "checker bounds how many records of other pCPUs overtake each one.",
    ),
    Hazard(
        "hazard-failed-get",
        "a failed GET drops the entry while the record stays in firmware",
        _shipped("xen-ia64-2006"),
        "stranded",
        "fw_emul.c sal_emulator, SAL_GET_STATE_INFO (758fbf680d): a failed "
        "smp_call_function_single sets `arg.ret = 0`, and `if (r9 == 0)` the entry is "
        "list_del'd and xfree'd.",
        "IPIs are retried (GET is idempotent); a call that still fails keeps the entry at "
        "the tail and holds only its pCPU for a backoff, and dom0 gets -3, not -5.",
    ),
    Hazard(
        "hazard-duplicate-after-failed-clear",
        "a failed CLEAR leaves the record in firmware to be read and logged again",
        _shipped("xen-ia64-2009", dom0="linux-salinfo"),
        "duplicates",
        "fw_emul.c after cb5985adb8: a failed IPI sets r9 = 0 and `if (r9 >= 0)` re-adds "
        "the entry at the head, so the same record is read again; Linux's salinfo.c keeps "
        "no index of record ids and writes it twice.",
        "CLEAR is retried by record id (idempotent), a clear that still fails keeps the "
        "entry, and dom0's log is keyed by (pCPU, record id): a re-delivery is recognised.",
    ),
    Hazard(
        "hazard-mca-behind-cmc",
        "an MCA signalled on the CMC path shares the CMC slot and is never fetched",
        _shipped("xen-ia64-2009"),
        "stranded",
        "xen/arch/ia64/linux-xen/mca.c: ia64_mca_ucmc_handler calls "
        "`ia64_log_queue(SAL_INFO_TYPE_MCA, VIRQ_MCA_CMC)`; since cb5985adb8 the entry is "
        "`&sal_entry[cpuid][queue_type]` with queue_type CMC, skipped when listed.",
        "every record type has its own queue, entries and virtual interrupt.",
    ),
    Hazard(
        "hazard-coalesced-virq",
        "one pending VIRQ bit per type coalesces interrupts; dom0 reads one record per VIRQ",
        _shipped("xen-ia64-2006"),
        "stranded",
        "mca.c ia64_mca_cmc_int_handler: `send_guest_vcpu_virq(dom0->vcpu[0], "
        "VIRQ_MCA_CMC)` per interrupt sets one event-channel bit; Linux's handler reads and "
        "clears one record; nothing re-raises the bit for the entries left.",
        "one virtual interrupt is in flight per type, bound to its entry; after each CLEAR "
        "the next waiting entry is injected, and one without progress is injected again.",
    ),
    Hazard(
        "hazard-stuck-polling",
        "a poll counts records already pending as found: the line never leaves polling",
        _shipped("xen-ia64-2009"),
        "lines_back_to_interrupt",
        "mca.c ia64_mca_cmc_int_caller compares IA64_LOG_COUNT before and after a poll; "
        "ia64_log_queue increments it on every SAL_GET_STATE_INFO that returns a record, "
        "and under Xen the record stays until dom0 clears it.",
        "a poll counts only records created since it last looked (the created counter; on "
        "plain SAL, a head record id never seen before).",
    ),
    Hazard(
        "hazard-global-storm",
        "one storm detector for all pCPUs throttles the quiet lines too",
        _shipped("xen-ia64-2009"),
        "isolation",
        "mca.c ia64_mca_cmc_int_handler: one `static unsigned long cmc_history[]` for "
        "all CPUs; a storm raises CMC_DISABLE_SOFTIRQ on cpu_online_map.",
        "each pCPU's CMC and CPE line has its own storm history, mode and interval.",
    ),
    Hazard(
        "hazard-salinfo-crash-window",
        "dom0 clears corrected records at once and loses them if it crashes before logging",
        _shipped("xenmca", dom0="linux-salinfo", salinfo_decode_delay_s=1.5),
        "conservation",
        "Linux arch/ia64/kernel/mca.c ia64_mca_log_sal_error_record: `if (rh->severity == "
        "sal_log_severity_corrected) ia64_sal_clear_state_info(sal_info_type)` right after "
        "ia64_log_get; salinfo.c holds the record in one of two kernel buffers until "
        "salinfo_decode has written it.",
        "dom0 commits the record (fsync) before it sends CLEAR; a dom0 that dies before "
        "its CLEAR gets the record delivered again, and its log drops the duplicate.",
    ),
)


def hazard(name: str) -> Hazard:
    for candidate in HAZARDS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


@dataclass
class Cell:
    """One run of the matrix: a hazard under one variant, and its verdict."""

    hazard: str
    variant: str
    policy: str
    outcome: str
    """shipped: "caught" / "missed"; default: "held" / "broken"; either: "error"."""
    failing: list[str]
    first_record: str | None
    valid: Any
    seconds: float
    results_dir: str
    detail: str = ""
    clock: str = "real"
    """"virtual" when the cell ran in one process on virtual time."""

    @property
    def expected(self) -> bool:
        return self.outcome in ("caught", "held")

    def as_dict(self) -> dict[str, Any]:
        return {
            "hazard": self.hazard,
            "variant": self.variant,
            "policy": self.policy,
            "outcome": self.outcome,
            "expected": self.expected,
            "failing_checks": self.failing,
            "first_record": self.first_record,
            "valid": self.valid,
            "seconds": round(self.seconds, 2),
            "results_dir": self.results_dir,
            "detail": self.detail,
            "clock": self.clock,
        }


def _record_label(record: dict[str, Any]) -> str:
    """A record as `pCPU 1 CMC #7`, a whole line as `pCPU 1 CMC line`."""
    where = f"pCPU {record.get('pcpu')} {record.get('type')}"
    record_id = record.get("record_id")
    return f"{where} #{record_id}" if record_id is not None else f"{where} line"


def judge(item: Hazard, variant: str, results: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """(outcome, failing checks, the first record the deciding check names)."""
    checks = results.get("checks") or []
    failing = [str(c.get("name")) for c in checks if c.get("status") == "fail"]
    if variant == SHIPPED:
        caught = next((c for c in checks if c.get("name") == item.check), None)
        if caught is None or caught.get("status") != "fail":
            return "missed", failing, None
        records = caught.get("records") or []
        first = _record_label(records[0]) if records else None
        return "caught", failing, first
    if results.get("valid") is True:
        return "held", failing, None
    first = None
    for check in checks:
        if check.get("status") != "pass" and check.get("records"):
            first = _record_label(check["records"][0])
            break
    return "broken", failing, first
