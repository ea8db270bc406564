"""What the deploy/ tests share (tests/test_deploy*.py): where deploy/ is, the
Kubernetes manifests and the compose file read as data, the pcpu-host StatefulSet's
layout, the scenario run's manifests (deploy/k8s/run) and a container's argv as its
shell runs it. No tests here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TLS_DIR = "/etc/xenmca/tls"
TLS_FLAGS = {"--tls-cert": "tls.crt", "--tls-key": "tls.key", "--tls-ca": "ca.crt"}
UID = 10001
AGENT_PORT = 50070
RUN = K8S / "run"


def manifests(folder: Path) -> list[dict[str, Any]]:
    """Every YAML document in folder's *.yaml but its kustomization.yaml."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def k8s_documents() -> list[dict[str, Any]]:
    return manifests(K8S)


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


DOCKERFILE = DEPLOY / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def run_documents() -> list[dict[str, Any]]:
    return manifests(RUN)


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


def k8s_target() -> dict[str, Any]:
    configmap = run_find("ConfigMap", "xenmca-run-target")
    target = json.loads(configmap["data"]["target.json"])
    assert isinstance(target, dict)
    return target


def job_pod() -> dict[str, Any]:
    pod = run_find("Job", "xenmca-run")["spec"]["template"]
    assert isinstance(pod, dict)
    return pod
