"""`Batch`: batchtoon as a library — run a batch from your own asyncio code.

    import batchtoon

    settings = batchtoon.load_settings("configs/default.yaml").override(output__dir="cartoons")
    async with batchtoon.Batch(settings, on_progress=print) as batch:
        summary = await batch.run(["photos/"])
    print(summary.exit_code, summary.downloaded)

A `Batch` holds what outlives one run: the journal (locked while the batch is open, so two
processes can never share it), the log beside it, and one HTTP session. Each `run(sources)` is
one engine run over those sources; running again resumes, exactly as the command does. Sources
and `output.dir` may be URLs (`s3://bucket/photos`, see `batchtoon.locations.storage`); the
journal is then still a local file, and no gallery is written for a URL output.

Guarantees:
- the API key comes from `api_key` or the environment variable `settings.api.key_env`, and is
  never in the journal, the log, a `Snapshot`, a `Summary` or an error message;
- `on_progress` is called with a `Snapshot` every `progress_interval` seconds, once when the
  items are over, and once more as the gallery is written (`Snapshot.doing`); `on_problem`
  with a one-line message for every item that is refused or fails; `on_event` with every
  event (`batchtoon.records.events`: the schema `--events` writes), in journal order;
- with `exec.command`, a hook runs after each stored result (`batchtoon.pipeline.hooks`); the
  run waits for the hooks offered before it returns, and `Summary.hooks_failed` counts those
  that failed;
- the gallery (`<out>/index.html`, `settings.report`) is written at the end of a run that was
  not stopped (`Summary.gallery` is its path); its thumbnails are made while the run goes, as
  results arrive (`batchtoon.report.arriving`), so the end only looks them up;
- `stop()` (from a signal handler, say) ends the current run as Ctrl-C does: nothing already
  paid for is lost, and the next `run` goes on. A stopped run writes no gallery (it would hold
  up the stop: `write_report`, or `batchtoon report`, writes it), and a stop while the gallery
  is written ends that too;
- nothing process-wide is changed: no signal handler is installed (the caller's `stop()` is
  the way in), and the garbage collector is left as it is.

Its contract, guarded (each breach a `UsageError` raised at once, nothing written or paid):
- settings read as the command line reads them (`validate`: style names, a single pattern);
- the sources checked as the command checks them before anything is written: a SOURCE that
  is not there or not readable raises, with no journal record and no gallery;
- one run at a time: a second `run()` while one is going raises at once;
- `run()` outside `async with`, or after it closed, raises;
- an exception in `on_progress`, `on_problem` or `on_event` is the caller's: it is logged with its
  traceback and the run goes on, every record journaled (it never reaches the pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from batchtoon.errors import Unwritable, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.locations.provenance import Provenance, Result
from batchtoon.locations.sources import check_sources, display
from batchtoon.locations.storage import Location, is_url, location
from batchtoon.pipeline.clock import ticks
from batchtoon.pipeline.engine import Engine
from batchtoon.pipeline.hooks import Hooks, split_command
from batchtoon.pipeline.lifecycle import RunOutcome
from batchtoon.pipeline.stats import TERMS
from batchtoon.provider.api import ApiClient, LazySession
from batchtoon.provider.keys import key_problem, trimmed_key
from batchtoon.records.events import OnEvent
from batchtoon.records.journal import Journal
from batchtoon.records.ledger import Ledger
from batchtoon.records.logs import open_log
from batchtoon.settings.config import Settings, validate
from batchtoon.settings.styles import style_slug
from batchtoon.snapshot import Snapshot
from batchtoon.version import __version__

if TYPE_CHECKING:  # the gallery's modules are loaded by a run that writes one
    from batchtoon.report.arriving import ArrivingThumbnails
    from batchtoon.report.thumbs import Thumbnails

__all__ = ["Batch", "Snapshot", "Summary", "write_report"]

T = TypeVar("T")


@dataclass(frozen=True)
class Summary:
    """What a run did; `exit_code` is what the command would exit with.

    `results` (one per photo and style) and `photos` count every one found in its term (see
    `batchtoon.pipeline.stats.TERMS`: already done, done now, failed, failed earlier, refused,
    refused earlier, left), so `found` is their sum."""

    exit_code: ExitCode
    outcome: str  # done, stopped, fatal, budget, blocked
    results: Mapping[str, int]
    photos: Mapping[str, int]
    duplicates: int  # results that shared another's submission (same content and style)
    also_finished: int  # results finished for photos this run's sources do not hold
    submitted: int  # accepted submissions: what this run paid for
    extra: int  # of those, for items paid for before (the provider lost them)
    unanswered: int  # uploads whose answer never came: each possibly paid for
    left_tasks: int  # paid tasks that could not be followed now: the next run asks again
    retries: int
    slowdowns: int
    uploaded_bytes: int
    saved_bytes: int  # kept off the wire by preparation
    upload_rate: float  # bytes per second while uploads were going out
    converted_photos: int
    converted: Mapping[str, int]  # why photos were converted: reason -> photos
    failures: Mapping[str, int]  # failed or refused in this run: reason -> results
    wall: float  # seconds
    unreadable_lines: int = 0  # journal lines that could not be read
    unreadable_tasks: int = 0  # of those, lines that held a task id: possibly paid again
    fatal_reason: str | None = None  # why the API stopped the run
    fatal_code: str = ""
    problem: str | None = None  # a file that could not be written, and what to do
    cropped: int = 0  # photos wider or taller than 3:2: the provider keeps their centre 3:2
    gallery: str | None = None  # the page written at the end: not after a stop (see Batch)
    hooks_ran: int = 0  # --exec: hooks run
    hooks_failed: int = 0  # of those, hooks that failed or were killed (see the log)
    hooks_not_run: int = 0  # hooks a stop left unrun

    @property
    def found(self) -> int:
        return sum(self.results.values())

    @property
    def photos_found(self) -> int:
        return sum(self.photos.values())

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["exit_code"] = int(self.exit_code)
        data["found"], data["photos_found"] = self.found, self.photos_found
        for terms in ("results", "photos"):
            data[terms] = {term.replace(" ", "_"): n for term, n in data[terms].items()}
        return data


class Batch:
    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None = None,
        retry_failed: bool = False,
        on_progress: Callable[[Snapshot], None] | None = None,
        progress_interval: float = 0.25,
        on_problem: Callable[[str], None] | None = None,
        on_event: OnEvent | None = None,
        config_file: Path | None = None,
    ) -> None:
        given = os.environ.get(settings.api.key_env, "") if api_key is None else api_key
        key, self._trimmed = trimmed_key(given)  # the log says so once it is open
        if not key:
            raise UsageError(
                f"no API key: set {settings.api.key_env} (export {settings.api.key_env}=...)"
            )
        if problem := key_problem(key):
            raise UsageError(f"{settings.api.key_env}: the API key {problem}: set it again")
        self.settings = validate(settings)  # as a file's, a variable's or a flag's would be
        if settings.exec.command is not None:
            split_command(settings.exec.command)  # a command that cannot be split: said now
        self._key = key
        self._retry_failed = retry_failed
        self._on_progress, self._interval = on_progress, progress_interval
        self._on_problem, self._on_event = on_problem, on_event
        self._config_file = config_file  # the log's start line names it
        self._journal = Journal(settings.journal_path, secret=key)
        self._session: LazySession | None = None
        self._engine: Engine | None = None
        self._hooks: Hooks | None = None  # of the run going on, with exec.command
        self._arriving: ArrivingThumbnails | None = None  # of the run going on, with a gallery
        self._running = self._closed = False
        self.log: logging.Logger = logging.getLogger("batchtoon")

    def __repr__(self) -> str:
        return f"<Batch journal={self._journal.path} running={self._engine is not None}>"

    async def __aenter__(self) -> Batch:
        if self._closed:
            raise UsageError("this Batch is closed: make a new one")
        self._journal.open()
        log = self.settings.log_path
        try:
            self.log = open_log(log, self._key)
            if self._trimmed:
                self.log.warning("the API key %s", self._trimmed)
            self._session = LazySession()
        except OSError as error:
            self._journal.close()
            raise Unwritable.from_os_error(error, log, "open the log") from None
        except BaseException:
            self._journal.close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            self._session = None
            self._journal.close()

    async def run(self, sources: Iterable[str | os.PathLike[str]]) -> Summary:
        """One run over `sources` (folders, manifests, images); see the module docstring."""
        if self._closed:
            raise UsageError("this Batch is closed: make a new one to run again")
        if self._session is None:
            raise UsageError("use the Batch in `async with` before calling run()")
        if self._running:
            raise UsageError("this Batch is running already: await its run() before the next")
        self._running = True  # before any await: a second call sees it
        try:
            return await self._run(self._session, [location(s) for s in sources])
        finally:
            self._running = False

    async def _run(self, session: LazySession, sources: list[Location]) -> Summary:
        await anyio.to_thread.run_sync(check_sources, sources)  # the command's own check
        settings = self.settings
        api = ApiClient.from_settings(session, settings, self._key)
        arriving = _arriving_thumbnails(settings)
        self._arriving = arriving
        hooks = Hooks(settings.exec, self.log) if settings.exec.command else None
        engine = Engine(
            settings, api, self._journal, sources,
            retry_failed=self._retry_failed, log=self.log, report=self._problem,
            on_stored=arriving.offer if arriving is not None else None,
            on_event=partial(self._event, hooks),
        )  # fmt: skip
        self._engine, self._hooks = engine, hooks
        self.log.info(
            "start: %s", _start_line(settings, engine.sources, self._key, self._config_file)
        )
        try:
            async with anyio.create_task_group() as group:
                if self._on_progress is not None:
                    group.start_soon(self._report_progress, engine)
                if arriving is not None:
                    group.start_soon(arriving.run)
                if hooks is not None:
                    group.start_soon(hooks.run)
                await engine.run()
                if hooks is not None:  # the hooks offered run (each bounded), unless stopped
                    hooks.close()
                    await hooks.done.wait()
                group.cancel_scope.cancel()
        finally:
            self._engine = self._hooks = None
            self._call_back("on_progress", self._on_progress, snapshot(engine))
        done = summarize(engine)
        if hooks is not None:
            done = dataclasses.replace(
                done, hooks_ran=hooks.ran, hooks_failed=hooks.failed, hooks_not_run=hooks.not_run
            )
        self.log.info("end: %s", _end_line(done))
        try:
            if self._arriving is not None:
                page = await self._write_report(engine, done, self._arriving.thumbnails)
                done = dataclasses.replace(done, gallery=page)
        finally:
            self._arriving = None
        return done

    async def _write_report(
        self, engine: Engine, done: Summary, thumbnails: Thumbnails
    ) -> str | None:
        """The run's gallery, unless it was stopped (before or while it is written): then the
        thumbnails made are remembered for `batchtoon report`. The page's path, or None."""
        from batchtoon.report.thumbs import Stopped

        stopped = engine.outcome in (RunOutcome.STOPPED, RunOutcome.BLOCKED)
        if not (stopped or thumbnails.stopped):
            from batchtoon.report import standing

            out = Path(self.settings.output.dir)
            if (page := standing(out, self._journal.path)) is not None:
                return str(page)  # this run changed nothing it shows (a finished batch again)
            with contextlib.suppress(Stopped):
                return await self._write_gallery(engine, done, thumbnails)
        with contextlib.suppress(OSError):  # a memo lost only costs reading the files again
            await anyio.to_thread.run_sync(thumbnails.save)
        return None

    async def _write_gallery(
        self, engine: Engine, done: Summary, thumbnails: Thumbnails
    ) -> str | None:
        """Write the page, saying so first; a failure to write it is said, and changes nothing
        else."""
        if self._on_progress is not None:
            self._call_back(
                "on_progress", self._on_progress, snapshot(engine, doing="writing the gallery")
            )
        try:
            page = await anyio.to_thread.run_sync(
                write_report, self.settings, self._journal.ledger, done, thumbnails
            )
        except Unwritable as error:  # (it says what it could not write)
            self._problem(str(error))
            return None
        except OSError as error:
            self._problem(f"could not write the gallery: {error}")
            return None
        self.log.info("gallery: %s", page)
        return str(page)

    def stop(self) -> None:
        """End the current run as Ctrl-C does, its gallery too (a no-op between runs)."""
        if self._engine is not None:
            self._engine.stop()
        if self._arriving is not None:
            self._arriving.stop()
        if self._hooks is not None:
            self._hooks.stop()

    async def _report_progress(self, engine: Engine) -> None:
        async for _ in ticks(self._interval):
            self._call_back("on_progress", self._on_progress, snapshot(engine))

    def _problem(self, line: str) -> None:
        self.log.warning(line)
        self._call_back("on_problem", self._on_problem, line)

    def _event(self, hooks: Hooks | None, event: dict[str, Any]) -> None:
        if hooks is not None:
            hooks.on_event(event)
        self._call_back("on_event", self._on_event, event)

    def _call_back(self, name: str, callback: Callable[[T], None] | None, value: T) -> None:
        """The caller's `callback`; what it raises is logged, never let into the pipeline
        (a task failing there would end the run before its last records were written)."""
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            self.log.exception("%s raised (the run goes on):", name)


def write_report(
    settings: Settings,
    ledger: Ledger | Sequence[Ledger],
    done: Summary | None = None,
    thumbnails: Thumbnails | None = None,
) -> Path:
    """Write the gallery of everything the journal (or journals) knows, and of every result
    the output folder's record holds (another shard's too), as `<out>/index.html` (see
    `report.page` for a page the user wrote there), with this run's counts in its header (or
    the journals', without a run); blocking. The `thumbnails` a run made as it went are looked
    up, not made again. For a local output folder only (`UsageError` for a URL: the page links
    its files by relative paths). `Stopped` if `thumbnails.stop()` came first."""
    if is_url(settings.output.dir):
        raise UsageError(
            f"the gallery is written for a local output folder only, not {settings.output.dir}"
        )
    from batchtoon.report import (  # only a run's end, or `report`, needs it
        from_ledger,
        write_gallery,
    )

    out = Path(settings.output.dir)
    counts: dict[str, int] | None = None
    started = finished = None
    if done is not None:
        counts = {"found": done.found, **{t: n for t, n in done.results.items() if n}}
        counts |= {"submitted": done.submitted}
        finished = datetime.now().astimezone()
        started = finished - timedelta(seconds=done.wall)
    journals = [ledger] if isinstance(ledger, Ledger) else list(ledger)

    def known(photo: str, style: int) -> bool:  # the journals' own results are theirs to show
        return any(journal.knows(f"{photo}:{style}") for journal in journals)

    recorded = _recorded(Provenance(out).results(known))
    gallery = from_ledger(
        ledger, out, counts=counts, started=started, finished=finished, shown_too=[recorded]
    )
    try:
        return write_gallery(out, gallery, workers=settings.prepare.threads, thumbnails=thumbnails)
    except OSError as error:
        raise Unwritable.from_os_error(error, out / "index.html", "write the gallery") from None


def _recorded(results: Iterable[Result]) -> Ledger:
    """The output folder's record as a ledger: each result a target, downloaded."""
    ledger = Ledger()
    for result in results:
        key, base = f"{result.photo}:{result.style}", result.name.rpartition(".")[0]
        ledger.apply({"event": "queued", "key": key, "source": result.source, "output": base})
        ledger.apply({"event": "downloaded", "key": key, "output": result.name})
    return ledger


def _start_line(settings: Settings, sources: list[Location], key: str, config: Path | None) -> str:
    names = ", ".join(display(s) for s in sources)
    sized = " (sized from the rate)" if settings.submit.concurrency is None else ""
    paces = (
        f"rate {settings.submit.rate:g}/s, concurrency {settings.submit.uploads}{sized}, poll "
        f"every {settings.poll.interval:g} s; event loop {_loop_kind()}"
    )
    styles = ",".join(style_slug(s) for s in settings.styles)
    if settings.sources.shard:
        names += f" (shard {settings.sources.shard}: its rates are the account's / N)"
    return (
        f"batchtoon {__version__}; sources {names}; styles {styles}; out "
        f"{display(settings.output.dir)}; {paces}; API {settings.api.base_url}, "
        f"{_key_origin(settings.api.key_env, key)}"
        + (f"; config {display(str(config))}" if config else "")
    )


def _loop_kind() -> str:
    """The running event loop's kind, by its package: "asyncio" or "uvloop"."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def _key_origin(env: str, key: str) -> str:
    """Where the run's key came from, never the key: the variable only if it holds this key
    (`--sandbox`, or a caller of `Batch`, gives one of its own)."""
    if os.environ.get(env) == key:
        return f"key from ${env}"
    return f"key given by the caller (${env} {'set' if os.environ.get(env) else 'unset'})"


def _end_line(done: Summary) -> str:
    terms = ", ".join(f"{n} {term}" for term, n in done.results.items() if n)
    return (
        f"{done.outcome}, exit {int(done.exit_code)}: {done.found} results found ({terms}); "
        f"{done.submitted} submissions, {done.wall:.1f} s"
    )


def _arriving_thumbnails(settings: Settings) -> ArrivingThumbnails | None:
    """What makes the gallery's thumbnails as results arrive: for a run that writes a gallery
    (enabled, and a local output folder: it links local files)."""
    if not settings.report.enabled or is_url(settings.output.dir):
        return None
    from batchtoon.report.arriving import ArrivingThumbnails  # only a gallery needs them
    from batchtoon.report.maker import ThumbnailProcess
    from batchtoon.report.thumbs import Thumbnails, thumbs_dir

    folder = thumbs_dir(Path(settings.output.dir))
    maker = ThumbnailProcess(folder, hidden=(settings.api.key_env,))
    return ArrivingThumbnails(Thumbnails(folder), process=maker)


def snapshot(engine: Engine, doing: str = "") -> Snapshot:
    stats, rate = engine.stats, engine.submit_rate
    tally = stats.tally
    done_now = tally.results["done now"]
    with_task = max(0, stats.submitted - done_now - tally.results["failed"])  # in the provider's
    total = max(stats.expected or 0, tally.found)
    return Snapshot(
        expected=stats.expected,
        found=tally.found,
        settled=tally.settled,
        done=tally.results["already done"] + tally.results["done now"],
        news=sum(stats.failures.values()),
        submitted=stats.submitted,
        elapsed=engine.clock.monotonic() - stats.started,
        submit_rate=rate.rate,
        max_submit_rate=rate.max_rate,
        slowed=rate.slowed,
        uploaded_bytes=stats.uploaded_bytes,
        upload_rate=stats.upload_rate,
        done_now=done_now,
        to_submit=max(0, total - tally.settled - with_task),
        tick=engine.settings.poll.interval,
        doing=doing,
    )


def summarize(engine: Engine) -> Summary:
    stats, control, journal = engine.stats, engine.control, engine.journal
    tally, fatal = stats.tally, control.fatal_error
    return Summary(
        exit_code=engine.exit_code,
        outcome=engine.outcome.value,
        results={term: tally.results[term] for term in TERMS},
        photos={term: tally.photos[term] for term in TERMS},
        duplicates=tally.duplicates,
        also_finished=tally.also_finished,
        submitted=stats.submitted,
        extra=stats.extra,
        unanswered=stats.unanswered,
        left_tasks=stats.left,
        retries=engine.retry.retries,
        slowdowns=engine.submit_rate.slowdowns + engine.poll_rate.slowdowns,
        uploaded_bytes=stats.uploaded_bytes,
        saved_bytes=stats.saved_bytes,
        upload_rate=stats.upload_rate,
        converted_photos=stats.converted_photos,
        converted=dict(stats.converted),
        failures=dict(stats.failures),
        wall=engine.clock.monotonic() - stats.started,
        unreadable_lines=journal.skipped_lines,
        unreadable_tasks=journal.skipped_tasks,
        fatal_reason=fatal.reason if fatal else None,
        fatal_code=fatal.code if fatal else "",
        problem=str(control.problem) if control.problem else None,
        cropped=stats.cropped,
    )
