"""The client conformance list (conformance.yaml), run against every client in adapters.yaml.

This module checks the list itself: every case in conformance.yaml has exactly one
procedure, no case id names a language, XENMCA_CLIENTS names only adapters. The cases
run from one module per area, each test one (language, case): the client's command
line runs as a child process against a real local testbed (client_bed.py) started for
that case alone. The procedure of each case is the function registered under its id
with ``@case`` (client_cases.py) in its area's module; the values it checks come from
the case's ``expect`` in conformance.yaml.

- test_conformance_status.py: `status`, text and `--json`;
- test_conformance_dom0.py: the minimal dom0;
- test_conformance_refusals.py: refusals by identity, and mutual TLS;
- test_conformance_usage.py: usage errors and an unreachable coordinator.

    python -m pytest -q tests/clients            # every built client
    python -m pytest -q tests/clients -k node    # one language
    XENMCA_CLIENTS=node,go,java python -m pytest -q tests/clients   # CI: none may skip
"""

from __future__ import annotations

import pytest
import test_conformance_dom0
import test_conformance_refusals
import test_conformance_status
import test_conformance_usage
from client_cases import ADAPTERS, CASES, PROCEDURES
from client_cli import CLIENTS_ENV, required_languages

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]

# The areas' modules register their procedures when imported (pytest imports each once,
# under its own name, so these are the modules it runs).
AREAS = (
    test_conformance_status,
    test_conformance_dom0,
    test_conformance_refusals,
    test_conformance_usage,
)


# -- the list ----------------------------------------------------------------------------------


def test_every_case_has_a_procedure() -> None:
    assert sorted(PROCEDURES) == sorted(CASES)
    for case_id, spec in CASES.items():
        assert spec["testbed"] in ("tokens", "tls", "none"), case_id
        assert spec.get("description") and spec.get("asserts"), case_id


def test_case_ids_name_no_language() -> None:
    """So `-k <language>` selects exactly one language's tests."""
    for case_id in CASES:
        for language in ADAPTERS:
            assert language not in case_id, (case_id, language)


def test_required_languages_are_adapters() -> None:
    unknown = required_languages() - set(ADAPTERS)
    assert not unknown, f"{CLIENTS_ENV} names {sorted(unknown)}, not in adapters.yaml"
