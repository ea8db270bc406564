"""A scenario's longest polling interval: how long a record can wait for a poll, on any machine.

A record on a throttled CMC line waits for the next poll (``cmc_poll_interval``),
a CPE record for the coordinator's or dom0's next CPE poll (up to
``cpe_poll_max``, ``dom0.cpe_poll_max_s``), however fast the machine is. The drain's
idle window must outlast it, and relative latency bounds add it to their floors.
"""

from __future__ import annotations

from xenmca.testbed.scenario.model import Scenario, Throttle


def longest_poll_interval(throttle: Throttle, dom0_poll_max: float) -> tuple[str, float]:
    """(which setting, its seconds): the largest of the polling intervals a record may wait."""
    from xenmca.xen.throttle_settings import load_settings

    settings = load_settings(throttle.preset, None, dict(throttle.settings))
    intervals = {
        "throttle cmc_poll_interval": settings.cmc_poll_interval,
        "throttle cpe_poll_max": settings.cpe_poll_max,
        "dom0 cpe_poll_max_s": dom0_poll_max,
    }
    return max(intervals.items(), key=lambda item: item[1])


def scenario_poll_allowance(scenario: Scenario) -> tuple[str, float]:
    """longest_poll_interval of a loaded scenario."""
    return longest_poll_interval(scenario.throttle, scenario.cpe_poll_max_s)
