"""The retry policy for API calls, on tenacity.

Retryable errors (`Transient`, `Throttled`) are tried again, bounded both in attempts and in
total time; anything else is raised at once. A transient fault waits an exponential backoff
with full jitter; a throttled one waits nothing here, because the `SharedRate` it goes back
through already holds every worker until the server's `Retry-After` has passed.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from .config import RetrySettings
from .errors import Retryable, Throttled

__all__ = ["retrying"]


def retrying(
    settings: RetrySettings, on_retry: Callable[[RetryCallState], None] | None = None
) -> AsyncRetrying:
    jitter = wait_random_exponential(multiplier=settings.backoff, max=settings.max_backoff)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return 0.0 if isinstance(error, Throttled) else jitter(state)

    return AsyncRetrying(
        retry=retry_if_exception_type(Retryable),
        stop=stop_after_attempt(settings.attempts) | stop_after_delay(settings.total),
        wait=wait,
        before_sleep=on_retry,
        reraise=True,
    )
