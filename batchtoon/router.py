"""`Router`: the one place where work is decided and recorded.

It implements `Outbox`: every stage's outcome is folded here into one journal record and one
route (to the upload queue, the poller, the downloaders, or nowhere), in the delivering stage's
own task, so that concurrent durable writes share one group commit. And it admits new work:
each pre-flighted (photo, style) is judged by `admission.decide` and routed the same way.

Guarantees:
- every state change reaches the journal before the item moves on; a stage's `deliver` returns
  once the record that matters is on disk;
- an item is opened (`RunControl.open`) before its first await and closed exactly when it ends
  here: downloaded, failed, or left with the provider for a later run;
- the router calls no stage: it only puts work on their queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream

from .admission import Verdict, decide
from .budget import SubmissionBudget
from .clock import Clock
from .errors import ApiError, InputError
from .journal import Journal
from .layout import Layout
from .ledger import Entry, Event
from .lifecycle import RunControl, RunOutcome
from .outcomes import (
    Accepted,
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
from .preflight import Prepared
from .producer import Check
from .results import copy_result
from .sources import BadLine, Source, display
from .stats import Stats
from .submitter import Upload

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
        check: Check,
        clock: Clock,
        task_ttl: float,
        result_ttl: float,
        styles: tuple[int, ...],
        stats: Stats,
        retry_failed: bool = False,
        report: Callable[[str], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.journal, self.ledger = journal, journal.ledger
        self._run, self._budget, self._queues = run, budget, queues
        self._layout, self._check, self._clock = layout, check, clock
        self._task_ttl, self._result_ttl = task_ttl, result_ttl
        self._styles = styles
        self.stats = stats
        self._retry_failed = retry_failed
        self._log = log or logging.getLogger("batchtoon")
        self._report = report or self._log.warning

    def __repr__(self) -> str:
        return f"<Router {self._run!r} {self.stats}>"

    # What the stages deliver.

    async def deliver(self, outcome: Outcome) -> None:
        entry = outcome.entry
        if isinstance(outcome, Accepted):
            await self._accepted(entry, outcome.task_id)
        elif isinstance(outcome, Finished):
            await self._finished(outcome)
        elif isinstance(outcome, Stored):
            await self._stored(entry, outcome.filed)
        elif isinstance(outcome, Gone):
            await self._gone(entry, outcome.reason)
        elif isinstance(outcome, Refused):
            await self._refused(entry, outcome.error)
        elif isinstance(outcome, Fatal):
            self._run.halt(RunOutcome.FATAL, outcome.error)
            self._run.close(entry.key)
        elif isinstance(outcome, Left):
            self.stats.left += 1
            self._log.warning("left for a later run: %s: %s", display(entry.name), outcome.reason)
            self._run.close(entry.key)
        else:
            assert isinstance(outcome, Unsent)
            self._run.close(entry.key)

    async def _accepted(self, entry: Entry, task_id: str) -> None:
        self.stats.submitted += 1
        self.stats.extra += entry.submissions > 0
        await self._record("submitted", entry, task_id=task_id)
        self._queues.to_poll.send_nowait(entry)
        if self._budget.exhausted:
            self._run.halt(RunOutcome.BUDGET)

    async def _finished(self, outcome: Finished) -> None:
        entry, state = outcome.entry, outcome.state
        self.stats.finished += 1
        if state.succeeded:
            expires = self._clock.wall() + self._result_ttl
            await self._record("succeeded", entry, result_url=state.result_url, expires_at=expires)
            self._queues.to_download.send_nowait(entry)
        else:
            reason = f"the provider failed the task: {state.status or 'task_status 2'}"
            await self._fail(entry, "task", reason)

    async def _stored(self, entry: Entry, filed: Filed, on_disk: Iterable[str] = ()) -> None:
        """Journal the files a result was written to, and copy it to any target that was added
        meanwhile (a copy of the photo admitted while it downloaded); then the entry is done."""
        written = set(on_disk)
        while True:
            for base, path in zip(filed.bases, filed.paths, strict=True):
                await self._record(
                    "downloaded", entry, source=entry.targets[base], output=str(path),
                    size=filed.size, sha256=filed.sha256,
                )  # fmt: skip
                self.stats.downloaded += 1
                written.add(base)
            bases = [base for base in entry.targets if base not in written]
            if not bases:
                break
            filed = await anyio.to_thread.run_sync(copy_result, filed.paths[0], bases, self._layout)
        self._run.close(entry.key)

    async def _gone(self, entry: Entry, reason: str) -> None:
        """The task or its result is gone on the provider's side: submit it again."""
        self._log.warning("submitting again %s: %s", display(entry.name), reason)
        await self._record("lost", entry, reason=reason)
        self._queues.to_resubmit.send_nowait(entry)

    async def _refused(self, entry: Entry, error: ApiError | InputError) -> None:
        await self._fail(entry, type(error).__name__, error.reason)

    async def _fail(self, entry: Entry, kind: str, reason: str) -> None:
        await self._record("failed", entry, **{"class": kind}, reason=reason)
        for source in entry.targets.values():
            self._report(f"failed {display(source)} (style {entry.style}): {reason}")
            self.stats.count_failure(reason)
        self._run.close(entry.key)

    async def _record(self, event: Event, entry: Entry, **fields: Any) -> None:
        """Journal a state change of `entry` with its key and its source path(s)."""
        if "source" not in fields:
            fields["sources"] = list(entry.targets.values())
        await self.journal.write(event, key=entry.key, **fields)

    # Admitting work: what an earlier run left, then what the producer finds.

    async def resume(self) -> None:
        """What an earlier run left with the provider is picked up before anything new."""
        now = self._clock.wall()
        for entry in list(self.ledger.entries.values()):
            if entry.state not in ("submitted", "succeeded"):
                continue
            self._run.open(entry.key)
            verdict = decide(
                entry, in_hand=False, retry_failed=False, now=now, task_ttl=self._task_ttl
            )
            if verdict == "resubmit":
                await self._record("lost", entry, reason=_gone_reason(entry))
                self._queues.to_resubmit.send_nowait(entry)
            else:
                self._route(entry)

    async def take(self, item: Source | BadLine, outcome: Prepared | str) -> None:
        """One pre-flighted source: refused (a reason) or admitted in each of its styles."""
        styles = (item.styles if isinstance(item, Source) else None) or self._styles
        if isinstance(outcome, str):
            where = item.where if isinstance(item, BadLine) else display(item.path)
            await self._reject(where, styles, outcome)
            return
        assert isinstance(item, Source)
        for style in styles:
            await self._admit(item, style, outcome)

    async def _reject(self, where: str, styles: tuple[int, ...], reason: str) -> None:
        self._report(f"skipped {where}: {reason}")
        for style in styles:
            self.stats.found += 1
            self.stats.count_failure(reason)
            await self.journal.write(
                "rejected", durable=False, source=where, style=style, reason=reason
            )

    async def _admit(self, source: Source, style: int, image: Prepared) -> None:
        """Take one (source file, style) on, as `admission.decide` says."""
        self.stats.found += 1
        key = f"{image.sha256}:{style}"
        entry = self.ledger.entries.get(key)
        base = self._claim(source, style, image.sha256, entry)
        retry = self._retry_failed and entry is not None and entry.state == "failed"
        if entry is None or base not in entry.targets or retry:
            extra = {"retry": True} if retry else {}
            await self.journal.write(  # not waited for: a lost "queued" is queued again
                "queued", durable=False, key=key, source=str(source.path), output=base, **extra
            )
            entry = self.ledger.entries[key]
        in_hand = self._run.is_open(key)
        if not in_hand:
            self._run.open(key)  # before any await: a duplicate admitted meanwhile waits
        present = await self._present(entry) if not in_hand else set[str]()
        verdict = decide(
            entry, in_hand=in_hand, retry_failed=self._retry_failed, now=self._clock.wall(),
            task_ttl=self._task_ttl, present=present,
        )  # fmt: skip
        self.stats.skipped += base in present
        await self._follow(verdict, entry, image, present)

    async def _follow(
        self, verdict: Verdict, entry: Entry, image: Prepared, present: set[str]
    ) -> None:
        if verdict == "duplicate":
            return  # in hand in this run: this target is written with the others
        if verdict == "failed":
            self.stats.count_failure(entry.reason)
            self._run.close(entry.key)
        elif verdict == "done":
            self._run.close(entry.key)
        elif verdict == "copy":
            await self._copy(entry, present)
        elif verdict == "resubmit":
            await self._record("lost", entry, reason=_gone_reason(entry))
            await self._upload(entry, image)
        elif verdict == "submit":
            await self._upload(entry, image)
        else:
            self._route(entry)

    def _claim(self, source: Source, style: int, sha: str, entry: Entry | None) -> str:
        """This target's output path: the one the journal knows, or a new one no other takes."""
        source_text = str(source.path)
        if entry is not None:
            for base, owner in entry.targets.items():
                if owner == source_text:
                    return base
        base = self._layout.base(source, style, sha)
        claimed_by = self.ledger.outputs.get(base)
        if claimed_by is not None and claimed_by != source_text:
            base = f"{base}-{sha[:8]}"  # another file already lands here (a.jpg beside a.png)
        return base

    async def _present(self, entry: Entry) -> set[str]:
        """The entry's output bases whose files exist (asked of the disk for a done entry)."""
        if entry.state != "downloaded":
            return set()
        return await anyio.to_thread.run_sync(self._layout.existing, entry.targets, entry.ext)

    async def _copy(self, entry: Entry, present: set[str]) -> None:
        """Downloaded before, some outputs gone or new: copy one that is there to the rest."""
        missing = [base for base in entry.targets if base not in present]
        first = self._layout.file(next(iter(present)), entry.ext)
        filed = await anyio.to_thread.run_sync(copy_result, first, missing, self._layout)
        await self._stored(entry, filed, on_disk=present)

    def _route(self, entry: Entry) -> None:
        """An open entry that the provider has: to the poller or the downloaders."""
        if entry.state == "submitted":
            self._queues.to_poll.send_nowait(entry)
        else:
            self._queues.to_download.send_nowait(entry)

    async def _upload(self, entry: Entry, image: Prepared) -> None:
        if not self._run.accepting:
            self._run.close(entry.key)  # it stays queued for a later run
            return
        try:
            await self._queues.uploads.send(Upload(entry, image, display(entry.name)))
        except anyio.get_cancelled_exc_class():
            self._run.close(entry.key)  # cancelled while queueing: it stays queued
            raise

    async def resubmit(self, lost: ObjectReceiveStream[Entry]) -> None:
        """Submit again what the provider lost: its source read again (it must be unchanged)."""
        async with lost:
            async for entry in lost:
                image = await self._reread(entry)
                if image is not None:
                    await self._upload(entry, image)

    async def _reread(self, entry: Entry) -> Prepared | None:
        for source in entry.targets.values():
            try:
                image = await anyio.to_thread.run_sync(self._check, Path(source))
            except InputError:
                continue
            if image.sha256 == entry.sha256:
                return image
        await self._fail(entry, "InputError", "its source files changed or are gone")
        return None


def _gone_reason(entry: Entry) -> str:
    if entry.state == "downloaded":
        return "its output files were deleted"
    if entry.state == "succeeded":
        return "the result URL expired before it was downloaded"
    return "the task is older than the provider keeps tasks"
