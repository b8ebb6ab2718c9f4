"""The retry policy: its decision after a failed try, and its loop, on real time with no waits."""

from __future__ import annotations

import gc

import pytest

from batchtoon.errors import ApiError, ItemRejected, RunFatal, Throttled, Transient, Unanswered
from batchtoon.provider import retry as retry_module
from batchtoon.provider.retry import RetryPolicy, backoff_ceiling, decide
from batchtoon.settings.config import RetrySettings

SETTINGS = RetrySettings(attempts=4, backoff=1.0, max_backoff=5.0, total=60.0)
NO_WAIT = RetrySettings(attempts=4, backoff=0.0, max_backoff=0.0, total=60.0)


def test_only_retryable_errors_are_tried_again() -> None:
    for error in (Transient("reset"), Unanswered("no answer"), Throttled("slow down")):
        assert decide(SETTINGS, 1, error, 0.0) is not None
    for other in (ItemRejected("no face"), RunFatal("bad key"), ValueError("a bug")):
        assert decide(SETTINGS, 1, other, 0.0) is None


def test_tries_are_bounded_in_number_and_in_time() -> None:
    error = Transient("reset")
    assert decide(SETTINGS, 3, error, 0.0) is not None
    assert decide(SETTINGS, 4, error, 0.0) is None  # the fourth try was the last
    assert decide(SETTINGS, 1, error, 59.9) is not None
    assert decide(SETTINGS, 1, error, 60.0) is None  # no try begins after `total`


def test_a_transient_fault_waits_a_full_jitter_backoff_and_a_throttle_none() -> None:
    assert [backoff_ceiling(SETTINGS, k) for k in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    waits = [decide(SETTINGS, 3, Transient("reset"), 0.0) for _ in range(2000)]
    assert all(w is not None and 0.0 <= w <= 4.0 for w in waits)
    assert max(w or 0.0 for w in waits) > 3.5 and min(w or 9.0 for w in waits) < 0.5
    assert decide(SETTINGS, 3, Throttled("slow down", retry_after=30.0), 0.0) == 0.0


class Script:
    """A call that raises each of `errors` in turn, then returns its number of tries. (Each
    error is let go as it is raised: kept here, its traceback would make a cycle through
    this frame's `self`.)"""

    def __init__(self, *errors: ApiError) -> None:
        self.errors = list(errors)
        self.tries = 0

    async def __call__(self, add: int = 0) -> int:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.tries + add


async def test_the_call_is_tried_again_and_the_retries_counted() -> None:
    policy = RetryPolicy(NO_WAIT)
    assert await policy.call("photo.jpg", Script(Transient("a"), Throttled("b")), 10) == 13
    assert policy.retries == 2


async def test_the_last_tries_own_error_ends_the_call_with_no_chain() -> None:
    policy = RetryPolicy(NO_WAIT)
    errors = [Transient(f"reset {n}") for n in range(5)]
    script = Script(*errors)
    with pytest.raises(Transient) as raised:
        await policy.call("", script)
    assert raised.value is errors[3] and raised.value.__context__ is None
    assert (script.tries, policy.retries) == (4, 3)
    rejected = Script(ItemRejected("no face"))
    with pytest.raises(ItemRejected):
        await policy.call("", rejected)
    assert rejected.tries == 1  # raised at once


async def test_calls_leave_no_garbage_for_the_cycle_collector() -> None:
    """No cycle holds what a call made: its script, its errors, its frames. (Only those are
    looked for: other threads of the test process, from earlier tests, may leave garbage of
    their own meanwhile.)"""
    policy = RetryPolicy(NO_WAIT)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage
    try:
        for _ in range(200):
            await policy.call("", Script())  # first time
            await policy.call("", Script(Transient("reset"), Throttled("slow")))  # third time
        gc.collect()
        made = [thing for thing in gc.garbage if _made_by_a_call(thing)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert made == []


def _made_by_a_call(thing: object) -> bool:
    if isinstance(thing, Script | ApiError):
        return True
    code = getattr(thing, "f_code", None)  # a frame
    return code is not None and code.co_filename in (__file__, retry_module.__file__)
