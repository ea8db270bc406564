"""The one retry module: backoff policies and delays, and call_with_retry on a FakeClock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
import pytest

from xenmca.dom0.log_health import DEFAULT_COMMIT_BACKOFF
from xenmca.dom0.logger import DEFAULT_ATTACH_BACKOFF
from xenmca.rpc import retry
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.retry import (
    CALL_BACKOFF,
    RETRYABLE_CODES,
    Backoff,
    BackoffPolicy,
    RetryPolicy,
    call_with_retry,
)
from xenmca.xen.links import LINK_BACKOFF, PcpuLink

T = TypeVar("T")

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED
STEP = 0.25  # every instant in these tests is a multiple: the sums stay exact


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), code.name)


def no_jitter(initial: float, maximum: float) -> BackoffPolicy:
    return BackoffPolicy(initial=initial, maximum=maximum, jitter="none")


# -- policies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial": 0.0, "maximum": 1.0}, "initial"),
        ({"initial": -1.0, "maximum": 1.0}, "initial"),
        ({"initial": float("nan"), "maximum": 1.0}, "initial"),
        ({"initial": 2.0, "maximum": 1.0}, "maximum"),
        ({"initial": 1.0, "maximum": float("nan")}, "maximum"),
        ({"initial": 1.0, "maximum": 2.0, "multiplier": 0.5}, "multiplier"),
        ({"initial": 1.0, "maximum": 2.0, "jitter": "equal"}, "jitter"),
        ({"initial": 1.0, "maximum": 2.0, "jitter": 1.5}, "jitter"),
        ({"initial": 1.0, "maximum": 2.0, "jitter": -0.1}, "jitter"),
        ({"initial": 1.0, "maximum": 2.0, "jitter": True}, "jitter"),
    ],
)
def test_a_bad_backoff_policy_names_its_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"BackoffPolicy\.{field} "):
        BackoffPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempt_timeout": 0.0}, "attempt_timeout"),
        ({"overall_timeout": -1.0}, "overall_timeout"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_a_bad_retry_policy_names_its_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"RetryPolicy\.{field} "):
        RetryPolicy(**kwargs)


def test_good_policies_and_the_call_default() -> None:
    BackoffPolicy(initial=1.0, maximum=1.0, multiplier=1.0, jitter=0.0)
    BackoffPolicy(initial=1.0, maximum=1.0, jitter=1)
    # What tenacity's wait_random_exponential(multiplier=0.02, max=0.5) drew.
    assert RetryPolicy().backoff == CALL_BACKOFF
    assert BackoffPolicy(initial=0.02, maximum=0.5, multiplier=2.0, jitter="full") == CALL_BACKOFF


def test_dom0s_backoffs_keep_their_numbers() -> None:
    """Re-attaching: equal jitter from 0.1 s to 5 s; retrying commits: 1 s to 60 s, unjittered."""
    assert (
        BackoffPolicy(initial=0.1, maximum=5.0, multiplier=2.0, jitter=0.5)
        == DEFAULT_ATTACH_BACKOFF
    )
    assert no_jitter(1.0, 60.0) == DEFAULT_COMMIT_BACKOFF


# -- delays -----------------------------------------------------------------------


def test_full_jitter_draws_within_zero_and_the_capped_exponential() -> None:
    backoff = Backoff(BackoffPolicy(initial=1.0, maximum=8.0, jitter="full"), random.Random(3))
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for ceiling in ceilings:
        assert backoff.ceiling == ceiling
        assert 0.0 <= backoff.next_delay() <= ceiling
    # At the cap, the draws cover [0, 8] evenly: every tenth of it is hit, both ends neared.
    draws = [backoff.next_delay() for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert {int(d / 0.8) for d in draws} == set(range(10))
    assert min(draws) < 0.08 and max(draws) > 7.92


def test_full_jitter_is_reproducible_with_a_seeded_rng() -> None:
    policy = BackoffPolicy(initial=0.5, maximum=4.0)
    first = Backoff(policy, random.Random(11))
    second = Backoff(policy, random.Random(11))
    assert [first.next_delay() for _ in range(6)] == [second.next_delay() for _ in range(6)]


def test_no_jitter_is_the_capped_exponential_and_reset_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(initial=1.0, maximum=60.0, multiplier=2.0, jitter="none"))
    assert [backoff.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.failures == 9
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() == 1.0


def test_a_jitter_fraction_draws_within_the_top_of_the_delay_and_resets() -> None:
    """dom0's re-attach backoff: each delay in [d / 2, d]."""
    backoff = Backoff(BackoffPolicy(initial=0.1, maximum=1.0, jitter=0.5), random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_a_long_outage_stays_at_the_cap() -> None:
    """Thousands of failures (a pCPU down for hours) do not overflow the exponential."""
    backoff = Backoff(BackoffPolicy(initial=0.05, maximum=2.0, jitter="none"))
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 2.0


async def test_a_links_hold_is_fully_jittered_and_released() -> None:
    """The coordinator holds a failing pCPU's entries for uniform(0, capped exponential)."""
    assert BackoffPolicy(initial=0.05, maximum=2.0, multiplier=2.0, jitter="full") == LINK_BACKOFF
    clock = FakeClock()
    link = PcpuLink(0, "127.0.0.1:1", token=None, clock=clock, rng=random.Random(5))
    try:
        holds = [link.hold() for _ in range(200)]
        ceilings = [min(2.0, 0.05 * 2**n) for n in range(200)]
        assert all(0.0 <= h <= c for h, c in zip(holds, ceilings, strict=True))
        assert min(holds[10:]) < 0.5  # full jitter, not [ceiling / 2, ceiling]
        assert not link.available() and link.hold_until == clock.now() + holds[-1]
        link.release()
        assert link.available() and link.call_backoff.failures == 0
    finally:
        await link.close()


# -- call_with_retry --------------------------------------------------------------


class Calls:
    """A call that fails with the given codes in turn, then returns "ok"; it records the
    timeout of each attempt, and takes that long on the clock when told to."""

    def __init__(self, clock: FakeClock, *failures: grpc.StatusCode, hang: bool = False) -> None:
        self.clock = clock
        self.failures = list(failures)
        self.hang = hang
        self.timeouts: list[float] = []

    async def __call__(self, attempt_timeout: float) -> str:
        self.timeouts.append(attempt_timeout)
        if self.hang:
            await self.clock.sleep(attempt_timeout)
        if self.failures:
            raise rpc_error(self.failures.pop(0))
        return "ok"


async def drive(clock: FakeClock, work: Awaitable[T]) -> tuple[T, list[float]]:
    """Run work, moving the clock on by STEP whenever it sleeps on it; (result, instants
    at which the clock was moved on)."""
    task = asyncio.ensure_future(work)
    moved: list[float] = []
    while True:
        for _ in range(20):
            await asyncio.sleep(0)
        if task.done():
            return task.result(), moved
        assert clock.sleepers == 1, "the call neither finished nor slept on the clock"
        moved.append(clock.now())
        await clock.advance(STEP)


async def test_the_first_attempt_sets_up_no_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tenacity(*args: object, **kwargs: object) -> None:
        raise AssertionError("AsyncRetrying set up for a call that succeeded at once")

    monkeypatch.setattr(retry, "AsyncRetrying", no_tenacity)
    clock = FakeClock()
    call = Calls(clock)
    policy = RetryPolicy(attempt_timeout=1.0, overall_timeout=0.5)
    assert await call_with_retry(call, policy, retryable=RETRYABLE_CODES, clock=clock) == ("ok", 1)
    assert call.timeouts == [0.5]  # capped by the overall deadline
    # Nor for a failure that is not retried.
    refused = Calls(clock, grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(grpc.aio.AioRpcError):
        await call_with_retry(refused, policy, retryable=RETRYABLE_CODES, clock=clock)


async def test_a_retryable_code_is_retried_after_the_backoff_on_the_clock() -> None:
    clock = FakeClock()
    start = clock.now()
    call = Calls(clock, UNAVAILABLE, DEADLINE_EXCEEDED)
    retried: list[tuple[int, grpc.StatusCode]] = []

    def on_retry(attempt: int, exc: BaseException) -> None:
        assert isinstance(exc, grpc.aio.AioRpcError)
        retried.append((attempt, exc.code()))

    policy = RetryPolicy(attempt_timeout=1.0, overall_timeout=5.0, backoff=no_jitter(0.25, 1.0))
    result, moved = await drive(
        clock,
        call_with_retry(call, policy, retryable=RETRYABLE_CODES, clock=clock, on_retry=on_retry),
    )
    assert result == ("ok", 3)
    assert retried == [(1, UNAVAILABLE), (2, DEADLINE_EXCEEDED)]
    # Slept 0.25 s, then 0.5 s, on the fake clock only.
    assert moved == [start, start + 0.25, start + 0.5]
    assert clock.now() == start + 0.75
    assert call.timeouts == [1.0, 1.0, 1.0]


async def test_a_code_not_named_by_the_call_site_is_not_retried() -> None:
    clock = FakeClock()
    retried: list[int] = []
    policy = RetryPolicy(backoff=no_jitter(0.25, 1.0))
    for code, retryable in [
        (grpc.StatusCode.PERMISSION_DENIED, RETRYABLE_CODES),
        (grpc.StatusCode.INVALID_ARGUMENT, RETRYABLE_CODES),
        # A call that is not idempotent names UNAVAILABLE only.
        (DEADLINE_EXCEEDED, frozenset({UNAVAILABLE})),
    ]:
        call = Calls(clock, code)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call_with_retry(
                call,
                policy,
                retryable=retryable,
                clock=clock,
                on_retry=lambda attempt, _: retried.append(attempt),
            )
        assert raised.value.code() == code
        assert len(call.timeouts) == 1
    assert retried == []


async def test_a_later_failure_that_is_not_retryable_ends_the_retries() -> None:
    clock = FakeClock()
    call = Calls(clock, UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
    policy = RetryPolicy(backoff=no_jitter(0.25, 1.0))
    task = drive(clock, call_with_retry(call, policy, retryable=RETRYABLE_CODES, clock=clock))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await task
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(call.timeouts) == 2


async def test_attempts_bound_the_retries() -> None:
    clock = FakeClock()
    call = Calls(clock, *[UNAVAILABLE] * 10)
    retried: list[int] = []
    policy = RetryPolicy(max_attempts=3, overall_timeout=100.0, backoff=no_jitter(0.25, 0.25))
    with pytest.raises(grpc.aio.AioRpcError):
        await drive(
            clock,
            call_with_retry(
                call,
                policy,
                retryable=RETRYABLE_CODES,
                clock=clock,
                on_retry=lambda attempt, _: retried.append(attempt),
            ),
        )
    assert len(call.timeouts) == 3 and retried == [1, 2]


async def test_the_overall_deadline_caps_each_attempt_and_ends_the_retries() -> None:
    """Attempts that hang until their timeout: 1 s, backoff 0.25 s, 1 s, backoff 0.25 s,
    and the third is cut to the 0.25 s left; no attempt starts at the deadline."""
    clock = FakeClock()
    start = clock.now()
    call = Calls(clock, *[DEADLINE_EXCEEDED] * 10, hang=True)
    retried: list[int] = []
    policy = RetryPolicy(
        attempt_timeout=1.0, overall_timeout=2.75, max_attempts=10, backoff=no_jitter(0.25, 0.25)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await drive(
            clock,
            call_with_retry(
                call,
                policy,
                retryable=RETRYABLE_CODES,
                clock=clock,
                on_retry=lambda attempt, _: retried.append(attempt),
            ),
        )
    assert raised.value.code() == DEADLINE_EXCEEDED
    assert call.timeouts == [1.0, 1.0, 0.25]
    assert retried == [1, 2]
    assert clock.now() == start + 2.75


async def test_no_sleep_runs_past_the_deadline() -> None:
    """A backoff that would end at or after the deadline is not slept: the failure is raised."""
    clock = FakeClock()
    start = clock.now()
    call = Calls(clock, *[UNAVAILABLE] * 10)
    policy = RetryPolicy(overall_timeout=1.0, max_attempts=10, backoff=no_jitter(0.25, 1.0))
    with pytest.raises(grpc.aio.AioRpcError):
        await drive(clock, call_with_retry(call, policy, retryable=RETRYABLE_CODES, clock=clock))
    # Slept 0.25 and 0.5; the next 1.0 would end past start + 1.0.
    assert len(call.timeouts) == 3
    assert clock.now() == start + 0.75


async def test_the_backoff_between_attempts_uses_the_injected_rng() -> None:
    class RecordingClock(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.slept: list[float] = []

        async def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)
            self._now += seconds

    clock = RecordingClock()
    call = Calls(clock, *[UNAVAILABLE] * 4)
    policy = RetryPolicy(overall_timeout=100.0, backoff=BackoffPolicy(initial=0.5, maximum=2.0))
    result = await call_with_retry(
        call, policy, retryable=RETRYABLE_CODES, clock=clock, rng=random.Random(42)
    )
    assert result == ("ok", 5)
    expected = Backoff(policy.backoff, random.Random(42))
    assert clock.slept == [expected.next_delay() for _ in range(4)]
    assert all(0 <= s <= c for s, c in zip(clock.slept, [0.5, 1.0, 2.0, 2.0], strict=True))
