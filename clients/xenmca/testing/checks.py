"""The testbed's checkers over what happened in a test: conservation, duplicates, cleared before
logged, stranded, fairness, isolation, local calls (``xenmca.testbed.check``).

`run_checkers` gathers a run's data as a scenario run would (every pCPU's store,
dom0's log, every component's events, the coordinator's state) and hands it to the
same checkers; the checks are a scenario's ``checks`` (``Checks()``: nothing lost,
duplicated, cleared before logged or stranded; fair; isolated; local exactly where
vCPU0 runs). Call it once the records are through (``Testbed.wait_logged``): a record
still on its way counts as pending, which the stranded check flags.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf import json_format

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu.server import DEFAULT_CAPACITY
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import OPERATOR, call_metadata
from xenmca.testbed.check.checkers import Accounting, Valid, account, overall_valid, run_checks
from xenmca.testbed.check.result import CheckResult
from xenmca.testbed.infra.bed import Testbed as RunnerTestbed
from xenmca.testbed.run.data import RunData
from xenmca.testbed.run.runner import read_log
from xenmca.testbed.run.sampler import FINAL_PENDING_IDS, FirmwareReader
from xenmca.testbed.scenario.model import Checks, Policy, Scenario, Throttle

if TYPE_CHECKING:
    from xenmca.testing.testbed import Testbed


@dataclass(frozen=True)
class CheckReport:
    """Every check's result, where every record ended up, and the data they were made from."""

    results: list[CheckResult]
    accounting: Accounting
    data: RunData

    @property
    def valid(self) -> Valid:
        """True when every check passed, False when one failed, "unknown" otherwise."""
        return overall_valid(self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.results if c.status != "pass"]

    def by_name(self) -> dict[str, CheckResult]:
        return {c.name: c for c in self.results}

    def summary(self) -> str:
        """One line per check, then the records each one that did not pass names."""
        lines = [f"{c.status:7} {c.name}: {c.detail}" for c in self.results]
        for check in self.failed:
            lines += [f"  {check.name}: {ref.label()}" for ref in check.records]
        return "\n".join(lines)

    def assert_valid(self) -> None:
        """AssertionError with the summary unless every check passed."""
        if self.valid is not True:
            raise AssertionError(f"checks not valid ({self.valid}):\n{self.summary()}")


@dataclass
class _OperatorView:
    """What FirmwareReader uses of a testbed: the pCPUs' addresses, channels, operator calls."""

    pcpu_addresses: dict[int, str]
    metadata: tuple[tuple[str, str], ...]

    def channel(self, address: str) -> grpc.aio.Channel:
        return open_channel(address)

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata


def scenario_of(bed: Testbed, checks: Checks | None, duration_s: float) -> Scenario:
    """The scenario a run like this one would have had: the checkers read its settings."""
    config = bed.config
    return Scenario(
        name="pytest",
        description="an in-process testbed in a test",
        seed=0,
        pcpus=config.pcpus,
        duration_s=duration_s,
        vcpu0_pcpu=config.vcpu0_pcpu,
        capacity=config.capacity or DEFAULT_CAPACITY,
        throttle=Throttle(config.throttle, dict(config.throttle_settings)),
        policy=Policy(config.policy, config.dom0_policy, dict(config.policy_options)),
        sal=config.sal_mode,
        checks=checks if checks is not None else Checks(),
    )


async def _final_xen(bed: Testbed) -> dict[str, Any] | None:
    try:
        state = await bed.flow.hv.DescribeHypervisor(
            hv_pb2.DescribeHypervisorRequest(), metadata=bed.flow.md(OPERATOR), timeout=5
        )
    except grpc.aio.AioRpcError:
        return None
    described: dict[str, Any] = json_format.MessageToDict(state, preserving_proto_field_name=True)
    return described


async def run_checkers(bed: Testbed, checks: Checks | None = None) -> CheckReport:
    """Every check over what happened in bed so far."""
    end_ns = time.monotonic_ns()
    view = _OperatorView(bed.pcpu_addresses, call_metadata(bed.tokens.token_for(OPERATOR)))
    # FirmwareReader needs only these three of a runner's Testbed.
    reader = FirmwareReader(cast(RunnerTestbed, view))
    try:
        firmware, missing = await reader.read(pending_ids_limit=FINAL_PENDING_IDS)
    finally:
        await reader.close()
    log, redelivered = await asyncio.to_thread(read_log, bed.db_path)
    events = sorted(bed.watch.events, key=lambda e: int(e["t_mono_ns"]))
    start_ns = min([bed.started_ns, *(int(e["t_mono_ns"]) for e in events[:1])])
    data = RunData(
        scenario=scenario_of(bed, checks, (end_ns - start_ns) / 1e9),
        start_ns=start_ns,
        workload_end_ns=end_ns,
        end_ns=end_ns,
        firmware=firmware,
        log=log,
        redelivered=redelivered,
        events=events,
        samples=[],
        faults=[],
        requested=bed.requested,
        drained=not missing and all(f.pending == 0 for f in firmware),
        problems=[f"firmware: pCPUs {missing} did not answer"] if missing else [],
        final_xen=await _final_xen(bed),
    )
    accounting = account(data)
    return CheckReport(run_checks(data, accounting), accounting, data)
