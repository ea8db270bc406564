"""Scenario files: the error line itself (the file as given, unreadable and non-UTF-8 files,
long messages)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_helpers import BASE, write

from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import load_scenario, parse_scenario_text


def test_the_error_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, BASE + "pcpus_per_host: 0\n", "demo.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as caught:
        load_scenario("demo.yaml")
    assert str(caught.value) == "demo.yaml: pcpus_per_host: 0 is less than the minimum of 1"
    assert (caught.value.file, caught.value.field) == ("demo.yaml", "pcpus_per_host")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "missing.yaml")
    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    )
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path)  # a directory


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(path)


def test_huge_messages_are_cut_to_one_short_line() -> None:
    text = BASE + "workload: {streams: [{type: cmc, rate: 1, pcpus: {" + "a: 1, " * 200 + "}}]}"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario_text(text, "x.yaml")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_a_scenario_error_from_one_text_is_that_line() -> None:
    error = ScenarioError("x: no such file or built-in scenario")
    assert str(error) == "x: no such file or built-in scenario"
    assert str(ScenarioError("f.yaml", "", "empty")) == "f.yaml: empty"
    assert str(ScenarioError("f.yaml", "seed", "is\nrequired")) == "f.yaml: seed: is required"
