"""The runner that drives a deployment (issue 16 item 4): its inventories and the Job.

- the runner inventories (deploy/compose/target.json, deploy/k8s/run/target.yaml)
  load with TargetTestbed's parser and list every pCPU once at the coordinator's
  inventory's addresses, the agents at the Services' names and ports;
- the compose runner and the cluster Job run the committed scenario and target;
- the Job mounts dom0's PVC at the inventory's db path, next to dom0 (pod affinity),
  is locked down like the other pods and is applied apart from the deployment.

No cluster and no Docker engine: the files are read as data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from deploy_files import (
    AGENT_PORT,
    DEPLOY,
    K8S,
    RUN,
    TLS_DIR,
    UID,
    StatefulSetLayout,
    child_words,
    compose,
    compose_components,
    compose_path,
    executed_argv,
    find,
    flag_value,
    job_pod,
    k8s_target,
    run_documents,
    run_find,
)

from xenmca.cli import build_parser
from xenmca.testbed.infra.target import TargetTestbed
from xenmca.testbed.scenario.loader import load_scenario
from xenmca.xen.inventory import load_inventory

MAKE_TARGET = K8S / "make-target.py"
EXAMPLE_TOKENS = DEPLOY / "compose" / "tokens.example.yaml"


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
