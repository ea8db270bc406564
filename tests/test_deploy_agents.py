"""deploy/ under `xenmca agent` (issue 16 item 4): every component, compose and
Kubernetes, runs `xenmca agent ... -- <component>`.

The agent's argv, after the container's shell has substituted its variables (run with a
fake `xenmca` that prints its arguments), parses with the agent command's parser, and
the child gets `--events`; compose publishes each agent on its own loopback port; the
faults override gives the agents root and NET_ADMIN only; a non-root agent says why it
cannot cut the network. No cluster and no Docker engine: the files are read as data.
The runner: tests/test_deploy_runner.py; the NetworkPolicies: tests/test_deploy_network.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from deploy_files import (
    AGENT_PORT,
    DEPLOY,
    TLS_DIR,
    UID,
    StatefulSetLayout,
    child_words,
    compose,
    compose_components,
    executed_argv,
    flag_value,
    workloads,
)

from xenmca.agent.child_argv import child_spec
from xenmca.agent.command import add_arguments as add_agent_arguments
from xenmca.cli import build_parser

CHILD_EVENTS = "/tmp/events.jsonl"
COMPOSE_FAULTS = DEPLOY / "compose.faults.yaml"


def agent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xenmca agent", exit_on_error=False)
    add_agent_arguments(parser)
    return parser


def check_agent_argv(argv: list[str], where: str) -> tuple[argparse.Namespace, list[str]]:
    """`agent ...` parsed by the agent command's own parser; returns it and the child's
    words, which must parse with xenmca's parser and carry --events."""
    assert argv[0] == "agent", f"{where}: the entrypoint is not xenmca agent: {argv}"
    args = agent_parser().parse_args(argv[1:])
    child = list(args.child)
    if child[:1] == ["--"]:
        child = child[1:]
    assert child == child_words(argv), where
    assert args.listen == f"0.0.0.0:{AGENT_PORT}", where
    assert args.token_file, f"{where}: the agent checks identities only with --token-file"
    spec = child_spec(child)
    assert spec.events_file == Path(CHILD_EVENTS), (
        f"{where}: WatchEvents needs the child's --events"
    )
    assert child[0] in {"serve", "dom0"}, where
    parsed = build_parser().parse_args(child)
    assert str(parsed.events) == CHILD_EVENTS, where
    assert flag_value(child, "--token-file") == args.token_file, where
    return args, child


# --- every component under the agent ----------------------------------------------------


def k8s_component_argv(name: str, tmp_path: Path) -> list[str]:
    workload = next(w for w in workloads() if w["metadata"]["name"] == name)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return executed_argv(container, tmp_path, {"HOSTNAME": "pcpu-host-1", "POD_INDEX": ""})


@pytest.mark.parametrize("name", ["pcpu-host", "xen-coordinator", "dom0"])
def test_every_pod_runs_its_component_under_the_agent(name: str, tmp_path: Path) -> None:
    workload = next(w for w in workloads() if w["metadata"]["name"] == name)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    args, child = check_agent_argv(k8s_component_argv(name, tmp_path), name)
    # The agent presents the component's own certificate (its Secret at TLS_DIR).
    tls = [str(args.tls_cert), str(args.tls_key), str(args.tls_ca)]
    assert tls == [f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.key", f"{TLS_DIR}/ca.crt"], name
    assert [flag_value(child, f) for f in ("--tls-cert", "--tls-key", "--tls-ca")] == tls, name
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["agent"] == AGENT_PORT
    # Alive while the agent is: a killed or paused child is a scenario's doing.
    assert container["livenessProbe"] == {
        **container["livenessProbe"],
        "tcpSocket": {"port": "agent"},
    }
    for probe in ("startupProbe", "readinessProbe"):
        assert "tcpSocket" not in container[probe], f"{name} {probe} must ask the child"
        if "grpc" in container[probe]:
            assert container[probe]["grpc"]["port"] != AGENT_PORT
    # Events live on the writable /tmp volume.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts and str(args.events).startswith("/tmp/")


def test_the_pcpu_pod_still_serves_its_ordinals_pcpus_under_the_agent(tmp_path: Path) -> None:
    layout = StatefulSetLayout()
    _, child = check_agent_argv(k8s_component_argv("pcpu-host", tmp_path), "pcpu-host")
    parsed = build_parser().parse_args(child)
    assert parsed.pcpus == list(range(layout.per_host, 2 * layout.per_host))  # pod 1
    assert int(parsed.base_port) + layout.per_host == layout.base_port


@pytest.mark.parametrize("name", ["pcpu-a", "pcpu-b", "xen", "dom0"])
def test_every_compose_service_runs_its_component_under_the_agent(name: str) -> None:
    service = compose_components()[name]
    args, _ = check_agent_argv(service["command"], name)
    assert args.token_file == "/run/secrets/tokens"  # the compose secret `tokens`


def test_compose_publishes_each_agent_on_its_own_loopback_port() -> None:
    published = {}
    for name, service in compose_components().items():
        (mapping,) = [p for p in service["ports"] if p.endswith(f":{AGENT_PORT}")]
        host, host_port, _ = mapping.split(":")
        assert host == "127.0.0.1", name
        published[name] = int(host_port)
    assert len(set(published.values())) == len(published)


def test_compose_faults_override_gives_the_agents_root_and_net_admin_only() -> None:
    override = yaml.safe_load(COMPOSE_FAULTS.read_text())
    assert set(override["services"]) == set(compose_components())
    for name, service in override["services"].items():
        assert service["user"].split(":")[0] == "0", name
        assert "NET_ADMIN" in service["cap_add"], name
        assert set(service) == {"user", "cap_add"}, name
    # The default file stays non-root with every capability dropped.
    for name, service in compose()["services"].items():
        assert "cap_add" not in service and service["user"].startswith(str(UID)), name
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "iproute2" in dockerfile


# --- partitions under the restricted profile ---------------------------------------------


def test_a_non_root_agent_says_it_cannot_cut_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the cluster's agents (uid 10001, no NET_ADMIN) answer to CutNetwork: the
    reason of FAILED_PRECONDITION NETWORK_CONTROL_UNAVAILABLE (deploy/README.md)."""
    from xenmca.agent import network

    monkeypatch.setattr(network.os, "geteuid", lambda: UID)
    reason = network.NetworkControl("eth0").unavailable_reason()
    assert reason == f"cutting the network needs root (the agent runs as uid {UID})"
