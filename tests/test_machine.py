"""The state machine alone, as the pure function it is: no sockets, no journal, no clock.

A small world plays the stages and the provider around one `Machine`: it answers the tickets
the machine routes in a random order and in random ways (accepted, finished, gone, stored,
failed, refused, left, blocked), delivers answers twice and late, gives one task id to two
photos, lets time pass beyond the provider's limits, and kills the run (a fresh machine over a
replay of the journal so far, less the records no durable one carried to disk yet, which
resumes and finds every photo again). Whatever hypothesis
draws, the promises hold:

- nothing is submitted again unless the provider lost it or its result expired, and then within
  `max_resubmissions`;
- every (photo, style) found ends in exactly one of done, failed, refused or left, and every
  item leaves the run's hands;
- replaying the journal gives the machine's state.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from batchtoon.errors import ItemRejected, RunFatal, Unwritable
from batchtoon.images.preflight import Prepared
from batchtoon.locations.sources import Source
from batchtoon.pipeline.machine import LAZY, Discard, Machine, Release, Step, decide
from batchtoon.pipeline.outcomes import (
    Accepted,
    Blocked,
    Fatal,
    Filed,
    Finished,
    Found,
    Gone,
    Left,
    Outcome,
    Refused,
    Rejected,
    Reread,
    Stored,
    Unsent,
)
from batchtoon.pipeline.stats import Stats
from batchtoon.pipeline.tickets import (
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    Ticket,
    UploadTicket,
)
from batchtoon.provider.api import TaskState
from batchtoon.records.ledger import Entry, Ledger

TASK_TTL, RESULT_TTL, MAX_RESUBMISSIONS = 100.0, 50.0, 1
START = 1.7e9
GONE = "404: task not found"
SAME_ID = "the API gave the same task id to two photos: neither result can be trusted"
EXPIRED = {
    "the task is older than the provider keeps tasks",
    "the result URL expired before it was downloaded",
}
PHOTOS = {  # file -> content: b has a's bytes; c its own; "a" is also reached twice
    "a": "1" * 64,
    "b": "1" * 64,
    "c": "2" * 64,
}


def source(name: str) -> Source:
    return Source(Path(f"in/{name}.jpg"), PurePosixPath(f"{name}.jpg"))


def image(sha256: str) -> Prepared:
    return Prepared(sha256, b"jpeg", "JPEG", (300, 300))


def machine_over(ledger: Ledger, *, retry_failed: bool = False) -> Machine:
    return Machine(
        ledger, Stats(started=0.0), naming=lambda src, style, sha: f"{src.rel.stem}.{style}",
        task_ttl=TASK_TTL, result_ttl=RESULT_TTL, max_resubmissions=MAX_RESUBMISSIONS,
        retry_failed=retry_failed,
    )  # fmt: skip


def replay(records: list[dict[str, Any]]) -> Ledger:
    ledger = Ledger()
    for record in records:
        ledger.apply(record)
    return ledger


def state_of(ledger: Ledger) -> tuple[Any, ...]:
    entries = {key: dataclasses.asdict(entry) for key, entry in ledger.entries.items()}
    return entries, ledger.rejected, sorted(ledger.claims.items())


class World:
    """The stages, the provider and the disk, as the tests drive them."""

    def __init__(self, styles: tuple[int, ...]) -> None:
        self.styles = styles
        self.now = START
        self.records: list[dict[str, Any]] = []  # the journal, over every run
        self.disk: set[str] = set()  # output bases with a file
        self.task_ids = 0
        self.reused = False  # a task id was given twice in this run
        self.machine = machine_over(Ledger())
        self.start_run(resume=False)

    def start_run(self, *, resume: bool = True) -> None:
        self.tickets: list[Ticket] = []
        self.answered: list[Outcome] = []
        self.left: set[str] = set()  # items closed without an end: left for a later run
        self.to_find: list[Outcome] = [self.found(name) for name in [*PHOTOS, "a"]]
        self.to_find.append(Rejected("in/bad.jpg", self.styles, "not an image", "in/bad.jpg"))
        self.reused = False
        if resume:
            self.apply(self.machine.resume(self.now), None)

    def kill(self, *, unflushed: bool = False) -> None:
        """The process dies: a new one replays the journal so far and runs the same command.
        `unflushed`: the records no durable one carried to disk yet (queued, rejected) are
        lost with it."""
        assert state_of(replay(self.records)) == state_of(self.machine.ledger)
        while unflushed and self.records and self.records[-1]["event"] in LAZY:
            self.records.pop()
        self.machine = machine_over(replay(self.records))
        self.start_run()

    def found(self, name: str) -> Found:
        sha = PHOTOS[name]
        present = {}
        for style in self.styles:
            entry = self.machine.ledger.entries.get(f"{sha}:{style}")
            if entry is not None and entry.state == "downloaded":
                present[style] = frozenset(entry.targets) & self.disk
        return Found(source(name), image(sha), self.styles, present)

    def deliver(self, outcome: Outcome) -> Step:
        step = self.machine.step(outcome, self.now)
        self.apply(step, outcome)
        return step

    def apply(self, step: Step, outcome: Outcome | None) -> None:
        self.records += step.records
        if not isinstance(outcome, Found | Rejected | None):
            self.answered.append(outcome)
        for route in step.routes:
            if isinstance(route, Discard):
                self.disk -= set(route.bases)
            elif not isinstance(route, Release):  # (the output's record: not modelled here)
                self.tickets.append(route)
        if isinstance(outcome, Left | Blocked | Fatal | Unsent):
            self.left.update(step.closed)
        elif step.closed:
            self.left.difference_update(step.closed)

    def answer(self, ticket: Ticket, how: int) -> Outcome:
        """One of the ways the world can answer `ticket`, the `how`th (0: all goes well);
        losses come twice as often as the rest, so that the bound is reached."""
        if isinstance(ticket, UploadTicket):
            way = ["accept", "accept", "same id", "refuse", "fatal", "unsent"][how % 6]
            if way == "same id" and self.task_ids:
                self.reused = True
                return Accepted(ticket, f"task-{self.task_ids - 1}")  # given twice
            if way == "refuse":
                return Refused(ticket, ItemRejected("no face", status=422))
            if way == "fatal":
                return Fatal(ticket, RunFatal("no credits", status=429))
            if way == "unsent":
                return Unsent(ticket)
            self.task_ids += 1
            return Accepted(ticket, f"task-{self.task_ids - 1}")
        if isinstance(ticket, PollTicket):
            task_id = ticket.task_id
            way = ["finish", "gone", "gone", "fail", "leave", "fatal"][how % 6]
            if way == "gone":
                return Gone(ticket, GONE, task_id)
            if way == "fail":
                return Finished(ticket, task_id, TaskState(3, "PROCESS_FAILED", ""))
            if way == "leave":
                return Left(ticket, "its queries kept failing", task_id)
            if way == "fatal":
                return Fatal(ticket, RunFatal("bad key", status=401), task_id)
            return Finished(ticket, task_id, TaskState(2, "PROCESS_SUCCESS", f"u/{task_id}"))
        if isinstance(ticket, DownloadTicket):
            url = ticket.result_url
            way = ["store", "gone", "gone", "refuse", "block"][how % 5]
            if way == "gone":
                return Gone(ticket, GONE, url)
            if way == "refuse":
                return Refused(ticket, ItemRejected("too big", status=413), about=url)
            if way == "block":
                return Blocked(ticket, Unwritable("disk full"), url)
            return self.stored(ticket, url)
        if isinstance(ticket, CopyTicket):
            return Blocked(ticket, Unwritable("disk full")) if how % 2 else self.stored(ticket, "")
        assert isinstance(ticket, RereadTicket)
        return Reread(ticket, image(ticket.sha256) if how % 3 < 2 else None)  # else: changed

    def stored(self, ticket: DownloadTicket | CopyTicket, about: str) -> Stored:
        self.disk |= set(ticket.bases)
        paths = tuple(f"out/{base}.jpg" for base in ticket.bases)
        return Stored(ticket, Filed(ticket.bases, paths, 1, "r" * 64), about)

    def drain(self) -> None:
        """The rest of the run, where everything goes well: every item reaches its end."""
        while self.to_find or self.tickets:
            if self.to_find:
                self.deliver(self.to_find.pop(0))
            else:
                self.deliver(self.answer(self.tickets.pop(0), 0))


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([(0,), (0, 3)]))
def test_any_interleaving_keeps_the_promises(data: st.DataObject, styles: tuple[int, ...]) -> None:
    world = World(styles)
    for _ in range(data.draw(st.integers(0, 80), label="actions")):
        action = data.draw(st.sampled_from(["find", "answer", "again", "time", "kill"]))
        if action == "find" and world.to_find:
            world.deliver(world.to_find.pop(data.draw(st.integers(0, len(world.to_find) - 1))))
        elif action == "answer" and world.tickets:
            ticket = world.tickets.pop(data.draw(st.integers(0, len(world.tickets) - 1)))
            world.deliver(world.answer(ticket, data.draw(st.integers(0, 59))))
        elif action == "again" and world.answered:  # an answer delivered twice, or late
            late = world.answered[data.draw(st.integers(0, len(world.answered) - 1))]
            step = world.deliver(late)
            assert not step.records and not step.routes  # stale: dropped whole
        elif action == "time":
            world.now += data.draw(st.sampled_from([1.0, 30.0, 120.0]))
        elif action == "kill":
            world.kill(unflushed=data.draw(st.booleans()))
    world.drain()
    check_promises(world)


def check_promises(world: World) -> None:
    records, machine = world.records, world.machine
    # Submitted again only after the provider lost it (or its result expired), within bounds.
    since_lost: dict[str, bool] = {}
    for record in records:
        key = record.get("key", "")
        if record["event"] == "submitted":
            assert since_lost.get(key, True), f"{key} submitted twice without a loss"
            since_lost[key] = False
        elif record["event"] == "lost":
            assert record["reason"] in {GONE, SAME_ID, *EXPIRED}, record["reason"]
            since_lost[key] = True
        elif record["event"] == "queued" and record.get("retry"):
            since_lost[key] = True
    for entry in machine.ledger.entries.values():
        assert entry.submissions <= 1 + MAX_RESUBMISSIONS
    # Every item left the run's hands; done, failed, or left for a later run.
    for key, entry in machine.ledger.entries.items():
        assert not machine.is_open(key)
        assert entry.state in ("downloaded", "failed") or key in world.left, entry
    # Every (photo, style) found by the last run has exactly one term.
    tally = machine.stats.tally
    tally.finish()
    found = len(PHOTOS) * len(world.styles) + len(world.styles)  # and the refused one
    assert sum(tally.results.values()) == tally.found == found
    assert tally.photos_found == len(PHOTOS) + 1
    # Replaying the journal gives the same state.
    assert state_of(replay(records)) == state_of(machine.ledger)


# Single transitions, one promise each.


def fresh_world() -> World:
    return World((0,))


def test_a_file_reached_twice_is_taken_once_and_the_same_content_is_one_item() -> None:
    world = fresh_world()
    verdicts = [world.deliver(world.found(name)).verdicts for name in ("a", "a", "b")]
    assert verdicts == [["submit"], [], ["duplicate"]]
    assert [type(t).__name__ for t in world.tickets] == ["UploadTicket"]
    assert world.machine.stats.tally.photos_found == 2


def test_an_answer_about_a_task_the_item_no_longer_has_is_dropped() -> None:
    world = fresh_world()
    world.deliver(world.found("c"))
    [upload] = world.tickets
    world.deliver(Accepted(upload, "old"))  # type: ignore[arg-type]
    [poll] = world.tickets[1:]
    assert isinstance(poll, PollTicket)
    world.deliver(Gone(poll, GONE, "old"))  # lost: to be read again and submitted again
    reread = world.tickets[-1]
    assert isinstance(reread, RereadTicket)
    world.deliver(Reread(reread, image(PHOTOS["c"])))
    world.deliver(Accepted(world.tickets[-1], "new"))  # type: ignore[arg-type]
    late = world.deliver(Finished(poll, "old", TaskState(2, "PROCESS_SUCCESS", "u/old")))
    assert late.records == [] and late.routes == []
    entry = world.machine.ledger.entries[f"{PHOTOS['c']}:0"]
    assert (entry.state, entry.task_id, entry.submissions) == ("submitted", "new", 2)


def test_resubmissions_stop_at_the_bound_with_the_reason() -> None:
    world = fresh_world()
    world.deliver(world.found("c"))
    for n in range(MAX_RESUBMISSIONS + 1):
        upload = world.tickets.pop()
        assert isinstance(upload, UploadTicket | RereadTicket)
        if isinstance(upload, RereadTicket):
            world.deliver(Reread(upload, image(PHOTOS["c"])))
            upload = world.tickets.pop()
        world.deliver(Accepted(upload, f"t{n}"))  # type: ignore[arg-type]
        poll = world.tickets.pop()
        assert isinstance(poll, PollTicket)
        last = world.deliver(Gone(poll, GONE, f"t{n}"))
    assert last.records[-1]["event"] == "failed"  # sent nowhere: its claims let go of, only
    assert last.routes == [Release(upload.key, ("c.0",))]
    assert "submitted 2 times already, which is the limit" in last.records[-1]["reason"]


def test_a_task_id_given_twice_is_trusted_for_neither_and_a_done_ones_files_go() -> None:
    world = fresh_world()
    world.deliver(world.found("a"))
    world.deliver(Accepted(world.tickets.pop(), "same"))  # type: ignore[arg-type]
    poll = world.tickets.pop()
    world.deliver(Finished(poll, "same", TaskState(2, "PROCESS_SUCCESS", "u/1")))  # type: ignore[arg-type]
    world.deliver(world.stored(world.tickets.pop(), "u/1"))  # type: ignore[arg-type]
    assert world.disk == {"a.0"}
    world.deliver(world.found("c"))
    step = world.deliver(Accepted(world.tickets.pop(), "same"))  # type: ignore[arg-type]
    assert [r["event"] for r in step.records] == ["submitted", "lost", "lost"]
    assert world.disk == set()  # a's cartoon may be c's: discarded
    assert sorted(type(t).__name__ for t in world.tickets) == ["RereadTicket", "RereadTicket"]


def test_resume_sends_an_expired_task_to_be_read_again_and_a_live_one_to_the_poller() -> None:
    world = fresh_world()
    world.deliver(world.found("a"))
    world.deliver(world.found("c"))
    world.deliver(Accepted(world.tickets.pop(0), "ta"))  # type: ignore[arg-type]
    world.now += TASK_TTL / 2
    world.deliver(Accepted(world.tickets.pop(0), "tc"))  # type: ignore[arg-type]
    world.now += TASK_TTL * 0.6  # a's task is past the provider's keeping, c's is not
    world.kill()
    routed = {type(t).__name__: t.key[:1] for t in world.tickets}
    assert routed == {"RereadTicket": "1", "PollTicket": "2"}
    verdicts = [world.deliver(world.to_find.pop(0)).verdicts for _ in range(3)]
    assert verdicts == [["resubmit"], ["duplicate"], ["poll"]]  # a, then b (a's bytes), then c
    assert len(world.tickets) == 2  # nothing routed twice


def test_a_done_item_with_a_file_deleted_is_copied_whatever_order_its_files_come_in() -> None:
    for order in (["a", "b"], ["b", "a"]):
        world = fresh_world()
        world.deliver(world.found("a"))
        world.deliver(world.found("b"))
        world.drain()
        world.disk.discard("b.0")
        world.kill()
        verdicts = Counter(v for name in order for v in world.deliver(world.found(name)).verdicts)
        assert verdicts == {"done": 1, "copy": 1}
        [copy] = world.tickets
        assert isinstance(copy, CopyTicket) and copy.bases == ("b.0",) and copy.have == ("a.0",)


def test_decide_judges_a_done_item_by_its_files() -> None:
    entry = Entry("k:0", state="downloaded", targets={"a": "a.jpg", "b": "b.jpg"}, ext="jpg")
    judge = {"in_hand": False, "retry_failed": False, "now": START, "task_ttl": TASK_TTL}
    assert decide(entry, "a", present={"a", "b"}, **judge) == "done"  # type: ignore[arg-type]
    assert decide(entry, "b", present={"a"}, **judge) == "copy"  # type: ignore[arg-type]
    assert decide(entry, "a", present=set(), **judge) == "resubmit"  # type: ignore[arg-type]


def test_an_answer_to_an_earlier_ticket_about_the_same_task_id_is_stale() -> None:
    """The provider may give a resubmission the task id the lost one had: an answer to the old
    ticket is still stale, though it names the same id (found by the property test)."""
    world = fresh_world()
    world.deliver(world.found("c"))
    world.deliver(Accepted(world.tickets.pop(), "t1"))  # type: ignore[arg-type]
    old = world.tickets.pop()
    assert isinstance(old, PollTicket)
    world.deliver(Gone(old, GONE, "t1"))  # lost: read again, submitted again, same id back
    world.deliver(world.answer(world.tickets.pop(), 0))  # the re-read
    world.deliver(Accepted(world.tickets.pop(), "t1"))  # type: ignore[arg-type]
    new = world.tickets.pop()
    assert isinstance(new, PollTicket) and new.task_id == "t1" and new is not old
    assert world.deliver(Gone(old, GONE, "t1")).records == []  # late, about the old ticket
    step = world.deliver(Finished(new, "t1", TaskState(2, "PROCESS_SUCCESS", "u/1")))
    assert [r["event"] for r in step.records] == ["succeeded"]
    assert world.deliver(Gone(new, GONE, "t1")).records == []  # once only
