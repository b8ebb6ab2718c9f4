"""`RetryPolicy`: how API calls are tried again, on tenacity.

Retryable errors (`Transient`, `Throttled`) are tried again, bounded both in attempts and in
total time; anything else is raised at once. A transient fault waits an exponential backoff
with full jitter; a throttled one waits nothing here, because the `SharedRate` it goes back
through already holds every worker until the server's `Retry-After` has passed.

The policy counts the retries it grants (`retries`) and logs each one; the stages share one.
"""

from __future__ import annotations

import logging

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from batchtoon.errors import Retryable, Throttled
from batchtoon.settings.config import RetrySettings

__all__ = ["RetryPolicy"]


class RetryPolicy:
    def __init__(self, settings: RetrySettings, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.retries = 0
        self._log = log or logging.getLogger("batchtoon")
        self._jitter = wait_random_exponential(
            multiplier=settings.backoff, max=settings.max_backoff
        )

    def __repr__(self) -> str:
        return f"<RetryPolicy attempts={self.settings.attempts} retries={self.retries}>"

    def attempts(self, what: str = "") -> AsyncRetrying:
        """A fresh retry loop: `async for attempt in policy.attempts(): with attempt: ...`.

        `what` names the work in the log (a source path), so every retry line says what for."""
        settings = self.settings

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            error = state.outcome.exception() if state.outcome else None
            subject = f" ({what})" if what else ""
            self._log.info("retrying after attempt %d%s: %s", state.attempt_number, subject, error)

        return AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            stop=stop_after_attempt(settings.attempts) | stop_after_delay(settings.total),
            wait=self._wait,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return 0.0 if isinstance(error, Throttled) else self._jitter(state)
