"""`Engine`: one run, from SOURCE arguments to files, as stages in one anyio task group.

    sources ──> pre-flight ──> Intake ──> uploads ──> SubmitWorker xN ──> Poller ──> Downloader xM
    (thread)    (threads)     (facts)    (bounded)   (SharedRate,         (one       (checked,
                                 ▲                    SubmissionBudget,    loop)      renamed)
                                 │ rereads            Backlog) ◂╌╌ late? ╌╌┴╌╌ waiting? ╌┘
            outcomes, one way: stage ──> Driver: Machine.step ──> journal, then tickets ──> queues

The engine builds the pieces and runs them; it decides nothing about items. The stages compute
outcomes and deliver them to the `Driver`, which has the state machine (`Machine`) turn each
into journal records and tickets, writes the records and queues the tickets; `RunControl` says
when the run is over. Guarantees:

- the stages get their dependencies explicitly and never see the engine, the driver or the
  machine;
- `on_stored(source, output)`, if given, is called in the event loop for every result file
  once its record is durable: it must return at once (the gallery's thumbnails use it);
- `stop()` takes no new work and ends the run once the uploads already on the wire have their
  answer journaled (or after `STOP_GRACE` seconds); everything else is in the journal;
- `on_event(event)`, if given, gets every event (`records.events`) as its record is journaled;
- with `watch.enabled` the sources are watched (`pipeline.watcher.Watch`) instead of walked
  once: the run goes on after the photos already there until it is stopped, or idle for
  `watch.idle_exit` seconds (nothing settling, nothing waiting for pre-flight or in hand);
- the exit code follows the run's outcome (`ExitCode`);
- a run that was not stopped ends by compacting the journal (`Journal.compact`), unless
  `compact_journal` is false;
- with `--shard K/N` the submit and poll rates are the account's divided by N: N processes
  together keep to the account's rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import anyio

from batchtoon.exitcodes import ExitCode
from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import BadLine, Source, count_sources
from batchtoon.locations.storage import Location, location
from batchtoon.pipeline.backlog import Backlog
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.downloader import Downloader
from batchtoon.pipeline.driver import Driver, Queues
from batchtoon.pipeline.intake import Intake
from batchtoon.pipeline.lifecycle import RunControl, RunOutcome
from batchtoon.pipeline.machine import Machine
from batchtoon.pipeline.poller import MIN_RATE, Poller, PollLimits
from batchtoon.pipeline.producer import (
    Feed,
    checker,
    preflight_feed,
    preflight_workers,
    prepared_cache,
    shard_of,
    source_filter,
    walk,
)
from batchtoon.pipeline.stats import Stats
from batchtoon.pipeline.submitter import SubmitWorker
from batchtoon.pipeline.tickets import (
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    UploadTicket,
)
from batchtoon.pipeline.watcher import Watch
from batchtoon.provider.api import Api
from batchtoon.provider.pacing import SharedRate
from batchtoon.provider.retry import RetryPolicy
from batchtoon.records.events import OnEvent
from batchtoon.records.journal import Journal
from batchtoon.settings.config import Settings

__all__ = ["STOP_GRACE", "Engine", "uploads_ahead"]

STOP_GRACE = 5.0  # seconds a stopped run waits for uploads already on the wire
AHEAD_SECONDS = 2.0  # prepared uploads kept waiting: this many seconds of the submit rate ...
MOST_AHEAD = 256  # ... but never more (each holds its image's bytes)
# Results waiting a downloader, a downloader, beyond which submissions wait (`Backlog`): a
# downloader that keeps up has none waiting, one a burst of results finds busy a few.
WAITING_RESULTS = 4


def uploads_ahead(settings: Settings) -> int:
    """How many prepared uploads may wait for a submit worker. Enough that the workers never
    wait while pre-flight checks its next batch (a thread hop for several photos at once):
    two seconds' worth of the rate, and at least one each."""
    rate_worth = math.ceil(settings.submit.rate * AHEAD_SECONDS)
    return max(settings.submit.uploads, min(MOST_AHEAD, rate_worth))


class Engine:
    def __init__(
        self,
        settings: Settings,
        api: Api,
        journal: Journal,
        sources: Sequence[Location],
        *,
        retry_failed: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        log: logging.Logger | None = None,
        report: Callable[[str], None] | None = None,
        on_stored: Callable[[str, Location], None] | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self.settings, self.journal, self.sources = settings, journal, list(sources)
        self._api, self.clock = api, clock
        self._log = log or logging.getLogger("batchtoon")
        shard = shard_of(settings)
        share = 1 / shard.count if shard is not None else 1.0  # of the account's rates
        poll_ceiling = settings.poll.rate * share if settings.poll.rate else None
        self.submit_rate = SharedRate(settings.submit.rate * share, clock=clock)
        self.poll_rate = SharedRate(poll_ceiling or MIN_RATE, clock=clock)
        self.retry = RetryPolicy(settings.retry, self._log)
        self.budget = SubmissionBudget(settings.max_submissions)
        self.control = RunControl(self.budget, self._log)
        self.stats = Stats(started=clock.monotonic())
        self.layout = Layout(
            location(settings.output.dir),
            settings.output.template,
            portable=settings.output.portable_names,
            spill=settings.work_dir / "spill",
            tag=journal.ledger.journal_id[:12],
        )
        uploads, self._upload_queue = anyio.create_memory_object_stream[UploadTicket](
            uploads_ahead(settings)
        )
        to_poll, self._poll_queue = anyio.create_memory_object_stream[PollTicket](math.inf)
        to_store, self._store_queue = anyio.create_memory_object_stream[
            DownloadTicket | CopyTicket
        ](math.inf)
        to_reread, self._reread_queue = anyio.create_memory_object_stream[RereadTicket](math.inf)
        self._check = checker(settings)
        self.record = Provenance(self.layout.out, journal.ledger.journal_id, journal.path.resolve())
        self.machine = Machine(
            journal.ledger,
            self.stats,
            naming=self.layout.base,
            task_ttl=settings.result_ttl,
            result_ttl=settings.result_ttl,
            max_resubmissions=settings.submit.max_resubmissions,
            retry_failed=retry_failed,
        )
        self.driver = Driver(
            self.machine,
            journal=journal,
            run=self.control,
            budget=self.budget,
            queues=Queues(uploads, to_poll, to_store, to_reread),
            layout=self.layout,
            record=self.record,
            clock=clock,
            report=report,
            on_stored=on_stored,
            on_event=on_event,
            log=self._log,
        )
        self.intake = Intake(
            self.driver,
            ledger=journal.ledger,
            layout=self.layout,
            record=self.record,
            check=self._check,
            styles=settings.styles,
        )
        self._watch: Watch | None = None
        if settings.watch.enabled:
            self._watch = Watch(
                self.sources, source_filter(settings), settings.watch,
                busy=lambda: self.control.busy, clock=clock, log=self._log,
            )  # fmt: skip
        self.poller = Poller(
            api,
            self.poll_rate,
            self.driver,
            PollLimits(
                interval=settings.poll.interval,
                concurrency=settings.poll.concurrency,
                rate=poll_ceiling,
                give_up_after=settings.retry.total,
                min_failures=settings.retry.attempts,
            ),
            clock=clock,
            log=self._log,
            say=report,
        )
        self.backlog = Backlog(
            settings.poll.interval,
            self.poller.lateness,
            lambda: self._store_queue.statistics().current_buffer_used,
            most_waiting=WAITING_RESULTS * settings.download.workers,
            clock=clock,
        )

    def __repr__(self) -> str:
        return (
            f"<Engine {self.control!r} {self.stats} {self.poller!r} {self.budget!r} "
            f"{self.backlog!r}>"
        )

    @property
    def outcome(self) -> RunOutcome:
        return self.control.outcome

    @property
    def exit_code(self) -> ExitCode:
        outcome = self.control.outcome
        if outcome is RunOutcome.STOPPED:
            return ExitCode.STOPPED
        if self.control.problem is not None:
            return ExitCode.UNWRITABLE
        if outcome is RunOutcome.FATAL:
            return ExitCode.FATAL
        if outcome is RunOutcome.BUDGET:
            return ExitCode.BUDGET
        if self.stats.left:
            return ExitCode.LEFT
        return ExitCode.FAILED if self.stats.failures else ExitCode.OK

    async def run(self) -> ExitCode:
        settings, api = self.settings, self._api
        async with anyio.create_task_group() as group:
            await self.driver.resume()
            group.start_soon(self._count_sources)
            group.start_soon(self._end_when_stopped)
            group.start_soon(self._produce)
            group.start_soon(self.intake.reread, self._reread_queue)
            for _ in range(settings.submit.uploads):
                worker = SubmitWorker(
                    api, self.submit_rate, self.retry, self.budget, self.driver,
                    backlog=self.backlog, max_unanswered=settings.submit.max_resubmissions,
                    clock=self.clock,
                )  # fmt: skip
                group.start_soon(worker.run, self._upload_queue.clone())
            group.start_soon(self.poller.run, self._poll_queue)
            group.start_soon(self.backlog.run)
            for _ in range(settings.download.workers):
                downloader = Downloader(
                    api, self.retry, self.driver, self.layout, self.record,
                    max_bytes=settings.output.max_result_bytes, clock=self.clock,
                    prepared=prepared_cache(settings),
                )  # fmt: skip
                group.start_soon(downloader.run, self._store_queue.clone())
            await self.control.finished.wait()
            group.cancel_scope.cancel()
        self.driver.leave()
        self.stats.tally.finish()
        self.stats.expected = self.stats.tally.found  # the quick count was a guess: now it is known
        stopped = self.control.outcome is RunOutcome.STOPPED  # a stop takes no new work
        if self.settings.compact_journal and not stopped:
            await anyio.to_thread.run_sync(self._compact)
        return self.exit_code

    def _compact(self) -> None:
        """The journal, down to one record an item, if it holds more (blocking)."""
        journal = self.journal
        if journal.lines <= journal.compacted_lines:
            return
        try:
            journal.compact()
        except OSError as error:  # the journal as it was is whole: only its size is lost
            self._log.warning("could not compact the journal %s: %s", journal.path, error)

    def stop(self) -> None:
        """Take no new work; end once the uploads already sent have their answer (or soon)."""
        self.control.stop(RunOutcome.STOPPED)

    async def _end_when_stopped(self) -> None:
        """Once stopped, end the run when no upload is in flight, or after `STOP_GRACE`."""
        await self.control.stopping.wait()
        async with anyio.create_task_group() as race:

            async def first(wait: Callable[[], Awaitable[None]]) -> None:
                await wait()
                race.cancel_scope.cancel()

            race.start_soon(first, self.budget.drained)
            race.start_soon(first, partial(self.clock.sleep, STOP_GRACE))
        self.control.finished.set()

    async def _count_sources(self) -> None:
        """How many results the sources hold, by a quick walk (names only), for the display;
        and, once walked, each filter that matched nothing, said."""
        styles = len(self.settings.styles)
        only = source_filter(self.settings)
        stopped = anyio.from_thread.check_cancelled  # a stopped run does not wait for the walk
        photos = await anyio.to_thread.run_sync(
            partial(count_sources, self.sources, only, tick=stopped)
        )
        self.stats.expected = photos * styles
        for pattern in only.unmatched():
            self.driver.report(f"{pattern} matched no file nor folder: check its spelling")

    async def _produce(self) -> None:
        """The sources walked once; or, with `watch.enabled`, watched until idle or stopped."""
        only, workers = source_filter(self.settings), preflight_workers(self.settings, self.sources)
        feed: Feed = partial(walk, self.sources, only, known=self.intake)
        if self._watch is not None:
            feed = self._watch.run
        with self.control.producer_scope:
            await preflight_feed(feed, self._check, workers, self._take)
        self.control.producer_done()

    async def _take(self, taken: list[tuple[Source | BadLine, Prepared | str]]) -> None:
        try:
            await self.intake.take(taken)
        finally:
            if self._watch is not None:
                self._watch.taken(len(taken))
