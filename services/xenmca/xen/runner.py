"""Starting and stopping a coordinator process: server, links, events, ready file."""

from __future__ import annotations

import argparse
import json
import logging

from xenmca.record.v1 import record_pb2
from xenmca.rpc.events import EventLog
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.identity import XEN, TokenBook
from xenmca.rpc.lifecycle import wait_for_stop_signal
from xenmca.rpc.metrics import MetricsEndpoint, start_metrics_endpoint
from xenmca.rpc.tls import TlsMaterial, channel_credentials, server_credentials
from xenmca.xen.coordinator import BROKEN_RULES, Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import ThrottleSettings

log = logging.getLogger("xenmca.xen")


async def serve(
    args: argparse.Namespace,
    pcpus: dict[int, str],
    tokens: TokenBook | None,
    throttle: ThrottleSettings,
    tls: TlsMaterial | None = None,
) -> int:
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
    health_listen = getattr(args, "health_listen", None)
    probes = HealthListener(health_listen) if health_listen else None
    events = EventLog("xen", args.events)
    coordinator = Coordinator(config, events=events)
    metrics: MetricsEndpoint | None = None
    if getattr(args, "metrics_port", None) is not None:
        from xenmca.xen.metrics import XenMetrics

        try:
            metrics = start_metrics_endpoint(
                XenMetrics(coordinator).registry, args.metrics_host, args.metrics_port, log
            )
        except BaseException:
            events.close()
            raise
    built, port = create_server(
        args.listen,
        coordinator,
        tokens,
        credentials=server_credentials(tls) if tls is not None else None,
    )
    if probes is not None:
        await probes.start()
    await built.start()
    await coordinator.start()
    if probes is not None:
        await probes.set_serving(True)
    host = args.listen.rpartition(":")[0]
    address = f"{host}:{port}"
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
        len(pcpus),
        args.vcpu0_pcpu,
        config.policy.label,
        config.sal_mode,
    )
    if args.ready_file:
        args.ready_file.write_text(json.dumps({"address": address}))
    try:
        await wait_for_stop_signal()
    finally:
        if probes is not None:
            await probes.set_serving(False)
        await built.stop(grace=1.0)
        await coordinator.stop()
        if probes is not None:
            await probes.stop(grace=None)
        if metrics is not None:
            await metrics.aclose()
        events.close()
        log.info("coordinator on %s stopped", address)
    return 0
