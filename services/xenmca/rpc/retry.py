"""The one retry module: backoff policies and delays, and call_with_retry over tenacity.

``BackoffPolicy`` says how delays grow (initial * multiplier**n, capped at
maximum) and how they are jittered; ``Backoff`` draws the delays of one run of
failures. ``RetryPolicy`` bounds one call (per-attempt and overall deadlines,
attempts) and uses a ``BackoffPolicy`` between attempts. ``call_with_retry``
runs a gRPC call under a ``RetryPolicy``, retrying only the status codes its
caller names, on an injected ``Clock``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal, TypeVar

import grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from xenmca.rpc.clock import Clock, MonotonicClock

T = TypeVar("T")

Jitter = Literal["full", "none"] | float
""""full": uniform(0, d); "none": d; a fraction f in [0, 1]: uniform(d * (1 - f), d)."""

RETRYABLE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)
"""The call or its reply may have been lost: retry these for idempotent calls only
(after DEADLINE_EXCEEDED the server may have acted on the call)."""

_MONOTONIC = MonotonicClock()
_SHARED_RNG = random.Random()


@dataclass(frozen=True)
class BackoffPolicy:
    """Delays initial * multiplier**n, capped at maximum, jittered as ``jitter`` says."""

    initial: float
    maximum: float
    multiplier: float = 2.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial > 0):
            raise ValueError(f"BackoffPolicy.initial must be > 0, got {self.initial!r}")
        if not self.maximum >= self.initial:
            raise ValueError(
                f"BackoffPolicy.maximum must be >= initial ({self.initial!r}), got {self.maximum!r}"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"BackoffPolicy.multiplier must be >= 1, got {self.multiplier!r}")
        jitter = self.jitter
        if isinstance(jitter, str):
            if jitter not in ("full", "none"):
                raise ValueError(
                    f"BackoffPolicy.jitter must be 'full', 'none' or a fraction, got {jitter!r}"
                )
        elif isinstance(jitter, bool) or not (isinstance(jitter, int | float) and 0 <= jitter <= 1):
            raise ValueError(
                f"BackoffPolicy.jitter must be 'full', 'none' or a fraction in [0, 1], "
                f"got {jitter!r}"
            )


CALL_BACKOFF = BackoffPolicy(initial=0.02, maximum=0.5, multiplier=2.0, jitter="full")
"""Between attempts of one call: full jitter from 20 ms, capped at 0.5 s."""


class Backoff:
    """The delays of one run of failures under a policy; reset() after a success."""

    # There are two per pCPU link in the coordinator: keep them small.
    __slots__ = ("_ceiling", "failures", "policy", "rng")

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng if rng is not None else _SHARED_RNG
        self.failures = 0
        self._ceiling = policy.initial

    @property
    def ceiling(self) -> float:
        """The largest delay next_delay() can return next."""
        return self._ceiling

    def next_delay(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        policy, ceiling = self.policy, self._ceiling
        self.failures += 1
        # Grown step by step (not multiplier**failures): no overflow after a long outage.
        self._ceiling = min(policy.maximum, ceiling * policy.multiplier)
        jitter = policy.jitter
        if jitter == "full":
            return self.rng.uniform(0.0, ceiling)
        if jitter == "none":
            return ceiling
        assert not isinstance(jitter, str)
        return ceiling * (1 - jitter * self.rng.random())

    def reset(self) -> None:
        self.failures = 0
        self._ceiling = self.policy.initial


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: per-attempt deadline, overall deadline, attempts, backoff."""

    attempt_timeout: float = 1.0
    overall_timeout: float = 5.0
    max_attempts: int = 6
    backoff: BackoffPolicy = CALL_BACKOFF

    def __post_init__(self) -> None:
        if not self.attempt_timeout > 0:
            raise ValueError(
                f"RetryPolicy.attempt_timeout must be > 0, got {self.attempt_timeout!r}"
            )
        if not self.overall_timeout > 0:
            raise ValueError(
                f"RetryPolicy.overall_timeout must be > 0, got {self.overall_timeout!r}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts!r}")


async def call_with_retry(
    call: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retryable: Collection[grpc.StatusCode],
    clock: Clock | None = None,
    on_retry: Callable[[int, BaseException], None] | None = None,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run call(timeout) until it succeeds; return (result, attempts).

    Only a grpc.aio.AioRpcError whose code is in retryable is retried; anything
    else is raised at once, and the last failure is raised when the attempts or
    the overall deadline run out. No attempt starts at or after the deadline,
    and each attempt's timeout is capped by what remains of it. on_retry is
    called with (attempt number, its failure) before each sleep. Time is read
    from, and slept on, clock (the real monotonic clock when None).
    """
    clock = clock if clock is not None else _MONOTONIC
    deadline = clock.now() + policy.overall_timeout
    # The first attempt is made directly: tenacity is only set up once one failed.
    try:
        return await call(min(policy.attempt_timeout, policy.overall_timeout)), 1
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in retryable or policy.max_attempts == 1:
            raise
        first_failure = exc
    return await _retry_after_first_failure(
        call, policy, first_failure, deadline, retryable, clock, on_retry, rng
    )


async def _retry_after_first_failure(
    call: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    first_failure: BaseException | None,
    deadline: float,
    retryable: Collection[grpc.StatusCode],
    clock: Clock,
    on_retry: Callable[[int, BaseException], None] | None,
    rng: random.Random | None,
) -> tuple[T, int]:
    backoff = Backoff(policy.backoff, rng)

    def is_retryable(exc: BaseException) -> bool:
        return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in retryable

    def wait(state: RetryCallState) -> float:
        return backoff.next_delay()

    def stop(state: RetryCallState) -> bool:
        # tenacity computes the wait before asking stop (upcoming_sleep), as
        # stop_before_delay does: stop rather than start an attempt past the deadline.
        return (
            state.attempt_number >= policy.max_attempts
            or clock.now() + state.upcoming_sleep >= deadline
        )

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(state.attempt_number, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop,
        wait=wait,
        before_sleep=before_sleep,
        sleep=clock.sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if first_failure is not None:
                # Attempt 1 was made by call_with_retry: hand its failure to tenacity.
                failure, first_failure = first_failure, None
                raise failure
            remaining = max(0.001, deadline - clock.now())
            result = await call(min(policy.attempt_timeout, remaining))
            return result, attempt.retry_state.attempt_number
    raise AssertionError("unreachable: tenacity reraises the last failure")  # pragma: no cover
