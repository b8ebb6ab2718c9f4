"""SharedRate on a clock the test controls: no real time passes."""

from __future__ import annotations

import pytest

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
