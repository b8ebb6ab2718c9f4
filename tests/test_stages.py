"""Each stage alone, against a fake API and a clock the test moves: no sockets, no waiting."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import math
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from fakes import PENDING, FakeApi, ManualClock, RecordingOutbox, success
from PIL import Image

from batchtoon.errors import InputError, ItemRejected, RunFatal, TaskGone, Throttled, Transient
from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import BadLine, Source, count_sources, display
from batchtoon.locations.storage import Location
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.downloader import Downloader
from batchtoon.pipeline.intake import Intake
from batchtoon.pipeline.outcomes import (
    Accepted,
    Finished,
    Found,
    Gone,
    Left,
    Refused,
    Rejected,
    Reread,
    Stored,
)
from batchtoon.pipeline.poller import Poller, PollLimits
from batchtoon.pipeline.producer import PREPARE_BATCH, _check_all
from batchtoon.pipeline.submitter import SubmitWorker
from batchtoon.pipeline.tickets import (
    TASK_EXPIRED,
    URL_EXPIRED,
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    UploadTicket,
)
from batchtoon.provider.api import Submitted
from batchtoon.provider.pacing import SharedRate
from batchtoon.provider.retry import RetryPolicy
from batchtoon.records.ledger import Ledger
from batchtoon.settings.config import RetrySettings

INTERVAL = 5.0
LIMITS = PollLimits(interval=INTERVAL, concurrency=4, rate=None, give_up_after=60.0, min_failures=3)
NO_WAIT = RetrySettings(attempts=3, backoff=0.0, max_backoff=0.0, total=60.0)


def key(n: int) -> str:
    return f"{n:064x}:0"


def task(n: int, clock: ManualClock, *, age: float = 0.0) -> PollTicket:
    submitted = clock.wall() - age
    return PollTicket(key(n), f"t{n}", submitted, f"in/photo{n}.jpg", submitted + 86_400)


def result(n: int, clock: ManualClock, *bases: str) -> DownloadTicket:
    bases = bases or (f"photo{n}.0",)
    return DownloadTicket(key(n), f"http://cdn/u{n}", clock.wall() + 3600, bases, f"photo{n}")


@asynccontextmanager
async def running(start: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(start)
        yield
        group.cancel_scope.cancel()


# The poller.


@asynccontextmanager
async def poller_with(
    api: FakeApi, clock: ManualClock, outbox: RecordingOutbox, tickets: list[PollTicket]
) -> AsyncIterator[tuple[Poller, MemoryObjectSendStream[PollTicket], SharedRate]]:
    rate = SharedRate(1000.0, clock=clock)
    poller = Poller(api, rate, outbox, LIMITS, clock=clock)
    send, receive = anyio.create_memory_object_stream[PollTicket](math.inf)
    for item in tickets:
        send.send_nowait(item)
    async with running(lambda: poller.run(receive)):
        yield poller, send, rate


def tick_of(at: float, start: float) -> int:
    return math.floor((at - start) / INTERVAL + 1e-9)


async def test_the_poller_asks_each_pending_task_once_per_tick_oldest_first() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api, start = FakeApi(clock), clock.monotonic()
    entries = [task(n, clock, age=10 - n) for n in range(5)]
    for n in range(5):  # task n is done at its (n + 2)th query
        api.script(f"t{n}", *[PENDING] * (n + 1), success(f"http://cdn/u{n}"))
    async with poller_with(api, clock, outbox, entries):
        for _ in range(8):
            await clock.advance(INTERVAL)
    for n in range(5):
        ticks = [tick_of(at, start) for at in api.times("query", f"t{n}")]
        assert ticks == list(range(n + 2))  # once a tick, every tick, until done
    first_tick = [key for at, kind, key in api.calls if tick_of(at, start) == 0]
    assert first_tick == [f"t{n}" for n in range(5)]  # oldest submission first
    finished = [o for o in outbox.delivered if isinstance(o, Finished)]
    assert [o.ticket.task_id for o in finished] == [o.about for o in finished]
    assert [o.about for o in finished] == [f"t{n}" for n in range(5)]
    assert all(o.state.succeeded for o in finished)


async def test_a_task_past_its_tickets_deadline_is_gone_without_a_query() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    async with poller_with(api, clock, outbox, [task(1, clock, age=90_000)]):
        await clock.advance(0)
    [gone] = outbox.delivered
    assert isinstance(gone, Gone) and gone.reason == TASK_EXPIRED and api.calls == []


async def test_a_task_joining_mid_run_is_asked_an_interval_after_its_submission() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    api.script("t1", PENDING)
    async with poller_with(api, clock, outbox, []) as (_, send, _rate):
        await clock.advance(INTERVAL * 2 + 1)
        joined = clock.monotonic()
        send.send_nowait(task(1, clock))
        await clock.advance(INTERVAL * 2)
    assert api.times("query", "t1") == [joined + INTERVAL, joined + 2 * INTERVAL]


async def test_a_task_stamped_in_the_future_is_asked_an_interval_from_now() -> None:
    # The wall clock was set back since the task was submitted (or another machine's was
    # ahead): its submission cannot be later than now.
    clock, outbox = ManualClock(), RecordingOutbox()
    api, start = FakeApi(clock), clock.monotonic()
    api.script("t1", PENDING)
    async with poller_with(api, clock, outbox, [task(1, clock, age=-3600)]):
        await clock.advance(INTERVAL)
    assert api.times("query", "t1") == [start + INTERVAL]


async def test_no_task_is_asked_sooner_than_the_interval_through_resizes_and_stalls() -> None:
    # Tasks join in waves and finish after different numbers of queries, so the rate sized
    # from the work is resized again and again, and a task's place among the others moves;
    # the loop stalls now and then. (The old per-tick poller asked a new task at the next
    # tick, right after it joined, and one task twice 4.96 s apart with an interval of 5.)
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    joined: dict[str, float] = {}
    async with poller_with(api, clock, outbox, []) as (_, send, rate):
        for wave in range(12):
            for n in range(wave * 10, wave * 10 + 10):
                api.script(f"t{n}", *[PENDING] * (n % 7 + 1), success(f"http://cdn/u{n}"))
                joined[f"t{n}"] = clock.monotonic()
                send.send_nowait(task(n, clock))
            await clock.advance(1.7)
            if wave % 4 == 1:
                await clock.stall(3.1)
        for _ in range(80):
            await clock.advance(1.0)
        assert rate.max_rate == pytest.approx(1.0)  # resized down once the work was done
    for task_id, at in joined.items():
        times = api.times("query", task_id)
        assert times[0] >= at + INTERVAL - 1e-6, task_id  # a unix time's rounding at 1.7e9 s
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= INTERVAL - 1e-9, (task_id, times)
    assert len(outbox.delivered) == len(joined)  # every one asked until it was done


async def test_the_most_overdue_task_is_asked_first() -> None:
    # A poll-rate ceiling of 4/s for 30 tasks every 5 s (6/s needed) keeps every task late:
    # whenever a query can go, it is for the task whose due time (an interval after its
    # previous query, or its submission) is earliest, whatever the order the tasks came in.
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    slow = PollLimits(**{**LIMITS.__dict__, "rate": 4.0, "concurrency": 1})
    said: list[str] = []  # the ceiling is too low for the work, and is said so
    poller = Poller(api, SharedRate(4.0, clock=clock), outbox, slow, clock=clock, say=said.append)
    ages = {f"t{n}": (n * 7) % 30 * 0.3 for n in range(30)}  # joined in another order
    send, receive = anyio.create_memory_object_stream[PollTicket](math.inf)
    due: dict[str, float] = {}
    for n in range(30):
        api.script(f"t{n}", PENDING)
        send.send_nowait(task(n, clock, age=ages[f"t{n}"]))
        due[f"t{n}"] = clock.monotonic() - ages[f"t{n}"] + INTERVAL
    async with running(lambda: poller.run(receive)):
        for step in range(60):
            await clock.advance(0.7)
            if step == 20:
                await clock.stall(4.0)
    assert len(api.calls) > 60
    for _, _, task_id in api.calls:
        assert due[task_id] == min(due.values()), task_id
        due[task_id] = clock_of(api, task_id, due[task_id]) + INTERVAL


def clock_of(api: FakeApi, task: str, after: float) -> float:
    """When `task` was asked next, at or after `after`."""
    return next(at for at in api.times("query", task) if at >= after - 1e-9)


async def test_a_task_the_provider_lost_is_gone() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    api.script("t1", TaskGone("not found", status=404))
    async with poller_with(api, clock, outbox, [task(1, clock)]):
        await clock.advance(INTERVAL)
    [gone] = outbox.delivered
    assert isinstance(gone, Gone) and gone.reason == "404: not found" and gone.about == "t1"


async def test_failing_queries_are_asked_again_then_the_task_is_left_not_failed() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    api.script("t1", Transient("reset"), Throttled("slow down", status=429), PENDING)
    api.script("t2", Transient("the API answered HTTP 200 with a body that is not JSON"))
    async with poller_with(api, clock, outbox, [task(1, clock), task(2, clock)]) as (
        poller,
        _,
        rate,
    ):
        for _ in range(20):  # 100 s: past give_up_after (60 s) and min_failures (3)
            await clock.advance(INTERVAL)
        assert [e.task_id for e in poller.pending.values()] == ["t1"]  # recovered: still asked
    assert rate.slowdowns == 1
    [left] = outbox.delivered
    assert isinstance(left, Left) and left.about == left.ticket.task_id == "t2"
    assert "kept failing" in left.reason and "not JSON" in left.reason
    assert len(api.times("query", "t2")) == 13  # failing from 0 s; left once 60 s have passed


async def test_a_run_fatal_answer_leaves_every_task_and_stops_asking() -> None:
    clock, outbox = ManualClock(), RecordingOutbox()
    api = FakeApi(clock)
    api.script("t0", RunFatal("bad key", status=401))
    api.script("t1", PENDING)
    async with poller_with(api, clock, outbox, [task(0, clock, age=1), task(1, clock)]) as (
        poller,
        _,
        _rate,
    ):
        await clock.advance(INTERVAL * 3)
        assert poller.pending == {}
    assert sorted(outbox.kinds()) == ["Fatal", "Left"]
    assert len(api.calls) <= 2  # the tick that met it, no more


# The submit worker.


def upload(n: int, clock: ManualClock) -> UploadTicket:
    image = Prepared(f"{n:064x}", b"jpeg bytes", "JPEG", (320, 256))
    return UploadTicket(key(n), image, 0, f"in/photo{n}.jpg")


async def submit_all(
    api: FakeApi, budget: SubmissionBudget, uploads: list[UploadTicket], *, workers: int = 1
) -> RecordingOutbox:
    clock, outbox = api.clock, RecordingOutbox()
    retry = RetryPolicy(NO_WAIT)
    send, receive = anyio.create_memory_object_stream[UploadTicket](math.inf)
    for item in uploads:
        send.send_nowait(item)
    send.close()
    async with anyio.create_task_group() as group:
        for _ in range(workers):
            worker = SubmitWorker(api, SharedRate(1e9, clock=clock), retry, budget, outbox)
            group.start_soon(worker.run, receive.clone())
        receive.close()
        while group.cancel_scope.cancel_called is False and len(outbox.delivered) < len(uploads):
            await clock.advance(1.0)
    return outbox


async def test_an_accepted_upload_spends_one_slot_and_a_refused_one_gives_it_back() -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script("submit", Submitted("task-1"), ItemRejected("no face", status=422))
    budget = SubmissionBudget(None)
    outbox = await submit_all(api, budget, [upload(1, clock), upload(2, clock)])
    accepted, refused = outbox.delivered
    assert isinstance(accepted, Accepted) and accepted.task_id == "task-1"
    assert isinstance(refused, Refused) and "no face" in refused.error.reason
    assert (budget.spent, budget.in_flight) == (1, 0)


async def test_a_transient_fault_is_retried_and_counted() -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script("submit", Transient("reset"), Submitted("task-1"))
    retry_outbox = await submit_all(api, SubmissionBudget(None), [upload(1, clock)])
    assert retry_outbox.kinds() == ["Accepted"] and len(api.calls) == 2


async def test_run_fatal_is_fatal_and_a_closed_budget_sends_nothing() -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script("submit", RunFatal("no credits", status=429, code="ERROR_NOT_ENOUGH_CREDITS"))
    outbox = await submit_all(api, SubmissionBudget(None), [upload(1, clock)])
    assert outbox.kinds() == ["Fatal"]
    closed = SubmissionBudget(None)
    closed.close()
    outbox = await submit_all(api, closed, [upload(2, clock)])
    assert outbox.kinds() == ["Unsent"] and len(api.calls) == 1


async def test_a_budget_of_two_gets_exactly_two_accepted_even_when_one_is_refused() -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script(
        "submit", Submitted("a"), ItemRejected("bad", status=400), Submitted("b"), Submitted("c")
    )
    budget = SubmissionBudget(2)
    uploads = [upload(n, clock) for n in range(5)]
    outbox = await submit_all(api, budget, uploads, workers=3)
    assert Counter(outbox.kinds()) == {"Accepted": 2, "Refused": 1, "Unsent": 2}
    assert budget.spent == 2 and budget.exhausted


async def test_a_cancelled_upload_gives_its_slot_back() -> None:
    budget = SubmissionBudget(1)
    with anyio.CancelScope() as scope:
        async with budget.slot() as slot:
            assert slot is not None and budget.in_flight == 1
            scope.cancel()
            await anyio.lowlevel.checkpoint()
    assert (budget.spent, budget.in_flight) == (0, 0)
    async with budget.slot() as slot:
        assert slot is not None  # the slot came back


# The downloader.


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "PNG")
    return out.getvalue()


async def download_one(
    api: FakeApi,
    item: DownloadTicket | CopyTicket,
    out: Path | str,
    attempts: int = 3,
    spill: Path | None = None,
) -> RecordingOutbox:
    outbox = RecordingOutbox()
    retry = RetryPolicy(RetrySettings(attempts=attempts, backoff=0.0, max_backoff=0.0))
    layout = Layout(out, "{dir}/{stem}.{style}.{ext}", spill=spill)
    record = Provenance(layout.out, "journal-1")
    downloader = Downloader(api, retry, outbox, layout, record, max_bytes=1 << 20, clock=api.clock)
    send, receive = anyio.create_memory_object_stream[DownloadTicket | CopyTicket](1)
    send.send_nowait(item)
    send.close()
    await downloader.run(receive)
    return outbox


async def test_a_result_is_checked_written_under_every_target_and_stored(tmp_path: Path) -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    data = png()
    api.script("http://cdn/u1", data[: len(data) // 2], data)  # cut short once, then whole
    item = result(1, clock, "photo1.0", "copy.0")
    outbox = await download_one(api, item, tmp_path)
    [stored] = outbox.delivered
    assert isinstance(stored, Stored) and stored.ticket is item and stored.about == item.result_url
    paths = [Path(p) for p in stored.filed.paths]  # local files: Paths
    assert [p.name for p in paths] == ["photo1.0.png", "copy.0.png"]
    assert all(p.read_bytes() == data for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".batchtoon",
        "copy.0.png",
        "photo1.0.png",
    ]
    photo, _, style = item.key.partition(":")  # and the output's record says what they are
    made = Provenance(tmp_path).lookup(photo, int(style))
    assert made is not None and made.name in ("photo1.0.png", "copy.0.png")


@pytest.mark.parametrize(
    ("answer", "kind"),
    [(TaskGone("expired", status=404), Gone), (ItemRejected("too big", status=413), Refused)],
)
async def test_a_gone_or_refused_result_is_said_so(
    tmp_path: Path, answer: Exception, kind: type
) -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script("http://cdn/u1", answer)  # type: ignore[arg-type]
    outbox = await download_one(api, result(1, clock), tmp_path)
    assert [type(o) for o in outbox.delivered] == [kind]
    assert list(tmp_path.iterdir()) == []


async def test_a_result_url_past_its_tickets_expiry_is_gone_without_a_request(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    expired = dataclasses.replace(result(1, clock), expires_at=clock.wall() - 1)
    outbox = await download_one(api, expired, tmp_path)
    [gone] = outbox.delivered
    assert isinstance(gone, Gone) and gone.reason == URL_EXPIRED and api.calls == []


async def test_a_copy_writes_a_result_already_there_under_the_bases_that_lack_it(
    tmp_path: Path,
) -> None:
    data = png()
    (tmp_path / "photo1.0.png").write_bytes(data)
    ticket = CopyTicket(key(1), "photo1.0", "png", ("copy.0", "more.0"), ("photo1.0",), 0, "p1")
    outbox = await download_one(FakeApi(ManualClock()), ticket, tmp_path)
    [stored] = outbox.delivered
    assert isinstance(stored, Stored) and stored.ticket is ticket
    assert stored.filed.bases == ("copy.0", "more.0") and stored.filed.size == len(data)
    assert all(Path(p).read_bytes() == data for p in stored.filed.paths)


async def test_the_poll_rate_is_sized_from_the_work_unless_capped() -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    entries = [task(n, clock) for n in range(100)]
    for n in range(100):
        api.script(f"t{n}", PENDING)
    async with poller_with(api, clock, RecordingOutbox(), entries) as (_, _send, rate):
        await clock.advance(0)
        assert rate.max_rate == pytest.approx(100 / (INTERVAL * 0.1))  # all in a tenth of a tick


async def test_tasks_left_from_a_clump_are_still_asked_together_as_the_rest_settle() -> None:
    """100 tasks submitted at once; 95 succeed on their first query, 5 stay pending. A rate
    sized to the 5 left's mean need (1/s) would spread each of their rounds over 4 s of the
    5 s interval, later every round; each round of the 5 takes a fraction of a second."""
    clock = ManualClock()
    api = FakeApi(clock)
    for n in range(100):
        api.script(f"t{n}", *([PENDING] * 3 if n < 5 else []), success(f"http://cdn/u{n}"))
    outbox = RecordingOutbox()
    async with poller_with(api, clock, outbox, [task(n, clock) for n in range(100)]):
        for _ in range(5 * 50):
            await clock.advance(INTERVAL / 50)
    assert len(outbox.delivered) == 100
    left = [(at, name) for at, kind, name in api.calls if name in {f"t{n}" for n in range(5)}]
    for round_ in range(4):
        times = sorted(at for at, _ in left)[round_ * 5 : round_ * 5 + 5]
        assert max(times) - min(times) < 0.5, (round_, times)


async def test_a_poll_rate_ceiling_too_low_for_the_work_is_said_once() -> None:
    clock = ManualClock()
    api, said = FakeApi(clock), list[str]()
    for n in range(100):
        api.script(f"t{n}", PENDING)
    capped = PollLimits(**{**LIMITS.__dict__, "rate": 4.0})
    poller = Poller(
        api, SharedRate(4.0, clock=clock), RecordingOutbox(), capped, clock=clock,
        say=said.append,
    )  # fmt: skip
    send, receive = anyio.create_memory_object_stream[PollTicket](math.inf)
    for n in range(100):
        send.send_nowait(task(n, clock))
    async with running(lambda: poller.run(receive)):
        for _ in range(3):
            await clock.advance(INTERVAL * 6)
    [line] = said
    assert "(4/s) cannot ask about 100 pending tasks every 5 s (20/s needed)" in line


async def test_a_stopped_preflight_batch_ends_after_the_photo_being_checked() -> None:
    """A stop does not wait for the rest of a pre-flight batch (a check can take a second):
    the thread ends after the check under way, and the walk of a count stops as soon."""
    items: list[Source | BadLine] = [
        Source(Path(f"{i}.jpg"), PurePosixPath(f"{i}.jpg")) for i in range(PREPARE_BATCH)
    ]
    checking, release, checked = anyio.Event(), threading.Event(), []

    def check(path: Location) -> Prepared:
        checked.append(path)
        anyio.from_thread.run_sync(checking.set)
        release.wait(10)
        raise InputError("refused")

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, _check_all, items, check)
        await checking.wait()
        group.cancel_scope.cancel()
        release.set()
    assert checked == [Path("0.jpg")]


def test_counting_the_sources_ends_when_its_tick_says_so(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"{i}.jpg").touch()
    walked: list[None] = []

    class Enough(Exception):
        pass

    def tick() -> None:
        walked.append(None)
        if len(walked) == 3:
            raise Enough

    assert count_sources([tmp_path]) == 20
    with pytest.raises(Enough):
        count_sources([tmp_path], tick=tick)
    assert len(walked) == 3


# Intake.


def hashing_check(path: Location) -> Prepared:
    """A pre-flight that only reads: the file's bytes as they are, named by their sha256."""
    try:
        data = Path(str(path)).read_bytes()
    except OSError:
        raise InputError("file not found: it was moved or deleted") from None
    return Prepared(hashlib.sha256(data).hexdigest(), data, "JPEG", (300, 300))


def intake_for(tmp_path: Path, outbox: RecordingOutbox, ledger: Ledger) -> Intake:
    layout = Layout(tmp_path / "out", "{stem}.{style}.{ext}")
    record = Provenance(layout.out, "journal-1")
    return Intake(
        outbox, ledger=ledger, layout=layout, record=record, check=hashing_check, styles=(0, 3)
    )


async def test_intake_delivers_a_photo_with_which_outputs_of_its_done_items_exist(
    tmp_path: Path,
) -> None:
    sha = "cd" * 32
    ledger = Ledger()
    for base, path in (("a.0", "in/a.jpg"), ("b.0", "in/b.jpg")):
        done = {"v": 1, "t": 1.0, "key": f"{sha}:0", "source": path}
        ledger.apply({**done, "event": "queued", "output": base})
        ledger.apply({**done, "event": "downloaded", "output": f"out/{base}.jpg", "size": 1})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.0.jpg").write_bytes(b"cartoon")  # b.0.jpg was deleted
    outbox = RecordingOutbox()
    source = Source(tmp_path / "in" / "a.jpg", PurePosixPath("a.jpg"))
    image = Prepared(sha, b"jpeg", "JPEG", (300, 300))
    await intake_for(tmp_path, outbox, ledger).take([(source, image)])
    [found] = outbox.delivered
    assert isinstance(found, Found) and found.styles == (0, 3)
    assert found.present == {0: {"a.0"}, 3: set()}  # style 3 was never done
    assert ledger.entries[f"{sha}:0"].state == "downloaded"  # intake wrote nothing


async def test_intake_claims_a_whole_batchs_names_in_one_thread_hop_each_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []
    hop = anyio.to_thread.run_sync

    async def counted(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(function, "__name__", "?"))
        return await hop(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    shas = ["a1" * 32, "a1" * 32, "b2" * 32, "c3" * 32]  # one content in two places
    paths = ["in/a.jpg", "other/a.jpg", "in/b.jpg", "in/b.jpg"]  # a path given twice
    batch: list[tuple[Source | BadLine, Prepared | str]] = [
        (Source(tmp_path / path, PurePosixPath(path)), Prepared(sha, b"jpeg", "JPEG", (9, 9)))
        for path, sha in zip(paths, shas, strict=True)
    ]
    outbox = RecordingOutbox()
    await intake_for(tmp_path, outbox, Ledger()).take([*batch, (BadLine("l 3", "x"), "x")])
    assert hops == ["_placed_each"]  # every target of the batch: one hop
    found = [outcome for outcome in outbox.delivered if isinstance(outcome, Found)]
    assert [f.source for f in found] == [source for source, _ in batch]  # in order
    names = [name for f in found for name in f.names.values()]
    assert len(names) == 8 and len(set(names)) == 8 and None not in names
    assert isinstance(outbox.delivered[-1], Rejected)
    record = Provenance(tmp_path / "out", "journal-1")
    for f in found:
        for style, name in f.names.items():
            assert name is not None and record.claim(name, f.image.sha256, style) == "mine"


async def test_a_path_given_twice_in_one_batch_is_one_target_with_one_name(
    tmp_path: Path,
) -> None:
    sha, path = "d4" * 32, tmp_path / "in" / "a.jpg"
    ledger = Ledger()  # style 0's item is in hand, named "a.0"; style 3 is new
    ledger.apply({"v": 1, "t": 1.0, "event": "queued", "key": f"{sha}:0", "source": str(path),
                  "output": "a.0"})  # fmt: skip
    twice: list[tuple[Source | BadLine, Prepared | str]] = [
        (Source(path, PurePosixPath("a.jpg")), Prepared(sha, b"jpeg", "JPEG", (9, 9)))
        for _ in range(2)
    ]
    outbox = RecordingOutbox()
    with anyio.fail_after(10):  # (each its name at its turn: never asked again and again)
        await intake_for(tmp_path, outbox, ledger).take(twice)
    found = [outcome for outcome in outbox.delivered if isinstance(outcome, Found)]
    assert [dict(each.names) for each in found] == [{0: "a.0", 3: "a.3"}] * 2
    assert sorted(p.name for p in (tmp_path / "out" / ".batchtoon" / "names").iterdir()) == [
        "a.0.json",
        "a.3.json",
    ]


async def test_intake_refuses_in_one_outcome_what_pre_flight_refused(tmp_path: Path) -> None:
    outbox = RecordingOutbox()
    intake = intake_for(tmp_path, outbox, Ledger())
    source = Source(tmp_path / "in" / "x.jpg", PurePosixPath("x.jpg"))
    await intake.take(
        [(source, "not an image"), (BadLine("list.csv line 7", "no path"), "no path")]
    )
    first, second = outbox.delivered
    assert first == Rejected(display(source.path), (0, 3), "not an image", str(source.path))
    assert second == Rejected("list.csv line 7", (0, 3), "no path")


async def test_intake_reads_a_lost_item_again_from_a_source_that_still_holds_its_bytes(
    tmp_path: Path,
) -> None:
    (tmp_path / "changed.jpg").write_bytes(b"other bytes")
    (tmp_path / "same.jpg").write_bytes(b"the item's bytes")
    sha = hashlib.sha256(b"the item's bytes").hexdigest()
    sources = [str(tmp_path / name) for name in ("gone.jpg", "changed.jpg", "same.jpg")]
    tickets = [
        RereadTicket(f"{sha}:0", tuple(sources), sha, 0, "gone.jpg"),
        RereadTicket(f"{sha}:0", tuple(sources[:2]), sha, 0, "gone.jpg"),
    ]
    outbox = RecordingOutbox()
    send, receive = anyio.create_memory_object_stream[RereadTicket](2)
    for ticket in tickets:
        send.send_nowait(ticket)
    send.close()
    await intake_for(tmp_path, outbox, Ledger()).reread(receive)
    again, lost = outbox.delivered
    assert isinstance(again, Reread) and again.ticket is tickets[0]
    assert again.image is not None and again.image.data == b"the item's bytes"
    assert isinstance(lost, Reread) and lost.image is None
