"""The client conformance list (conformance.yaml), run against every client in adapters.yaml.

Each test is one (language, case): the client's command line runs as a child
process against a real local testbed (client_bed.py) started for that case alone.
The procedure of each case is the function registered under its id below; the
values it checks come from the case's ``expect`` in conformance.yaml.

    python -m pytest -q tests/clients            # every built client
    python -m pytest -q tests/clients -k node    # one language
    XENMCA_CLIENTS=node,go,java python -m pytest -q tests/clients   # CI: none may skip
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from client_bed import Changes, ClientBed, client_bed
from client_cli import (
    CLIENTS_ENV,
    ClientCli,
    Finished,
    Running,
    load_adapters,
    load_cases,
    required_languages,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]

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


def closed_address() -> str:
    """127.0.0.1 and a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def label(record_type: str) -> str:
    return record_type.removeprefix("RECORD_TYPE_")


async def settled_state(ctx: Ctx, interrupts: int) -> dict[str, Any]:
    """DescribeHypervisor once the coordinator has seen this many interrupts (no dom0 yet)."""
    return await ctx.until(
        lambda: _state_if(ctx.tb, interrupts), 10, f"{interrupts} interrupts at the coordinator"
    )


async def _state_if(bed: ClientBed, interrupts: int) -> dict[str, Any] | None:
    state = await bed.state()
    return state if int(state["counters"]["interrupts"]) >= interrupts else None


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


# -- status --------------------------------------------------------------------------------


@case("status-text")
async def status_text(ctx: Ctx) -> None:
    bed = ctx.tb
    await bed.inject(1, "cmc", 2)
    state = await settled_state(ctx, 2)
    result = await ctx.cli.run("status", "--xen", bed.xen, *bed.credential_flags("operator"))
    assert await bed.state() == state, "the state did not move while the client read it"
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    lines = result.out.splitlines()
    assert lines and re.fullmatch(ctx.pattern("first_line"), lines[0]), result.out
    for pattern in ctx.expect["patterns"]:
        assert re.search(pattern, result.out), f"{pattern!r} in:\n{result.out}"
    queues_at = lines.index("queues")
    counters_at = lines.index("counters")
    cmc = [q for q in state["queues"] if q["type"] == "RECORD_TYPE_CMC"]
    assert cmc and cmc[0]["depth"] >= 1, state["queues"]
    for queue in state["queues"]:
        row = rf"\s*{label(queue['type'])}\s+{queue['depth']}(\s.*)?"
        assert any(re.fullmatch(row, line) for line in lines[queues_at:counters_at]), (
            f"queue row {row!r} in:\n{result.out}"
        )
    for name, value in state["counters"].items():
        row = rf"\s*{name}\s+{value}\s*"
        assert any(re.fullmatch(row, line) for line in lines[counters_at:]), (
            f"counter row {name} {value} in:\n{result.out}"
        )


@case("status-json")
async def status_json(ctx: Ctx) -> None:
    bed = ctx.tb
    await bed.inject(1, "cmc", 2)
    state = await settled_state(ctx, 2)
    result = await ctx.cli.run(
        "status", "--xen", bed.xen, *bed.credential_flags("operator"), "--json"
    )
    assert await bed.state() == state, "the state did not move while the client read it"
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    doc = json.loads(result.out)
    assert isinstance(doc, dict), result.out
    for name in ctx.expect["present_even_if_zero"]:
        assert name in doc, f"{name} shown even when zero/false: {sorted(doc)}"
    assert doc["vcpu0_pcpu"] == 0
    assert doc["dom0_attached"] is False
    pcpus = sorted((p["pcpu"], p["address"], p["connected"]) for p in doc["pcpus"])
    assert pcpus == [(p, a, True) for p, a in sorted(bed.host.addresses.items())]
    assert doc["injected_types"] == state["injected_types"]
    depths = {q["type"]: q["depth"] for q in doc["queues"]}
    assert set(depths) == {q["type"] for q in state["queues"]}, doc["queues"]
    for queue in state["queues"]:
        assert isinstance(depths[queue["type"]], int), doc["queues"]
        assert depths[queue["type"]] == queue["depth"], (queue, doc["queues"])
    for name, value in state["counters"].items():
        assert doc["counters"].get(name) == value, (
            f"counter {name}: {doc['counters'].get(name)!r}, expected the string {value!r}"
        )
    assert doc["counters"]["interrupts"] == "2"
    assert doc["policy"]["name"] == state["policy"]["name"]
    assert len(doc["throttle"]) == len(state["throttle"])
    assert all(t["mode"].startswith("THROTTLE_MODE_") for t in doc["throttle"]), doc["throttle"]


# -- dom0 ----------------------------------------------------------------------------------


def check_lines(ctx: Ctx, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        assert line["severity"] == "corrected", line
        assert isinstance(line["sections"], list) and len(line["sections"]) >= 1, line
        assert re.fullmatch(ctx.expect["created_at"], line["created_at"]), line["created_at"]
        assert isinstance(line["overflow"], bool), line


@case("dom0-logs-injected")
async def dom0_logs_injected(ctx: Ctx) -> None:
    bed = ctx.tb
    dom0 = await ctx.cli.start(
        "dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "200"
    )
    await ctx.until(_attached(bed), 20, "the client's dom0 attached", dom0)

    cmc, cpe = ctx.expect["cmc"], ctx.expect["cpe"]
    expected = keys(cmc["pcpu"], await bed.inject(cmc["pcpu"], "cmc", cmc["count"]), "CMC")
    expected += keys(cpe["pcpu"], await bed.inject(cpe["pcpu"], "cpe", cpe["count"]), "CPE")
    total = len(expected)
    await ctx.until(lambda: len(dom0.out_lines) >= total, 30, f"{total} records logged", dom0)
    await cleared(ctx, total, dom0)

    # The client's status, while its own dom0 is attached.
    shown = await ctx.cli.run(
        "status", "--xen", bed.xen, *bed.credential_flags("operator"), "--json"
    )
    assert shown.code == 0 and shown.err == "", shown.describe()
    doc = json.loads(shown.out)
    assert doc["dom0_attached"] is True
    assert len(doc["pcpus"]) == 4
    assert doc["counters"]["records_cleared"] == str(total)
    assert int(doc["counters"]["ipi_calls"]) >= 2 * total, "GET and CLEAR of each by IPI"
    for queue in doc["queues"]:
        assert queue["depth"] == 0, queue
        assert not queue.get("in_flight"), queue
    text = await ctx.cli.run("status", "--xen", bed.xen, *bed.credential_flags("operator"))
    assert text.code == 0 and text.err == "", text.describe()
    for pattern in ctx.expect["text_patterns"]:
        assert re.search(pattern, text.out), f"{pattern!r} in:\n{text.out}"
    assert all(not any(p.values()) for p in (await bed.all_pending()).values()), (
        await bed.all_pending()
    )

    stopped = await dom0.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert re.fullmatch(ctx.pattern("stop_line"), stopped.err_lines[-1]), stopped.describe()
    logged = records(dom0.out_lines)
    assert len(logged) == total, f"exactly {total} lines: {dom0.out_lines}"
    assert len({key(line) for line in logged}) == total, "no duplicates"
    assert sorted(map(key, logged)) == sorted(expected)
    check_lines(ctx, logged)
    assert all(line["by_ipi"] is True for line in logged), "vCPU0 is on pCPU 0: all by IPI"


def _attached(bed: ClientBed) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool((await bed.state())["dom0_attached"])

    return check


@case("dom0-local-and-ipi")
async def dom0_local_and_ipi(ctx: Ctx) -> None:
    bed = ctx.tb
    remote, local = ctx.expect["remote"], ctx.expect["local"]
    expected = keys(remote["pcpu"], await bed.inject(remote["pcpu"], "cmc", remote["count"]), "CMC")
    expected += keys(local["pcpu"], await bed.inject(local["pcpu"], "cmc", local["count"]), "CMC")
    result = await ctx.cli.run(
        "dom0",
        "--xen",
        bed.xen,
        *bed.credential_flags("dom0"),
        "--max",
        str(ctx.expect["max"]),
        "--cpe-poll",
        "0",
    )
    assert result.code == ctx.expect["exit"], result.describe()
    assert re.fullmatch(ctx.pattern("stop_line"), result.err_lines[-1]), result.describe()
    logged = records(result.out.splitlines())
    assert sorted(map(key, logged)) == sorted(expected)
    for line in logged:
        assert line["by_ipi"] is (line["pcpu"] != 0), f"by_ipi of pCPU {line['pcpu']}: {line}"
    await cleared(ctx, len(expected))
    assert await bed.counter("local_calls") >= 2, "GET and CLEAR on pCPU 0 made locally"
    assert await bed.counter("ipi_calls") >= 2 * remote["count"]
    for pcpu in (remote["pcpu"], local["pcpu"]):
        assert (await bed.pending(pcpu))["cmc"] == 0, f"pCPU {pcpu} CMC pending"


@case("dom0-max-leaves-rest")
async def dom0_max_leaves_rest(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu, count, first_max = ctx.expect["pcpu"], ctx.expect["count"], ctx.expect["first_max"]
    ids = await bed.inject(pcpu, "cmc", count)
    base = ["dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"]

    first = await ctx.cli.run(*base, "--max", str(first_max))
    assert first.code == ctx.expect["exit"], first.describe()
    logged = [key(line) for line in records(first.out.splitlines())]
    assert len(logged) == first_max == len(set(logged)), first.describe()
    assert set(logged) <= set(keys(pcpu, ids, "CMC")), (logged, ids)
    rest = sorted(set(ids) - {int(k[1]) for k in logged})
    assert await bed.pending_ids(pcpu, "cmc") == rest, "the rest stays in firmware"
    await cleared(ctx, first_max)

    second = await ctx.cli.run(*base, "--max", str(len(rest)))
    assert second.code == ctx.expect["exit"], second.describe()
    assert sorted(key(line) for line in records(second.out.splitlines())) == keys(pcpu, rest, "CMC")
    assert await bed.pending_ids(pcpu, "cmc") == []
    await cleared(ctx, count)


@case("dom0-out-dedupe-restart")
async def dom0_out_dedupe_restart(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu = ctx.expect["pcpu"]
    out = ctx.tmp / "dom0.jsonl"
    argv = ["dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"]

    bed.fail_clears(pcpu)
    [first_id] = await bed.inject(pcpu, "cmc", 1)
    crashed = await ctx.cli.start(*argv, "--out", str(out))
    first_key = (pcpu, str(first_id), "CMC")
    await ctx.until(
        lambda: first_key in [key(r) for r in records(file_lines(out))], 20, "written", crashed
    )
    # Its CLEAR has gone out and failed at least once: written, not cleared.
    await ctx.until(lambda: _at_least(bed, "call_failures", 1), 15, "a failed CLEAR", crashed)
    await crashed.kill()
    assert crashed.out_lines == [], "with --out nothing goes to stdout"
    assert await bed.pending_ids(pcpu, "cmc") == [first_id], "the killed dom0 did not clear it"
    assert await bed.counter("records_cleared") == 0

    bed.clear_faults()
    [second_id] = await bed.inject(pcpu, "cmc", 1)
    restarted = await ctx.cli.start(*argv, "--out", str(out))

    async def both_cleared() -> bool:
        return await bed.pending_ids(pcpu, "cmc") == [] and len(file_lines(out)) >= 2

    await ctx.until(both_cleared, 30, "both records cleared, 2 in the file", restarted)
    await cleared(ctx, 2, restarted)
    stopped = await restarted.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert stopped.out == "", "with --out nothing goes to stdout"
    assert [key(r) for r in records(file_lines(out))] == [
        first_key,
        (pcpu, str(second_id), "CMC"),
    ], out.read_text()


@case("dom0-reattach")
async def dom0_reattach(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu = ctx.expect["pcpu"]
    dom0 = await ctx.cli.start(
        "dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"
    )
    await ctx.until(_attached(bed), 20, "the client's dom0 attached", dom0)
    expected = keys(pcpu, await bed.inject(pcpu, "cmc", ctx.expect["before"]), "CMC")
    await ctx.until(lambda: len(dom0.out_lines) >= len(expected), 20, "logged", dom0)

    await bed.restart_coordinator()
    assert dom0.running, f"dom0 outlives its coordinator: {dom0.describe()}"
    await ctx.until(_attached(bed), 20, "dom0 attached to the new coordinator", dom0)
    expected += keys(pcpu, await bed.inject(pcpu, "cmc", ctx.expect["after"]), "CMC")
    await ctx.until(lambda: len(dom0.out_lines) >= len(expected), 20, "logged", dom0)
    await ctx.until(lambda: _no_pending(bed, pcpu), 15, f"nothing pending on pCPU {pcpu}", dom0)

    stopped = await dom0.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert sorted(map(key, records(dom0.out_lines))) == sorted(expected), dom0.out_lines


async def _no_pending(bed: ClientBed, pcpu: int) -> bool:
    return not any((await bed.pending(pcpu)).values())


# -- refusals by identity ------------------------------------------------------------------


@case("refuse-dom0-as-operator")
async def refuse_dom0_as_operator(ctx: Ctx) -> None:
    bed = ctx.tb
    assert bed.tokens is not None
    assert await bed.operator_get("cmc") == ctx.expect["operator_get"]
    book = bed.token_book_file("swapped.json", {"dom0": bed.tokens.tokens["operator"]})
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, "--token-file", str(book), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))
    assert (await bed.state())["dom0_attached"] is False


@case("refuse-dom0-unknown-token")
async def refuse_dom0_unknown_token(ctx: Ctx) -> None:
    bed = ctx.tb
    book = bed.token_book_file("unknown.json", {"dom0": "not-a-valid-token"})
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, "--token-file", str(book), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))


@case("refuse-status-unknown-token")
async def refuse_status_unknown_token(ctx: Ctx) -> None:
    bed = ctx.tb
    assert bed.tokens is not None
    book = bed.token_book_file(
        "wrong.json", {"operator": "not-a-valid-token", "dom0": bed.tokens.tokens["operator"]}
    )
    result = await ctx.cli.run("status", "--xen", bed.xen, "--token-file", str(book))
    assert_one_line(ctx, result, ctx.pattern("error_line"))


# -- mutual TLS ----------------------------------------------------------------------------


@case("tls-status")
async def tls_status(ctx: Ctx) -> None:
    bed = ctx.tb
    result = await ctx.cli.run("status", "--xen", bed.xen, "--json", *bed.tls_flags("operator"))
    assert result.code == ctx.expect["exit"], result.describe()
    assert error_lines(ctx.cli, result.err_lines) == [], result.describe()
    doc = json.loads(result.out)
    assert len(doc["pcpus"]) == ctx.expect["pcpus"]
    assert all(p["connected"] is True for p in doc["pcpus"]), doc["pcpus"]


@case("tls-dom0-reads")
async def tls_dom0_reads(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu, count = ctx.expect["pcpu"], ctx.expect["count"]
    ids = await bed.inject(pcpu, "cmc", count)
    out = ctx.tmp / "dom0-tls.jsonl"
    result = await ctx.cli.run(
        "dom0",
        "--xen",
        bed.xen,
        *bed.tls_flags("dom0"),
        "--max",
        str(count),
        "--cpe-poll",
        "0",
        "--out",
        str(out),
        within=60,
    )
    assert result.code == ctx.expect["exit"], result.describe()
    logged = records(file_lines(out))
    assert sorted(map(key, logged)) == keys(pcpu, ids, "CMC")
    assert all(line["by_ipi"] is True for line in logged), "pCPU 1 is not vCPU0's: by IPI"
    assert (await bed.pending(pcpu))["cmc"] == 0


@case("tls-refuse-operator-cert")
async def tls_refuse_operator_cert(ctx: Ctx) -> None:
    bed = ctx.tb
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, *bed.tls_flags("operator"), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))


@case("tls-refuse-plaintext")
async def tls_refuse_plaintext(ctx: Ctx) -> None:
    result = await ctx.cli.run("status", "--xen", ctx.tb.xen, "--timeout", "3000")
    assert_one_line(ctx, result, ctx.pattern("error_line"))


# -- usage -----------------------------------------------------------------------------------


@case("usage-errors")
async def usage_errors(ctx: Ctx) -> None:
    for run in ctx.expect["runs"]:
        result = await ctx.cli.run(*run["argv"], within=15)
        assert_one_line(ctx, result, ctx.cli.pattern(run["line"]))


@case("usage-help")
async def usage_help(ctx: Ctx) -> None:
    result = await ctx.cli.run("--help", within=15)
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    assert re.fullmatch(ctx.pattern("first_line"), result.out.splitlines()[0]), result.out
    for word in ctx.expect["mentions"]:
        assert word in result.out, f"{word} in the usage:\n{result.out}"


# -- an unreachable coordinator ----------------------------------------------------------------


@case("unreachable-status")
async def unreachable_status(ctx: Ctx) -> None:
    address = closed_address()
    result = await ctx.cli.run("status", "--xen", address, "--timeout", "3000")
    assert_one_line(ctx, result, ctx.pattern("error_line", address))


@case("unreachable-dom0")
async def unreachable_dom0(ctx: Ctx) -> None:
    address = closed_address()
    started = time.monotonic()
    result = await ctx.cli.run("dom0", "--xen", address, "--connect-timeout", "300")
    assert_refused(ctx, result, ctx.pattern("error_line", address))
    assert time.monotonic() - started < 20, "gives up after about --connect-timeout"


# -- the driver ------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("language", "case_id"),
    [pytest.param(lang, cid, id=f"{lang}-{cid}") for lang in ADAPTERS for cid in CASES],
)
async def test_conformance(language: str, case_id: str, tmp_path: Path) -> None:
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
