"""Starting and stopping a coordinator process: events, metrics, health listener, server, links.

``setup`` is the coordinator's part of ``xenmca.rpc.lifecycle.run_component``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator

from xenmca.record.v1 import record_pb2
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.identity import XEN, TokenBook
from xenmca.rpc.lifecycle import StartError
from xenmca.rpc.metrics import start_metrics_endpoint
from xenmca.rpc.server import BuiltServer
from xenmca.rpc.tls import TlsMaterial, channel_credentials, server_credentials
from xenmca.xen.coordinator import BROKEN_RULES, Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import ThrottleSettings

log = logging.getLogger("xenmca.xen")


async def setup(
    stack: contextlib.AsyncExitStack,
    args: argparse.Namespace,
    pcpus: dict[int, str],
    tokens: TokenBook | None,
    throttle: ThrottleSettings,
    tls: TlsMaterial | None = None,
    clock: Clock | None = None,
) -> dict[str, str]:
    """Open the coordinator's event log, metrics, health listener and server into stack."""
    config = CoordinatorConfig(
        pcpus=pcpus,
        vcpu0_pcpu=args.vcpu0_pcpu,
        xen_token=tokens.token_for(XEN) if tokens else None,
        channel_credentials=channel_credentials(tls) if tls is not None else None,
        throttle=throttle,
        broken_rule=args.broken_rule,
        pipelined=args.pipelined,
        policy=args.policy_spec,
        sal_mode=args.sal,
    )
    if args.inject_cpe:
        config.injected_types = config.injected_types | {record_pb2.RECORD_TYPE_CPE}
    events = EventLog("xen", args.events, clock)
    stack.callback(events.close)
    coordinator = Coordinator(config, events=events, clock=clock)
    if getattr(args, "metrics_port", None) is not None:
        from xenmca.xen.metrics import XenMetrics

        metrics = start_metrics_endpoint(
            XenMetrics(coordinator).registry, args.metrics_host, args.metrics_port, log
        )
        stack.push_async_callback(metrics.aclose)
    probes: HealthListener | None = None
    health_listen = getattr(args, "health_listen", None)
    if health_listen:
        try:
            probes = HealthListener(health_listen)
        except (OSError, RuntimeError) as exc:
            raise StartError(str(exc)) from exc
        stack.push_async_callback(probes.stop, None)
        await probes.start()
    built, port = create_server(
        args.listen,
        coordinator,
        tokens,
        credentials=server_credentials(tls) if tls is not None else None,
    )
    address = f"{args.listen.rpartition(':')[0]}:{port}"
    await stack.enter_async_context(_serving(built, coordinator, address))
    if probes is not None:
        await probes.set_serving(True)
        stack.push_async_callback(probes.set_serving, False)
    _log_started(args, config, tls, tokens, probes, address)
    return {"address": address}


@contextlib.asynccontextmanager
async def _serving(
    built: BuiltServer, coordinator: Coordinator, address: str
) -> AsyncIterator[None]:
    """The server, then the coordinator; on the way out the server stops taking calls first."""
    try:
        await built.start()
        await coordinator.start()
    except BaseException:
        await built.stop(grace=1.0)
        raise
    try:
        yield
    finally:
        await built.stop(grace=1.0)
        await coordinator.stop()
        log.info("coordinator on %s stopped", address)


def _log_started(
    args: argparse.Namespace,
    config: CoordinatorConfig,
    tls: TlsMaterial | None,
    tokens: TokenBook | None,
    probes: HealthListener | None,
    address: str,
) -> None:
    if args.broken_rule:
        log.warning("BROKEN RULE %s: %s", args.broken_rule, BROKEN_RULES[args.broken_rule])
    if tls is not None:
        log.info(
            "mutual TLS as %r, to callers and to the pCPUs (callers by client certificate)",
            tls.identity,
        )
        if tls.identity != XEN:
            log.warning(
                "the TLS certificate's identity is %r, not %r: the pCPUs will refuse GET/CLEAR",
                tls.identity,
                XEN,
            )
    elif tokens is None:
        log.warning("no TLS and no token file: every caller is treated as dom0 and operator")
    if probes is not None:
        log.info("plaintext health-only listener on %s", probes.address)
    log.info(
        "coordinator serving on %s for %d pCPUs (vCPU0 on pCPU %d), policy %s, %s SAL",
        address,
        len(config.pcpus),
        config.vcpu0_pcpu,
        config.policy.label,
        config.sal_mode,
    )
