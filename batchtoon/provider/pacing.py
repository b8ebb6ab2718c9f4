"""`SharedRate`: one request rate shared by every task that calls `acquire`, which slows down
when the API throttles and climbs back when it stops.

A turn is taken at the time it is granted (`acquire` returns it), and the caller sends its
request at once: nothing is awaited between the two but the request's own writing (aiohttp
writes a query in the same step of the event loop on a kept-alive connection, an upload's
bytes in the next step; a new connection is opened first). Guarantees, over those times:

- turns keep to a schedule of one every `1/rate` while callers wait for them, and two turns
  are never closer than `CLOSEST` (3/4) of a gap, measured from when the previous turn was
  actually taken, not from when it was planned: a waiter that wakes late (the event loop
  stalled on busy cores, a slow disk, a long pre-flight) takes its turn late, and the turns
  behind it make the lateness up at 4/3 of the rate at most, never together; at most
  `MOST_BEHIND` (a quarter second) is made up, only what the one-second window below has room
  for, and nothing after a lull (a caller that finds its turn long past, because nobody was
  waiting), a throttle or a resize;
- in any one-second window (a strict sliding one, as a provider's limiter counts) at most
  `max_rate` turns are taken, rounded down, and at least one, counted from when the ceiling
  was last set (`resize` starts the count afresh: the poller resizes its rate to the work, and
  fewer tasks must not wait for the last second's many turns to age out): a log of the last
  second's turns holds a rate such as 2.5/s, where spacing alone would let 3 through;
- waiters take their turns in the order they asked (a FIFO lock), so none starves;
- after `throttled(sent_at, retry_after)` nobody takes a turn before `retry_after` has passed
  (one gap of the current rate when the answer did not say), and the rate halves, at most once
  for the requests that were already in flight (multiplicative decrease), never below `floor`;
- each turn after that adds `max_rate / 50` back (additive increase), up to `max_rate`: from
  half the rate to all of it takes 25 turns, 50 ln 2 / max_rate seconds (1.7 s at 20/s,
  measured in tests/test_pacing.py);
- time comes from `clock` (a `batchtoon.pipeline.clock.Clock`), so tests can drive it without
  waiting.

Why not aiolimiter here: its rate is fixed when it is built, and a leaky bucket with capacity
lets a burst through after an idle spell; this needs a rate that changes while tasks wait on it.
"""

from __future__ import annotations

import math
from collections import deque

import anyio

from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock

__all__ = ["WINDOW", "SharedRate"]

WINDOW = 1.0  # seconds: the window a provider counts its rate over
CLOSEST = 0.75  # of a gap: how close two turns may come while making up lateness
MOST_BEHIND = 0.25  # seconds of lateness that the turns behind a late one may make up


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
        self._turns: deque[float] = deque()  # the turns taken in the last WINDOW, oldest first
        self._last = float("-inf")  # when the previous turn was taken
        self._next = float("-inf")  # when the next turn is due on the schedule
        self._paused_until = float("-inf")
        self._last_cut = float("-inf")
        # FIFO: one waiter at a time watches the clock; a free lock is taken without yielding
        self._queue = anyio.Lock(fast_acquire=True)

    def __repr__(self) -> str:
        return f"<SharedRate {self.rate:.3g}/{self.max_rate:.3g} per s slowdowns={self.slowdowns}>"

    def resize(self, max_rate: float) -> None:
        """A new ceiling; a rate slowed by throttling stays as far below it as it was."""
        fraction = self.rate / self.max_rate
        self.max_rate = max_rate
        self.floor = max_rate * self._floor_fraction
        self.rate = max(self.floor, max_rate * fraction)
        self._turns.clear()
        self._reschedule()

    @property
    def slowed(self) -> bool:
        return self.rate < self.max_rate * 0.999

    async def acquire(self) -> float:
        """Wait for this caller's turn; return the time of the turn (pass it to `throttled`)."""
        waited = self._queue.locked()  # behind another caller: not after a lull
        async with self._queue:
            # Asked again after every sleep: the sleep may have overrun (a stall), and a
            # throttle or a resize may have moved the earliest time meanwhile.
            while (wait := self._earliest() - (now := self._clock.monotonic())) > 0:
                waited = True
                await self._clock.sleep(wait)
            self._take(now, waited)
        return now

    def _earliest(self) -> float:
        """The earliest time the next turn may be taken."""
        closest = self._last + CLOSEST / self.rate
        return max(self._next, closest, self._paused_until, self._window_opens())

    def _window_opens(self) -> float:
        """When the one-second window has room for one more turn."""
        per_window = max(1, math.floor(self.max_rate))
        if len(self._turns) < per_window:
            return float("-inf")
        return self._turns[-per_window] + WINDOW

    def _take(self, now: float, waited: bool) -> None:
        """Take a turn at `now`; `waited`: its caller waited for it (behind another, or for
        its time), so any lateness is the loop's, for the turns behind it to make up; else it
        comes after a lull, and none is."""
        self.rate = min(self.max_rate, self.rate + self.max_rate / 50)
        on_schedule = max(self._next, now - MOST_BEHIND) if waited else now
        self._last = now
        self._turns.append(now)
        while self._turns[0] <= now - WINDOW:
            self._turns.popleft()
        # Lateness the window has no room for is not made up: the schedule moves on to when
        # it opens, rather than racing to it again and again.
        self._next = max(on_schedule + 1.0 / self.rate, self._window_opens())

    def throttled(self, sent_at: float, retry_after: float | None) -> None:
        now = self._clock.monotonic()
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._paused_until = max(self._paused_until, now + pause)
        if sent_at > self._last_cut:  # requests sent before (or at) the last cut do not cut again
            self.rate = max(self.floor, self.rate / 2)
            self._last_cut = now
            self.slowdowns += 1
        self._reschedule()

    def _reschedule(self) -> None:
        """The rate or the pause changed: the next turn is due a gap of the rate now after the
        last one (or when the pause ends), and lateness from before is not made up."""
        self._next = max(self._last + 1.0 / self.rate, self._paused_until)
