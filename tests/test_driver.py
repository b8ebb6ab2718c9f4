"""The driver alone: a step's records are on disk before its tickets reach a queue, and nothing
is queued for upload once the run stopped submitting. A real journal in a temporary folder,
the real machine, in-memory queues; no sockets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from fakes import ManualClock

from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import Source
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.driver import Driver, Queues
from batchtoon.pipeline.lifecycle import RunControl
from batchtoon.pipeline.machine import Machine
from batchtoon.pipeline.outcomes import Accepted, Found
from batchtoon.pipeline.stats import Stats
from batchtoon.pipeline.tickets import (
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    UploadTicket,
)
from batchtoon.records.journal import Journal

SHA = "ab" * 32
T = TypeVar("T")


@dataclass
class Watched:
    """A poll queue that notes, for each ticket put on it, what the journal file held then."""

    journal: Path
    seen: list[tuple[str, list[str]]] = field(default_factory=list)

    def send_nowait(self, ticket: PollTicket) -> None:
        events = [json.loads(line)["event"] for line in self.journal.read_text().splitlines()]
        self.seen.append((ticket.task_id, events))


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.clock = ManualClock()
        self.journal = Journal(tmp / "journal.jsonl", clock=self.clock)
        self.journal.open()
        self.budget = SubmissionBudget(None)
        self.run = RunControl(self.budget)
        layout = Layout(tmp / "out", "{stem}.{style}.{ext}")
        machine = Machine(
            self.journal.ledger, Stats(started=0.0), naming=layout.base, task_ttl=86_400,
            result_ttl=86_400, max_resubmissions=2,
        )  # fmt: skip
        uploads, self.uploads = anyio.create_memory_object_stream[UploadTicket](math.inf)
        self.polls = Watched(self.journal.path)
        to_store, _ = anyio.create_memory_object_stream[DownloadTicket | CopyTicket](math.inf)
        to_reread, _ = anyio.create_memory_object_stream[RereadTicket](math.inf)
        queues = Queues(uploads, self.polls, to_store, to_reread)  # type: ignore[arg-type]
        self.driver = Driver(
            machine, journal=self.journal, run=self.run, budget=self.budget, queues=queues,
            layout=layout, record=Provenance(layout.out, "journal-1"), clock=self.clock,
        )  # fmt: skip


def found() -> Found:
    source = Source(Path("in/a.jpg"), PurePosixPath("a.jpg"))
    return Found(source, Prepared(SHA, b"jpeg", "JPEG", (300, 300)), (0,), {})


def queued(queue: MemoryObjectReceiveStream[T]) -> list[T]:
    items: list[T] = []
    while True:
        try:
            items.append(queue.receive_nowait())
        except anyio.WouldBlock:
            return items


async def test_the_records_are_on_disk_before_the_ticket_is_queued(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.driver.deliver(found())
    assert rig.run.is_open(f"{SHA}:0")
    [upload] = queued(rig.uploads)
    await rig.driver.deliver(Accepted(upload, "task-1"))
    # "queued" went out with it (after the journal's own first record, its id)
    assert rig.polls.seen == [("task-1", ["journal", "queued", "submitted"])]
    rig.journal.close()


async def test_nothing_is_queued_for_upload_once_the_run_stopped_submitting(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.run.stop()
    await rig.driver.deliver(found())
    assert queued(rig.uploads) == []
    assert not rig.run.is_open(f"{SHA}:0")  # left queued in the journal, for a later run
    assert rig.journal.ledger.entries[f"{SHA}:0"].state == "queued"
    rig.journal.close()
