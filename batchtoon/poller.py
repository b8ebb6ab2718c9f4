"""`Poller`: the one loop that asks the API about every pending task.

Guarantees:
- each tick (every `poll.interval` seconds) queries every pending task at most once, oldest
  submission first, through the poll `SharedRate` and at most `poll.concurrency` at a time;
- a task is handed on as soon as its answer is final: a success to the downloader, a failure
  to the journal, a vanished task back to the submit queue;
- a query that fails transiently is simply asked again next tick; a throttled one slows the
  poll rate down for everyone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio

from .errors import RunFatal, TaskGone, Throttled, Transient
from .ledger import Entry

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Poller", "ticks"]


async def ticks(interval: float) -> AsyncIterator[None]:
    """Yield now, then every `interval` seconds; a late tick does not bunch the next ones up."""
    next_tick = time.monotonic()
    while True:
        yield
        now = time.monotonic()
        next_tick = max(next_tick + interval, now)
        await anyio.sleep(next_tick - now)


class Poller:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.pending: dict[str, Entry] = {}  # task_id -> entry; insertion order is age order
        self.queries = 0
        self.tick_starts: deque[float] = deque(maxlen=100_000)  # event-loop times

    def __repr__(self) -> str:
        ticks = len(self.tick_starts)
        return f"<Poller pending={len(self.pending)} queries={self.queries} ticks={ticks}>"

    def add(self, entry: Entry) -> None:
        self.pending[entry.task_id] = entry

    async def run(self) -> None:
        async for _ in ticks(self._engine.settings.poll.interval):
            await self._poll_once()

    async def _poll_once(self) -> None:
        self.tick_starts.append(anyio.current_time())
        limit = anyio.Semaphore(self._engine.settings.poll.concurrency)
        async with anyio.create_task_group() as group:
            for entry in list(self.pending.values()):
                await limit.acquire()
                group.start_soon(self._query, entry, limit)

    async def _query(self, entry: Entry, limit: anyio.Semaphore) -> None:
        engine = self._engine
        try:
            if time.time() - entry.submitted_at > engine.settings.result_ttl:
                raise TaskGone("the task is older than the provider keeps tasks")
            sent_at = await engine.poll_rate.acquire()
            self.queries += 1
            state = await engine.api.query(entry.task_id)
        except Throttled as error:
            engine.poll_rate.throttled(sent_at, error.retry_after)
        except Transient as error:
            engine.log.info("query %s failed, asking again next tick: %s", entry.task_id, error)
        except TaskGone as error:
            self.pending.pop(entry.task_id, None)
            await engine.lost(entry, error.reason)
        except RunFatal as error:
            engine.halt("fatal", error)
            self.abandon()
        else:
            if state.done:
                self.pending.pop(entry.task_id, None)
                await engine.task_done(entry, state)
        finally:
            limit.release()

    def abandon(self) -> None:
        """Stop watching every task (they stay `submitted` in the journal for the next run)."""
        for entry in self.pending.values():
            self._engine.put_back(entry)
        self.pending.clear()
