"""deploy/ serves and lets in Prometheus: metrics ports, Services, NetworkPolicy, scrape configs.

Every component of the Kubernetes manifests and of the compose file runs with
``--metrics-host 0.0.0.0 --metrics-port PORT`` and exposes that port; the
NetworkPolicy lets Prometheus pods of the monitoring namespace in on it (and only
on it); the scrape configs in deploy/prometheus find exactly those ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from deploy_files import (
    DEPLOY,
    DOCKERFILE,
    child_words,
    compose_components,
    dockerfile_instructions,
    find,
    flag_value,
    k8s_documents,
    run_line,
    workloads,
)

from xenmca.cli import build_parser

PROMETHEUS = DEPLOY / "prometheus"
METRICS = "metrics"
COMPONENTS = {"pcpu-host", "coordinator", "dom0"}


def metrics_port(container: dict[str, Any]) -> int:
    (port,) = [p for p in container["ports"] if p["name"] == METRICS]
    assert port["protocol"] == "TCP"
    return int(port["containerPort"])


def test_every_pod_serves_metrics_on_its_named_port_for_everyone() -> None:
    ports = set()
    for workload in workloads():
        template = workload["spec"]["template"]
        (container,) = template["spec"]["containers"]
        port = metrics_port(container)
        words = run_line(container)
        assert flag_value(words, "--metrics-port") == str(port), workload["metadata"]["name"]
        assert flag_value(words, "--metrics-host") == "0.0.0.0", workload["metadata"]["name"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        ports.add(port)
    assert len(ports) == 1, "one metrics port for every component keeps one policy and config"


def test_a_service_lists_the_metrics_port_of_each_component() -> None:
    listed = {}
    for service in (d for d in k8s_documents() if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            if port["name"] == METRICS:
                assert port["targetPort"] == METRICS
                component = service["spec"]["selector"]["app.kubernetes.io/component"]
                listed[component] = port["port"]
    (port,) = set(listed.values())
    assert set(listed) == COMPONENTS
    dom0 = find("Service", "dom0-metrics")
    assert dom0["spec"]["clusterIP"] == "None"
    assert port == metrics_port(
        find("Deployment", "dom0")["spec"]["template"]["spec"]["containers"][0]
    )


def test_the_network_policy_lets_prometheus_in_on_the_metrics_port_only() -> None:
    policy = find("NetworkPolicy", "metrics-from-prometheus")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]  # one entry: the namespace AND the pod label, not either
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    (port,) = rule["ports"]
    container = find("Deployment", "xen-coordinator")["spec"]["template"]["spec"]["containers"][0]
    assert port == {"protocol": "TCP", "port": metrics_port(container)}


def test_prometheus_may_discover_the_pods_it_scrapes() -> None:
    role, binding = list(yaml.safe_load_all((PROMETHEUS / "rbac.yaml").read_text()))
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "xenmca"
    (rule,) = role["rules"]
    assert rule["resources"] == ["pods"] and set(rule["verbs"]) == {"get", "list", "watch"}
    (subject,) = binding["subjects"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert subject["namespace"] == "monitoring"


def relabel(config: dict[str, Any], source: str) -> list[dict[str, Any]]:
    (job,) = config["scrape_configs"]
    return [r for r in job["relabel_configs"] if r["source_labels"] == [source]]


def test_the_cluster_scrape_config_keeps_the_metrics_port_of_xenmca_pods() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod" and discovery["namespaces"]["names"] == ["xenmca"]
    assert job["metrics_path"] == "/metrics"
    (port_rule,) = relabel(config, "__meta_kubernetes_pod_container_port_name")
    assert port_rule == {
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": METRICS,
        "action": "keep",
    }
    (name_rule,) = relabel(config, "__meta_kubernetes_pod_label_app_kubernetes_io_name")
    assert name_rule["regex"] == "xenmca" and name_rule["action"] == "keep"
    (component,) = relabel(config, "__meta_kubernetes_pod_label_app_kubernetes_io_component")
    assert component["target_label"] == "component"


def test_compose_publishes_each_metrics_port_and_the_host_config_scrapes_them() -> None:
    services = compose_components()
    published = {}
    for name, service in services.items():
        command = child_words(service["command"])  # the component's, under xenmca agent
        port = flag_value(command, "--metrics-port")
        assert flag_value(command, "--metrics-host") == "0.0.0.0", name
        (mapping,) = [p for p in service["ports"] if p.endswith(f":{port}")]
        host, host_port, _ = mapping.split(":")
        assert host == "127.0.0.1", name
        published[name] = f"127.0.0.1:{host_port}"
        args = build_parser().parse_args(command)
        assert args.metrics_port == int(port) and args.metrics_host == "0.0.0.0", name
    assert len(set(published.values())) == len(published)
    config = yaml.safe_load((PROMETHEUS / "compose.yml").read_text())
    (job,) = config["scrape_configs"]
    scraped = {
        target: group["labels"]["component"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = {"xen": "coordinator", "dom0": "dom0", "pcpu-a": "pcpu-host", "pcpu-b": "pcpu-host"}
    assert scraped == {published[name]: component for name, component in expected.items()}


def test_the_dom0_manifest_arguments_parse() -> None:
    (container,) = find("Deployment", "dom0")["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(child_words(container["args"]))
    assert args.metrics_port == metrics_port(container) and args.metrics_host == "0.0.0.0"


def test_the_image_exposes_the_metrics_port() -> None:
    exposed = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "EXPOSE")
    container = find("Deployment", "xen-coordinator")["spec"]["template"]["spec"]["containers"][0]
    assert str(metrics_port(container)) in exposed.split()
    assert Path(DOCKERFILE).exists()
