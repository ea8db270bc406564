"""The coordinator in process: started on port 0 against running pCPUs, its events watched.

`start_coordinator` builds the coordinator from a `CoordinatorConfig`'s fields,
binds its server on 127.0.0.1 port 0 (``xenmca.xen.service.create_server``) and
starts both; the caller stops them (``built.server.stop(0)``, then
``coordinator.stop()``). Calls to the pCPUs use `FAST_RETRY` unless told
otherwise, and throttling the ``fast`` preset (polling in fractions of a second).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import XEN, TokenBook
from xenmca.rpc.retry import BackoffPolicy, RetryPolicy
from xenmca.rpc.server import BuiltServer
from xenmca.testing.events import EventWatch
from xenmca.xen.coordinator import Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import PRESETS

FAST_RETRY = RetryPolicy(
    attempt_timeout=0.5,
    overall_timeout=2.0,
    max_attempts=4,
    backoff=BackoffPolicy(initial=0.01, maximum=0.05, jitter="full"),
)
"""IPI retries for tests: a lost reply costs half a second, not the default's seconds."""


async def start_coordinator(
    addresses: Mapping[int, str], tokens: TokenBook, watch: EventWatch, **config: Any
) -> tuple[Coordinator, BuiltServer, str]:
    """A started coordinator for the pCPUs at addresses, its server and "127.0.0.1:port".

    ``config`` holds CoordinatorConfig fields (vcpu0_pcpu, policy, throttle, retry,
    pipelined, sal_mode, reinject_after, ...); every event goes to watch.
    """
    events = EventLog("xen")
    events.subscribe(watch)
    coordinator = Coordinator(
        CoordinatorConfig(
            pcpus=dict(addresses),
            xen_token=tokens.token_for(XEN),
            retry=config.pop("retry", FAST_RETRY),
            throttle=config.pop("throttle", PRESETS["fast"]),
            **config,
        ),
        events=events,
    )
    built, port = create_server("127.0.0.1:0", coordinator, tokens)
    await built.start()
    await coordinator.start()
    return coordinator, built, f"127.0.0.1:{port}"
