"""`Router`: the single fold from a stage's outcome to a journal record and a route.

It implements `Outbox`: every outcome is folded here into one journal record and one route (to
the upload queue, the poller, the downloaders, the resubmission queue, or nowhere), in the
delivering stage's own task, so that concurrent durable writes share one group commit. What an
item becomes on arrival is decided by `Intake`, which uses the same actions.

Guarantees:
- every state change reaches the journal before the item moves on; `deliver` returns once the
  record that matters is on disk;
- an item is closed (`RunControl.close`) exactly when it ends here: downloaded, failed, or left
  with the provider for a later run;
- an outcome about a task or result URL the item no longer has (it was lost and submitted
  again meanwhile) is stale, and dropped: it never records a result or a failure for the
  item's new task (files it wrote are overwritten when the new task's result comes);
- money is bounded: the provider losing an item makes it submitted again at most
  `max_resubmissions` times, then it fails with the reason; a task id the API gives to two
  photos is trusted for neither (both are submitted again, within the same bound);
- the output location's record (`locations.provenance`) names every file written, before the
  journal does: any journal, on any machine, finds it there;
- a result that cannot be written stops the run as Ctrl-C does (`Blocked`), leaving the item
  `succeeded` for the same command to finish;
- the router calls no stage: it only puts work on their queues.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from batchtoon.errors import StoreFailure, Unwritable
from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Made, Provenance
from batchtoon.locations.results import copy_result
from batchtoon.locations.sources import display
from batchtoon.locations.storage import Location, remove
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.clock import Clock
from batchtoon.pipeline.lifecycle import RunControl, RunOutcome
from batchtoon.pipeline.outcomes import (
    Accepted,
    Blocked,
    Fatal,
    Filed,
    Finished,
    Gone,
    Left,
    Outcome,
    Refused,
    Stored,
    Unsent,
)
from batchtoon.pipeline.stats import Stats
from batchtoon.pipeline.submitter import Upload
from batchtoon.provider.api import SUCCESS
from batchtoon.records.journal import Journal
from batchtoon.records.ledger import Entry, Event
from batchtoon.settings.styles import style_slug

__all__ = ["Queues", "Router"]


class Queues:
    """The send ends of the stages' queues: what the router routes work onto."""

    def __init__(
        self,
        uploads: MemoryObjectSendStream[Upload],
        to_poll: MemoryObjectSendStream[Entry],
        to_download: MemoryObjectSendStream[Entry],
        to_resubmit: MemoryObjectSendStream[Entry],
    ) -> None:
        self.uploads, self.to_poll = uploads, to_poll
        self.to_download, self.to_resubmit = to_download, to_resubmit


class Router:
    def __init__(
        self,
        *,
        journal: Journal,
        run: RunControl,
        budget: SubmissionBudget,
        queues: Queues,
        layout: Layout,
        record: Provenance,
        clock: Clock,
        result_ttl: float,
        max_resubmissions: int,
        stats: Stats,
        report: Callable[[str], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.journal = journal
        self._run, self._budget, self._queues = run, budget, queues
        self._layout, self._clock, self._record = layout, clock, record
        self._result_ttl, self._max_resubmissions = result_ttl, max_resubmissions
        self.stats = stats
        self._log = log or logging.getLogger("batchtoon")
        self.report = report or self._log.warning
        # Every task id this run met (its hash) -> its item's key (the entry's own string): a
        # reused id is caught even once the first task is done, for some 60 bytes a task.
        self._tasks: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<Router {self._run!r} {self.stats} tasks={len(self._tasks)}>"

    # What the stages deliver.

    async def deliver(self, outcome: Outcome) -> None:
        entry = outcome.entry
        if self._stale(outcome):
            self._log.info("ignored a late answer about %s's old task", display(entry.name))
            return
        if isinstance(outcome, Accepted):
            await self._accepted(outcome)
        elif isinstance(outcome, Finished):
            await self._finished(outcome)
        elif isinstance(outcome, Stored):
            await self.store(entry, outcome.filed)
        elif isinstance(outcome, Gone):
            await self.lose(entry, outcome.reason)
        elif isinstance(outcome, Refused):
            self.stats.unanswered += outcome.unanswered
            await self.fail(entry, type(outcome.error).__name__, outcome.error.reason)
        elif isinstance(outcome, Fatal):
            self._run.halt(RunOutcome.FATAL, outcome.error)
            self._run.close(entry.key)
        elif isinstance(outcome, Left):
            self.stats.left += 1
            self._log.warning("left for a later run: %s: %s", display(entry.name), outcome.reason)
            self._run.close(entry.key)
        elif isinstance(outcome, Blocked):
            self.blocked(entry, outcome.problem)
        else:
            assert isinstance(outcome, Unsent)
            self._run.close(entry.key)

    @staticmethod
    def _stale(outcome: Outcome) -> bool:
        """Is this about a task or result URL the item no longer has?"""
        about = getattr(outcome, "about", "")
        return bool(about) and not outcome.entry.holds(about)

    async def _accepted(self, outcome: Accepted) -> None:
        entry, task_id = outcome.entry, outcome.task_id
        self.stats.submitted += 1
        self.stats.extra += entry.submissions > 0
        self.stats.unanswered += outcome.unanswered
        self.stats.uploaded(outcome.sent, outcome.saved, outcome.began, self._clock.monotonic())
        extra = {"unanswered": outcome.unanswered} if outcome.unanswered else {}
        await self.record(
            "submitted", entry, task_id=task_id, sent=outcome.sent, saved=outcome.saved, **extra
        )
        if self._budget.exhausted:
            self._run.halt(RunOutcome.BUDGET)
        other = self._tasks.setdefault(hash(task_id), entry.key)
        if other == entry.key:
            self._queues.to_poll.send_nowait(entry)
            return
        # One id for two photos: it answers for at most one of them, and maybe already did.
        reason = "the API gave the same task id to two photos: neither result can be trusted"
        earlier = self.journal.ledger.entries[other]
        if not self._run.is_open(other):
            self._run.open(other)  # done already, perhaps with the other's cartoon: redo it
        if earlier.state == "downloaded":  # its files cannot be trusted: ours, removed by name
            files = [self._layout.file(base, earlier.ext) for base in earlier.targets]
            await anyio.to_thread.run_sync(_remove, files)  # (a store that says no: kept)
        await self.lose(earlier, reason)
        await self.lose(entry, reason)

    async def _finished(self, outcome: Finished) -> None:
        entry, state = outcome.entry, outcome.state
        if state.succeeded:
            expires = self._clock.wall() + self._result_ttl
            await self.record("succeeded", entry, result_url=state.result_url, expires_at=expires)
            self._queues.to_download.send_nowait(entry)
        elif state.status == SUCCESS:
            await self.fail(entry, "task", "the provider reported success but sent no result URL")
        else:
            reason = f"the provider failed the task: {state.status or 'task_status 2'}"
            await self.fail(entry, "task", reason)

    # The actions, shared with `Intake`.

    async def store(self, entry: Entry, filed: Filed, on_disk: Collection[str] = ()) -> None:
        """Journal the files a result was written to, and copy it to any target that was added
        meanwhile (a copy of the photo admitted while it downloaded); then the entry is done."""
        written = set(on_disk)
        while True:
            try:
                await anyio.to_thread.run_sync(self._note, entry, filed)
            except Unwritable as problem:
                self.blocked(entry, problem)
                return
            for base, path in zip(filed.bases, filed.paths, strict=True):
                await self.record(
                    "downloaded", entry, source=entry.targets[base], output=str(path),
                    size=filed.size, sha256=filed.sha256,
                )  # fmt: skip
                written.add(base)
            bases = [base for base in entry.targets if base not in written]
            if not bases:
                self.stats.tally.end(entry.key, "done now", files=len(written) - len(on_disk))
                break
            try:
                filed = await anyio.to_thread.run_sync(
                    copy_result, filed.paths[0], bases, self._layout, (filed.size, filed.sha256)
                )
            except Unwritable as problem:
                self.blocked(entry, problem)
                return
        self._run.close(entry.key)

    def _note(self, entry: Entry, filed: Filed) -> None:
        """Name the files written in the output location's record (blocking)."""
        for base, path in zip(filed.bases, filed.paths, strict=True):
            name = f"{base}.{str(path).rpartition('.')[2]}"
            made = Made(name, filed.size, filed.sha256)
            self._record.record(base, entry.sha256, entry.style, made, entry.targets[base])

    def _release(self, entry: Entry) -> None:
        """Let go of the failed item's names in the output's record (blocking)."""
        for base in entry.targets:
            self._record.release(base, entry.sha256, entry.style)

    async def lose(self, entry: Entry, reason: str, *, by_provider: bool = True) -> bool:
        """The item's task, result or files are gone: submit it again, if the bound on what the
        provider loses allows (`by_provider`); else it fails. True if it goes again."""
        if by_provider and entry.submissions > self._max_resubmissions:
            await self.fail(
                entry, "TaskGone",
                f"{reason}; submitted {entry.submissions} times already, which is the limit "
                "(submit.max_resubmissions): retry it later (--retry-failed)",
            )  # fmt: skip
            return False
        self._log.warning("submitting again %s: %s", display(entry.name), reason)
        await self.record("lost", entry, reason=reason)
        self._queues.to_resubmit.send_nowait(entry)
        return True

    async def fail(self, entry: Entry, kind: str, reason: str) -> None:
        await self.record("failed", entry, **{"class": kind}, reason=reason)
        with contextlib.suppress(Unwritable, StoreFailure, OSError):  # left: others only wait
            await anyio.to_thread.run_sync(self._release, entry)
        for source in entry.targets.values():
            self.report(f"failed {display(source)} ({style_slug(entry.style)}): {reason}")
        self.stats.news(reason, max(1, self.stats.tally.held(entry.key)))
        self.stats.tally.end(entry.key, "failed")
        self._run.close(entry.key)

    def blocked(self, entry: Entry, problem: Unwritable) -> None:
        """A result cannot be written: stop the run; the journal keeps the item as it is."""
        self._run.stop(RunOutcome.BLOCKED, problem)
        self._run.close(entry.key)

    async def record(self, event: Event, entry: Entry, **fields: Any) -> None:
        """Journal a state change of `entry` with its key and its source path(s)."""
        if "source" not in fields:
            fields["sources"] = list(entry.targets.values())
        await self.journal.write(event, key=entry.key, **fields)

    def route(self, entry: Entry) -> None:
        """An open entry that the provider has: to the poller or the downloaders."""
        if entry.state == "submitted":
            self._tasks.setdefault(hash(entry.task_id), entry.key)
            self._queues.to_poll.send_nowait(entry)
        else:
            self._queues.to_download.send_nowait(entry)

    async def upload(self, entry: Entry, image: Prepared) -> None:
        """Put an open entry on the upload queue, unless the run stopped submitting."""
        if not self._run.accepting:
            self._run.close(entry.key)  # it stays queued for a later run
            return
        try:
            await self._queues.uploads.send(Upload(entry, image, display(entry.name)))
        except anyio.get_cancelled_exc_class():
            self._run.close(entry.key)  # cancelled while queueing: it stays queued
            raise


def _remove(files: list[Location]) -> None:
    for file in files:
        with contextlib.suppress(OSError, StoreFailure):
            remove(file)
