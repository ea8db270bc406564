"""What the coordinator's state after the drain (RunData.final_xen) says about a line's
pending records: whether an entry waits for them, and whether anything will deliver it.

final_xen is DescribeHypervisor as a dict with proto field names. Fields at their
default value may be absent (pCPU 0, depth 0, virq_pending false, no entries), and
`entries` / `virq_pending` are newer than the rest: a queue with a depth but no
entries is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xenmca.vocab import type_name

# Types delivered by a virtual interrupt when final_xen does not list them: CPE reaches
# dom0 by polling only (DESIGN section 1).
DEFAULT_INJECTED = frozenset({"MCA", "INIT", "CMC"})


@dataclass(frozen=True)
class QueueView:
    type: str
    depth: int
    in_flight_pcpu: int | None
    in_flight_state: str
    waiting: tuple[int, ...] | None  # pCPUs of the waiting entries, head first; None: unknown
    virq_pending: bool


def _pcpu(entry: Any) -> int:
    return int(entry.get("pcpu", 0)) if isinstance(entry, dict) else int(entry)


def queue_views(final_xen: dict[str, Any]) -> dict[str, QueueView]:
    views = {}
    for queue in final_xen.get("queues") or []:
        in_flight = queue.get("in_flight") or None
        depth = int(queue.get("depth", 0))
        entries = queue.get("entries")
        waiting: tuple[int, ...] | None = tuple(_pcpu(e) for e in entries or ())
        if not entries and depth > 0:
            waiting = None
        state = str((in_flight or {}).get("state", "")).removeprefix("ENTRY_STATE_").lower()
        view = QueueView(
            type=type_name(queue.get("type", "?")),
            depth=depth,
            in_flight_pcpu=None if in_flight is None else _pcpu(in_flight),
            in_flight_state=state or "?",
            waiting=waiting,
            virq_pending=bool(queue.get("virq_pending", False)),
        )
        views[view.type] = view
    return views


def injected_types(final_xen: dict[str, Any]) -> frozenset[str]:
    listed = final_xen.get("injected_types")
    return frozenset(type_name(t) for t in listed) if listed else DEFAULT_INJECTED


def _elsewhere(views: dict[str, QueueView], pcpu: int) -> str:
    others = [
        v.type
        for v in views.values()
        if v.in_flight_pcpu == pcpu or (v.waiting is not None and pcpu in v.waiting)
    ]
    return f" (pCPU {pcpu} has an entry in the {', '.join(others)} queue)" if others else ""


def diagnose(final_xen: dict[str, Any] | None, pcpu: int, type_: str) -> str:
    """Why (pCPU, type)'s records were still pending, as the coordinator's state shows it."""
    if final_xen is None:
        return "the coordinator was not described after the drain"
    views = queue_views(final_xen)
    view = views.get(type_)
    if view is None:
        return f"no {type_} queue in the coordinator" + _elsewhere(views, pcpu)
    if view.in_flight_pcpu == pcpu:
        return f"its entry is in flight ({view.in_flight_state}) but was never finished"
    if view.waiting is None:
        return f"{view.depth} {type_} entries queued, for which pCPUs is not reported"
    if pcpu not in view.waiting:
        return "no entry queued" + _elsewhere(views, pcpu)
    where = f"queued ({view.waiting.index(pcpu) + 1} of {len(view.waiting)} waiting)"
    if type_ not in injected_types(final_xen):
        return f"{where}; {type_} reaches dom0 only when dom0 polls, and no poll took it"
    if view.in_flight_pcpu is not None:
        return f"{where} behind pCPU {view.in_flight_pcpu}'s entry in flight, never finished"
    if view.virq_pending:
        return f"{where}; a virtual interrupt is pending but dom0 never took it"
    return f"{where} but nothing delivers it: no virtual interrupt in flight or pending"
