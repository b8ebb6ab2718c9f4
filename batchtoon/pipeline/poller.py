"""`Poller`: the one loop that asks the API about every pending task.

Guarantees:
- each tick (every `interval` seconds) queries every pending task at most once, oldest
  submission first, through the poll `SharedRate` and at most `concurrency` at a time;
- the poll rate keeps up by itself: unless a ceiling is configured, it is sized at each tick
  from the work (every pending task once per interval, with a fifth to spare); a configured
  ceiling too low for the work is said once, with the numbers;
- a task is handed on as soon as its answer is final (`Finished`), or once it is known to be
  gone (`Gone`: the provider lost it, or its ticket's `gone_at` has passed: it is older than
  the provider keeps tasks); every outcome says which task id it is `about` (whether the item
  still waits on it is the state machine's call);
- a query that fails (a fault, a throttle, an answer that makes no sense) is simply asked again
  next tick; a throttled one also slows the poll rate down for everyone;
- the failures are bounded: a task whose queries have failed for `give_up_after` seconds and
  at least `min_failures` times in a row is `Left` — it is paid for, so it is never failed:
  it stays `submitted` in the journal and a later run asks again;
- after a run-fatal answer (bad key, locked account) no query can succeed: that task comes back
  as `Fatal` and every other one as `Left`, and the poller stops asking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchtoon.errors import ApiError, RunFatal, TaskGone, Throttled
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock, ticks
from batchtoon.pipeline.outcomes import Fatal, Finished, Gone, Left, Outbox, Outcome
from batchtoon.pipeline.tickets import TASK_EXPIRED, PollTicket
from batchtoon.provider.api import Api
from batchtoon.provider.pacing import SharedRate

__all__ = ["MIN_RATE", "PollLimits", "Poller"]

MIN_RATE = 1.0  # queries per second, at the least, when the rate is sized from the work
HEADROOM = 1.2  # sized for a fifth more than the work, so a tick ends before the next


@dataclass(frozen=True)
class PollLimits:
    interval: float  # seconds between ticks
    concurrency: int  # queries in flight at once
    rate: float | None  # a ceiling on queries per second; None: sized from the work
    give_up_after: float  # seconds of failing queries before a task is left ...
    min_failures: int  # ... and at least this many failures in a row


@dataclass(slots=True)
class _Streak:
    first: float  # monotonic time of the first failure in a row
    count: int


class Poller:
    def __init__(
        self,
        api: Api,
        rate: SharedRate,
        outbox: Outbox,
        limits: PollLimits,
        *,
        clock: Clock = SYSTEM_CLOCK,
        log: logging.Logger | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._api, self._rate, self._outbox, self._limits = api, rate, outbox, limits
        self._clock = clock
        self._log = log or logging.getLogger("batchtoon")
        self._say = say or self._log.warning
        self._warned = False
        self.pending: dict[str, PollTicket] = {}  # item key -> ticket; in order of age
        self._failing: dict[str, _Streak] = {}  # item key -> its failures in a row
        self.queries = 0
        self.ticks = 0

    def __repr__(self) -> str:
        return f"<Poller pending={len(self.pending)} queries={self.queries} ticks={self.ticks}>"

    async def run(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> None:
        """Poll until cancelled; tasks sent on `new_tasks` join at the next tick."""
        async with new_tasks:
            async for _ in ticks(self._limits.interval, self._clock):
                self._take_new(new_tasks)
                self._size_rate()
                await self._poll_once()

    def _take_new(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> None:
        while True:
            try:
                ticket = new_tasks.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                return
            self.pending[ticket.key] = ticket

    def _size_rate(self) -> None:
        needed = len(self.pending) / self._limits.interval  # queries per second
        ceiling = self._limits.rate
        if ceiling is None:
            self._rate.resize(max(MIN_RATE, needed * HEADROOM))
        elif needed > ceiling and not self._warned:
            self._warned = True
            self._say(
                f"the poll rate ({ceiling:g}/s) cannot ask about {len(self.pending)} pending "
                f"tasks every {self._limits.interval:g} s ({needed:.0f}/s needed): results "
                "are seen late; raise --poll-rate, or leave it unset to size it from the work"
            )

    async def _poll_once(self) -> None:
        self.ticks += 1
        limit = anyio.Semaphore(self._limits.concurrency)
        async with anyio.create_task_group() as group:
            for ticket in list(self.pending.values()):
                await limit.acquire()
                group.start_soon(self._query, ticket, limit)

    async def _query(self, ticket: PollTicket, limit: anyio.Semaphore) -> None:
        try:
            outcome = await self._ask(ticket)
        finally:
            limit.release()
        if outcome is None:
            return
        if self.pending.get(ticket.key) is ticket:  # (not a newer task of the item's)
            del self.pending[ticket.key]
            self._failing.pop(ticket.key, None)
        await self._outbox.deliver(outcome)
        if isinstance(outcome, Fatal):
            await self._abandon(f"the API refused the account: {outcome.error.reason}")

    async def _ask(self, ticket: PollTicket) -> Outcome | None:
        """The task's outcome if this query settles it, else None (ask again next tick)."""
        task_id = ticket.task_id
        if self._clock.wall() > ticket.gone_at:
            return Gone(ticket, TASK_EXPIRED, task_id)
        sent_at = await self._rate.acquire()
        self.queries += 1
        try:
            state = await self._api.query(task_id)
        except TaskGone as error:
            return Gone(ticket, error.reason, task_id)
        except RunFatal as error:
            return Fatal(ticket, error, task_id)
        except ApiError as error:
            if isinstance(error, Throttled):
                self._rate.throttled(sent_at, error.retry_after)
            return self._failed(ticket, error)
        self._failing.pop(ticket.key, None)
        return Finished(ticket, task_id, state) if state.done else None

    def _failed(self, ticket: PollTicket, error: ApiError) -> Left | None:
        now = self._clock.monotonic()
        streak = self._failing.setdefault(ticket.key, _Streak(now, 0))
        streak.count += 1
        self._log.info("query for %s failed (%d in a row): %s", ticket.name, streak.count, error)
        limits = self._limits
        if streak.count >= limits.min_failures and now - streak.first >= limits.give_up_after:
            return Left(ticket, f"its queries kept failing: {error.reason}", ticket.task_id)
        return None

    async def _abandon(self, reason: str) -> None:
        """Stop watching every task (they stay `submitted` in the journal for the next run)."""
        pending, self.pending = self.pending, {}
        self._failing.clear()
        for ticket in pending.values():
            await self._outbox.deliver(Left(ticket, reason, ticket.task_id))
