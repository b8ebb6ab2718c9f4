"""`Backlog` alone, on a clock the test moves: behind past either bound, caught up at half of
both, and a submit worker's `keep_up` held exactly while it is behind."""

from __future__ import annotations

import anyio
from fakes import ManualClock

from batchtoon.pipeline.backlog import Backlog

INTERVAL = 5.0


class Stages:
    """What the stages after submission report: the poller's lateness, results waiting."""

    def __init__(self) -> None:
        self.late = 0.0
        self.waiting = 0


async def test_submissions_are_held_while_either_stage_is_behind_until_both_catch_up() -> None:
    clock, stages = ManualClock(), Stages()
    backlog = Backlog(
        INTERVAL, lambda: stages.late, lambda: stages.waiting, most_waiting=64, clock=clock
    )
    passed: list[float] = []

    async def submit_worker() -> None:
        for _ in range(3):
            await backlog.keep_up()
            passed.append(clock.monotonic())

    async with anyio.create_task_group() as group:
        group.start_soon(backlog.run)
        stages.late = 1.01 * INTERVAL  # the poller a little over an interval late
        await clock.advance(INTERVAL)
        group.start_soon(submit_worker)
        await clock.advance(INTERVAL)
        assert passed == [] and backlog.statistics().behind
        stages.late, stages.waiting = 0.4 * INTERVAL, 65  # the poller catching up; results pile
        await clock.advance(INTERVAL)
        assert passed == []
        stages.waiting = 33  # more than half the bound: still behind
        await clock.advance(INTERVAL)
        assert passed == []
        stages.waiting, held_from = 32, clock.monotonic()
        await clock.advance(INTERVAL)  # read within a tenth of an interval: all three go
        assert len(passed) == 3 and passed[0] - held_from <= 0.1 * INTERVAL + 1e-9
        stages.late = 0.9 * INTERVAL  # late, but not past the bound: nothing is held
        await clock.advance(INTERVAL)
        group.cancel_scope.cancel()
    statistics = backlog.statistics()
    assert not statistics.behind and statistics.holds == 1
    assert 4 * INTERVAL - 0.1 * INTERVAL <= statistics.held_for <= 5 * INTERVAL


async def test_nothing_is_held_where_the_stages_keep_up() -> None:
    clock = ManualClock()
    backlog = Backlog(INTERVAL, lambda: 0.0, lambda: 0, most_waiting=64, clock=clock)
    backlog.check()
    with anyio.fail_after(1):
        await backlog.keep_up()
    assert backlog.statistics().holds == 0
