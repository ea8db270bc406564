"""Scenario files: read YAML, check it against the schema and the rules, build a `Scenario`.

Every problem becomes one `ScenarioError` whose text is one line naming the file,
the field and what is wrong, e.g.::

    demo.yaml: workload.streams[0].rate: -1 is less than the minimum of 0

Built-in scenarios are YAML files shipped in the package's ``builtin/`` folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from xenmca.testbed.scenario.builder import ScenarioBuilder
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.model import (
    Scenario,
)
from xenmca.testbed.scenario.schema_check import TYPE_WORDS, StrictLoader, check_schema, json_type

SCENARIO_DIR = Path(__file__).with_name("builtin")


def builtin_names() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path:
    """The file of built-in scenario name; ScenarioError naming the known ones if none."""
    path = SCENARIO_DIR / f"{name}.yaml"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or not path.is_file():
        raise ScenarioError(
            name, "", f"no built-in scenario {name!r} (known: {', '.join(builtin_names())})"
        )
    return path


def load_builtin(name: str) -> Scenario:
    """A built-in scenario by name (errors name the file as ``NAME.yaml``)."""
    return load_scenario(builtin_path(name), display_name=f"{name}.yaml")


# -- loading -----------------------------------------------------------------------------


def load_scenario(path: Path | str, *, display_name: str | None = None) -> Scenario:
    """Read, validate and convert a scenario file; ScenarioError on any problem."""
    path = Path(path)
    file = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(file, "", f"cannot read the file: {reason}") from None
    return parse_scenario_text(text, file, base_dir=path.parent)


def parse_scenario_text(
    text: str, file: str = "<scenario>", *, base_dir: Path | None = None
) -> Scenario:
    """A scenario from YAML text; file names it in errors. Record files
    (workload.records[].file) are found relative to base_dir (default: the current
    directory)."""
    try:
        data = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = exc.problem or exc.context or "cannot parse"
        raise ScenarioError(file, where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, "", f"invalid YAML: {exc}") from None
    return parse_scenario(data, file, base_dir=base_dir)


def parse_scenario(
    data: Any, file: str = "<scenario>", *, base_dir: Path | None = None
) -> Scenario:
    """A scenario from already parsed data (a mapping as in the YAML file)."""
    if data is None:
        raise ScenarioError(file, "", "the file is empty; expected a scenario mapping")
    if not isinstance(data, Mapping):
        raise ScenarioError(
            file, "", f"expected a mapping of scenario fields, got {TYPE_WORDS[json_type(data)]}"
        )
    check_schema(data, file)
    return ScenarioBuilder(data, file, base_dir).build()


# -- YAML --------------------------------------------------------------------------------
