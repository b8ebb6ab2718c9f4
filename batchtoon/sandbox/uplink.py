"""One uplink shared by every upload to the sandbox, as a home connection is.

Guarantees:
- bytes pass at `rate` per real second in total, however many uploads run: with four at once,
  each gets about a quarter;
- time left idle is not banked: a link does not go faster after a pause;
- callers are served in the order they ask, so uploads reading chunk by chunk take turns.

Only the server's reading is paced: the client's kernel may still take the first few hundred
kilobytes of an upload into its buffers at once, as it would on a real link.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Uplink"]


class Uplink:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"uplink must be positive bytes per second, got {rate}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._free_at = float("-inf")  # when the link has carried everything asked so far

    def __repr__(self) -> str:
        return f"Uplink({self.rate:g} B/s)"

    async def carry(self, size: int) -> None:
        """Return once `size` more bytes have crossed the link, after those asked for before."""
        now = self._clock()
        # Reserve the next slot before waiting: the order of calls is the order of service.
        self._free_at = max(self._free_at, now) + size / self.rate
        await self._sleep(self._free_at - now)
