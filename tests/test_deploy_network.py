"""deploy/k8s's NetworkPolicies, evaluated here (ingress, default deny): the runner's pod
labels are admitted to the agent, pCPU and coordinator ports and nothing else; no one
else reaches an agent; what the other components reach is what it was before the agents.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from deploy_files import (
    AGENT_PORT,
    StatefulSetLayout,
    job_pod,
    k8s_documents,
    workloads,
)

RUNNER_LABELS = {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "runner"}


# --- NetworkPolicies ----------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def port_numbers(pod: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in pod["containers"] for p in c["ports"]}


def in_range(entry: dict[str, Any], named: dict[str, int], port: int) -> bool:
    """A NetworkPolicy port entry (a number or a named container port, maybe endPort)."""
    first = named.get(entry["port"]) if isinstance(entry["port"], str) else entry["port"]
    return first is not None and first <= port <= entry.get("endPort", first)


@functools.cache
def network_policies() -> tuple[dict[str, Any], ...]:
    return tuple(d for d in k8s_documents() if d["kind"] == "NetworkPolicy")


def admitted(source: dict[str, str], destination: dict[str, Any], port: int) -> bool:
    """Whether a pod of the namespace xenmca labelled `source` may connect to `port` of
    the pod template `destination`, by the NetworkPolicies (ingress; default deny)."""
    labels = destination["metadata"]["labels"]
    named = port_numbers(destination["spec"])
    for policy in network_policies():
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            peer_ok = peers is None or any(
                "namespaceSelector" not in peer
                and "ipBlock" not in peer
                and selects(peer.get("podSelector", {}), source)
                for peer in peers
            )
            ports = rule.get("ports")
            port_ok = ports is None or any(in_range(entry, named, port) for entry in ports)
            if peer_ok and port_ok:
                return True
    return False


def destinations() -> dict[str, dict[str, Any]]:
    return {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: w["spec"][
            "template"
        ]
        for w in workloads()
    }


def candidate_ports(template: dict[str, Any], layout: StatefulSetLayout) -> set[int]:
    pcpu_ports = range(layout.base_port, layout.base_port + layout.per_host)
    return {*port_numbers(template["spec"]).values(), *pcpu_ports, AGENT_PORT, 50050}


def test_the_runner_pod_reaches_the_agents_pcpus_and_coordinator_and_nothing_else() -> None:
    layout = StatefulSetLayout()
    labels = job_pod()["metadata"]["labels"]
    assert labels == RUNNER_LABELS
    pcpu_ports = set(range(layout.base_port, layout.base_port + layout.per_host))
    expected = {
        "pcpu-host": {AGENT_PORT, *pcpu_ports},
        "coordinator": {AGENT_PORT, 50050},
        "dom0": {AGENT_PORT},
    }
    for component, template in destinations().items():
        reached = {p for p in candidate_ports(template, layout) if admitted(labels, template, p)}
        assert reached == expected[component], component


@pytest.mark.parametrize(
    "source",
    [
        {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "coordinator"},
        {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "dom0"},
        {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "pcpu-host"},
        {"app.kubernetes.io/component": "operator"},
        {"app.kubernetes.io/component": "runner"},  # not labelled as xenmca's runner
        {"app": "something-else"},
    ],
)
def test_no_one_but_the_runner_reaches_an_agent(source: dict[str, str]) -> None:
    for component, template in destinations().items():
        assert not admitted(source, template, AGENT_PORT), (source, component)


def test_what_the_others_reach_is_unchanged() -> None:
    """The pre-agent rules: coordinator -> pCPU ports, dom0 -> 50050, operator -> both."""
    layout = StatefulSetLayout()
    pcpu_ports = set(range(layout.base_port, layout.base_port + layout.per_host))
    coordinator = {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "coordinator"}
    dom0 = {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "dom0"}
    operator = {"app.kubernetes.io/component": "operator"}
    expected = {
        "coordinator": {"pcpu-host": pcpu_ports, "coordinator": set(), "dom0": set()},
        "dom0": {"pcpu-host": set(), "coordinator": {50050}, "dom0": set()},
        "operator": {"pcpu-host": pcpu_ports, "coordinator": {50050}, "dom0": set()},
    }
    for name, source in (("coordinator", coordinator), ("dom0", dom0), ("operator", operator)):
        for component, template in destinations().items():
            reached = {
                p for p in candidate_ports(template, layout) if admitted(source, template, p)
            }
            assert reached == expected[name][component], (name, component)
