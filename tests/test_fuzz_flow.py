"""A state machine over the whole flow: errors injected on pCPUs, dom0 reading and clearing
through the coordinator (with right, wrong and no record ids), other domains and
unauthenticated callers trying the same, vCPU0 moving, lines masked and dom0 coming and
going, in any order.

After every step: no pCPU cleared a record that dom0 had not read and asked to clear,
every pCPU conserves its records (created = pending + cleared + overflowed, so every
record is in dom0's hands, still pending, or a counted overflow), and the coordinator's
queues hold one entry per (pCPU, type) with a consistent entry in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from fuzz_flow_helpers import CAPACITY, CMC, CPE, FLOW_TYPES, PCPUS, Dom0Stream, not_dom0, not_xen
from fuzz_strategies import (
    MAX_U32,
    RECORD_TYPES,
    SAL_CALL_ERROR,
    SAL_NO_INFORMATION,
    SAL_OK,
    Credential,
    credentials,
    record_ids,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_fuzz_support import CALL_TIMEOUT, LoopBed, answer, check_conservation, check_coordinator

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.queues import State


class FlowMachine(RuleBasedStateMachine):
    """One bed per example; the model is what dom0 (this machine) read and asked to clear."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = LoopBed(pcpus=len(PCPUS), capacity=CAPACITY, **self.bed_config())
        self.loop.__enter__()
        self.bed = self.loop.bed
        self.dom0: Dom0Stream | None = None
        self.old_streams: list[Dom0Stream] = []
        self.read: set[tuple[int, int]] = set()
        self.asked: set[tuple[int, int]] = set()
        """Records dom0 read and then asked to clear (by id, or the one read)."""
        self.last_read: dict[int, tuple[int, int]] = {}
        self.placement = 0
        self.injections = 0
        self.run(self._attach(replace_without_leaving=False))  # dom0 boots with the machine

    def bed_config(self) -> dict[str, Any]:
        return {}

    def teardown(self) -> None:
        try:
            for stream in [*self.old_streams, *([self.dom0] if self.dom0 else [])]:
                self.loop.run(stream.close())
        finally:
            self.loop.__exit__(None, None, None)

    def run(self, coro: Any) -> Any:
        return self.loop.run(coro)

    # --- the error workload ---------------------------------------------------------

    @initialize(cmc=st.integers(0, 4), cpe=st.integers(0, 3))
    def errors_at_boot(self, cmc: int, cpe: int) -> None:
        """Records already pending when the coordinator and dom0 are up."""
        for pcpu in PCPUS:
            for record_type, count in ((CMC, cmc), (CPE, cpe)):
                if count:
                    self.inject(pcpu, record_type, count)

    @rule(
        pcpu=st.sampled_from(PCPUS),
        record_type=st.sampled_from(FLOW_TYPES),
        count=st.integers(1, 7),
    )
    def inject(self, pcpu: int, record_type: int, count: int) -> None:
        got = self.run(answer(self.bed.flow.inject(pcpu, count=count, record_type=record_type)))
        assert got.ok and got.reply.accepted == count, got
        self.injections += 1

    @rule(seconds=st.sampled_from([0.0, 0.005, 0.02, 0.06]))
    def settle(self, seconds: float) -> None:
        """Time passes: interrupts arrive, injections happen, polls run."""
        self.run(asyncio.sleep(seconds))

    # --- dom0 --------------------------------------------------------------------------

    async def _attach(self, replace_without_leaving: bool) -> None:
        if self.dom0 is not None:
            if replace_without_leaving:  # the new attach replaces it server-side
                self.old_streams.append(self.dom0)
            else:
                await self.dom0.close()
        self.dom0 = Dom0Stream(self, f"fuzz-{len(self.old_streams)}")

    @rule(replace_without_leaving=st.booleans())
    def attach(self, replace_without_leaving: bool) -> None:
        self.run(self._attach(replace_without_leaving))

    @precondition(lambda self: self.dom0 is not None)
    @rule()
    def detach(self) -> None:
        assert self.dom0 is not None
        self.run(self.dom0.close())
        self.dom0 = None

    async def _get(self, record_type: int) -> hv_pb2.GetStateInfoResponse:
        cleared_before = len(self.bed.cleared_events())
        got = await answer(
            self.bed.flow.hv.GetStateInfo(
                hv_pb2.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
                metadata=self.bed.flow.dom0_md,
                timeout=CALL_TIMEOUT,
            )
        )
        assert got.ok, got
        reply = got.reply
        assert reply.sal_status in (SAL_OK, SAL_NO_INFORMATION, SAL_CALL_ERROR), reply
        if reply.sal_status == SAL_OK:
            record = reply.record
            assert record.type == record_type and record.record_id > 0
            assert reply.by_ipi == (record.pcpu != self.placement)
            self.read.add((record.pcpu, record.record_id))
            self.last_read[record_type] = (record.pcpu, record.record_id)
        cleared = self.bed.cleared_events()[cleared_before:]
        assert not cleared, ("GET cleared a record before dom0 asked", cleared)
        return reply

    async def _clear(
        self, record_type: int, record_id: int | None
    ) -> hv_pb2.ClearStateInfoResponse:
        last = self.last_read.get(record_type)
        if last is not None and record_id in (None, last[1]):
            self.asked.add(last)
        request = hv_pb2.ClearStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        if record_id is not None:
            request.record_id = record_id
        cleared_before = len(self.bed.cleared_events())
        got = await answer(
            self.bed.flow.hv.ClearStateInfo(
                request, metadata=self.bed.flow.dom0_md, timeout=CALL_TIMEOUT
            )
        )
        assert got.ok, got
        reply = got.reply
        new = [(e["pcpu"], e["record_id"]) for e in self.bed.cleared_events()[cleared_before:]]
        if reply.sal_status == SAL_OK:
            assert last is not None and (reply.pcpu, reply.cleared_record_id) == last, reply
            assert record_id in (None, last[1])
            assert reply.by_ipi == (reply.pcpu != self.placement)
            assert set(new) == {last}, new  # twice only if a retried IPI lost its reply
        else:
            assert reply.sal_status in (SAL_NO_INFORMATION, SAL_CALL_ERROR), reply
            if reply.sal_status == SAL_NO_INFORMATION:
                assert not new, new
        return reply

    @rule(poll_cpe=st.booleans(), records=st.integers(1, 4))
    def dom0_handles(self, poll_cpe: bool, records: int) -> None:
        """What a real dom0 does, for a few records: wait for a virtual interrupt (or poll
        CPE), GET, then CLEAR exactly the record it read (its log has committed it)."""

        async def handle() -> None:
            for _ in range(records):
                kind = CPE
                if not poll_cpe:
                    if self.dom0 is None or not self._interrupt_may_come():
                        return
                    try:
                        async with asyncio.timeout(0.05):
                            kind = (await self.dom0.interrupts.get()).type
                    except TimeoutError:
                        return
                reply = await self._get(kind)
                if reply.sal_status != SAL_OK:
                    return
                await self._clear(kind, reply.record.record_id)

        self.run(handle())

    def _interrupt_may_come(self) -> bool:
        """A virtual interrupt is waiting, on its way, or about to be injected."""
        coordinator = self.bed.flow.coordinator
        return (self.dom0 is not None and not self.dom0.interrupts.empty()) or any(
            coordinator.queues[t].in_flight is not None or len(coordinator.queues[t])
            for t in coordinator.config.injected_types
        )

    @rule(record_type=st.sampled_from(RECORD_TYPES))
    def dom0_get(self, record_type: int) -> None:
        self.run(self._get(record_type))

    @rule(
        record_type=st.sampled_from(RECORD_TYPES),
        which=st.sampled_from(["read", "none", "other"]),
        other=record_ids,
    )
    def dom0_clear(self, record_type: int, which: str, other: int) -> None:
        last = self.last_read.get(record_type)
        if which == "read":
            record_id: int | None = last[1] if last else other
        elif which == "none":
            record_id = None
        else:
            record_id = other
        self.run(self._clear(record_type, record_id))

    # --- everyone else -----------------------------------------------------------------

    @rule(
        record_type=st.sampled_from(RECORD_TYPES),
        credential=not_dom0,
        clear=st.booleans(),
        record_id=st.one_of(st.none(), record_ids),
    )
    def not_dom0_calls(
        self, record_type: int, credential: Credential, clear: bool, record_id: int | None
    ) -> None:
        """Other domains get SAL status -5; callers without a valid token UNAUTHENTICATED."""
        flow = self.bed.flow
        metadata = credential.metadata(flow.tokens)

        async def call() -> Any:
            if clear:
                request = hv_pb2.ClearStateInfoRequest(type=record_type)  # type: ignore[arg-type]
                if record_id is not None:
                    request.record_id = record_id
                return await flow.hv.ClearStateInfo(
                    request, metadata=metadata, timeout=CALL_TIMEOUT
                )
            return await flow.hv.GetStateInfo(
                hv_pb2.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
                metadata=metadata,
                timeout=CALL_TIMEOUT,
            )

        states = self._flight_states()
        cleared_before = len(self.bed.cleared_events())
        got = self.run(answer(call()))
        assert len(self.bed.cleared_events()) == cleared_before
        if credential.identity is None:
            assert got.code == grpc.StatusCode.UNAUTHENTICATED, got
        else:
            assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
            if not clear:
                assert not got.reply.HasField("record")
        assert self._flight_states() == states  # nothing moved

    @rule(
        pcpu=st.sampled_from(PCPUS),
        record_type=st.sampled_from(RECORD_TYPES),
        credential=not_xen,
        record_id=st.one_of(st.none(), record_ids),
    )
    def clear_on_pcpu_without_xen_identity(
        self, pcpu: int, record_type: int, credential: Credential, record_id: int | None
    ) -> None:
        request = sal_pb2.ClearStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        if record_id is not None:
            request.record_id = record_id
        got = self.run(
            answer(
                self.bed.flow.sal(pcpu).ClearStateInfo(
                    request, metadata=credential.metadata(self.bed.flow.tokens), timeout=5
                )
            )
        )
        expected = (
            grpc.StatusCode.UNAUTHENTICATED
            if credential.identity is None
            else grpc.StatusCode.PERMISSION_DENIED
        )
        assert got.code == expected, got

    @rule(
        pcpu=st.one_of(st.sampled_from(PCPUS), st.sampled_from([3, 17, MAX_U32])),
        credential=st.one_of(st.just(Credential("token", OPERATOR)), credentials),
    )
    def place_vcpu0(self, pcpu: int, credential: Credential) -> None:
        got = self.run(
            answer(
                self.bed.flow.hv.SetVcpuPlacement(
                    hv_pb2.SetVcpuPlacementRequest(pcpu=pcpu),
                    metadata=credential.metadata(self.bed.flow.tokens),
                    timeout=CALL_TIMEOUT,
                )
            )
        )
        if credential.identity is None:
            assert got.code == grpc.StatusCode.UNAUTHENTICATED, got
        elif credential.identity != OPERATOR:
            assert got.code == grpc.StatusCode.PERMISSION_DENIED, got
        elif pcpu not in PCPUS:
            assert got.refused(grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PCPU"), got
        else:
            assert got.ok and got.reply.previous_pcpu == self.placement, got
            self.placement = pcpu

    @rule(
        pcpu=st.sampled_from(PCPUS), record_type=st.sampled_from(FLOW_TYPES), masked=st.booleans()
    )
    def toggle_mask(self, pcpu: int, record_type: int, masked: bool) -> None:
        """The line masked or unmasked behind the coordinator's back (as its poller does)."""
        got = self.run(
            answer(
                self.bed.flow.sal(pcpu).SetInterruptMask(
                    sal_pb2.SetInterruptMaskRequest(type=record_type, masked=masked),  # type: ignore[arg-type]
                    metadata=self.bed.flow.md(XEN),
                    timeout=CALL_TIMEOUT,
                )
            )
        )
        assert got.ok, got

    # --- after every step --------------------------------------------------------------

    def _flight_states(self) -> dict[int, tuple[int, State, int] | None]:
        return {
            t: (q.in_flight.pcpu, q.in_flight.state, q.in_flight.record_id) if q.in_flight else None
            for t, q in self.bed.flow.coordinator.queues.items()
        }

    @invariant()
    def nothing_cleared_unread(self) -> None:
        seen: set[tuple[int, int]] = set()
        for event in self.bed.cleared_events():
            key = (event["pcpu"], event["record_id"])
            assert key in self.read, ("cleared but never read by dom0", event)
            assert key in self.asked, ("cleared before dom0 asked", event)
            assert event["already_cleared"] or key not in seen, ("cleared twice", event)
            seen.add(key)
        assert self.asked <= self.read

    @invariant()
    def conserved_and_consistent(self) -> None:
        async def check() -> None:
            described = await check_conservation(self.bed)
            await check_coordinator(self.bed)
            cleared = sum(t.cleared for d in described.values() for t in d.types)
            fresh = [e for e in self.bed.cleared_events() if not e["already_cleared"]]
            assert cleared == len(fresh)
            assert self.bed.flow.coordinator.vcpu0_pcpu == self.placement
            # The entry in flight holds exactly the record dom0 read last.
            for record_type, queue in self.bed.flow.coordinator.queues.items():
                entry = queue.in_flight
                if entry is not None and entry.state is State.READ:
                    assert (entry.pcpu, entry.record_id) == self.last_read.get(record_type)
            for stream in [*self.old_streams, *([self.dom0] if self.dom0 else [])]:
                assert stream.error is None, stream.error

        self.run(check())


def test_fuzz_flow_state_machine() -> None:
    run_state_machine_as_test(
        FlowMachine,
        settings=settings(max_examples=40, stateful_step_count=40),
    )
