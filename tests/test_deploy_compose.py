"""deploy/compose.yaml and deploy/Dockerfile: the compose services (non-root, health
checks, start order), the compose inventory against the pCPU services, the example
tokens; the image (non-root, its health check run against a real pCPU) and dom0's
probes on an open log and without one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from deploy_files import (
    UID,
    compose,
    compose_components,
    compose_path,
    dockerfile_instructions,
    find,
    flag_value,
)

from xenmca.dom0.log_store import LogStore
from xenmca.pcpu.command import parse_pcpu_list
from xenmca.rpc.identity import KNOWN_IDENTITIES, TokenBook
from xenmca.xen.inventory import load_inventory

XENMCA = (sys.executable, "-m", "xenmca.cli")


# --- compose -----------------------------------------------------------------------------


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
