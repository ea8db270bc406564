"""What the conformance cases share (tests/clients/test_conformance_*.py): the case
registry (``@case``), the context a procedure gets (``Ctx``), the checks several areas
use, and the driver that runs one (language, case) against its own testbed.

Each area's module registers its procedures with ``@case("<id>")`` and parametrizes
its ``test_conformance`` over them (``conformance_params(__name__)``);
test_conformance.py checks that the registered ids are exactly conformance.yaml's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from client_bed import Changes, ClientBed, client_bed
from client_cli import (
    ClientCli,
    Finished,
    Running,
    load_adapters,
    load_cases,
)

ADAPTERS = load_adapters()
CASES = load_cases()

Key = tuple[int, str, str]
"""A logged record: (pcpu, record_id as the decimal string, type)."""


@dataclass
class Ctx:
    """What a case's procedure gets: the client, the case's expectations, the testbed (or None)."""

    cli: ClientCli
    expect: dict[str, Any]
    bed: ClientBed | None
    changes: Changes
    tmp: Path

    @property
    def tb(self) -> ClientBed:
        assert self.bed is not None, "this case has a testbed"
        return self.bed

    def pattern(self, name: str, xen: str = "") -> str:
        return self.cli.pattern(self.expect[name], xen or (self.bed.xen if self.bed else ""))

    async def until(
        self, check: Callable[[], Any], within: float, what: str, *clients: Running
    ) -> Any:
        """check()'s first truthy value; fails at the deadline, or at once if a client exits."""

        async def checked() -> Any:
            for client in clients:
                if not client.running:
                    raise AssertionError(
                        f"the client exited waiting for {what}: {client.describe()}"
                    )
            value = check()
            return await value if isinstance(value, Awaitable) else value

        return await self.changes.until(
            checked,
            within=within,
            what=what,
            detail=lambda: " | ".join(r.describe() for r in clients),
        )


Procedure = Callable[[Ctx], Awaitable[None]]
PROCEDURES: dict[str, Procedure] = {}


def case(case_id: str) -> Callable[[Procedure], Procedure]:
    def register(procedure: Procedure) -> Procedure:
        assert case_id not in PROCEDURES, case_id
        PROCEDURES[case_id] = procedure
        return procedure

    return register


# -- checks shared by the cases ------------------------------------------------------------


def error_lines(cli: ClientCli, lines: list[str]) -> list[str]:
    marker = re.compile(rf"{re.escape(cli.adapter.prog)}( \S+)?: error: ")
    return [line for line in lines if marker.match(line)]


def assert_refused(ctx: Ctx, result: Finished, pattern: str) -> None:
    """Exit as expected, nothing on stdout, one error line and it is the last stderr line."""
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.out == "", f"nothing on stdout: {result.describe()}"
    errors = error_lines(ctx.cli, result.err_lines)
    assert len(errors) == 1, f"exactly one error line: {result.describe()}"
    assert result.err_lines[-1] == errors[0], f"the error line is the last: {result.describe()}"
    assert re.fullmatch(pattern, errors[0]), f"{errors[0]!r} !~ {pattern!r}"


def assert_one_line(ctx: Ctx, result: Finished, pattern: str) -> None:
    """Exit as expected, nothing on stdout, stderr exactly one line matching pattern."""
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.out == "", f"nothing on stdout: {result.describe()}"
    assert result.err.endswith("\n") and len(result.err_lines) == 1, (
        f"stderr is one line: {result.describe()}"
    )
    assert re.fullmatch(pattern, result.err_lines[0]), f"{result.err_lines[0]!r} !~ {pattern!r}"


def records(lines: list[str]) -> list[dict[str, Any]]:
    """dom0's log lines as JSON objects (each line must be one)."""
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from exc
    return parsed


def key(line: dict[str, Any]) -> Key:
    record_id = line["record_id"]
    assert isinstance(record_id, str) and record_id.isdigit(), f"record_id as a string: {line}"
    assert isinstance(line["pcpu"], int), f"pcpu as a number: {line}"
    return (line["pcpu"], record_id, line["type"])


def keys(pcpu: int, ids: list[int], record_type: str) -> list[Key]:
    return [(pcpu, str(i), record_type) for i in ids]


def file_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def cleared(ctx: Ctx, count: int, *more: Running) -> None:
    """Wait for the coordinator to count `count` records cleared, then check it is not more."""
    bed = ctx.tb
    seen = await ctx.until(
        lambda: _at_least(bed, "records_cleared", count), 15, f"{count} cleared", *more
    )
    assert seen == count, f"records_cleared is {seen}, expected {count}"


async def _at_least(bed: ClientBed, name: str, count: int) -> int | None:
    value = await bed.counter(name)
    return value if value >= count else None


# -- the driver ------------------------------------------------------------------------------


def conformance_params(module: str) -> list[Any]:
    """(language, case) for every adapter and every case whose procedure `module`
    registers, in conformance.yaml's order; ids `<language>-<case id>`."""
    return [
        pytest.param(lang, cid, id=f"{lang}-{cid}")
        for lang in ADAPTERS
        for cid in CASES
        if cid in PROCEDURES and PROCEDURES[cid].__module__ == module
    ]


async def run_case(language: str, case_id: str, tmp_path: Path) -> None:
    """One (language, case): the client's command line against the case's own testbed."""
    adapter = ADAPTERS[language]
    adapter.require()
    spec = CASES[case_id]
    changes = Changes()
    cli = ClientCli(adapter, changes.notify)
    try:
        if spec["testbed"] == "none":
            await PROCEDURES[case_id](Ctx(cli, spec.get("expect", {}), None, changes, tmp_path))
            return
        async with client_bed(tmp_path, pcpus=spec["pcpus"], tls=spec["testbed"] == "tls") as bed:
            cli.on_output = bed.changes.notify
            ctx = Ctx(cli, spec.get("expect", {}), bed, bed.changes, tmp_path)
            try:
                await PROCEDURES[case_id](ctx)
            finally:
                await cli.close()
    finally:
        await cli.close()
