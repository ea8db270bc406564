"""The pCPUs' firmware as the coordinator uses it: xenmca's extended SAL, or plain SAL.

Plain SAL offers SAL_GET_STATE_INFO (the oldest record), SAL_CLEAR_STATE_INFO
(the current, i.e. oldest, record) and SAL_GET_STATE_INFO_SIZE, nothing more.
xenmca's extended firmware adds clear by record id, the remaining count after a
clear, lifetime counters and DescribePcpu. Each mode is one `FirmwareAccess`:

- CLEAR of the record dom0 read: extended clears it by id (idempotent, so a
  retry after a lost reply is safe). Plain compares the id in the current
  record's header with the one dom0 read and clears only on a match, as Xen
  could on the owning pCPU inside one IPI; a retried attempt after a lost reply
  then finds a newer record (or none) and clears nothing.
- Whether more records wait: extended reads ``remaining``; plain GETs again.
- Polls and reconciliation: extended reads DescribePcpu (pending, created,
  oldest id, mask); plain GETs each type (the oldest id; no counts, no mask).

Each logical call is counted once as local or IPI, however many SAL procedures
it runs on the owning pCPU (Xen would run them all in one IPI handler).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import grpc

from xenmca.record.v1 import record_pb2
from xenmca.rpc.retry import RetryPolicy
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.vocab import SalStatus
from xenmca.xen.links import PcpuLink
from xenmca.xen.sal_calls import CallOutcome, SalCaller

EXTENDED = "extended"
PLAIN = "plain"


@dataclass(frozen=True)
class Cleared:
    """What one CLEAR did on the owning pCPU."""

    record_id: int
    """The record cleared, or found already cleared; 0 when plain SAL does not say."""
    already: bool = False
    """The record was gone before this clear (a retry after a lost reply)."""
    nothing: bool = False
    """There was no record to clear."""
    remaining: int | None = None
    """Records of the type left on the pCPU (plain SAL: 0 or 1, "at least one"); None: not asked."""


@dataclass(frozen=True)
class TypeView:
    """One record type of one pCPU, as a poll or a reconciliation sees it."""

    record_type: int
    head_id: int
    """The oldest pending record's id; 0 when none is pending."""
    pending: int | None = None
    """Records pending (extended only)."""
    created: int | None = None
    """Records created over the pCPU's life (extended only)."""
    masked: bool | None = None
    """Whether the line is masked (extended only)."""
    max_record_size: int = 0


class FirmwareAccess(Protocol):
    mode: str

    async def read(
        self, link: PcpuLink, sal_type: int, by_ipi: bool
    ) -> tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome]:
        """SAL_GET_STATE_INFO on the owning pCPU (None after every attempt failed)."""
        ...

    async def clear_read(
        self, link: PcpuLink, sal_type: int, record_id: int, by_ipi: bool, want_remaining: bool
    ) -> tuple[Cleared | None, CallOutcome]:
        """Clear exactly record_id (or find it already cleared)."""
        ...

    async def clear_current(
        self, link: PcpuLink, sal_type: int, by_ipi: bool, want_remaining: bool
    ) -> tuple[Cleared | None, CallOutcome]:
        """SAL_CLEAR_STATE_INFO of whatever record is current."""
        ...

    async def view(
        self, link: PcpuLink, types: Iterable[int], call_timeout: float
    ) -> list[TypeView]:
        """Each type's oldest pending record (and more, where the firmware tells)."""
        ...

    async def set_mask(
        self, link: PcpuLink, record_type: int, masked: bool, call_timeout: float
    ) -> int | None:
        """Mask or unmask a line; the created counter at that instant when known."""
        ...


class _Common:
    mode = ""

    def __init__(self, caller: SalCaller) -> None:
        self.caller = caller

    async def read(
        self, link: PcpuLink, sal_type: int, by_ipi: bool
    ) -> tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome]:
        return await self.caller.get(link, sal_type, by_ipi)

    async def clear_current(
        self, link: PcpuLink, sal_type: int, by_ipi: bool, want_remaining: bool
    ) -> tuple[Cleared | None, CallOutcome]:
        reply, outcome = await self.caller.clear(link, sal_type, None, by_ipi)
        if reply is None:
            return None, outcome
        if reply.sal_status != SalStatus.SUCCESS:
            return Cleared(0, nothing=True, remaining=0), outcome
        remaining = await self._remaining_after_clear(link, sal_type, by_ipi, reply, want_remaining)
        # Plain SAL does not say which record it cleared (cleared_record_id is 0).
        return Cleared(reply.cleared_record_id, remaining=remaining), outcome

    async def _remaining_after_clear(
        self,
        link: PcpuLink,
        sal_type: int,
        by_ipi: bool,
        reply: sal_pb2.ClearStateInfoResponse,
        want_remaining: bool,
    ) -> int | None:
        return reply.remaining

    async def set_mask(
        self, link: PcpuLink, record_type: int, masked: bool, call_timeout: float
    ) -> int | None:
        reply = await link.stub.SetInterruptMask(
            sal_pb2.SetInterruptMaskRequest(type=record_type, masked=masked),  # type: ignore[arg-type]
            timeout=call_timeout,
            metadata=link.metadata,
        )
        return self._created_after_mask(reply)

    def _created_after_mask(self, reply: sal_pb2.SetInterruptMaskResponse) -> int | None:
        return None


class ExtendedSal(_Common):
    """xenmca's firmware: clear by id, remaining, counters, DescribePcpu."""

    mode = EXTENDED

    async def clear_read(
        self, link: PcpuLink, sal_type: int, record_id: int, by_ipi: bool, want_remaining: bool
    ) -> tuple[Cleared | None, CallOutcome]:
        reply, outcome = await self.caller.clear(link, sal_type, record_id, by_ipi)
        if reply is None:
            return None, outcome
        return (
            Cleared(
                reply.cleared_record_id or record_id,
                already=reply.already_cleared,
                remaining=reply.remaining,
            ),
            outcome,
        )

    async def view(
        self, link: PcpuLink, types: Iterable[int], call_timeout: float
    ) -> list[TypeView]:
        state = await link.stub.DescribePcpu(
            sal_pb2.DescribePcpuRequest(), timeout=call_timeout, metadata=link.metadata
        )
        wanted = set(types)
        return [
            TypeView(
                record_type=t.type,
                head_id=t.oldest_record_id if t.pending else 0,
                pending=t.pending,
                created=t.created,
                masked=t.masked,
                max_record_size=t.max_record_size,
            )
            for t in state.types
            if t.type in wanted
        ]

    def _created_after_mask(self, reply: sal_pb2.SetInterruptMaskResponse) -> int | None:
        return reply.created


class PlainSal(_Common):
    """Real SAL: GET the oldest, CLEAR the current, GET_SIZE; ids only from the record header."""

    mode = PLAIN

    def __init__(self, caller: SalCaller) -> None:
        super().__init__(caller)
        # Each SAL procedure is one attempt; the compare-and-clear is what is retried.
        self._once = RetryPolicy(
            attempt_timeout=caller.policy.attempt_timeout,
            overall_timeout=caller.policy.attempt_timeout,
            max_attempts=1,
        )
        self._sizes: dict[int, int] = {}

    async def clear_read(
        self, link: PcpuLink, sal_type: int, record_id: int, by_ipi: bool, want_remaining: bool
    ) -> tuple[Cleared | None, CallOutcome]:
        # The compare-and-clear is one idempotent unit (a record cleared by an attempt
        # whose reply was lost is found gone), so it is retried as a whole.
        async def compare_and_clear(_timeout: float) -> Cleared:
            return await self._compare_and_clear(link, sal_type, record_id, by_ipi, want_remaining)

        return await self.caller.call(link, by_ipi, compare_and_clear, "clear")

    async def _compare_and_clear(
        self, link: PcpuLink, sal_type: int, record_id: int, by_ipi: bool, want_remaining: bool
    ) -> Cleared:
        current = await self._get_once(link, sal_type, by_ipi)
        head = current.record.record_id if current.sal_status == SalStatus.SUCCESS else 0
        if head != record_id:
            # Ids grow, and only the coordinator clears: a newer record (or none) at the
            # head means this one was cleared already, by an attempt whose reply was lost.
            return Cleared(record_id, already=True, remaining=1 if head else 0)
        await link.stub.ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=sal_type),  # type: ignore[arg-type]
            timeout=self._once.attempt_timeout,
            metadata=link.sal_metadata(by_ipi),
        )
        remaining = await self._remaining(link, sal_type, by_ipi, want_remaining)
        return Cleared(record_id, remaining=remaining)

    async def _remaining_after_clear(
        self,
        link: PcpuLink,
        sal_type: int,
        by_ipi: bool,
        reply: sal_pb2.ClearStateInfoResponse,
        want_remaining: bool,
    ) -> int | None:
        try:
            return await self._remaining(link, sal_type, by_ipi, want_remaining)
        except grpc.aio.AioRpcError:
            return None  # cleared; whether more wait is learnt at the next GET

    async def _remaining(
        self, link: PcpuLink, sal_type: int, by_ipi: bool, wanted: bool
    ) -> int | None:
        if not wanted:
            return None
        after = await self._get_once(link, sal_type, by_ipi)
        return 1 if after.sal_status == SalStatus.SUCCESS else 0

    async def _get_once(
        self, link: PcpuLink, sal_type: int, by_ipi: bool
    ) -> sal_pb2.GetStateInfoResponse:
        reply: sal_pb2.GetStateInfoResponse = await link.stub.GetStateInfo(
            sal_pb2.GetStateInfoRequest(type=sal_type),  # type: ignore[arg-type]
            timeout=self._once.attempt_timeout,
            metadata=link.sal_metadata(by_ipi),
        )
        return reply

    async def view(
        self, link: PcpuLink, types: Iterable[int], call_timeout: float
    ) -> list[TypeView]:
        views = []
        for record_type in types:
            if record_type not in self._sizes:
                size = await link.stub.GetStateInfoSize(
                    sal_pb2.GetStateInfoSizeRequest(type=record_type),  # type: ignore[arg-type]
                    timeout=call_timeout,
                    metadata=link.metadata,
                )
                self._sizes[record_type] = size.size
            reply = await link.stub.GetStateInfo(
                sal_pb2.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
                timeout=call_timeout,
                metadata=link.metadata,
            )
            head = reply.record.record_id if reply.sal_status == SalStatus.SUCCESS else 0
            views.append(TypeView(record_type, head, max_record_size=self._sizes[record_type]))
        return views


def firmware_access(mode: str, caller: SalCaller) -> FirmwareAccess:
    if mode == EXTENDED:
        return ExtendedSal(caller)
    if mode == PLAIN:
        return PlainSal(caller)
    raise ValueError(f"unknown SAL mode {mode!r} (known: {EXTENDED}, {PLAIN})")


def corrected_copy(reply: sal_pb2.GetStateInfoResponse) -> record_pb2.ErrorRecord:
    """The record with its severity forced to corrected, in the proto and the raw header.

    fw_emul.c get_state_info_on: ``if (arg->corrected) sal_record->severity =
    sal_log_severity_corrected`` for an MCA record read through the CMC queue.
    """
    from xenmca.layout.header import SEVERITY_OFFSET
    from xenmca.layout.record import SEVERITY_CORRECTED

    record = record_pb2.ErrorRecord()
    record.CopyFrom(reply.record)
    record.severity = record_pb2.SEVERITY_CORRECTED
    if len(record.raw) > SEVERITY_OFFSET:
        raw = bytearray(record.raw)
        raw[SEVERITY_OFFSET] = SEVERITY_CORRECTED
        record.raw = bytes(raw)
    return record
