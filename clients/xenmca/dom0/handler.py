"""dom0's SAL handler for one record: trapped GET, durable commit, then trapped CLEAR by id.

The order is the point of the design: CLEAR is sent only after the commit has
returned (the record is fsync'd in the log), and it names the record that was
read, so the coordinator can never clear something dom0 does not have.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import grpc

from xenmca.dom0.log_health import LogHealth
from xenmca.dom0.log_store import LogStore
from xenmca.dom0.trapped_calls import get_state_info, get_state_info_size
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc import hop_trace
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.retry import RETRYABLE_CODES, RetryPolicy, call_with_retry
from xenmca.vocab import SalStatus, type_name

log = logging.getLogger(__name__)

CommitObserver = Callable[[float], None]
"""Told the time of each durable commit to the log, in seconds (new records and duplicates)."""


@dataclass
class Dom0Counters:
    """dom0's totals since start."""

    interrupts: int = 0
    attaches: int = 0
    records_logged: int = 0
    duplicates_dropped: int = 0
    gets: int = 0
    clears: int = 0
    polls: int = 0
    unreachable: int = 0
    call_errors: int = 0
    commit_errors: int = 0
    salinfo_saved: int = 0
    """linux-salinfo: records kept in one of salinfo.c's saved slots for the daemon."""
    salinfo_discarded: int = 0
    """linux-salinfo: records dropped from (or never given) a saved slot before being logged."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Outcome(enum.Enum):
    """What one GET -> commit -> CLEAR pass achieved."""

    LOGGED = "logged"  # a new record, committed and cleared
    DUPLICATE = "duplicate"  # already in the log (re-delivered), cleared again
    NOTHING = "nothing"  # GET answered -5: no record for this type
    UNREACHABLE = "unreachable"  # GET answered -3: the coordinator will inject again
    NOT_CLEARED = "not_cleared"  # read and committed, but CLEAR answered -3 or -5
    FAILED = "failed"  # an RPC or the commit failed
    READ = "read"  # linux-salinfo: read into kernel memory; its daemon logs it later

    @property
    def found_record(self) -> bool:
        return self in (Outcome.LOGGED, Outcome.DUPLICATE, Outcome.NOT_CLEARED, Outcome.READ)

    @property
    def cleared(self) -> bool:
        return self in (Outcome.LOGGED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class DrainResult:
    """A run of passes for one type, stopped at the first that did not clear a record."""

    found: int
    last: Outcome


class StateInfoHandler:
    """Runs GET -> commit -> CLEAR against the coordinator for one record type at a time.

    The caller serialises passes of one type (vCPU0 handles one interrupt of a
    type at a time); passes of different types may run concurrently.
    """

    def __init__(
        self,
        stub: hv_grpc.HypervisorServiceStub,
        store: LogStore,
        *,
        events: EventLog,
        counters: Dom0Counters,
        log_health: LogHealth,
        clock: Clock,
        metadata: tuple[tuple[str, str], ...] = (),
        call_timeout: float = 10.0,
        commit_observer: CommitObserver | None = None,
        carry_for: str = "",
        carried: Callable[[hv_pb2.AttachDom0Response], None] | None = None,
    ) -> None:
        self._stub = stub
        # A CLEAR names this dom0 (carry_for) so that the next virtual interrupt comes on
        # its reply, one stream message fewer per record; carried takes it.
        self._carry_for = carry_for if carried is not None else ""
        self._carried = carried
        self._store = store
        self._events = events
        self._counters = counters
        self._log_health = log_health
        self._clock = clock
        self._metadata = metadata
        self._call_timeout = call_timeout
        self._retry = RetryPolicy(
            attempt_timeout=call_timeout, overall_timeout=3 * call_timeout, max_attempts=5
        )
        self._failing_in_a_row = 0
        self._commit_observer = commit_observer
        # Each type's buffer, sized by SAL_GET_STATE_INFO_SIZE before its first GET, as
        # Linux sizes its log buffers (mca.c IA64_LOG_ALLOCATE, salinfo_log_open).
        self._buffer_size: dict[int, int] = {}

    async def handle_once(self, record_type: int) -> Outcome:
        """One pass; RPC and commit failures are logged and reported as Outcome.FAILED.

        A failed commit is the log health's to report (once per outage) and to
        pace: the caller runs the pass inside ``LogHealth.attempt()``.
        """
        name = type_name(record_type)
        try:
            outcome = await self._pass(record_type, name)
        except grpc.aio.AioRpcError as exc:
            self._counters.call_errors += 1
            self._failing_in_a_row += 1
            # One warning per outage; the repeats (every poll, every retry) at debug.
            level = logging.WARNING if self._failing_in_a_row == 1 else logging.DEBUG
            log.log(level, "%s handler: call failed: %s %s", name, exc.code().name, exc.details())
            self._events.emit("call_failed", type=name, code=exc.code().name)
            return Outcome.FAILED
        except sqlite3.Error as exc:
            self._counters.commit_errors += 1
            self._log_health.commit_failed(exc, name)
            return Outcome.FAILED
        if self._failing_in_a_row:
            log.info("%s handler: coordinator answers again", name)
            self._failing_in_a_row = 0
        return outcome

    async def drain(
        self, record_type: int, keep_going: Callable[[], bool] = lambda: True
    ) -> DrainResult:
        """Passes until one does not clear a record (or keep_going() turns false)."""
        found = 0
        outcome = Outcome.NOTHING
        while keep_going():
            outcome = await self.handle_once(record_type)
            found += outcome.found_record
            if not outcome.cleared:
                break
        return DrainResult(found=found, last=outcome)

    async def _state_info_size(self, record_type: int) -> int:
        """Trapped SAL_GET_STATE_INFO_SIZE: one record's largest size (0 if refused)."""
        reply = await get_state_info_size(
            self._stub, record_type, self._metadata, self._retry, self._clock
        )
        return int(reply.size) if reply.sal_status == SalStatus.SUCCESS else 0

    async def _fits(self, record_type: int, record_size: int, ids: dict[str, object]) -> None:
        """Size the buffer before the first GET; a record larger than it asks the size again,
        and one larger than that is an error said clearly, then kept all the same (its bytes
        arrived whole over the RPC: dropping them would lose the record)."""
        buffer = self._buffer_size.get(record_type, 0)
        if record_size <= buffer:
            return
        fresh = await self._state_info_size(record_type)
        self._buffer_size[record_type] = max(buffer, fresh)
        if record_size <= fresh:
            return
        log.error(
            "%s record %s is %d bytes, larger than SAL_GET_STATE_INFO_SIZE's %d: "
            "the firmware under-reports its record size; the record is logged whole",
            ids["type"],
            f"{ids['pcpu']}:{ids['record_id']}",
            record_size,
            fresh,
        )
        self._events.emit("record_too_large", **ids, size=record_size, state_info_size=fresh)
        self._buffer_size[record_type] = record_size

    async def _pass(self, record_type: int, name: str) -> Outcome:
        if record_type not in self._buffer_size:
            self._buffer_size[record_type] = await self._state_info_size(record_type)
        self._counters.gets += 1
        get_started = time.perf_counter()
        # GET is idempotent and CLEAR names the record, so both are retried when the
        # call (or its reply) is lost on the way: a lost reply must not strand the entry.
        hop_trace.mark("dom0.get.send")
        got = await get_state_info(
            self._stub, record_type, self._metadata, self._retry, self._clock
        )
        if got.sal_status == SalStatus.NO_INFORMATION:
            return Outcome.NOTHING
        if got.sal_status == SalStatus.CALL_ERROR:
            self._counters.unreachable += 1
            log.debug("%s GET: the record's pCPU is unreachable; the coordinator keeps it", name)
            return Outcome.UNREACHABLE
        if got.sal_status != SalStatus.SUCCESS:
            log.warning("%s GET: unexpected SAL status %d", name, got.sal_status)
            return Outcome.NOTHING
        hop_trace.mark("dom0.get.reply")
        record = got.record
        ids = {"pcpu": record.pcpu, "type": name, "record_id": record.record_id}
        get_ms = (time.perf_counter() - get_started) * 1000
        self._events.emit("record_read", **ids, by_ipi=got.by_ipi, get_ms=round(get_ms, 3))
        await self._fits(record_type, len(record.raw), ids)

        started = time.perf_counter()
        hop_trace.mark("dom0.commit.start")
        is_new = await self._store.commit(record)
        hop_trace.mark("dom0.commit.end")
        commit_ms = (time.perf_counter() - started) * 1000
        self._log_health.commit_succeeded()
        if self._commit_observer is not None:
            self._commit_observer(commit_ms / 1000)
        if is_new:
            self._counters.records_logged += 1
        else:
            self._counters.duplicates_dropped += 1
        self._events.emit(
            "record_committed",
            **ids,
            duplicate=not is_new,
            commit_ms=round(commit_ms, 3),
            created_monotonic_ns=record.created_monotonic_ns,
        )

        self._events.emit("record_clear_requested", **ids)
        self._counters.clears += 1
        hop_trace.mark("dom0.clear.send")
        cleared, _ = await call_with_retry(
            lambda attempt_timeout: self._stub.ClearStateInfo(
                hv_pb2.ClearStateInfoRequest(
                    type=record_type,  # type: ignore[arg-type]
                    record_id=record.record_id,
                    pcpu=record.pcpu,
                    carry_interrupt_for=self._carry_for,
                ),
                metadata=self._metadata,
                timeout=attempt_timeout,
            ),
            self._retry,
            retryable=RETRYABLE_CODES,
            clock=self._clock,
        )
        hop_trace.mark("dom0.clear.reply")
        self._events.emit(
            "record_cleared",
            **ids,
            sal_status=cleared.sal_status,
            by_ipi=cleared.by_ipi,
            already_cleared=cleared.already_cleared,
        )
        if self._carried is not None and cleared.HasField("next_interrupt"):
            self._carried(cleared.next_interrupt)
        if cleared.sal_status == SalStatus.SUCCESS:
            return Outcome.LOGGED if is_new else Outcome.DUPLICATE
        if cleared.sal_status == SalStatus.CALL_ERROR:
            self._counters.unreachable += 1
            log.debug("%s CLEAR %s: pCPU unreachable; it will be delivered again", name, ids)
        else:
            log.warning("%s CLEAR %s refused with SAL status %d", name, ids, cleared.sal_status)
        return Outcome.NOT_CLEARED
