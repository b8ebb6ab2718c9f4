"""SharedRate on a clock the test controls: no real time passes."""

from __future__ import annotations

import itertools

import anyio
import pytest
from fakes import ManualClock

from batchtoon.provider.pacing import SharedRate


class FakeTime:
    """A `Clock` whose sleeps return at once, having moved time on."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def rate_on(fake: FakeTime, rate: float) -> SharedRate:
    return SharedRate(rate, clock=fake)


async def test_turns_are_spaced_by_the_rate_with_no_burst(fake: FakeTime) -> None:
    rate = rate_on(fake, 10.0)
    turns = [await rate.acquire() for _ in range(5)]
    assert turns == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_an_idle_spell_does_not_bank_a_burst(fake: FakeTime) -> None:
    rate = rate_on(fake, 10.0)
    await rate.acquire()
    fake.now = 100.0
    turns = [await rate.acquire() for _ in range(3)]
    assert turns == pytest.approx([100.0, 100.1, 100.2])


async def test_throttling_pauses_everyone_and_halves_the_rate_once_per_round(
    fake: FakeTime,
) -> None:
    rate = rate_on(fake, 10.0)
    sent = [await rate.acquire() for _ in range(3)]  # three requests on the wire
    for sent_at in sent:  # ... and all three come back 429 with Retry-After: 2
        rate.throttled(sent_at, 2.0)
    assert rate.rate == pytest.approx(5.0)  # halved once, not three times
    assert rate.slowdowns == 1 and rate.slowed
    assert await rate.acquire() >= fake.now - 1e-9 and fake.now >= sent[-1] + 2.0


async def test_a_pause_that_begins_while_waiting_holds_the_waiter(fake: FakeTime) -> None:
    rate = rate_on(fake, 1.0)
    await rate.acquire()
    rate.throttled(0.0, 10.0)
    assert await rate.acquire() >= 10.0


async def test_the_rate_climbs_back_gradually_and_never_passes_the_maximum(
    fake: FakeTime,
) -> None:
    rate = rate_on(fake, 10.0)
    rate.throttled(await rate.acquire(), None)
    assert rate.rate == pytest.approx(5.0)
    await rate.acquire()
    assert 5.0 < rate.rate < 10.0  # additive: one step, not all the way
    for _ in range(30):
        await rate.acquire()
    assert rate.rate == pytest.approx(10.0) and not rate.slowed


async def test_the_rate_never_falls_below_its_floor(fake: FakeTime) -> None:
    rate = rate_on(fake, 32.0)
    for _ in range(20):
        rate.throttled(fake.now, 0.0)
        fake.now += 1.0
    assert rate.rate == pytest.approx(1.0)  # 1/32 of the configured rate


def most_in_one_second(turns: list[float]) -> int:
    """The most turns in any window (t - 1, t], as a strict sliding-window limiter counts."""
    return max(sum(1 for u in turns if t - 1.0 + 1e-9 < u <= t) for t in turns)


async def turns_through_a_stall(rate: SharedRate, clock: ManualClock, callers: int) -> list[float]:
    """`callers` tasks each take one turn; the loop stalls 2 s a quarter of a second in."""
    turns: list[float] = []

    async def take() -> None:
        turns.append(await rate.acquire())

    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(take)
        await clock.advance(0.25)
        await clock.stall(2.0)  # every waiter whose turn was due meanwhile wakes late, at once
        while len(turns) < callers:
            await clock.advance(0.01)
    return turns


async def test_after_a_stall_late_turns_do_not_burst() -> None:
    clock = ManualClock(start=0.0)
    turns = await turns_through_a_stall(SharedRate(10.0, clock=clock), clock, 40)
    assert turns == sorted(turns)
    assert turns[3] == pytest.approx(2.25)  # the first late one goes as soon as the loop runs
    # The ones behind it make a quarter second up, at 4/3 of the rate at most; no second
    # holds more than the rate.
    gaps = [b - a for a, b in itertools.pairwise(turns)]
    assert min(gaps) >= 0.075 - 1e-9
    assert most_in_one_second(turns) <= 10
    assert gaps[-20:] == pytest.approx([0.1] * 20)  # then on schedule again, no saw-tooth


class LateTime(FakeTime):
    """Every sleep overruns by 5 ms, as on cores that other processes keep busy."""

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + 0.005
        await anyio.lowlevel.checkpoint()


async def test_turns_that_wake_a_little_late_keep_the_rate() -> None:
    clock = LateTime()
    rate = SharedRate(20.0, clock=clock)
    turns: list[float] = []

    async def worker() -> None:
        while clock.now < 10.0:
            turns.append(await rate.acquire())

    async with anyio.create_task_group() as group:
        for _ in range(8):  # the submit workers: always someone waiting
            group.start_soon(worker)
    in_ten_seconds = [t for t in turns if t < 10.0]
    assert len(in_ten_seconds) >= 199  # of 200; spaced from each late turn: 10 / 0.055 = 182
    assert most_in_one_second(turns) <= 20
    assert min(b - a for a, b in itertools.pairwise(turns)) >= 0.05 - 1e-9  # late, late...


async def test_any_one_second_holds_no_more_than_the_rate_rounded_down() -> None:
    clock = ManualClock(start=0.0)
    rate = SharedRate(2.5, clock=clock)  # spaced 0.4 s apart alone, three would fit in 0.8 s
    turns = await turns_through_a_stall(rate, clock, 12)
    assert most_in_one_second(turns) == 2


async def test_after_a_throttle_the_rate_is_whole_again_within_two_seconds(
    fake: FakeTime,
) -> None:
    rate = rate_on(fake, 20.0)
    rate.throttled(await rate.acquire(), 0.0)
    cut, turns = fake.now, 0
    while rate.slowed:
        await rate.acquire()
        turns += 1
    # 25 turns climb from 10/s back to 20/s by 0.4/s each: sum(1/(10 + 0.4 k)) ~ 1.7 s.
    assert turns == 25
    assert fake.now - cut == pytest.approx(sum(1 / (10 + 0.4 * k) for k in range(25)))
    assert fake.now - cut < 2.0


async def test_a_smaller_ceiling_spaces_the_next_turn_by_itself_not_by_the_last_second(
    fake: FakeTime,
) -> None:
    # The poller sizes its rate to the work: fewer tasks left must not wait for the many turns
    # of the last second (taken under the larger ceiling) to age out of the window.
    rate = rate_on(fake, 100.0)
    turns = [await rate.acquire() for _ in range(100)]
    rate.resize(5.0)
    assert await rate.acquire() == pytest.approx(turns[-1] + 0.2)
