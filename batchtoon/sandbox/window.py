"""A strict sliding one-second window, as a provider's limiter may count a client's requests.

Guarantees:
- every arrival counts, answered or refused: a client sees no throttle only if it never sent
  more than `limit` requests in any one second (the window (t - 1, t]) of arrival time;
- an arrival over the limit gets the seconds until one more would be within it (a
  `Retry-After` that is true);
- memory is the last second's arrivals, no more.

Time is the server's own reading of a request's arrival (real seconds), taken when its headers
have been read: a request that leaves the client a moment after another may be read first, so a
client keeping exactly to `limit` can be seen over it. `SandboxConfig.submit_window` and
`query_window` set the limits.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]

WINDOW = 1.0  # seconds


class SlidingWindow:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a window limit must be at least 1 request, got {limit}")
        self.limit = limit
        self._arrivals: deque[float] = deque()  # the last second's, oldest first

    def __repr__(self) -> str:
        return f"SlidingWindow({self.limit} per {WINDOW:g} s)"

    def arrive(self, at: float) -> float | None:
        """Count an arrival at `at`: None if the window holds it, else the seconds until one
        more arrival would be held. (One stamped before the previous one, held up on the way
        by a fault, counts at the previous one's time.)"""
        arrivals = self._arrivals
        at = max(at, arrivals[-1]) if arrivals else at
        arrivals.append(at)
        while arrivals[0] <= at - WINDOW:
            arrivals.popleft()
        if len(arrivals) <= self.limit:
            return None
        return arrivals[-self.limit] + WINDOW - at
