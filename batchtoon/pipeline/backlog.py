"""`Backlog`: whether the stages after submission keep up; submissions wait while they do not.

A run submits as fast as its rate allows; each task it has then waits to be asked about (the
poller) and its result to be fetched (the downloaders). Where those two cannot keep up (a
machine too busy for all three stages, a poll rate set too low for the work), the tasks
submitted pile up between, each an item in hand of some 2.5 KB: a batch of 40,000 flat out on
two cores held 7,000 items 40 s in, and more the longer it ran. Submitting sooner gains
nothing then: a task waits its turn in the pile.

Guarantees:
- the stages after submission are behind while the task the poller would ask next was due
  more than `LATE` poll intervals ago, or more results than `most_waiting` wait for a
  downloader; they have caught up once both are at half of that or less (two bounds, so that
  submissions do not start and stop at every task);
- `keep_up()` returns at once unless they are behind, else once they have caught up: a submit
  worker calls it before each upload, so the items in hand stay near what the stages after
  it can take. Where they keep up nothing waits, and the rate stays the only limit;
- the numbers are read every `READ_EVERY` of a poll interval (`run`, in the run's task group): a
  stage reports nothing, and a wait ends within that much of the catch-up;
- `statistics()` says how often and how long submissions waited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio

from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock

__all__ = ["LATE", "READ_EVERY", "Backlog", "BacklogStatistics"]

LATE = 1.0  # poll intervals past its due time the next task may be before the poller is behind
READ_EVERY = 0.1  # of a poll interval: how often the numbers are read


@dataclass(frozen=True)
class BacklogStatistics:
    behind: bool
    holds: int  # times submissions were held
    held_for: float  # seconds they were held, in all


class Backlog:
    def __init__(
        self,
        interval: float,
        poll_lateness: Callable[[], float],
        results_waiting: Callable[[], int],
        *,
        most_waiting: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`poll_lateness()`: seconds the task the poller would ask next is past its due time
        (0 if none is due); `results_waiting()`: results waiting for a downloader."""
        self._interval, self._most_waiting, self._clock = interval, most_waiting, clock
        self._poll_lateness, self._results_waiting = poll_lateness, results_waiting
        self._behind_since: float | None = None
        self._caught_up = anyio.Event()
        self._holds = 0
        self._held_for = 0.0

    def __repr__(self) -> str:
        return f"<Backlog {self.statistics()}>"

    def statistics(self) -> BacklogStatistics:
        return BacklogStatistics(self._behind_since is not None, self._holds, self._held_for)

    async def keep_up(self) -> None:
        """Return once the stages after submission are not behind."""
        if self._behind_since is not None:
            await self._caught_up.wait()

    async def run(self) -> None:
        """Read the numbers every `READ_EVERY` of an interval, until cancelled."""
        while True:
            self.check()
            await self._clock.sleep(self._interval * READ_EVERY)

    def check(self) -> None:
        """Read the numbers now: behind, or caught up."""
        late = self._poll_lateness() / self._interval
        waiting = self._results_waiting()
        if self._behind_since is None:
            if late > LATE or waiting > self._most_waiting:
                self._behind_since = self._clock.monotonic()
                self._holds += 1
        elif late <= LATE / 2 and waiting <= self._most_waiting / 2:
            self._held_for += self._clock.monotonic() - self._behind_since
            self._behind_since = None
            self._caught_up.set()
            self._caught_up = anyio.Event()
