"""`Poller`: the one loop that asks the API about every pending task.

Each pending task has a due time; the poller asks about the tasks whose time has come, most
overdue first. Guarantees:

- a task is never asked about sooner than `interval` after its previous query, nor sooner than
  `interval` after its submission: whatever the number of pending tasks, however the rate is
  resized, after any stall of the event loop (a late query pushes the task's next one later,
  it never brings it closer). The interval is counted from when the previous query's answer
  (or failure) came back, which is after the server received the query, so it holds by the
  server's clock too, however unevenly the network or a busy machine delays requests on the
  way; the submission time is the accepted answer's, for the same reason;
- a task is due again `interval` after that, and asked as soon after as the rate allows: of
  the tasks due, the most overdue goes first (then the oldest submission);
- at most `concurrency` queries are in flight (a fixed pool of that many query workers, each
  delivering its task's outcome before it takes the next), and no task has two at once;
- the poll rate keeps up by itself: unless a ceiling is configured, it is sized from the work
  each time a query worker picks its next task, so that the most tasks pending at any time in
  the last interval can all be asked in a tenth of an interval (`ROUND`): tasks submitted
  together are due together, and as the others settle the few left stay in their clump,
  which a rate sized to their mean need (their number an interval), or shrunk as each of them
  settles, would spread over most of the interval, later every round. The mean is kept by
  each task's own interval: the server sees at most the pending tasks once an interval however
  the rate is sized. A configured ceiling too low for the work is said once, with the numbers;
- a task is handed on as soon as its answer is final (`Finished`), or once it is known to be
  gone (`Gone`: the provider lost it, or its ticket's `gone_at` has passed: it is older than
  the provider keeps tasks); every outcome says which task id it is `about` (whether the item
  still waits on it is the state machine's call);
- a query that fails (a fault, a throttle, an answer that makes no sense) is simply asked again
  an interval later; a throttled one also slows the poll rate down for everyone;
- the failures are bounded: a task whose queries have failed for `give_up_after` seconds and
  at least `min_failures` times in a row is `Left` — it is paid for, so it is never failed:
  it stays `submitted` in the journal and a later run asks again;
- after a run-fatal answer (bad key, locked account) no query can succeed: that task comes back
  as `Fatal` and every other one as `Left`, and the poller stops asking.

Of what it is given the poller reads only `key`, `task_id`, `submitted_at` (unix time) and
`name`, and hands the same object back in its outcomes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchtoon.errors import ApiError, RunFatal, TaskGone, Throttled
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.outcomes import Answer, Fatal, Finished, Gone, Left, Outbox
from batchtoon.pipeline.tickets import TASK_EXPIRED, PollTicket
from batchtoon.provider.api import Api
from batchtoon.provider.pacing import SharedRate

__all__ = ["MIN_RATE", "PollLimits", "Poller"]

MIN_RATE = 1.0  # queries per second, at the least, when the rate is sized from the work
ROUND = 0.1  # of an interval: the time a sized rate takes to ask every pending task once


@dataclass(frozen=True)
class PollLimits:
    interval: float  # seconds between two queries of one task, at the least
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
        self._due: list[tuple[float, int, str]] = []  # heap of (due time, age order, key)
        self._due_at: dict[str, float] = {}  # key -> its due time; absent while it is asked
        self._asking: set[str] = set()  # keys with a query in flight
        self._unsent: dict[str, float] = {}  # key -> due time, of those waiting for the rate
        self._asked: dict[str, tuple[str, float]] = {}  # key -> (task id, last answer's time)
        self._order = itertools.count()
        self._failing: dict[str, _Streak] = {}  # item key -> its failures in a row
        self._picking = anyio.Lock(fast_acquire=True)  # FIFO: one worker at a time picks
        # (time, tasks pending from then): each later than the one before, and fewer
        self._peaks: deque[tuple[float, int]] = deque()
        self.queries = 0

    def __repr__(self) -> str:
        return f"<Poller pending={len(self.pending)} queries={self.queries}>"

    def lateness(self) -> float:
        """Seconds the most overdue task not yet asked (waiting for a query worker, or for the
        rate) is past its due time; 0 if none is due."""
        dues = list(itertools.islice(self._unsent.values(), 1))  # the first picked: the oldest
        if self._due:
            dues.append(self._due[0][0])
        return max(0.0, self._clock.monotonic() - min(dues)) if dues else 0.0

    async def run(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> None:
        """Poll until cancelled; tasks sent on `new_tasks` are first asked about an interval
        after their submission."""
        async with new_tasks, anyio.create_task_group() as group:
            for _ in range(self._limits.concurrency):
                group.start_soon(self._ask_in_turn, new_tasks)

    async def _ask_in_turn(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> None:
        """One of `concurrency` query workers: takes the most overdue task once it is due (one
        worker at a time watches the schedule, in the order they came back), asks about it,
        settles or reschedules it, and goes back for the next. A fixed pool, rather than a
        task started per query: a query costs no task of its own."""
        while True:
            async with self._picking:
                ticket = await self._next_due(new_tasks)
            await self._query(ticket)

    async def _next_due(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> PollTicket:
        """The most overdue pending task, once one is due (taken off the schedule)."""
        while True:
            self._take_new(new_tasks)
            self._size_rate()  # (every pick: a task joined or settled since, or time passed)
            now = self._clock.monotonic()
            while self._due and self._due[0][0] <= now:
                due, _, key = heapq.heappop(self._due)
                if self._due_at.get(key) == due:  # else an old place, moved since
                    del self._due_at[key]
                    self._asking.add(key)
                    self._unsent[key] = due
                    return self.pending[key]
            # Woken at least once an interval: a task that joins is due no sooner than that.
            first = self._due[0][0] if self._due else now + self._limits.interval
            await self._clock.sleep(min(first - now, self._limits.interval))

    def _take_new(self, new_tasks: MemoryObjectReceiveStream[PollTicket]) -> None:
        while True:
            try:
                ticket = new_tasks.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            self.pending[ticket.key] = ticket
            if ticket.key not in self._asking:  # one being asked is scheduled when answered
                self._schedule(ticket)

    def _schedule(self, ticket: PollTicket) -> None:
        """Put `ticket` on the schedule: due an interval after the later of its submission and
        its previous query's answer (about the same task id)."""
        now = self._clock.monotonic()
        # As monotonic time; never later than now (the wall clock may have been set back).
        submitted = now - max(0.0, self._clock.wall() - ticket.submitted_at)
        task_id, asked = self._asked.get(ticket.key, ("", float("-inf")))
        last = max(submitted, asked) if task_id == ticket.task_id else submitted
        due = last + self._limits.interval
        self._due_at[ticket.key] = due
        heapq.heappush(self._due, (due, next(self._order), ticket.key))

    def _size_rate(self) -> None:
        pending, interval, ceiling = len(self.pending), self._limits.interval, self._limits.rate
        if ceiling is None:
            sized = max(MIN_RATE, self._most_pending(pending) / (interval * ROUND))
            if sized != self._rate.max_rate:
                self._rate.resize(sized)
            return
        needed = pending / interval  # queries per second, on the mean
        if needed > ceiling and not self._warned:
            self._warned = True
            self._say(
                f"the poll rate ({ceiling:g}/s) cannot ask about {len(self.pending)} pending "
                f"tasks every {self._limits.interval:g} s ({needed:.0f}/s needed): results "
                "are seen late; raise --poll-rate, or leave it unset to size it from the work"
            )

    def _most_pending(self, pending: int) -> int:
        """The most tasks pending at any time in the last interval, `pending` now included (a
        sliding maximum: the deque keeps only the counts no later, larger one hides, each at
        the first time it was seen since)."""
        now, peaks = self._clock.monotonic(), self._peaks
        while peaks and peaks[-1][1] < pending:
            peaks.pop()
        if not peaks or peaks[-1][1] > pending:
            peaks.append((now, pending))
        # A count held until the next one came, which was no later than the one kept next.
        while len(peaks) > 1 and peaks[1][0] <= now - self._limits.interval:
            peaks.popleft()
        return peaks[0][1]

    async def _query(self, ticket: PollTicket) -> None:
        try:
            outcome = await self._ask(ticket)
        finally:
            self._asking.discard(ticket.key)
            self._unsent.pop(ticket.key, None)
        if outcome is not None and self.pending.get(ticket.key) is ticket:  # (not a newer task)
            await self._settle(outcome)
        elif ticket.key in self.pending:  # ask again: an interval after this answer
            self._schedule(self.pending[ticket.key])

    async def _settle(self, outcome: Answer) -> None:
        key = outcome.ticket.key
        del self.pending[key]
        self._due_at.pop(key, None)
        self._asked.pop(key, None)
        self._failing.pop(key, None)
        await self._outbox.deliver(outcome)
        if isinstance(outcome, Fatal):
            await self._abandon(f"the API refused the account: {outcome.error.reason}")

    async def _ask(self, ticket: PollTicket) -> Answer | None:
        """The task's outcome if this query settles it, else None (ask again later)."""
        task_id = ticket.task_id
        if self._clock.wall() > ticket.gone_at:
            return Gone(ticket, TASK_EXPIRED, task_id)
        sent_at = await self._rate.acquire()
        self._unsent.pop(ticket.key, None)
        self.queries += 1
        try:
            state = await self._api.query(task_id)
        except TaskGone as error:
            return Gone(ticket, error.reason, task_id)
        except RunFatal as error:
            return Fatal(ticket, error)
        except ApiError as error:
            if isinstance(error, Throttled):
                self._rate.throttled(sent_at, error.retry_after)
            return self._failed(ticket, error)
        finally:
            self._asked[ticket.key] = (task_id, self._clock.monotonic())
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
        self._due.clear()
        self._due_at.clear()
        self._asked.clear()
        self._failing.clear()
        for ticket in pending.values():
            await self._outbox.deliver(Left(ticket, reason, ticket.task_id))
