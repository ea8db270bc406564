"""dom0's policies by name: ``xenmca`` (the default design) and ``linux-salinfo`` (what shipped).

``xenmca`` commits before it clears and clears by record id: GET -> durable
commit -> CLEAR(record_id), one pass per virtual interrupt and a drain per
CPE poll, with duplicates dropped by the log. ``linux-salinfo``
(``xenmca.dom0.salinfo``) clears corrected records in firmware right after GET
and keeps them in volatile kernel buffers until its daemon logs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from xenmca.dom0.handler import DrainResult, Outcome, StateInfoHandler
from xenmca.dom0.policy import Dom0Context, Dom0Policy
from xenmca.dom0.salinfo import LINUX_SALINFO, SalinfoPolicy

XENMCA = "xenmca"
DEFAULT_POLICY = XENMCA


class XenmcaPolicy:
    """``xenmca``: the seed's flow, GET -> commit -> CLEAR(record_id), in StateInfoHandler."""

    name = XENMCA

    def __init__(self) -> None:
        self._ctx: Dom0Context | None = None
        self._handler: StateInfoHandler | None = None

    def start(self, context: Dom0Context) -> None:
        self._ctx = context
        self._handler = StateInfoHandler(
            context.stub,
            context.store,
            events=context.events,
            counters=context.counters,
            log_health=context.log_health,
            clock=context.clock,
            metadata=context.metadata,
            call_timeout=context.call_timeout,
            commit_observer=context.commit_observer,
            carry_for=context.instance,  # the handler asks only when carried is set
            carried=context.carried,
        )

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]:
        return ()

    # Both wait for the log health's turn before the GET: while the log takes no
    # commits, a record read now could not be logged, so the read waits too.

    async def on_interrupt(self, record_type: int) -> None:
        ctx, handler = self._ctx, self._handler
        assert ctx is not None and handler is not None, "start() first"
        async with ctx.log_health.attempt(ctx.stopping) as go:
            if go:
                async with ctx.vcpu_lock(record_type):
                    await handler.handle_once(record_type)

    async def on_poll(self, record_type: int) -> DrainResult:
        """Drain the type: passes while each one clears a record."""
        ctx, handler = self._ctx, self._handler
        assert ctx is not None and handler is not None, "start() first"
        async with ctx.log_health.attempt(ctx.stopping) as go:
            if not go:
                return DrainResult(found=0, last=Outcome.NOTHING)
            async with ctx.vcpu_lock(record_type):
                return await handler.drain(
                    record_type, keep_going=lambda: not ctx.stopping.is_set()
                )


def _xenmca(salinfo_decode_delay: float | None) -> Dom0Policy:
    if salinfo_decode_delay is not None:
        raise ValueError(f"a salinfo decode delay applies only to policy {LINUX_SALINFO}")
    return XenmcaPolicy()


def _linux_salinfo(salinfo_decode_delay: float | None) -> Dom0Policy:
    if salinfo_decode_delay is None:
        return SalinfoPolicy()
    return SalinfoPolicy(salinfo_decode_delay)


_FACTORIES: dict[str, Callable[[float | None], Dom0Policy]] = {
    XENMCA: _xenmca,
    LINUX_SALINFO: _linux_salinfo,
}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_policy(name: str, *, salinfo_decode_delay: float | None = None) -> Dom0Policy:
    """A fresh policy by name; ValueError (one line) for an unknown name or a bad delay.

    ``salinfo_decode_delay`` (seconds, ``linux-salinfo`` only; None: its default)
    is the modelled time salinfo_decode spends on one record.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown dom0 policy {name!r} (choose from {', '.join(POLICY_NAMES)})")
    return factory(salinfo_decode_delay)
