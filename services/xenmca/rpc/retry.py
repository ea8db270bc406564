"""Retry policy for "IPI" and other idempotent calls: tenacity, backoff with jitter, deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

T = TypeVar("T")

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: per-attempt deadline, overall deadline, attempts, backoff."""

    attempt_timeout: float = 1.0
    overall_timeout: float = 5.0
    max_attempts: int = 6
    initial_backoff: float = 0.02
    max_backoff: float = 0.5


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in RETRYABLE_CODES


async def call_with_retry(
    call: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run call(timeout) until it succeeds; return (result, attempts).

    Only UNAVAILABLE and DEADLINE_EXCEEDED are retried; anything else, or the
    last failure when attempts or the overall deadline run out, is raised.
    Each attempt's timeout is capped by what remains of the overall deadline.
    """
    deadline = time.monotonic() + policy.overall_timeout

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(state.attempt_number, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.overall_timeout),
        wait=wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            remaining = max(0.001, deadline - time.monotonic())
            result = await call(min(policy.attempt_timeout, remaining))
            return result, attempt.retry_state.attempt_number
    raise AssertionError("unreachable: tenacity reraises the last failure")  # pragma: no cover
