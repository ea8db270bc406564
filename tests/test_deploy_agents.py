"""deploy/ under `xenmca agent`, and the runner that drives a deployment (issue 16 item 4).

No cluster and no Docker engine: these tests read the compose files and the manifests
and check them against xenmca's own parsers.

- every component (compose and Kubernetes) runs `xenmca agent ... -- <component>`; the
  agent's argv, after the container's shell has substituted its variables (run with a
  fake `xenmca` that prints its arguments), parses with the agent command's parser,
  and the child gets `--events`;
- the runner inventories (deploy/compose/target.json, deploy/k8s/run/target.yaml)
  load with TargetTestbed's parser and list every pCPU once at the coordinator's
  inventory's addresses, the agents at the Services' names and ports;
- the runner's pod labels are admitted by the NetworkPolicies to the agent, pCPU and
  coordinator ports, and nothing else is newly opened;
- the Job mounts dom0's PVC at the inventory's db path, next to dom0 (pod affinity).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy import (
    DEPLOY,
    K8S,
    TLS_DIR,
    UID,
    StatefulSetLayout,
    child_words,
    compose,
    compose_components,
    compose_path,
    env_of,
    find,
    flag_value,
    k8s_documents,
    workloads,
)

from xenmca.agent.child_argv import child_spec
from xenmca.agent.command import add_arguments as add_agent_arguments
from xenmca.cli import build_parser
from xenmca.testbed.infra.target import TargetTestbed
from xenmca.testbed.scenario.loader import load_scenario
from xenmca.xen.inventory import load_inventory

AGENT_PORT = 50070
CHILD_EVENTS = "/tmp/events.jsonl"
RUN = K8S / "run"
MAKE_TARGET = K8S / "make-target.py"
COMPOSE_FAULTS = DEPLOY / "compose.faults.yaml"
EXAMPLE_TOKENS = DEPLOY / "compose" / "tokens.example.yaml"
RUNNER_LABELS = {"app.kubernetes.io/name": "xenmca", "app.kubernetes.io/component": "runner"}


def agent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xenmca agent", exit_on_error=False)
    add_agent_arguments(parser)
    return parser


def run_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(RUN.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def run_find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in run_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name} in deploy/k8s/run, found {len(matches)}"
    return matches[0]


def executed_argv(
    container: dict[str, Any], tmp_path: Path, environment: dict[str, str] | None = None
) -> list[str]:
    """The argv `xenmca` gets from this container: its shell script run with a fake
    `xenmca` that prints its arguments (variables substituted as the pod's shell would),
    or its args after the image's entrypoint when it has no command."""
    if "command" not in container:
        return list(container["args"])
    fake = tmp_path / "xenmca"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        [*container["command"], *container["args"]],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env_of(container), **(environment or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Lines the script echoes itself come first; the fake prints one argument a line.
    return lines[lines.index("agent") :] if "agent" in lines else lines


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


# --- the runner inventories -------------------------------------------------------------


def load_target(inventory: dict[str, Any], tmp_path: Path) -> TargetTestbed:
    """TargetTestbed's parser on `inventory`, its token file and dom0 log made local."""
    local = json.loads(json.dumps(inventory))
    local["token_file"] = str(EXAMPLE_TOKENS)
    db = tmp_path / "dom0.sqlite"
    db.write_bytes(b"")
    local["dom0"]["db"] = str(db)
    local.pop("tls", None)  # the operator's certificate: its paths are checked separately
    path = tmp_path / "target.json"
    path.write_text(json.dumps(local))
    return TargetTestbed(path, tmp_path / "out")


def check_target_layout(bed: TargetTestbed, coordinator_inventory: dict[int, str]) -> None:
    assert bed.pcpu_addresses == coordinator_inventory
    listed = [pcpu for _, pcpus, _ in bed.hosts for pcpu in pcpus]
    assert sorted(listed) == list(range(len(coordinator_inventory)))  # every pCPU once
    assert len(set(bed.pcpu_addresses.values())) == len(bed.pcpu_addresses)
    for _, pcpus, _ in bed.hosts:
        # A host's pCPUs are served by one process: one host name in their addresses.
        assert len({bed.pcpu_addresses[p].rpartition(":")[0] for p in pcpus}) == 1
    agents = [process.agent for process in bed.components.values()]
    assert len(set(agents)) == len(agents)
    assert all(a.endswith(f":{AGENT_PORT}") for a in agents)


def test_the_compose_target_matches_the_services_and_the_coordinators_inventory(
    tmp_path: Path,
) -> None:
    data = compose()
    target = json.loads((DEPLOY / "compose" / "target.json").read_text())
    bed = load_target(target, tmp_path)
    check_target_layout(bed, load_inventory(compose_path(data["configs"]["inventory"]["file"])))
    services = compose_components()
    for name, pcpus, agent in bed.hosts:
        command = child_words(services[name]["command"])
        assert flag_value(command, "--pcpus") == f"{pcpus[0]}-{pcpus[-1]}"
        assert agent == f"{name}:{AGENT_PORT}"
    assert bed.xen_address == flag_value(child_words(services["dom0"]["command"]), "--xen")
    assert target["xen"]["agent"] == f"xen:{AGENT_PORT}"
    assert target["dom0"]["agent"] == f"dom0:{AGENT_PORT}"
    # dom0's log: where dom0 writes it, on the volume the runner mounts at the same path.
    db = flag_value(child_words(services["dom0"]["command"]), "--db")
    assert target["dom0"]["db"] == db
    runner = data["services"]["runner"]
    volume = next(v for v in services["dom0"]["volumes"] if v.endswith(":" + str(Path(db).parent)))
    assert volume in runner["volumes"] and not volume.endswith(":ro")
    assert target["token_file"] == "/run/secrets/tokens" and runner["secrets"] == ["tokens"]


def test_the_compose_runner_runs_the_committed_scenario_and_target(tmp_path: Path) -> None:
    data = compose()
    runner = data["services"]["runner"]
    assert runner["profiles"] == ["run"] and runner["restart"] == "no"
    configs = {c["source"]: c["target"] for c in runner["configs"]}
    (script,) = runner["command"]
    fake = tmp_path / "xenmca"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    shell = [*runner["entrypoint"], script.replace("$$", "$")]  # compose's $$ is a $
    done = subprocess.run(
        shell, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    args = build_parser().parse_args(argv)
    assert argv[0] == "run"
    assert str(args.target) == configs["target"]
    assert args.scenario == configs["scenario"]
    assert str(args.out).startswith("/results/") and "/results" in {
        v.split(":")[1] for v in runner["volumes"]
    }
    scenario = load_scenario(compose_path(data["configs"]["scenario"]["file"]))
    bed = load_target(
        json.loads(compose_path(data["configs"]["target"]["file"]).read_text()), tmp_path
    )
    bed.check_scenario(scenario.pcpus)
    assert {len(pcpus) for _, pcpus, _ in bed.hosts} == {scenario.pcpus_per_host}
    assert set(runner["depends_on"]) == set(compose_components())


def k8s_target() -> dict[str, Any]:
    configmap = run_find("ConfigMap", "xenmca-run-target")
    target = json.loads(configmap["data"]["target.json"])
    assert isinstance(target, dict)
    return target


def service_of(address: str) -> tuple[dict[str, Any], int]:
    """The Service an in-cluster address names (`svc.ns.svc.cluster.local:port` or a
    StatefulSet pod's `pod.svc.ns.svc.cluster.local:port`), and its port."""
    host, _, port = address.rpartition(":")
    labels = host.split(".")
    assert host.endswith(".xenmca.svc.cluster.local"), address
    name = labels[-5]  # the Service's name is before the namespace
    return find("Service", name), int(port)


def test_the_k8s_target_is_make_targets_output_and_loads(tmp_path: Path) -> None:
    layout = StatefulSetLayout()
    done = subprocess.run(
        [
            sys.executable,
            str(MAKE_TARGET),
            str(layout.hosts),
            str(layout.per_host),
            str(layout.base_port),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (RUN / "target.yaml").read_text(), (
        "deploy/k8s/run/target.yaml is stale: python deploy/k8s/make-target.py "
        f"{layout.hosts} {layout.per_host} {layout.base_port} > deploy/k8s/run/target.yaml"
    )
    coordinator = tmp_path / "inventory.txt"
    coordinator.write_text(find("ConfigMap", "xenmca-inventory")["data"]["inventory.txt"])
    bed = load_target(k8s_target(), tmp_path)
    check_target_layout(bed, load_inventory(coordinator))
    assert [name for name, _, _ in bed.hosts] == [
        f"pcpu-host-{ordinal}" for ordinal in range(layout.hosts)
    ]
    for ordinal, (_, pcpus, _) in enumerate(bed.hosts):
        first = ordinal * layout.per_host
        assert pcpus == list(range(first, first + layout.per_host))


def test_the_k8s_target_names_the_agents_services_and_ports() -> None:
    target = k8s_target()
    layout = StatefulSetLayout()
    expected_component = {
        target["xen"]["agent"]: "coordinator",
        target["dom0"]["agent"]: "dom0",
        **{host["agent"]: "pcpu-host" for host in target["pcpu_hosts"]},
    }
    for address, component in expected_component.items():
        service, port = service_of(address)
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == component
        (listed,) = [p for p in service["spec"]["ports"] if p["port"] == port]
        assert listed["targetPort"] == "agent" and port == AGENT_PORT
        # Published while the pod is not ready: a scenario has its child down then.
        assert service["spec"]["clusterIP"] == "None", address
        assert service["spec"]["publishNotReadyAddresses"] is True, address
    for ordinal, host in enumerate(target["pcpu_hosts"]):
        pod = host["agent"].split(".")[0]
        assert pod == f"{layout.statefulset['metadata']['name']}-{ordinal}"
    service, port = service_of(target["xen"]["address"])
    assert service["metadata"]["name"] == "xen-coordinator"
    assert port == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")


def test_the_k8s_scenario_fits_the_deployment(tmp_path: Path) -> None:
    layout = StatefulSetLayout()
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(run_find("ConfigMap", "xenmca-run-scenario")["data"]["scenario.yaml"])
    scenario = load_scenario(scenario_file)
    load_target(k8s_target(), tmp_path).check_scenario(scenario.pcpus)
    assert scenario.pcpus_per_host == layout.per_host


# --- the Job ------------------------------------------------------------------------------


def job_pod() -> dict[str, Any]:
    pod = run_find("Job", "xenmca-run")["spec"]["template"]
    assert isinstance(pod, dict)
    return pod


def test_the_job_runs_once_with_the_target_scenario_and_results(tmp_path: Path) -> None:
    job = run_find("Job", "xenmca-run")
    assert job["spec"]["backoffLimit"] == 0
    pod = job_pod()["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    argv = executed_argv(container, tmp_path)
    argv = argv[argv.index("run") :]
    args = build_parser().parse_args(argv)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def mounted(path: str) -> tuple[dict[str, Any], str]:
        """The volume under which `path` lies, and the path within it."""
        (name,) = [n for n, m in mounts.items() if path.startswith(m["mountPath"] + "/")]
        return volumes[name], path[len(mounts[name]["mountPath"]) + 1 :]

    volume, key = mounted(str(args.target))
    assert volume["configMap"]["name"] == "xenmca-run-target"
    assert key in run_find("ConfigMap", "xenmca-run-target")["data"]
    volume, key = mounted(args.scenario)
    assert volume["configMap"]["name"] == "xenmca-run-scenario"
    assert key in run_find("ConfigMap", "xenmca-run-scenario")["data"]
    volume, _ = mounted(str(args.out))
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert run_find("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    target = k8s_target()
    volume, key = mounted(target["token_file"])
    assert volume["secret"]["secretName"] == "xenmca-tokens"
    assert key in {item["path"] for item in volume["secret"]["items"]}
    for file in target["tls"].values():
        volume, _ = mounted(file)
        assert volume["secret"]["secretName"] == "xenmca-tls-operator"
    assert target["tls"] == {
        "cert": f"{TLS_DIR}/tls.crt",
        "key": f"{TLS_DIR}/tls.key",
        "ca": f"{TLS_DIR}/ca.crt",
    }


def test_the_job_reads_dom0s_log_on_dom0s_node() -> None:
    pod = job_pod()["spec"]
    (container,) = pod["containers"]
    db = Path(k8s_target()["dom0"]["db"])
    dom0 = find("Deployment", "dom0")["spec"]["template"]
    (dom0_container,) = dom0["spec"]["containers"]
    assert flag_value(child_words(dom0_container["args"]), "--db") == str(db)
    (dom0_claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in dom0["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(db.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == dom0_claim
    assert not mount.get("readOnly", False), "SQLite's WAL needs the volume writable"
    # ReadWriteOnce: only on dom0's node.
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= dom0["metadata"]["labels"].items()
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "dom0"


def test_the_job_pod_is_locked_down_like_the_others() -> None:
    pod = job_pod()["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) >= {"cpu", "memory"}


def test_the_run_is_applied_separately_from_the_deployment() -> None:
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert not any(r.startswith("run") for r in base["resources"])
    run = yaml.safe_load((RUN / "kustomization.yaml").read_text())
    assert set(run["resources"]) == {"target.yaml", "scenario.yaml", "job.yaml"}
    assert run["images"] == base["images"]
    assert all(d["metadata"]["namespace"] == "xenmca" for d in run_documents())


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


# --- partitions under the restricted profile ---------------------------------------------


def test_a_non_root_agent_says_it_cannot_cut_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the cluster's agents (uid 10001, no NET_ADMIN) answer to CutNetwork: the
    reason of FAILED_PRECONDITION NETWORK_CONTROL_UNAVAILABLE (deploy/README.md)."""
    from xenmca.agent import network

    monkeypatch.setattr(network.os, "geteuid", lambda: UID)
    reason = network.NetworkControl("eth0").unavailable_reason()
    assert reason == f"cutting the network needs root (the agent runs as uid {UID})"
