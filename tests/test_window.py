"""The sandbox's strict one-second window, the limit a provider may count a client against;
and the client's rates against it, after its event loop stalls."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import make_photos, run_engine
from helpers import client_for, image_bytes

from batchtoon.errors import Throttled
from batchtoon.exitcodes import ExitCode
from batchtoon.sandbox import Sandbox
from batchtoon.sandbox.counters import query_gaps
from batchtoon.sandbox.window import SlidingWindow

PHOTO = image_bytes(320, 256)


def test_the_window_holds_the_limit_in_any_one_second_and_no_more() -> None:
    window = SlidingWindow(3)
    assert [window.arrive(t) for t in (0.0, 0.1, 0.2)] == [None, None, None]
    # The fourth within (-0.7, 0.3]; and it counts too: one more fits once 0.1 has left.
    assert window.arrive(0.3) == pytest.approx(0.8)
    assert window.arrive(1.0) == pytest.approx(0.2)  # (0, 1]: 0.1, 0.2, 0.3 and this one
    assert window.arrive(1.25) is None  # (0.25, 1.25]: 0.3, 1.0 and this one


def test_an_arrival_stamped_before_the_previous_one_counts_at_its_time() -> None:
    window = SlidingWindow(2)
    assert window.arrive(10.0) is None
    assert window.arrive(9.0) is None  # held up on the way: counted at 10.0, not pruned early
    assert window.arrive(10.5) == pytest.approx(0.5)


def test_an_arrival_a_whole_second_after_another_is_in_the_next_window() -> None:
    window = SlidingWindow(1)
    assert window.arrive(5.0) is None
    assert window.arrive(6.0) is None  # (5, 6] no longer holds 5.0
    assert window.arrive(6.5) == pytest.approx(1.0)  # once this refused one has left too


async def test_over_the_window_is_429_exceeding_limits_with_a_true_retry_after() -> None:
    async with (
        Sandbox(render="echo", time_scale=0.001, submit_window=2, query_window=3) as sandbox,
        client_for(sandbox) as client,
    ):
        task = await client.submit(PHOTO, 0)
        await client.submit(PHOTO, 1)
        with pytest.raises(Throttled) as caught:
            await client.submit(PHOTO, 2)
        assert (caught.value.status, caught.value.code) == (429, "EXCEEDING_LIMITS")
        retry_after = caught.value.retry_after
        assert retry_after is not None and 0 < retry_after <= 1.0
        for _ in range(3):  # queries are counted in a window of their own
            await client.query(task.task_id)
        with pytest.raises(Throttled):
            await client.query(task.task_id)
    assert sandbox.counters.throttled == 2
    assert sandbox.counters.accepted_total == 2
    arrivals = sandbox.tasks[task.task_id].queries  # the three answered, as they arrived
    assert len(arrivals) == 3 and arrivals == sorted(arrivals)
    assert min(query_gaps(sandbox.tasks)) == min(b - a for a, b in itertools.pairwise(arrivals))


@contextmanager
def sandbox_in_its_own_thread(**knobs: Any) -> Iterator[Sandbox]:
    """A sandbox on an event loop of its own: a stall of the client's loop does not stall it,
    so it stamps each request when it really arrives."""
    loop = asyncio.new_event_loop()
    started: list[Sandbox] = []
    ready = threading.Event()

    def serve() -> None:
        sandbox = Sandbox(**knobs)
        loop.run_until_complete(sandbox.start())
        started.append(sandbox)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sandbox.close())
        loop.close()

    thread = threading.Thread(target=serve, name="sandbox")
    thread.start()
    try:
        assert ready.wait(30), "the sandbox did not start"
        yield started[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


async def test_after_event_loop_stalls_no_burst_reaches_a_strict_server(tmp_path: Path) -> None:
    # The client's event loop stalls 0.3 s in every second (a long pre-flight, busy cores):
    # turns that fall due meanwhile must not leave together when it wakes, and a task's
    # queries must stay an interval apart, by the clock of a server that allows 1.1 x each rate.
    rate, poll_rate, interval = 20.0, 30.0, 0.2
    make_photos(tmp_path / "in", 50)
    with sandbox_in_its_own_thread(
        time_scale=0.01, processing_time=(45, 60), render="echo",
        submit_window=math.floor(1.1 * rate), query_window=math.floor(1.1 * poll_rate),
    ) as sandbox:  # fmt: skip
        async with anyio.create_task_group() as group:

            async def stall_now_and_then() -> None:
                while True:
                    await anyio.sleep(0.7)
                    time.sleep(0.3)  # noqa: ASYNC251 - the stall itself: nothing else runs

            group.start_soon(stall_now_and_then)
            engine = await run_engine(
                sandbox, [tmp_path / "in"], tmp_path / "out", submit__rate=rate,
                poll__rate=poll_rate, poll__interval=interval,
            )  # fmt: skip
            group.cancel_scope.cancel()
    assert engine.exit_code == ExitCode.OK
    assert sandbox.counters.accepted_total == 50
    assert sandbox.counters.throttled == 0
    assert min(query_gaps(sandbox.tasks)) >= interval - 1e-9
