"""Dom0Logger: dom0's error logger, attached to the coordinator's virtual interrupt line.

It holds one channel to the coordinator and keeps an AttachDom0 stream open,
re-attaching with jittered exponential backoff whenever the stream breaks or
the coordinator cannot be reached, until stopped. Each virtual interrupt is
handed to the logger's policy (``xenmca.dom0.policy``) for its type; one type is
handled one interrupt at a time, as vCPU0 would, while different types run
concurrently. Types that are not injected (CPE, as the design settled) are
polled with ia64's dynamic interval: halved when a poll finds records, doubled
when it finds none; what a poll tick does is the policy's business too. The
default policy, ``xenmca``, runs GET -> commit -> CLEAR(record_id); see
``xenmca.dom0.policies`` for the others.

While the log takes no commits (a full disk), retries follow one backoff for
all types (``xenmca.dom0.log_health``), and a re-injected interrupt that finds
another of its type still queued is dropped: the queued one reads the same
entry, and the coordinator injects again if that read makes no progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping

import grpc

from xenmca.dom0.handler import CommitObserver, Dom0Counters, DrainResult, Outcome
from xenmca.dom0.log_health import DEFAULT_COMMIT_BACKOFF, LogHealth
from xenmca.dom0.log_store import LogStore
from xenmca.dom0.pacing import PollSettings, next_poll_interval, wait_unless_stopped
from xenmca.dom0.policies import DEFAULT_POLICY, make_policy
from xenmca.dom0.policy import Dom0Context, Dom0Policy
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc import hop_trace
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import call_metadata
from xenmca.rpc.retry import Backoff, BackoffPolicy
from xenmca.vocab import RecordType, type_name

log = logging.getLogger(__name__)

DEFAULT_POLLED: Mapping[int, PollSettings] = {RecordType.CPE: PollSettings()}

DEFAULT_ATTACH_BACKOFF = BackoffPolicy(initial=0.1, maximum=5.0, multiplier=2.0, jitter=0.5)
"""Re-attaching: each delay drawn from [d / 2, d], so many dom0s (or one dom0 and a
restarting coordinator) do not retry in lock step."""

_Interrupt = tuple[int, hv_pb2.AttachDom0Response] | None  # (session, interrupt) or stop


class Dom0Logger:
    """dom0's logger. ``await start()``, then ``await stop()``; counters and events as it goes.

    ``policy`` is a Dom0Policy, or its name (``xenmca``, the default, or
    ``linux-salinfo`` with its default decode delay). ``backoff`` paces
    re-attaching; ``commit_backoff`` paces retries while the log takes no
    commits (``log_health``).
    """

    def __init__(
        self,
        xen_address: str,
        store: LogStore,
        *,
        token: str | None = None,
        instance: str = "dom0",
        events: EventLog | None = None,
        clock: Clock | None = None,
        polled_types: Mapping[int, PollSettings] | None = None,
        backoff: BackoffPolicy | None = None,
        commit_backoff: BackoffPolicy = DEFAULT_COMMIT_BACKOFF,
        rng: random.Random | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        call_timeout: float = 10.0,
        connect_timeout: float = 2.0,
        commit_observer: CommitObserver | None = None,
        policy: Dom0Policy | str = DEFAULT_POLICY,
        carry_interrupts: bool = True,
    ) -> None:
        self.xen_address = xen_address
        self.instance = instance
        self.carry_interrupts = carry_interrupts
        """Ask each CLEAR to carry the next virtual interrupt on its reply (one stream
        message fewer per record); False: every interrupt comes on the stream."""
        self.store = store
        self.events = events or EventLog("dom0")
        self.counters = Dom0Counters()
        self.polled_types = dict(DEFAULT_POLLED if polled_types is None else polled_types)
        self.policy: Dom0Policy = make_policy(policy) if isinstance(policy, str) else policy
        self.attached = asyncio.Event()
        """Set while an AttachDom0 stream is open on a connected channel."""
        self.commit_observer = commit_observer
        """Told each commit's time in seconds (metrics); read when start() is called."""
        self._token = token
        self._clock = clock or MonotonicClock()
        self._backoff = Backoff(backoff or DEFAULT_ATTACH_BACKOFF, rng)
        self.log_health = LogHealth(
            self._clock, self.events, commit_backoff, rng, where=f"dom0's log {store.path}"
        )
        """Whether the log takes commits; the one backoff for retrying them."""
        self._credentials = credentials
        self._call_timeout = call_timeout
        self._connect_timeout = connect_timeout
        self._stopping = asyncio.Event()
        self._session = 0
        self._inboxes: dict[int, asyncio.Queue[_Interrupt]] = {}
        self._queued: dict[int, int] = {}
        """Per type: interrupts of the current session queued and not yet taken."""
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._pollers: list[asyncio.Task[None]] = []
        self._attach_task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: hv_grpc.HypervisorServiceStub | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Open the channel, start attaching, and start a poller per polled type."""
        if self._channel is not None:
            raise RuntimeError("Dom0Logger already started")
        self._channel = open_channel(self.xen_address, self._credentials)
        self._stub = hv_grpc.HypervisorServiceStub(self._channel)
        self.policy.start(
            Dom0Context(
                stub=self._stub,
                store=self.store,
                events=self.events,
                counters=self.counters,
                clock=self._clock,
                stopping=self._stopping,
                log_health=self.log_health,
                metadata=call_metadata(self._token),
                call_timeout=self._call_timeout,
                commit_observer=self.commit_observer,
                instance=self.instance,
                carried=self._on_carried_interrupt if self.carry_interrupts else None,
            )
        )
        self._started = True
        self._attach_task = asyncio.create_task(self._attach_loop(), name="dom0-attach")
        for record_type, settings in self.polled_types.items():
            self._pollers.append(
                asyncio.create_task(
                    self._poll_loop(record_type, settings), name=f"dom0-poll-{record_type}"
                )
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop attaching and polling; let passes in progress finish (up to grace seconds)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._attach_task is not None:
            self._attach_task.cancel()
        for inbox in self._inboxes.values():
            inbox.put_nowait(None)
        tasks = [*self._workers.values(), *self._pollers, *self.policy.tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        for task in [*tasks, *([self._attach_task] if self._attach_task else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._channel is not None:
            await self._channel.close()
        self.events.emit("dom0_stopped", policy=self.policy.name, **self.counters.as_dict())

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleep on the clock; False (early) if stop() is called meanwhile."""
        return await wait_unless_stopped(self._clock.sleep(seconds), self._stopping)

    # -- the virtual interrupt line -----------------------------------------------

    async def _attach_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                delivered = await self._attach_once()
            except Exception:  # a bug must not end attaching: log it, back off, go on
                log.exception("attach to %s failed unexpectedly", self.xen_address)
                delivered = False
            if delivered:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            log.debug("re-attaching to %s in %.3fs", self.xen_address, delay)
            if not await self._sleep_or_stop(delay):
                return

    async def _attach_once(self) -> bool:
        """One AttachDom0 stream, until it ends; True if it delivered any interrupt."""
        assert self._channel is not None and self._stub is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), self._connect_timeout)
        except TimeoutError:
            log.debug("coordinator %s not reachable", self.xen_address)
            return False
        self._session += 1
        self._queued.clear()
        call = self._stub.AttachDom0(
            hv_pb2.AttachDom0Request(instance=self.instance), metadata=call_metadata(self._token)
        )
        self.counters.attaches += 1
        self.events.emit(
            "dom0_attached",
            xen=self.xen_address,
            instance=self.instance,
            session=self._session,
            policy=self.policy.name,
        )
        log.info("attached to coordinator %s as %s", self.xen_address, self.instance)
        self.attached.set()
        delivered = False
        reason = "stream ended"
        try:
            async for interrupt in call:
                delivered = True
                self._on_interrupt(interrupt)
        except grpc.aio.AioRpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
        finally:
            self.attached.clear()
            call.cancel()
        if not self._stopping.is_set():
            self.events.emit("dom0_detached", reason=reason, session=self._session)
            log.warning("detached from coordinator %s: %s", self.xen_address, reason)
        return delivered

    def _on_carried_interrupt(self, interrupt: hv_pb2.AttachDom0Response) -> None:
        """A virtual interrupt that came on a CLEAR's reply: as one from the stream."""
        self._on_interrupt(interrupt, via="clear reply")

    def _on_interrupt(self, interrupt: hv_pb2.AttachDom0Response, via: str = "stream") -> None:
        hop_trace.mark("dom0.virq")
        self.counters.interrupts += 1
        self.events.emit(
            "interrupt_received",
            type=type_name(interrupt.type),
            injection_id=interrupt.injection_id,
            reinjected=interrupt.reinjected,
            via=via,
        )
        record_type = int(interrupt.type)
        if interrupt.reinjected and self._queued.get(record_type, 0) > 0:
            # A pass still to come reads the entry this one repeats. Without this, a
            # pass waiting out the commit backoff (up to a minute) would find a
            # re-injection per coordinator watchdog period queued behind it.
            log.debug("%s re-injection dropped: one is queued already", type_name(record_type))
            return
        inbox = self._inboxes.get(record_type)
        if inbox is None:
            inbox = self._inboxes[record_type] = asyncio.Queue()
            self._workers[record_type] = asyncio.create_task(
                self._interrupt_worker(record_type, inbox), name=f"dom0-vcpu0-{record_type}"
            )
        inbox.put_nowait((self._session, interrupt))
        self._queued[record_type] = self._queued.get(record_type, 0) + 1

    async def _interrupt_worker(self, record_type: int, inbox: asyncio.Queue[_Interrupt]) -> None:
        """vCPU0's handler for one type: one interrupt at a time, in arrival order."""
        while (item := await inbox.get()) is not None:
            session, _ = item
            if session != self._session:
                continue  # from a stream that broke; the coordinator re-injects what matters
            self._queued[record_type] -= 1
            try:
                await self.policy.on_interrupt(record_type)
            except Exception:  # the next interrupt must still be handled
                log.exception("%s handler failed unexpectedly", type_name(record_type))

    # -- polled types -------------------------------------------------------------

    async def poll_once(self, record_type: int) -> int:
        """One poll tick of a type now (xenmca: drain it); the records found."""
        return (await self._poll(record_type)).found

    async def _poll(self, record_type: int) -> DrainResult:
        assert self._started, "start() first"
        return await self.policy.on_poll(record_type)

    async def _poll_loop(self, record_type: int, settings: PollSettings) -> None:
        interval = settings.min_interval
        while await self._sleep_or_stop(interval):
            try:
                result = await self._poll(record_type)
            except Exception:  # keep polling: the next poll may succeed
                log.exception("%s poll failed unexpectedly", type_name(record_type))
                result = DrainResult(found=0, last=Outcome.FAILED)
            self.counters.polls += 1
            if result.found == 0 and result.last is Outcome.FAILED:
                following = interval  # the coordinator did not answer: no news either way
            else:
                following = next_poll_interval(interval, result.found, settings)
            self.events.emit(
                "poll",
                type=type_name(record_type),
                found=result.found,
                interval=interval,
                next_interval=following,
            )
            interval = following
