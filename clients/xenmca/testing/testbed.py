"""Testbed: a whole testbed in this process (pCPUs, the coordinator, dom0 and its log).

Built from a BedConfig by `start_testbed()` (or the ``xenmca_testbed`` fixture), every
server on 127.0.0.1 port 0 and every component's events in one EventWatch. Its
helpers are what a test does with it: make records on a pCPU and wait, on the
events, until dom0 has logged them and had its CLEARs answered; read the log;
add per-RPC faults; restart dom0; run the checkers over what happened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Unpack

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.events import Event
from xenmca.rpc.identity import DOM0, TokenBook
from xenmca.testbed.check.checkers import line_modes
from xenmca.testbed.scenario.model import Checks
from xenmca.testing.checks import CheckReport, run_checkers
from xenmca.testing.config import BedConfig
from xenmca.testing.dom0 import RunningDom0, running_dom0
from xenmca.testing.events import DEFAULT_WITHIN, EventWatch
from xenmca.testing.faults import RpcFault, RuleOptions, add_rpc_fault
from xenmca.testing.flow import CMC, FlowBed, attached_coordinator, make_tokens, running_pcpus
from xenmca.testing.log import LogContents, read_log
from xenmca.xen.coordinator import Coordinator

RecordKey = tuple[int, int]
"""A record as dom0's log keys it: (pCPU, record id)."""


class NotLogged(TimeoutError):
    """Records that did not reach dom0's log (or were not cleared) in time; they are named."""


@dataclass
class Testbed:
    """pCPUs and the coordinator (``flow``), dom0 (``dom0``), and what the test injected."""

    __test__: ClassVar[bool] = False  # a helper, not a test class, whatever pytest's prefix

    flow: FlowBed = field(repr=False)
    dom0: RunningDom0 = field(repr=False)
    config: BedConfig
    injected: list[RecordKey] = field(default_factory=list)
    """Every record stored by ``inject``, in order."""
    requested: int = 0
    """Records asked of the pCPUs through ``inject`` (stored or overflowed)."""
    started_ns: int = field(default_factory=time.monotonic_ns)
    """When it was made (CLOCK_MONOTONIC, as the events' t_mono_ns)."""
    _committed: set[RecordKey] = field(default_factory=set, repr=False)
    _cleared: set[RecordKey] = field(default_factory=set, repr=False)
    _scanned: int = field(default=0, repr=False)

    # -- what it is made of ------------------------------------------------------

    @property
    def watch(self) -> EventWatch:
        """Every component's events (``component``: ``pcpu``, ``xen`` or ``dom0``)."""
        return self.flow.watch

    @property
    def tokens(self) -> TokenBook:
        return self.flow.tokens

    @property
    def pcpu_host(self) -> PcpuHost:
        return self.flow.host

    @property
    def pcpu_addresses(self) -> dict[int, str]:
        return self.flow.host.addresses

    @property
    def coordinator(self) -> Coordinator:
        return self.flow.coordinator

    @property
    def xen_address(self) -> str:
        return self.flow.xen_address

    @property
    def db_path(self) -> Path:
        return self.dom0.db_path

    def events(self, kind: str, **fields: Any) -> list[Event]:
        """The events of that kind so far whose fields equal the ones given."""
        return self.watch.matching(kind, **fields)

    # -- records in, records logged ----------------------------------------------

    async def inject(self, pcpu: int, count: int = 1, record_type: int = CMC) -> list[RecordKey]:
        """pCPU's hardware makes count records of record_type; the stored ones' keys.

        Records past the store's capacity are counted as overflow (not returned).
        """
        reply = await self.flow.inject(pcpu, count, record_type)
        self.requested += count
        keys = [(pcpu, rid) for rid in range(reply.first_record_id, reply.last_record_id + 1)]
        if not reply.stored:
            keys = []
        self.injected.extend(keys)
        return keys

    def _scan(self) -> None:
        """Take in the events that arrived since the last look."""
        events = self.watch.events
        for event in events[self._scanned :]:
            kind, component = event["kind"], event.get("component")
            if kind == "record_committed" and component == "dom0":
                self._committed.add((int(event["pcpu"]), int(event["record_id"])))
            elif kind == "record_cleared" and component == "dom0" and event["sal_status"] == 0:
                # dom0's CLEAR answered: the firmware cleared it, retries and all.
                self._cleared.add((int(event["pcpu"]), int(event["record_id"])))
        self._scanned = len(events)

    def missing(self, keys: Iterable[RecordKey], *, cleared: bool = True) -> list[RecordKey]:
        """The keys not committed to dom0's log yet (or, with cleared, whose CLEAR dom0 has
        not had answered with success yet)."""
        self._scan()
        return [
            key
            for key in keys
            if key not in self._committed or (cleared and key not in self._cleared)
        ]

    async def wait_logged(
        self,
        keys: Iterable[RecordKey] | None = None,
        *,
        cleared: bool = True,
        within: float = DEFAULT_WITHIN,
    ) -> LogContents:
        """Until dom0 has committed every record of keys (default: all injected) and, when
        cleared, had its CLEAR of each answered with success; then the log. NotLogged
        names the records still missing."""
        wanted = list(self.injected if keys is None else keys)
        try:
            await self.watch.until(lambda: not self.missing(wanted, cleared=cleared), within)
        except TimeoutError:
            left = self.missing(wanted, cleared=cleared)
            what = "logged and cleared" if cleared else "logged"
            shown = ", ".join(f"pCPU {p} #{r}" for p, r in left[:10])
            more = f" and {len(left) - 10} more" if len(left) > 10 else ""
            raise NotLogged(
                f"{len(left)} of {len(wanted)} records not {what} within {within:g} s: "
                f"{shown}{more}"
            ) from None
        return await self.read_log()

    async def read_log(self) -> LogContents:
        """dom0's log as committed now."""
        return await read_log(self.db_path)

    # -- faults ------------------------------------------------------------------

    async def add_fault(
        self,
        method: str,
        action: str,
        *,
        on: Literal["pcpus", "xen"] | None = None,
        **options: Unpack[RuleOptions],
    ) -> RpcFault:
        """A per-RPC fault rule (``xenmca.testing.faults``) where method is served.

        ``SalService`` methods go to the pCPU host (a lost, late or failed IPI; give
        ``pcpu`` to narrow it), ``HypervisorService`` ones to the coordinator (dom0's
        calls); ``on`` says where when the method's name does not. The other keywords
        are add_rpc_fault's: ``pcpu=None, count=0, skip=0, delay=0.0, duration=0.0``.
        """
        where = on or ("pcpus" if "SalService" in method else "xen")
        address = (
            self.pcpu_addresses[min(self.pcpu_addresses)]
            if where == "pcpus"
            else (self.xen_address)
        )
        return await add_rpc_fault(address, self.tokens, method, action, **options)

    # -- dom0 ----------------------------------------------------------------------

    async def stop_dom0(self, grace: float = 0.0) -> None:
        """dom0 stops: at once by default, wherever it is (as a crash), or after grace seconds."""
        await self.dom0.stop(grace)

    async def start_dom0(self) -> None:
        """A new dom0 instance on the same log; returns once the coordinator has it attached."""
        await self.dom0.start()
        await self.watch.wait_for("dom0_attached", instance=self.dom0.instance)

    async def restart_dom0(self, grace: float = 0.0) -> None:
        """stop_dom0, then start_dom0: a new dom0 attaches in the place of the old."""
        await self.stop_dom0(grace)
        await self.start_dom0()

    # -- checks --------------------------------------------------------------------

    def polling_lines(self) -> list[tuple[int, str]]:
        """The (pCPU, type) lines the coordinator has in polling mode now, by its events."""
        return sorted(
            line for line, mode in line_modes(self.watch.events).items() if mode != "interrupt"
        )

    async def wait_settled(self, within: float = DEFAULT_WITHIN) -> None:
        """Until every throttled line is back in interrupt mode (a storm's line needs a quiet
        poll); TimeoutError when one is still polling after within seconds."""
        await self.watch.until(lambda: not self.polling_lines(), within)

    async def check(
        self, checks: Checks | None = None, *, settle: float = DEFAULT_WITHIN
    ) -> CheckReport:
        """The checkers over everything so far (``xenmca.testing.checks.run_checkers``).

        First, up to settle seconds for throttled lines to return to interrupt mode, as
        a scenario run settles after its drain; a line still polling then fails
        ``lines_back_to_interrupt``, which names it.
        """
        with contextlib.suppress(TimeoutError):
            await self.wait_settled(settle)
        return await run_checkers(self, checks)


@asynccontextmanager
async def start_testbed(config: BedConfig, db_path: Path, **start: Any) -> AsyncIterator[Testbed]:
    """A whole testbed made as config says, dom0 logging to db_path; stopped on the way out.

    ``start`` holds more CoordinatorConfig fields (``broken_rule``, ``injected_types``).
    """
    config.check()
    started_ns = time.monotonic_ns()
    tokens, watch = make_tokens(), EventWatch()
    async with (
        running_pcpus(
            config.pcpus, tokens, watch, sal_mode=config.sal_mode, capacity=config.capacity
        ) as host,
        attached_coordinator(
            host, tokens, watch, **{**config.coordinator_options(), **start}
        ) as flow,
        running_dom0(
            flow.xen_address,
            db_path,
            tokens.token_for(DOM0),
            watch,
            policy=config.dom0_policy,
            cpe_poll=config.cpe_poll,
        ) as dom0,
    ):
        yield Testbed(flow, dom0, config, started_ns=started_ns)
