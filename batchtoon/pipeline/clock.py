"""`Clock`: the one source of time for the engine and its stages, so tests can own it.

Two kinds of time, never mixed up:
- `monotonic()` spaces events within one run (ticks, rates, the run's wall time);
- `wall()` is unix time, for what outlives the process: a task's age and a result URL's
  expiry are journaled in it and compared across runs.

`SYSTEM_CLOCK` is the real one; a test passes its own object with the same three members
(see `tests/fakes.py`), and nothing else in batchtoon reads the time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "ticks"]


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


async def ticks(interval: float, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[None]:
    """Yield now, then every `interval` seconds; a late tick does not bunch the next ones up."""
    next_tick = clock.monotonic()
    while True:
        yield
        now = clock.monotonic()
        next_tick = max(next_tick + interval, now)
        await clock.sleep(next_tick - now)
