"""`SharedRate`: one request rate shared by every task that calls `acquire`, which slows down
when the API throttles and climbs back when it stops.

Guarantees:
- acquisitions are at least `1/rate` apart (no bursts: a burst is what trips the provider's
  own limiter), across every task sharing the object;
- after `throttled(sent_at, retry_after)` nobody acquires before `retry_after` has passed (one
  gap of the current rate when the answer did not say), and the rate halves, at most once for
  the requests that were already in flight (multiplicative decrease), never below `floor`;
- each acquisition after that adds `max_rate / 50` back (additive increase), up to `max_rate`;
- time comes from `clock` (a `batchtoon.pipeline.clock.Clock`), so tests can drive it without
  waiting.

Why not aiolimiter here: its rate is fixed when it is built, and a leaky bucket with capacity
lets a burst through after an idle spell; this needs a rate that changes while tasks wait on it.
The sandbox, which rejects rather than waits, does use aiolimiter.
"""

from __future__ import annotations

from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock

__all__ = ["SharedRate"]


class SharedRate:
    def __init__(
        self,
        rate: float,
        *,
        floor_fraction: float = 1 / 32,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_rate = self.rate = rate
        self._floor_fraction = floor_fraction
        self.floor = rate * floor_fraction
        self.slowdowns = 0
        self._clock = clock
        self._next = float("-inf")  # the earliest time the next acquisition may happen
        self._paused_until = float("-inf")
        self._last_cut = float("-inf")

    def __repr__(self) -> str:
        return f"<SharedRate {self.rate:.3g}/{self.max_rate:.3g} per s slowdowns={self.slowdowns}>"

    def resize(self, max_rate: float) -> None:
        """A new ceiling; a rate slowed by throttling stays as far below it as it was."""
        fraction = self.rate / self.max_rate
        self.max_rate = max_rate
        self.floor = max_rate * self._floor_fraction
        self.rate = max(self.floor, max_rate * fraction)

    @property
    def slowed(self) -> bool:
        return self.rate < self.max_rate * 0.999

    async def acquire(self) -> float:
        """Wait for this caller's turn; return the time of the turn (pass it to `throttled`)."""
        while True:
            now = self._clock.monotonic()
            turn = max(now, self._next, self._paused_until)
            self._next = turn + 1.0 / self.rate
            if turn > now:
                await self._clock.sleep(turn - now)
            if turn >= self._paused_until:  # else a pause began while we slept: queue again
                break
        self.rate = min(self.max_rate, self.rate + self.max_rate / 50)
        return turn

    def throttled(self, sent_at: float, retry_after: float | None) -> None:
        now = self._clock.monotonic()
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._paused_until = max(self._paused_until, now + pause)
        if sent_at > self._last_cut:  # requests sent before (or at) the last cut do not cut again
            self.rate = max(self.floor, self.rate / 2)
            self._last_cut = now
            self.slowdowns += 1
        self._next = max(self._next, self._paused_until)
