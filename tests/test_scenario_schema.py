"""Scenario files: the JSON schema, the built-in scenarios and the README reference."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import (
    builtin_names,
    builtin_path,
    load_builtin,
    parse_scenario_text,
)
from xenmca.testbed.scenario.schema_check import SCHEMA_PATH, schema

# -- the schema and the built-ins ----------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_objects(value, f"{path}/{index}"))
    return found


def test_every_object_is_closed_except_faults_and_every_field_is_described() -> None:
    for path, node in _objects(schema()):
        if path == "/$defs/fault":
            assert "additionalProperties" not in node  # other keys are the fault's params
        else:
            assert node.get("additionalProperties") is False, path
    for path, node in _objects(schema()):
        for name, prop in node.get("properties", {}).items():
            if path == "/$defs/severity_mix" or path.endswith("/transition"):
                continue
            assert prop.get("description") or "$ref" in prop, f"{path}.{name}"


@pytest.mark.parametrize("name", ["demo", "cmc-storm", "cpe-polling", "mixed"])
def test_every_builtin_scenario_loads(name: str) -> None:
    assert name in builtin_names()
    scenario = load_builtin(name)
    assert scenario.name == name
    assert 0 < scenario.duration_s <= 60
    assert scenario.streams or scenario.storms
    assert builtin_path(name).name == f"{name}.yaml"


def test_the_builtins_are_package_files_found_through_importlib_resources() -> None:
    scenarios = files("xenmca.testbed.scenario") / "builtin"
    names = sorted(
        entry.name.removesuffix(".yaml")
        for entry in scenarios.iterdir()
        if entry.name.endswith(".yaml")
    )
    assert names == builtin_names()
    assert (scenarios / "demo.yaml").read_text() == builtin_path("demo").read_text()


def test_the_demo_shows_every_part_of_the_flow() -> None:
    demo = load_builtin("demo")
    assert demo.pcpus == 8
    cmc = [s for s in demo.streams if s.type == "cmc"]
    assert cmc and set(cmc[0].pcpus) == set(range(8)) and cmc[0].rate < 4
    assert demo.vcpu0_pcpu in cmc[0].pcpus  # local calls, and IPIs for the others
    assert any(s.type == "cpe" for s in demo.streams)
    storm_pcpus = {p for s in demo.storms if s.type == "cmc" for p in s.pcpus}
    expected = {(t.pcpu, t.type, t.mode) for t in demo.checks.expect_transitions}
    assert {(p, "cmc", "polling") for p in storm_pcpus} <= expected
    assert {(p, "cmc", "interrupt") for p in storm_pcpus} <= expected


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"no built-in scenario 'nope'.*demo"):
        builtin_path("nope")
    with pytest.raises(ScenarioError):
        builtin_path("../etc/passwd")


def test_the_schema_file_is_json_beside_the_loader() -> None:
    assert SCHEMA_PATH.name == "schema.json"
    assert json.loads(SCHEMA_PATH.read_text())["title"] == "xenmca scenario"
    for name in builtin_names():
        data = yaml.safe_load(builtin_path(name).read_text())
        Draft202012Validator(schema()).validate(data)


DOCS = Path(__file__).resolve().parent.parent / "README.md"


def test_the_reference_documents_every_field_and_its_example_loads() -> None:
    text = DOCS.read_text().split("## Scenarios", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for _, node in _objects(schema()):
        names.update(node.get("properties", {}))
    assert [n for n in sorted(names) if f"`{n}`" not in text and f".{n}`" not in text] == []
    example = text.split("### Example\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_scenario_text(example, "docs").name == "demo"
