"""`Driver`: the stages' `Outbox`, and the thin async shell around the state machine.

Each outcome is handed to `Machine.step` and the step it returns is applied, in the delivering
stage's own task (so that concurrent durable writes share one group commit): its records go to
the journal, its tickets onto the stages' queues. This is the one module that writes item
records to the journal.

Guarantees:
- every state change reaches the journal before the item moves on; `deliver` returns once the
  records that matter are on disk (a step's records go out together, in order);
- an item is opened in `RunControl` before the first await of the step that takes it, and
  closed once the step that ends it is journaled: the run ends when nothing is open;
- a result that cannot be written stops the run as Ctrl-C does (`Blocked`), leaving the item
  as it was for the same command to finish; an account that cannot go on halts submissions;
- nothing is put on the upload queue once the run stopped submitting: the item stays queued
  in the journal for a later run;
- `on_stored(source, output)`, if given, is called in the event loop for every result file
  once its record is durable: it must return at once (the gallery's thumbnails use it);
- `on_event(event)`, if given, gets the events (`records.events`) of every record once it is
  journaled, in journal order, and at the end (`leave`) one `left` per result still waiting:
  the one place events are made; it must return at once;
- a failed item's claims in the output's record are let go of (`Release`), after its failure
  is journaled; a record that says no keeps them (another journal then leaves the photo);
- the driver calls no stage: it only puts tickets on their queues.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from batchtoon.errors import StoreFailure, Unwritable
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.storage import Location, location, remove
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.clock import Clock
from batchtoon.pipeline.lifecycle import RunControl, RunOutcome
from batchtoon.pipeline.machine import Discard, Machine, Release, Route, Step
from batchtoon.pipeline.outcomes import Accepted, Outcome, Unsent
from batchtoon.pipeline.tickets import (
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    UploadTicket,
)
from batchtoon.records import events
from batchtoon.records.events import OnEvent
from batchtoon.records.journal import Journal

__all__ = ["Driver", "Queues"]


class Queues:
    """The send ends of the stages' queues: where the driver puts tickets."""

    def __init__(
        self,
        uploads: MemoryObjectSendStream[UploadTicket],
        to_poll: MemoryObjectSendStream[PollTicket],
        to_store: MemoryObjectSendStream[DownloadTicket | CopyTicket],
        to_reread: MemoryObjectSendStream[RereadTicket],
    ) -> None:
        self.uploads, self.to_poll = uploads, to_poll
        self.to_store, self.to_reread = to_store, to_reread


class Driver:
    def __init__(
        self,
        machine: Machine,
        *,
        journal: Journal,
        run: RunControl,
        budget: SubmissionBudget,
        queues: Queues,
        layout: Layout,
        record: Provenance,
        clock: Clock,
        report: Callable[[str], None] | None = None,
        on_stored: Callable[[str, Location], None] | None = None,
        on_event: OnEvent | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.machine, self.journal = machine, journal
        self._on_stored, self._on_event = on_stored, on_event
        self._run, self._budget, self._queues = run, budget, queues
        self._layout, self._clock, self._record = layout, clock, record
        self._log = log or logging.getLogger("batchtoon")
        self.report = report or self._log.warning

    def __repr__(self) -> str:
        return f"<Driver {self._run!r} {self.machine!r}>"

    async def resume(self) -> None:
        """What an earlier run left with the provider is taken on before anything new."""
        await self._apply(self.machine.resume(self._clock.wall()))

    async def deliver(self, outcome: Outcome) -> None:
        if isinstance(outcome, Accepted):
            stats = self.machine.stats
            stats.uploaded(outcome.sent, outcome.saved, outcome.began, self._clock.monotonic())
        await self._apply(self.machine.step(outcome, self._clock.wall()))
        if isinstance(outcome, Accepted) and self._budget.exhausted:
            self._run.halt(RunOutcome.BUDGET)

    async def _apply(self, step: Step) -> None:
        for key in step.opened:
            self._run.open(key)
        if step.records:
            *first, last = step.records
            for record in first:  # not waited for: the last one carries them to disk
                await self.journal.append(record, durable=False)
            await self.journal.append(last, durable=step.durable)
            self._stored(step)
            self._emit(step)
        for level, line in step.logged:
            self._log.log(level, "%s", line)
        for line in step.said:
            self.report(line)
        if step.halt is not None:
            self._run.halt(RunOutcome.FATAL, step.halt)
        if step.blocked is not None:
            self._run.stop(RunOutcome.BLOCKED, step.blocked)
        for route in step.routes:
            await self._route(route)
        for key in step.closed:
            self._run.close(key)

    def _stored(self, step: Step) -> None:
        if self._on_stored is None:
            return
        for record in step.records:
            if record["event"] == "downloaded":
                self._on_stored(record["source"], location(record["output"]))

    def _emit(self, step: Step) -> None:
        if self._on_event is None:
            return
        for record in step.records:
            for event in events.from_record(record):
                self._on_event(event)

    def leave(self) -> None:
        """The run is over: a `left` event for each result still waiting on an item."""
        if self._on_event is None:
            return
        now = round(self._clock.wall(), 3)
        for key, photos in self.machine.stats.tally.waiting_items().items():
            for event in events.left(now, key, photos):
                self._on_event(event)

    async def _route(self, route: Route) -> None:
        queues = self._queues
        if isinstance(route, UploadTicket):
            await self._upload(route)
        elif isinstance(route, PollTicket):
            queues.to_poll.send_nowait(route)
        elif isinstance(route, DownloadTicket | CopyTicket):
            queues.to_store.send_nowait(route)
        elif isinstance(route, RereadTicket):
            queues.to_reread.send_nowait(route)
        elif isinstance(route, Release):
            await self._release(route)
        else:
            await self._discard(route)

    async def _upload(self, ticket: UploadTicket) -> None:
        """Onto the upload queue, unless the run stopped submitting (it stays queued)."""
        if not self._run.accepting:
            await self._apply(self.machine.step(Unsent(ticket), self._clock.wall()))
            return
        try:
            await self._queues.uploads.send(ticket)
        except anyio.get_cancelled_exc_class():
            self.machine.step(Unsent(ticket), self._clock.wall())  # it stays queued
            self._run.close(ticket.key)
            raise

    async def _release(self, release: Release) -> None:
        photo, _, style = release.key.partition(":")

        def let_go() -> None:
            for base in release.bases:
                self._record.release(base, photo, int(style))

        with contextlib.suppress(Unwritable, StoreFailure, OSError):  # kept: others only wait
            await anyio.to_thread.run_sync(let_go)

    async def _discard(self, discard: Discard) -> None:
        files = [self._layout.file(base, discard.ext) for base in discard.bases]
        await anyio.to_thread.run_sync(_remove, files)


def _remove(files: list[Location]) -> None:
    for file in files:
        with contextlib.suppress(OSError, StoreFailure):  # a store that says no: kept
            remove(file)
