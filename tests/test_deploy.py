"""deploy/: the inventory generator, and that the compose file, the Kubernetes manifests
and the Dockerfile agree with each other and with the xenmca commands they run.

Schema validation (kubernetes-validate --strict, the Compose spec, hadolint) is
deploy/validate.sh's job; these tests need nothing but the project itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from xenmca.dom0.log_store import LogStore
from xenmca.pcpu.command import parse_pcpu_list
from xenmca.rpc.identity import KNOWN_IDENTITIES, TokenBook
from xenmca.xen.inventory import load_inventory

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
MAKE_INVENTORY = K8S / "make-inventory.py"
TLS_DIR = "/etc/xenmca/tls"
TLS_FLAGS = {"--tls-cert": "tls.crt", "--tls-key": "tls.key", "--tls-ca": "ca.crt"}
UID = 10001
XENMCA = (sys.executable, "-m", "xenmca.cli")


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] in {"Deployment", "StatefulSet"}]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def run_line(container: dict[str, Any]) -> list[str]:
    """The words of the command a container runs (its shell script, split, or its args)."""
    words = [*container.get("command", []), *container.get("args", [])]
    return shlex.split(" ".join(words).replace("\\\n", " "), comments=True)


def flag_value(words: list[str], flag: str) -> str:
    assert flag in words, f"{flag} not passed: {words}"
    return words[words.index(flag) + 1]


def child_words(words: list[str]) -> list[str]:
    """The component's own command line: the words after `xenmca agent ... --`."""
    assert "agent" in words and "--" in words, f"not run under xenmca agent: {words}"
    assert words.index("agent") < words.index("--"), words
    return words[words.index("--") + 1 :]


def make_inventory(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_INVENTORY), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


class StatefulSetLayout:
    """The pCPU layout the pcpu-host StatefulSet and its headless Service define."""

    def __init__(self) -> None:
        self.statefulset = find("StatefulSet", "pcpu-host")
        spec = self.statefulset["spec"]
        self.service = find("Service", spec["serviceName"])
        self.container = spec["template"]["spec"]["containers"][0]
        env = env_of(self.container)
        self.hosts = spec["replicas"]
        self.per_host = int(env["PCPUS_PER_HOST"])
        self.base_port = int(env["BASE_PORT"])
        self.namespace = self.statefulset["metadata"]["namespace"]

    def address(self, pcpu: int) -> str:
        ordinal, offset = divmod(pcpu, self.per_host)
        name = self.statefulset["metadata"]["name"]
        host = f"{name}-{ordinal}.{self.service['metadata']['name']}.{self.namespace}"
        return f"{host}.svc.cluster.local:{self.base_port + offset}"


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


# --- compose -----------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose_components() -> dict[str, dict[str, Any]]:
    """The deployment's services: every service that is not behind a profile (the runner)."""
    return {n: s for n, s in compose()["services"].items() if not s.get("profiles")}


def compose_path(text: str) -> Path:
    """A path in compose.yaml (relative to deploy/), with ${VAR:-default} at its default."""
    return DEPLOY / re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_compose_services_run_as_non_root_with_healthchecks_in_order() -> None:
    services = compose_components()
    assert set(services) == {"pcpu-a", "pcpu-b", "xen", "dom0"}
    assert set(compose()["services"]) - set(services) == {"runner"}
    for name, service in compose()["services"].items():
        assert service["user"].split(":")[0] == str(UID), name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert service["secrets"] == ["tokens"], name
        if name in services:
            assert service["healthcheck"]["test"][0] == "CMD", name
    assert services["xen"]["depends_on"] == {
        "pcpu-a": {"condition": "service_healthy"},
        "pcpu-b": {"condition": "service_healthy"},
    }
    assert services["dom0"]["depends_on"] == {"xen": {"condition": "service_healthy"}}
    assert "dom0-log:/data" in services["dom0"]["volumes"]
    assert "dom0-log" in compose()["volumes"]


def test_compose_inventory_matches_the_pcpu_services() -> None:
    data = compose()
    services = data["services"]
    inventory = load_inventory(compose_path(data["configs"]["inventory"]["file"]))
    expected: dict[int, str] = {}
    for name in ("pcpu-a", "pcpu-b"):
        words = services[name]["command"]
        pcpus = parse_pcpu_list(flag_value(words, "--pcpus"))
        base = int(flag_value(words, "--base-port"))
        expected.update({pcpu: f"{name}:{base + pcpu}" for pcpu in pcpus})
        health_port = int(services[name]["environment"]["XENMCA_HEALTH_PORT"])
        assert health_port == base + pcpus[0], f"{name} health check asks the wrong port"
    assert inventory == expected
    assert sorted(inventory) == list(range(64))
    xen = services["xen"]
    (config,) = xen["configs"]
    assert flag_value(xen["command"], "--inventory") == config["target"]
    assert flag_value(services["dom0"]["command"], "--xen") == "xen:50050"


def test_compose_example_tokens_load_and_are_marked_as_placeholders() -> None:
    tokens_file = compose_path(compose()["secrets"]["tokens"]["file"])
    book = TokenBook.load(tokens_file)
    assert set(book.tokens) == set(KNOWN_IDENTITIES)
    assert all(token.startswith("REPLACE-ME") for token in book.tokens.values())


# --- Dockerfile and the health checks ------------------------------------------------------

DOCKERFILE = DEPLOY / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def healthcheck_command() -> list[str]:
    (healthcheck,) = [
        rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"
    ]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert isinstance(command, list)
    return command


def test_the_dockerfile_runs_xenmca_as_non_root_with_a_health_check() -> None:
    instructions = dict(dockerfile_instructions())
    assert instructions["FROM"] == "python:3.11-slim"
    assert instructions["USER"].split(":")[0] == str(UID)
    assert json.loads(instructions["ENTRYPOINT"]) == ["xenmca"]
    assert "XENMCA_HEALTH_PORT" in healthcheck_command()[-1]
    assert compose()["x-grpc-health"]["test"] == ["CMD", *healthcheck_command()]


def wait_for_file(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def test_the_image_health_check_reports_a_serving_pcpu_and_a_stopped_one(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    serve = ["serve", "pcpu", "--pcpu", "0", "--listen", "127.0.0.1:0", "--ready-file", str(ready)]
    server = subprocess.Popen(
        [*XENMCA, *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_file(ready)
        port = json.loads(ready.read_text())["0"].rpartition(":")[2]
        check = [sys.executable, *healthcheck_command()[1:]]
        environment = {**os.environ, "XENMCA_HEALTH_PORT": port}
        assert subprocess.run(check, env=environment, check=False, timeout=30).returncode == 0
    finally:
        server.terminate()
        server.wait(timeout=20)
    stopped = subprocess.run(check, env=environment, capture_output=True, check=False, timeout=30)
    assert stopped.returncode != 0


def dom0_probe_commands() -> list[list[str]]:
    pod = find("Deployment", "dom0")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Liveness asks dom0's agent (a TCP connect), not the log: tests/test_deploy_agents.py.
    commands = [container[p]["exec"]["command"] for p in ("startupProbe", "readinessProbe")]
    commands.append(compose()["services"]["dom0"]["healthcheck"]["test"][1:])
    return commands


async def exit_status(command: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_the_dom0_probes_pass_on_an_open_log_and_fail_without_one(tmp_path: Path) -> None:
    db = tmp_path / "dom0.sqlite"
    store = await LogStore.open(db)
    try:
        for command in dom0_probe_commands():
            assert command[0] == "python"
            here = [sys.executable, *(w.replace("/data/dom0.sqlite", str(db)) for w in command[1:])]
            assert await exit_status(here) == 0
            missing = [w.replace(str(db), str(tmp_path / "none.sqlite")) for w in here]
            assert await exit_status(missing) != 0
    finally:
        await store.close()
