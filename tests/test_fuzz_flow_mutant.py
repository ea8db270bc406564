"""The flow state machine of test_fuzz_flow.py against a coordinator with a deliberately
broken rule (clear on GET): its invariants must catch it."""

from __future__ import annotations

from typing import Any

from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from test_fuzz_flow import FlowMachine


class ClearOnGetMachine(FlowMachine):
    """The same machine against a coordinator that clears on GET (a deliberately broken
    rule): the invariants must catch it."""

    def bed_config(self) -> dict[str, Any]:
        return {"broken_rule": "clear-on-get"}


def test_the_state_machine_catches_a_coordinator_that_clears_on_get() -> None:
    caught: BaseException | None = None
    try:
        run_state_machine_as_test(
            ClearOnGetMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=40,
                phases=[Phase.generate],
                report_multiple_bugs=False,
            ),
        )
    except Exception as error:  # AssertionError, or a group of them
        caught = error
    assert caught is not None and "before dom0 asked" in repr(caught), caught
