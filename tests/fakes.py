"""Small fakes for testing one stage alone, without sockets: a clock the test moves, an API
that answers from a script, and an outbox that records what a stage delivers."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

import anyio

from batchtoon.errors import ApiError
from batchtoon.pipeline.outcomes import Outcome
from batchtoon.provider.api import Sink, Submitted, TaskState


class ManualClock:
    """Time moves only when the test says so: `await clock.advance(s)` wakes every sleeper due
    by then, in order, and lets each run until everything is blocked again."""

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1.7e9) -> None:
        self._now = start
        self._wall_offset = wall_offset
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), woken))
        await woken.wait()

    async def advance(self, seconds: float) -> None:
        until = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            due, _, woken = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            woken.set()
            await settle()
        self._now = until
        await settle()

    async def stall(self, seconds: float) -> None:
        """The event loop stalls (busy cores, a slow disk): time jumps `seconds` while nothing
        runs, then every sleeper now overdue wakes at once, late."""
        self._now += seconds
        await self.advance(0)


async def settle() -> None:
    """Let every other task run until each waits on something. (anyio's
    `wait_all_tasks_blocked` does this too, but sleeps 0.1 s between looks.)"""
    this = asyncio.current_task()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if all(task is this or _blocked(task) for task in asyncio.all_tasks()):
            return
    raise AssertionError("tasks never settled: something spins without awaiting")


def _blocked(task: asyncio.Task[object]) -> bool:
    waiter = getattr(task, "_fut_waiter", None)  # what asyncio's Task is waiting on
    return waiter is not None and not waiter.done()


Answer = TaskState | ApiError | bytes | Submitted


@dataclass
class FakeApi:
    """Answers each call from a per-key script (task id, or url for downloads; "submit" for
    submits); the last answer of a script repeats. Every call is recorded with the clock's time."""

    clock: ManualClock
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    calls: list[tuple[float, str, str]] = field(default_factory=list)  # (time, kind, key)
    _seen: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def script(self, key: str, *answers: Answer) -> None:
        self.scripts[key] = list(answers)

    def _next(self, kind: str, key: str) -> Answer:
        self.calls.append((self.clock.monotonic(), kind, key))
        answers = self.scripts[key]
        answer = answers[min(self._seen[key], len(answers) - 1)]
        self._seen[key] += 1
        if isinstance(answer, ApiError):
            raise answer
        return answer

    async def submit(self, image: bytes, style: int, image_format: str = "JPEG") -> Submitted:
        await anyio.lowlevel.checkpoint()
        answer = self._next("submit", "submit")
        assert isinstance(answer, Submitted)
        return answer

    async def query(self, task_id: str) -> TaskState:
        await anyio.lowlevel.checkpoint()
        answer = self._next("query", task_id)
        assert isinstance(answer, TaskState)
        return answer

    async def download(self, url: str, sink: Sink, *, max_bytes: int) -> None:
        await anyio.lowlevel.checkpoint()
        answer = self._next("download", url)
        assert isinstance(answer, bytes)
        sink.write(answer)

    def times(self, kind: str, key: str) -> list[float]:
        return [at for at, k, which in self.calls if k == kind and which == key]


@dataclass
class RecordingOutbox:
    """Records every outcome delivered, in order."""

    delivered: list[Outcome] = field(default_factory=list)

    async def deliver(self, outcome: Outcome) -> None:
        self.delivered.append(outcome)
        await anyio.lowlevel.checkpoint()

    def kinds(self) -> list[str]:
        return [type(o).__name__ for o in self.delivered]


PENDING = TaskState(1, "PROCESSING", "")
QUEUING = TaskState(0, "QUEUING", "")


def success(url: str) -> TaskState:
    return TaskState(2, "PROCESS_SUCCESS", url)
