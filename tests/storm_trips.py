"""The coordinator's storm rule applied to a workload plan: which lines its arrivals trip.

Each line's planned arrivals are fed, in order, to the coordinator's own
StormHistory (the ia64 rule, with the default ThrottleSettings), so a test that
expects steady streams to stay in interrupt mode checks the rule Xen runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from xenmca.testbed.run.workload_plan import PlannedInjection
from xenmca.xen.throttle import StormHistory
from xenmca.xen.throttle_settings import ThrottleSettings


def storm_trips(
    plan: Iterable[PlannedInjection], *, margin: float = 0.0, include_storms: bool = False
) -> dict[tuple[int, str], int]:
    """Lines (pcpu, type) where the plan's arrivals alone trip the storm rule, and how often.

    An injection's records arrive all at once (rate 0) or paced at rate per second
    (storms, left out unless include_storms). margin widens the rule's window, for
    delivery jitter that brings arrivals closer together than planned.
    """
    settings = ThrottleSettings()
    arrivals: dict[tuple[int, str], list[float]] = defaultdict(list)
    for injection in plan:
        if injection.rate > 0 and not include_storms:
            continue
        step = 1.0 / injection.rate if injection.rate > 0 else 0.0
        arrivals[(injection.pcpu, injection.type)].extend(
            injection.t_s + i * step for i in range(injection.count)
        )
    trips: dict[tuple[int, str], int] = {}
    for line, times in arrivals.items():
        history = StormHistory(settings.history_length, settings.window + margin)
        hits = sum(history.is_storm(t) for t in sorted(times))
        if hits:
            trips[line] = hits
    return trips
