#!/usr/bin/env python3
"""Check, without Docker, that deploy/Dockerfile's COPY lines bring in enough to install xenmca.

Stages the paths that the Dockerfile COPYs (relative to the repository root, the
build context) into an empty folder, builds a wheel from it with pip as the
image's `pip install .` would, and checks that the wheel has the `xenmca`
command and each component's modules. This catches a COPY that a change to
pyproject.toml or the source layout made insufficient; it does not build the
image (that needs a Docker engine).

    python deploy/check-docker-context.py
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "node_modules", ".*_cache")
REQUIRED_FILES = (
    "xenmca/cli.py",
    "xenmca/pcpu/command.py",
    "xenmca/xen/command.py",
    "xenmca/dom0/command.py",
    "xenmca/record/v1/record_pb2.py",
    "xenmca/sal/v1/sal_service_pb2_grpc.py",
    "xenmca/hypervisor/v1/hypervisor_service_pb2_grpc.py",
    # The agent (every container's entrypoint) and the runner of the scenario Job.
    "xenmca/agent/command.py",
    "xenmca/agent/v1/agent_service_pb2_grpc.py",
    "xenmca/testbed/infra/target.py",
    # `xenmca run NAME` finds the built-in scenarios in the package.
    "xenmca/testbed/scenario/builtin/everything-at-once.yaml",
    "xenmca/testbed/scenario/schema.json",
)
ENTRY_POINT = "xenmca = xenmca.cli:main"


def copy_instructions(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    copies = []
    for line in dockerfile.read_text().splitlines():
        if not line.upper().startswith("COPY "):
            continue
        words = shlex.split(line, comments=True)
        flags = [w for w in words[1:] if w.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        paths = [w for w in words[1:] if not w.startswith("--")]
        copies.append((paths[:-1], paths[-1]))
    return copies


def stage(copies: list[tuple[list[str], str]], into: Path) -> None:
    for sources, destination in copies:
        for source in sources:
            origin = ROOT / source
            into_dir = destination.endswith("/") or destination in {".", "./"}
            target = into / destination / origin.name if into_dir else into / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=IGNORED)
            else:
                shutil.copy2(origin, target)


def check_wheel(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        problems = [f"missing {name}" for name in REQUIRED_FILES if name not in names]
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points[0]).decode() if entry_points else ""
    if ENTRY_POINT not in text:
        problems.append(f"no console script {ENTRY_POINT!r}")
    return problems


def main() -> int:
    copies = copy_instructions(DOCKERFILE)
    if not copies:
        print(f"{DOCKERFILE}: no COPY instructions", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as temp:
        context, wheels = Path(temp, "context"), Path(temp, "wheels")
        stage(copies, context)
        copied = ", ".join(" ".join(sources) for sources, _ in copies)
        print(f"  staged the Dockerfile's COPY sources: {copied}")
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
            cwd=context,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            print(build.stdout + build.stderr, file=sys.stderr)
            print("FAILED: pip could not build xenmca from the staged context", file=sys.stderr)
            return 1
        built = sorted(wheels.glob("xenmca-*.whl"))
        if not built:
            print("FAILED: pip built no xenmca wheel", file=sys.stderr)
            return 1
        problems = check_wheel(built[0])
    for problem in problems:
        print(f"FAILED: {built[0].name}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"  built {built[0].name}: `xenmca` command and every component's modules present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
