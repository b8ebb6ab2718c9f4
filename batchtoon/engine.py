"""`Engine`: one run, from SOURCE arguments to files, as stages in one anyio task group.

    sources ──> preparers ──> uploads ──> SubmitWorker xN ──> Poller ──> results ──> Downloader xM
    (thread)    (threads)     (bounded)   (SharedRate)        (ticks)    (queue)     (tmp+rename)
                     │                                          │            │
                     └──────────── Journal (every state change, fsync'd) ────┘

The engine owns the decisions; the stages own the I/O. An item (content sha256 + style) is
*open* from the moment this run takes it on until it is downloaded, failed, or put back. The
run ends when the sources are exhausted and nothing is open, or when it is stopped:

- `stop()` (Ctrl-C, SIGTERM): take no new work, let uploads already on the wire get their
  answer (so their task ids are journaled), then end; every state is in the journal.
- `halt("fatal")` (bad key, no credits) and `halt("budget")` (`--max-submissions`): submit
  nothing more, but poll and download everything already accepted, then end.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectSendStream, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream
from tenacity import RetryCallState

from .api import ApiClient, TaskState
from .config import Settings
from .downloader import Downloader, Filed, file_result
from .errors import ApiError, InputError, RunFatal
from .journal import Journal
from .layout import Layout
from .ledger import Entry
from .pacing import SharedRate
from .poller import Poller
from .preflight import Prepared, check
from .sources import BadLine, Source, display, iter_sources, next_batch
from .submitter import SubmitWorker, Upload

__all__ = ["Engine", "Stats"]

EXIT_OK, EXIT_FAILED, EXIT_FATAL, EXIT_BUDGET, EXIT_STOPPED = 0, 1, 3, 4, 130
STOP_GRACE = 5.0  # seconds a stopped run waits for uploads already on the wire
PREPARE_BATCH = 16  # sources pre-flighted in one thread hop, at most


@dataclass
class Stats:
    """What this run did, for the progress bars and the summary."""

    found: int = 0  # targets (source file x style) seen
    skipped: int = 0  # already downloaded by an earlier run
    submitted: int = 0  # accepted submissions in this run
    extra: int = 0  # of those, items the provider had already accepted once: extra cost
    finished: int = 0  # tasks that reached a final state
    downloaded: int = 0  # files written
    failed: int = 0  # targets that failed
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> targets
    started: float = field(default_factory=time.monotonic)


class Engine:
    def __init__(
        self,
        settings: Settings,
        api: ApiClient,
        journal: Journal,
        sources: list[Path],
        *,
        retry_failed: bool = False,
        log: logging.Logger | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.settings, self.api, self.journal = settings, api, journal
        self.ledger = journal.ledger
        self.sources = sources
        self.retry_failed = retry_failed
        self.log = log or logging.getLogger("batchtoon")
        self.report = report or self.log.warning  # one line per item that fails
        self.layout = Layout(Path(settings.output.dir), settings.output.template)
        self.workdir = journal.path.parent / "tmp"
        self._cache = journal.path.parent / "prepared"  # --fix's prepared images, by content
        self.submit_rate = SharedRate(settings.submit.rate)
        self.poll_rate = SharedRate(settings.poll.rate)
        self.poller = Poller(self)
        self.stats = Stats()
        self.outcome = "running"  # then: done, stopped, fatal, budget
        self.fatal_error: RunFatal | None = None
        self._open: set[str] = set()
        self._producing = True
        self._stopping = False
        self._reserved = 0
        self._uploading = 0
        self._finished = anyio.Event()
        self._producer_scope = anyio.CancelScope()
        self._uploads, self._upload_queue = anyio.create_memory_object_stream[Upload](
            settings.submit.concurrency
        )
        self._results, self._result_queue = anyio.create_memory_object_stream[Entry](math.inf)
        self._group: TaskGroup | None = None

    def __repr__(self) -> str:
        return (
            f"<Engine {self.outcome} open={len(self._open)} producing={self._producing} "
            f"{self.stats} {self.poller!r}>"
        )

    # The run.

    async def run(self) -> int:
        shutil.rmtree(self.workdir, ignore_errors=True)  # parts a killed run left behind
        self.workdir.mkdir(parents=True, exist_ok=True)
        async with anyio.create_task_group() as group:
            self._group = group
            self._resume_pending()
            group.start_soon(self._produce)
            for _ in range(self.settings.submit.concurrency):
                group.start_soon(SubmitWorker(self).run, self._upload_queue.clone())
            group.start_soon(self.poller.run)
            for _ in range(self.settings.download.workers):
                group.start_soon(Downloader(self).run, self._result_queue.clone())
            await self._finished.wait()
            group.cancel_scope.cancel()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.exit_code

    @property
    def exit_code(self) -> int:
        if self.outcome == "stopped":
            return EXIT_STOPPED
        if self.outcome == "fatal":
            return EXIT_FATAL
        if self.outcome == "budget":
            return EXIT_BUDGET
        return EXIT_FAILED if self.stats.failed else EXIT_OK

    def stop(self) -> None:
        """Take no new work; end once the uploads already sent have their answer (or soon)."""
        self._stopping = True
        self._halt_submitting("stopped")
        if self._group is not None:
            self._group.start_soon(self._stop_after_grace)
        self._settle()

    async def _stop_after_grace(self) -> None:
        await anyio.sleep(STOP_GRACE)
        self._finished.set()

    def halt(self, outcome: str, error: RunFatal | None = None) -> None:
        """Submit nothing more; finish what the provider has accepted."""
        if error is not None and self.fatal_error is None:
            self.fatal_error = error
            self.log.error("stopping submissions: %s", error.reason)
        self._halt_submitting(outcome)

    def _halt_submitting(self, outcome: str) -> None:
        if self.outcome in ("running", "done"):
            self.outcome = outcome
        self._producer_scope.cancel()

    @property
    def accepting(self) -> bool:
        return self.outcome == "running"

    def _settle(self) -> None:
        """End the run if nothing is left to do."""
        if self._stopping and self._uploading == 0:
            self._finished.set()
        elif not self._producing and not self._open:
            if self.outcome == "running":
                self.outcome = "done"
            self._finished.set()

    # Producing: sources -> pre-flight -> admission.

    async def _produce(self) -> None:
        with self._producer_scope:
            send, receive = anyio.create_memory_object_stream[Source | BadLine](64)
            async with anyio.create_task_group() as group:
                group.start_soon(self._walk, send)
                for _ in range(self.settings.prepare.workers):
                    group.start_soon(self._prepare, receive.clone())
                receive.close()
        self._producing = False
        self._settle()

    async def _walk(self, send: ObjectSendStream[Source | BadLine]) -> None:
        items = iter_sources(self.sources)
        async with send:
            while batch := await anyio.to_thread.run_sync(next_batch, items):
                for item in batch:
                    await send.send(item)

    async def _prepare(self, receive: MemoryObjectReceiveStream[Source | BadLine]) -> None:
        async with receive:
            async for first in receive:
                # What else is already waiting is checked in the same thread hop: at high rates
                # a hop (and its GIL hand-offs) per photo costs more than the check itself.
                batch = [first, *_waiting(receive, PREPARE_BATCH - 1)]
                outcomes = await anyio.to_thread.run_sync(self._check_all, batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    await self._take(item, outcome)

    def _check_all(self, batch: list[Source | BadLine]) -> list[Prepared | str]:
        """Pre-flight each item (in a worker thread): its upload, or why it cannot be sent."""
        outcomes: list[Prepared | str] = []
        for item in batch:
            if isinstance(item, BadLine):
                outcomes.append(item.reason)
                continue
            try:
                outcomes.append(check(item.path, fix=self.settings.prepare.fix, cache=self._cache))
            except InputError as error:
                outcomes.append(str(error))
        return outcomes

    async def _take(self, item: Source | BadLine, outcome: Prepared | str) -> None:
        styles = (item.styles if isinstance(item, Source) else None) or self.settings.styles
        if isinstance(outcome, str):
            where = item.where if isinstance(item, BadLine) else display(item.path)
            await self._reject(where, styles, outcome)
            return
        assert isinstance(item, Source)
        for style in styles:
            await self._admit(item, style, outcome)

    async def _check(self, path: Path) -> Prepared:
        fix, cache = self.settings.prepare.fix, self._cache
        return await anyio.to_thread.run_sync(lambda: check(path, fix=fix, cache=cache))

    async def _reject(self, where: str, styles: tuple[int, ...], reason: str) -> None:
        self.report(f"skipped {where}: {reason}")
        for style in styles:
            self.stats.found += 1
            self._count_failure(reason)
            await self.journal.write(
                "rejected", durable=False, source=where, style=style, reason=reason
            )

    async def _admit(self, source: Source, style: int, image: Prepared) -> None:
        """Take one (source file, style) on: skip, copy, attach, or queue it for submission."""
        self.stats.found += 1
        key = f"{image.sha256}:{style}"
        entry = self.ledger.entries.get(key)
        base = self._claim(source, style, image.sha256, entry)
        if entry is None or base not in entry.targets or self._retrying(entry):
            retry = self._retrying(entry)
            extra = {"retry": True} if retry else {}
            await self.journal.write(  # not waited for: a lost "queued" is queued again
                "queued", durable=False, key=key, source=str(source.path), output=base, **extra
            )
            entry = self.ledger.entries[key]
        if entry.state == "failed":
            self._count_failure(entry.reason)
        elif key in self._open:
            pass  # in flight in this run: the downloader will write this target too
        elif entry.state == "downloaded":
            self._open.add(key)  # claimed before any await: a duplicate admitted meanwhile waits
            await self._complete_from_disk(entry, image)
        else:
            await self._dispatch(entry, image)

    def _retrying(self, entry: Entry | None) -> bool:
        return self.retry_failed and entry is not None and entry.state == "failed"

    def _claim(self, source: Source, style: int, sha: str, entry: Entry | None) -> str:
        """This target's output path: the one the journal knows, or a new one no other takes."""
        source_text = str(source.path)
        if entry is not None:
            for base, owner in entry.targets.items():
                if owner == source_text:
                    return base
        base = self.layout.base(source, style, sha)
        claimed_by = self.ledger.outputs.get(base)
        if claimed_by is not None and claimed_by != source_text:
            base = f"{base}-{sha[:8]}"  # another file already lands here (a.jpg beside a.png)
        return base

    async def _complete_from_disk(self, entry: Entry, image: Prepared) -> None:
        """Downloaded before: skip what is on disk, copy to new targets, or redo if all gone."""
        files = {base: self.layout.file(base, entry.ext) for base in entry.targets}
        present = await anyio.to_thread.run_sync(_on_disk, files)
        missing = [base for base in entry.targets if base not in present]
        self.stats.skipped += len(present)
        if not missing:
            self._close(entry)
            return
        if present:
            first = next(iter(present.values()))
            filed = await anyio.to_thread.run_sync(
                _copy_result, first, missing, self.layout, self.workdir
            )
            await self.stored(entry, missing, filed, on_disk=present)
            return
        await self._record("lost", entry, reason="its output files were deleted")
        await self._dispatch(entry, image)

    async def _dispatch(self, entry: Entry, image: Prepared | None) -> None:
        """Open an entry and send it where its state says: submit, poll or download."""
        self._open.add(entry.key)
        if entry.state == "submitted":
            self.poller.add(entry)
        elif entry.state == "succeeded":
            self._results.send_nowait(entry)
        elif not self.accepting:
            self.put_back(entry)
        else:
            try:
                image = image or await self._reread(entry)
                if image is not None:
                    await self._uploads.send(Upload(entry, image))
            except anyio.get_cancelled_exc_class():
                self.put_back(entry)  # cancelled while queueing: it stays queued
                raise

    def _resume_pending(self) -> None:
        """What an earlier run left with the provider is picked up before anything new."""
        for entry in list(self.ledger.entries.values()):
            if entry.state in ("submitted", "succeeded"):
                self._open.add(entry.key)
                if entry.state == "submitted":
                    self.poller.add(entry)
                else:
                    self._results.send_nowait(entry)

    async def _reread(self, entry: Entry) -> Prepared | None:
        for source in entry.targets.values():
            try:
                image = await self._check(Path(source))
            except InputError:
                continue
            if image.sha256 == entry.sha256:
                return image
        await self.fail(entry, InputError("its source files changed or are gone"))
        return None

    # What the stages report.

    def reserve_submission(self) -> bool:
        """May one more upload go out? Counts it against `--max-submissions` if so."""
        if not self.accepting:
            return False
        budget = self.settings.max_submissions
        if budget is not None and self.stats.submitted + self._reserved >= budget:
            self.halt("budget")
            return False
        self._reserved += 1
        self._uploading += 1
        return True

    def release_submission(self) -> None:
        self._reserved -= 1
        self._uploading -= 1
        self._settle()

    async def submitted(self, entry: Entry, task_id: str) -> None:
        self._reserved -= 1
        self.stats.submitted += 1
        if entry.submissions:
            self.stats.extra += 1
        await self._record("submitted", entry, task_id=task_id)
        self._uploading -= 1
        self.poller.add(entry)
        if self.settings.max_submissions == self.stats.submitted:
            self.halt("budget")
        self._settle()

    async def task_done(self, entry: Entry, state: TaskState) -> None:
        self.stats.finished += 1
        if state.succeeded:
            expires = time.time() + self.settings.result_ttl
            await self._record("succeeded", entry, result_url=state.result_url, expires_at=expires)
            self._results.send_nowait(entry)
        else:
            reason = f"the provider failed the task: {state.status or 'task_status 2'}"
            await self._fail(entry, "task", reason)

    async def lost(self, entry: Entry, reason: str) -> None:
        """The task or its result is gone on the provider's side: submit it again."""
        self.log.warning("resubmitting %s: %s", entry.key, reason)
        await self._record("lost", entry, reason=reason)
        if self._group is not None:
            self._group.start_soon(self._dispatch, entry, None)

    async def stored(
        self, entry: Entry, bases: list[str], filed: Filed, *, on_disk: Iterable[str] = ()
    ) -> None:
        """Journal the files a result was written to, and copy it to any target that was added
        meanwhile (a copy of the photo admitted while it downloaded); then the entry is done."""
        written = set(on_disk)
        while True:
            for base, path in zip(bases, filed.paths, strict=True):
                await self._record(
                    "downloaded", entry, source=entry.targets[base], output=str(path),
                    size=filed.written.size, sha256=filed.written.sha256,
                )  # fmt: skip
                self.stats.downloaded += 1
                written.add(base)
            bases = [base for base in entry.targets if base not in written]
            if not bases:
                break
            filed = await anyio.to_thread.run_sync(
                _copy_result, filed.paths[0], bases, self.layout, self.workdir
            )
        self._close(entry)

    async def fail(self, entry: Entry, error: ApiError | InputError) -> None:
        kind = type(error).__name__
        reason = error.reason if isinstance(error, ApiError) else str(error)
        await self._fail(entry, kind, reason)

    async def _fail(self, entry: Entry, kind: str, reason: str) -> None:
        await self._record("failed", entry, **{"class": kind}, reason=reason)
        for source in entry.targets.values():
            self.report(f"failed {display(source)} (style {entry.style}): {reason}")
            self._count_failure(reason)
        self._close(entry)

    async def _record(self, event: str, entry: Entry, **fields: Any) -> None:
        """Journal a state change of `entry` with its key and its source path(s)."""
        if "source" not in fields:
            fields["sources"] = list(entry.targets.values())
        await self.journal.write(event, key=entry.key, **fields)

    def put_back(self, entry: Entry) -> None:
        """Leave an entry to a later run (it stays queued or submitted in the journal)."""
        self._close(entry)

    def note_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        error = state.outcome.exception() if state.outcome else None
        self.log.info("retrying after attempt %d: %s", state.attempt_number, error)

    def _count_failure(self, reason: str) -> None:
        self.stats.failed += 1
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1

    def _close(self, entry: Entry) -> None:
        self._open.discard(entry.key)
        self._settle()


def _waiting(
    receive: MemoryObjectReceiveStream[Source | BadLine], most: int
) -> list[Source | BadLine]:
    """Up to `most` items already in the stream, without waiting for more."""
    items: list[Source | BadLine] = []
    while len(items) < most:
        try:
            items.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return items


def _on_disk(files: dict[str, Path]) -> dict[str, Path]:
    return {base: path for base, path in files.items() if path.is_file()}


def _copy_result(first: Path, bases: list[str], layout: Layout, workdir: Path) -> Filed:
    return file_result(first.read_bytes(), bases, layout, workdir)
