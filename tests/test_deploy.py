"""deploy/k8s: the inventory generator, and that the Kubernetes manifests agree with
each other and with the xenmca commands they run (the pCPU StatefulSet's layout, the
probes, the locked-down pods, TLS identities, volumes, the pCPU NetworkPolicy).

The compose file and the image: tests/test_deploy_compose.py; the agents:
tests/test_deploy_agents.py; the runner and its Job: tests/test_deploy_runner.py; the
NetworkPolicies as a whole: tests/test_deploy_network.py. Schema validation
(kubernetes-validate --strict, the Compose spec, hadolint) is deploy/validate.sh's job;
these tests need nothing but the project itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploy_files import (
    K8S,
    TLS_DIR,
    TLS_FLAGS,
    UID,
    StatefulSetLayout,
    env_of,
    find,
    flag_value,
    k8s_documents,
    run_line,
    workloads,
)

from xenmca.pcpu.command import parse_pcpu_list
from xenmca.xen.inventory import load_inventory

MAKE_INVENTORY = K8S / "make-inventory.py"


def make_inventory(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_INVENTORY), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_generated_inventory_lists_every_pcpu_once_at_the_statefulset_pods(
    tmp_path: Path,
) -> None:
    layout = StatefulSetLayout()
    assert layout.service["spec"]["clusterIP"] == "None", "the pCPU Service must be headless"
    result = make_inventory(layout.hosts, layout.per_host, layout.base_port)
    assert result.returncode == 0, result.stderr
    configmap = yaml.safe_load(result.stdout)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["namespace"] == layout.namespace
    inventory_file = tmp_path / "inventory.txt"
    inventory_file.write_text(configmap["data"]["inventory.txt"])

    inventory = load_inventory(inventory_file)

    total = layout.hosts * layout.per_host
    assert total == 256
    assert sorted(inventory) == list(range(total))
    assert len(set(inventory.values())) == total
    assert inventory == {pcpu: layout.address(pcpu) for pcpu in range(total)}
    assert inventory[255] == "pcpu-host-3.pcpu-hosts.xenmca.svc.cluster.local:50163"


def test_the_committed_inventory_is_the_scripts_output() -> None:
    layout = StatefulSetLayout()
    result = make_inventory(layout.hosts, layout.per_host, layout.base_port)
    assert result.returncode == 0, result.stderr
    committed = (K8S / "inventory.yaml").read_text()
    assert committed == result.stdout, (
        "deploy/k8s/inventory.yaml is stale: run "
        f"python deploy/k8s/make-inventory.py {layout.hosts} {layout.per_host} "
        f"{layout.base_port} > deploy/k8s/inventory.yaml"
    )


def test_the_coordinator_reads_the_inventory_configmap() -> None:
    configmap = yaml.safe_load((K8S / "inventory.yaml").read_text())
    pod = find("Deployment", "xen-coordinator")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounted = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = [name for name, cm in mounted.items() if cm == configmap["metadata"]["name"]]
    (key,) = configmap["data"]
    assert flag_value(run_line(container), "--inventory") == f"{mounts[volume]}/{key}"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((1000, 64, 50100), "must be above the last pod's first pCPU"),
        ((1, 64, 65500), "runs past port 65535"),
        ((0, 64, 50100), "positive integer"),
        ((2000, 64, 60000), "more than xenmca hosts"),
    ],
)
def test_the_inventory_script_refuses_layouts_that_cannot_work(
    args: tuple[int, ...], complaint: str
) -> None:
    result = make_inventory(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("environment", "ordinal"),
    [
        ({"HOSTNAME": "pcpu-host-3", "POD_INDEX": ""}, 3),
        ({"HOSTNAME": "ignored", "POD_INDEX": "2"}, 2),
        ({"HOSTNAME": "pcpu-host-63", "POD_INDEX": ""}, 63),
    ],
)
def test_each_pcpu_pod_serves_its_ordinals_range_on_the_common_ports(
    tmp_path: Path, environment: dict[str, str], ordinal: int
) -> None:
    layout = StatefulSetLayout()
    fake = tmp_path / "xenmca"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    container = layout.container
    result = subprocess.run(
        [*container["command"], *container["args"]],
        env={
            "PATH": f"{tmp_path}:/usr/bin:/bin",
            **env_of(container),
            **environment,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    words = result.stdout.splitlines()
    pcpus = parse_pcpu_list(flag_value(words, "--pcpus"))
    first = ordinal * layout.per_host
    assert pcpus == list(range(first, first + layout.per_host))
    base = int(flag_value(words, "--base-port"))
    # xenmca serve pcpu: pCPU i listens on --base-port + i.
    assert [base + p for p in pcpus] == [int(layout.address(p).rpartition(":")[2]) for p in pcpus]
    assert flag_value(words, "--host") == "0.0.0.0"


def test_a_pcpu_pod_without_an_ordinal_refuses_to_start(tmp_path: Path) -> None:
    container = StatefulSetLayout().container
    result = subprocess.run(
        [*container["command"], *container["args"]],
        env={"PATH": "/usr/bin:/bin", **env_of(container), "HOSTNAME": "pcpu", "POD_INDEX": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "ordinal" in result.stderr


def test_grpc_probes_ask_the_plaintext_health_listener() -> None:
    """The service ports need a client certificate; startup and readiness use
    --health-listen's port. Liveness asks the agent (tests/test_deploy_agents.py)."""
    layout = StatefulSetLayout()
    coordinator = find("Deployment", "xen-coordinator")["spec"]["template"]["spec"]
    for container in [layout.container, coordinator["containers"][0]]:
        health = int(flag_value(run_line(container), "--health-listen").split(":")[1])
        ports = {p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert health in ports and env["XENMCA_HEALTH_PORT"] == str(health)
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["grpc"]["port"] == health
        assert container["livenessProbe"]["tcpSocket"]["port"] == "agent"


def test_every_pod_runs_as_non_root_locked_down_with_probes_resources_and_secrets() -> None:
    assert {w["metadata"]["name"] for w in workloads()} == {"pcpu-host", "xen-coordinator", "dom0"}
    for workload in workloads():
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == UID, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security.get("runAsUser", UID) != 0, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) >= {"cpu", "memory"}, where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts[TLS_DIR] in secrets, f"{where}: no TLS secret at {TLS_DIR}"
            assert mounts["/etc/xenmca/tokens"] in secrets, f"{where}: no tokens secret"
            words = run_line(container)
            for flag, file_name in TLS_FLAGS.items():
                assert flag_value(words, flag) == f"{TLS_DIR}/{file_name}", where
            token_file = flag_value(words, "--token-file")
            assert token_file.startswith("/etc/xenmca/tokens/"), where


def test_each_component_has_its_own_tls_identity() -> None:
    tls_secrets = []
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        tls_secrets.append(volumes[mounts[TLS_DIR]]["secret"]["secretName"])
    assert len(set(tls_secrets)) == len(tls_secrets)


def test_writable_paths_are_volumes() -> None:
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"] for v in pod["volumes"]} | claims
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] in volumes
            words = run_line(container)
            for flag in ("--state-dir", "--db"):
                if flag in words:
                    path = Path(flag_value(words, flag))
                    directory = str(path if flag == "--state-dir" else path.parent)
                    assert directory in mounts, f"{flag} {path} is not on a volume"
    dom0 = find("Deployment", "dom0")["spec"]["template"]["spec"]
    (log_volume,) = [v for v in dom0["volumes"] if "persistentVolumeClaim" in v]
    claim = find("PersistentVolumeClaim", log_volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_single_writer_components_are_never_two_at_once() -> None:
    for name in ("xen-coordinator", "dom0"):
        spec = find("Deployment", name)["spec"]
        assert spec["replicas"] == 1
        assert spec["strategy"]["type"] == "Recreate"


def test_the_pcpu_network_policy_opens_exactly_the_pods_ports() -> None:
    layout = StatefulSetLayout()
    policy = find("NetworkPolicy", "pcpu-hosts-from-coordinator")
    (rule,) = policy["spec"]["ingress"]
    (ports,) = rule["ports"]
    assert ports["port"] == layout.base_port
    assert ports["endPort"] == layout.base_port + layout.per_host - 1


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert all(d["metadata"].get("namespace", "xenmca") == "xenmca" for d in k8s_documents())
