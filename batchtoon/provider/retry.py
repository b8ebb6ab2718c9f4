"""`RetryPolicy`: how API calls are tried again; `decide`: the decision after one failed try.

Retryable errors (`Transient`, `Throttled`) are tried again, bounded both in attempts and in
total time; anything else is raised at once. A transient fault waits an exponential backoff
with full jitter; a throttled one waits nothing here, because the `SharedRate` it goes back
through already holds every worker until the server's `Retry-After` has passed.

Guarantees:

- a call is tried at most `attempts` times in all; after a failed try no other begins once
  `total` seconds have passed since the first began (the try that runs then may end later);
- after try number k (from 1) a transient fault waits a uniform draw from
  [0, min(backoff * 2^(k-1), max_backoff)] seconds;
- the error that ends the call is the last try's own, raised as it was (no wrapper, no chain
  to earlier tries);
- a call that succeeds the first time builds nothing beyond its own coroutine, and no try
  leaves a reference cycle behind (an error's traceback never holds the frame that keeps it):
  a million calls leave no garbage for the cycle collector.

The policy counts the retries it grants (`retries`) and logs each one; the stages share one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio

from batchtoon.errors import Retryable, Throttled
from batchtoon.settings.config import RetrySettings

__all__ = ["RetryPolicy", "backoff_ceiling", "decide"]

P = ParamSpec("P")
T = TypeVar("T")


def backoff_ceiling(settings: RetrySettings, attempt: int) -> float:
    """The longest wait after try number `attempt` (from 1) failed with a transient fault."""
    return min(settings.max_backoff, settings.backoff * 2.0 ** (attempt - 1))


def decide(
    settings: RetrySettings, attempt: int, error: BaseException, elapsed: float
) -> float | None:
    """After try number `attempt` (from 1) failed with `error`, `elapsed` seconds after the
    first try began: the seconds to wait before the next try, or None to give up (the caller
    raises `error`)."""
    if not isinstance(error, Retryable):
        return None
    if attempt >= settings.attempts or elapsed >= settings.total:
        return None
    if isinstance(error, Throttled):
        return 0.0
    return random.uniform(0.0, backoff_ceiling(settings, attempt))


class RetryPolicy:
    def __init__(self, settings: RetrySettings, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.retries = 0
        self._log = log or logging.getLogger("batchtoon")

    def __repr__(self) -> str:
        return f"<RetryPolicy attempts={self.settings.attempts} retries={self.retries}>"

    async def call(
        self, what: str, try_once: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`await try_once(*args, **kwargs)`, tried again as `decide` says.

        `what` names the work in the log (a source path), so every retry line says what for."""
        began = time.monotonic()
        attempt = 1
        while True:
            try:
                return await try_once(*args, **kwargs)
            except Exception as error:  # `as` unbinds it on the way out: no frame keeps it
                wait = decide(self.settings, attempt, error, time.monotonic() - began)
                if wait is None:
                    raise
                self.retries += 1
                subject = f" ({what})" if what else ""
                self._log.info("retrying after attempt %d%s: %s", attempt, subject, error)
            await anyio.sleep(wait)
            attempt += 1
