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
- `on_progress` is called with a `Snapshot` every `progress_interval` seconds and once at the
  end; `on_problem` with a one-line message for every item that is refused or fails;
- `stop()` (from a signal handler, say) ends the current run as Ctrl-C does: nothing already
  paid for is lost, and the next `run` goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio

from batchtoon.errors import Unwritable, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.locations.provenance import Provenance, Result
from batchtoon.locations.sources import display
from batchtoon.locations.storage import Location, is_url, location
from batchtoon.pipeline.clock import ticks
from batchtoon.pipeline.engine import Engine
from batchtoon.pipeline.stats import TERMS
from batchtoon.provider.api import ApiClient, key_problem
from batchtoon.records.journal import Journal
from batchtoon.records.ledger import Ledger
from batchtoon.records.logs import open_log
from batchtoon.settings.config import Settings, validate
from batchtoon.settings.styles import style_slug
from batchtoon.version import __version__

__all__ = ["Batch", "Snapshot", "Summary", "write_report"]


@dataclass(frozen=True)
class Snapshot:
    """How far a run has got, as its progress display shows it. Counts are of results (one per
    photo and style); see `Summary` for the terms."""

    expected: int | None  # results the sources hold, once a quick count has run
    found: int  # results the run has reached so far
    settled: int  # of those, the ones with their term (done, failed, refused...)
    done: int  # of those, already done or done now
    news: int  # failed or refused in this run
    submitted: int
    elapsed: float  # seconds since the run began
    submit_rate: float  # submissions per second allowed now ...
    max_submit_rate: float  # ... and when the API is not throttling
    slowed: bool  # the API throttled, and the rate has not climbed back yet
    uploaded_bytes: int
    upload_rate: float  # bytes per second while uploads were going out

    @property
    def total(self) -> int:
        """What the display counts up to: never less than what was found."""
        return max(self.expected or 0, self.found)


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
    ) -> None:
        key = os.environ.get(settings.api.key_env, "") if api_key is None else api_key
        if not key:
            raise UsageError(
                f"no API key: set {settings.api.key_env} (export {settings.api.key_env}=...)"
            )
        if problem := key_problem(key):
            raise UsageError(f"{settings.api.key_env}: the API key {problem}: set it again")
        self.settings = validate(settings)  # as a file's, a variable's or a flag's would be
        self._key = key
        self._retry_failed = retry_failed
        self._on_progress, self._interval = on_progress, progress_interval
        self._on_problem = on_problem
        self._journal = Journal(settings.journal_path, secret=key)
        self._session: aiohttp.ClientSession | None = None
        self._engine: Engine | None = None
        self.log: logging.Logger = logging.getLogger("batchtoon")

    def __repr__(self) -> str:
        return f"<Batch journal={self._journal.path} running={self._engine is not None}>"

    async def __aenter__(self) -> Batch:
        self._journal.open()
        log = self.settings.log_path
        try:
            self.log = open_log(log, self._key)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
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
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            self._journal.close()

    async def run(self, sources: Iterable[str | os.PathLike[str]]) -> Summary:
        """One run over `sources` (folders, manifests, images); see the module docstring."""
        if self._session is None:
            raise UsageError("use the Batch in `async with` before calling run()")
        settings = self.settings
        api = ApiClient.from_settings(self._session, settings, self._key)
        engine = Engine(
            settings, api, self._journal, [location(s) for s in sources],
            retry_failed=self._retry_failed, log=self.log, report=self._problem,
        )  # fmt: skip
        self._engine = engine
        self.log.info("start: %s", _start_line(settings, engine.sources))
        try:
            async with anyio.create_task_group() as group:
                if self._on_progress is not None:
                    group.start_soon(self._report_progress, engine)
                await engine.run()
                group.cancel_scope.cancel()
        finally:
            self._engine = None
            if self._on_progress is not None:
                self._on_progress(snapshot(engine))
        done = summarize(engine)
        self.log.info("end: %s", _end_line(done))
        if settings.report.enabled and not is_url(settings.output.dir):
            await self._write_report(done)  # the gallery links local files: not for a store
        return done

    async def _write_report(self, done: Summary) -> None:
        """The run's gallery; a failure to write it is said, and changes nothing else."""
        try:
            page = await anyio.to_thread.run_sync(
                write_report, self.settings, self._journal.ledger, done
            )
        except (OSError, Unwritable) as error:
            self._problem(f"could not write the gallery: {error}")
        else:
            self.log.info("gallery: %s", page)

    def stop(self) -> None:
        """End the current run as Ctrl-C does (a no-op between runs)."""
        if self._engine is not None:
            self._engine.stop()

    async def _report_progress(self, engine: Engine) -> None:
        assert self._on_progress is not None
        async for _ in ticks(self._interval):
            self._on_progress(snapshot(engine))

    def _problem(self, line: str) -> None:
        self.log.warning(line)
        if self._on_problem is not None:
            self._on_problem(line)


def write_report(
    settings: Settings, ledger: Ledger | Sequence[Ledger], done: Summary | None = None
) -> Path:
    """Write the gallery of everything the journal (or journals) knows, and of every result
    the output folder's record holds (another shard's too), as `<out>/index.html` (see
    `report.page` for a page the user wrote there), with this run's counts in its header (or
    the journals', without a run); blocking. For a local output folder only (`UsageError`
    for a URL: the page links its files by relative paths)."""
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
    recorded = _recorded(Provenance(out).results())
    gallery = from_ledger(
        ledger, out, counts=counts, started=started, finished=finished, shown_too=[recorded]
    )
    try:
        return write_gallery(out, gallery, workers=settings.prepare.threads)
    except OSError as error:
        raise Unwritable.from_os_error(error, out / "index.html", "write the gallery") from None


def _recorded(results: list[Result]) -> Ledger:
    """The output folder's record as a ledger: each result a target, downloaded."""
    ledger = Ledger()
    for result in results:
        key, base = f"{result.photo}:{result.style}", result.name.rpartition(".")[0]
        ledger.apply({"event": "queued", "key": key, "source": result.source, "output": base})
        ledger.apply({"event": "downloaded", "key": key, "output": result.name})
    return ledger


def _start_line(settings: Settings, sources: list[Location]) -> str:
    names = ", ".join(display(s) for s in sources)
    paces = (
        f"rate {settings.submit.rate:g}/s, concurrency {settings.submit.concurrency}, poll "
        f"every {settings.poll.interval:g} s"
    )
    styles = ",".join(style_slug(s) for s in settings.styles)
    if settings.sources.shard:
        names += f" (shard {settings.sources.shard}: its rates are the account's / N)"
    return (
        f"batchtoon {__version__}; sources {names}; styles {styles}; out "
        f"{display(settings.output.dir)}; {paces}; API {settings.api.base_url}, key "
        f"${settings.api.key_env} set"
    )


def _end_line(done: Summary) -> str:
    terms = ", ".join(f"{n} {term}" for term, n in done.results.items() if n)
    return (
        f"{done.outcome}, exit {int(done.exit_code)}: {done.found} results found ({terms}); "
        f"{done.submitted} submissions, {done.wall:.1f} s"
    )


def snapshot(engine: Engine) -> Snapshot:
    stats, rate = engine.stats, engine.submit_rate
    tally = stats.tally
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
    )
