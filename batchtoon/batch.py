"""`Batch`: batchtoon as a library — run a batch from your own asyncio code.

    import batchtoon

    settings = batchtoon.load_settings("configs/default.yaml").override(output__dir="cartoons")
    async with batchtoon.Batch(settings, on_progress=print) as batch:
        summary = await batch.run(["photos/"])
    print(summary.exit_code, summary.downloaded)

A `Batch` holds what outlives one run: the journal (locked while the batch is open, so two
processes can never share it), the log beside it, and one HTTP session. Each `run(sources)` is
one engine run over those sources; running again resumes, exactly as the command does.

Guarantees:
- the API key comes from `api_key` or the environment variable `settings.api.key_env`, and is
  never in the journal, the log, a `Snapshot`, a `Summary` or an error message;
- `on_progress` is called with a `Snapshot` every `progress_interval` seconds and once at the
  end; `on_problem` with a one-line message for every item that is refused or fails;
- `stop()` (from a signal handler, say) ends the current run as Ctrl-C does: nothing already
  paid for is lost, and the next `run` goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import anyio

from .api import ApiClient
from .clock import ticks
from .config import Settings
from .engine import Engine
from .errors import UsageError
from .exitcodes import ExitCode
from .journal import Journal
from .logs import open_log

__all__ = ["Batch", "Snapshot", "Summary"]


@dataclass(frozen=True)
class Snapshot:
    """How far a run has got, as its progress display shows it."""

    found: int  # targets (photo x style) seen so far
    skipped: int  # already done by an earlier run
    submitted: int
    finished: int  # tasks that reached a final state
    downloaded: int
    failed: int
    elapsed: float  # seconds since the run began
    submit_rate: float  # submissions per second allowed now ...
    max_submit_rate: float  # ... and when the API is not throttling


@dataclass(frozen=True)
class Summary:
    """What a run did; `exit_code` is what the command would exit with."""

    exit_code: ExitCode
    outcome: str  # done, stopped, fatal, budget
    found: int
    skipped: int
    submitted: int
    extra: int  # submissions of items the provider had already accepted once: extra cost
    downloaded: int
    failed: int
    left: int  # paid tasks left for a later run
    retries: int
    slowdowns: int
    wall: float  # seconds
    failures: Mapping[str, int]  # reason -> targets
    fatal_reason: str | None = None  # why the API stopped the run
    fatal_code: str = ""


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
        if not key.isprintable() or key != key.strip():
            raise UsageError(
                f"the API key in {settings.api.key_env} holds spaces or control characters "
                "(a line break?): set it again, as the provider gave it"
            )
        self.settings = settings
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
        try:
            self.log = open_log(self.settings.journal_path.with_name("batchtoon.log"), self._key)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
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
        api = ApiClient(
            self._session, settings.api.base_url, self._key, timeout=settings.api.timeout,
            answer_timeout=settings.api.answer_timeout, max_wait=settings.retry.max_wait,
        )  # fmt: skip
        engine = Engine(
            settings, api, self._journal, [Path(s) for s in sources],
            retry_failed=self._retry_failed, log=self.log, report=self._problem,
        )  # fmt: skip
        self._engine = engine
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
        return summarize(engine)

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


def snapshot(engine: Engine) -> Snapshot:
    stats, rate = engine.stats, engine.submit_rate
    return Snapshot(
        found=stats.found,
        skipped=stats.skipped,
        submitted=stats.submitted,
        finished=stats.finished,
        downloaded=stats.downloaded,
        failed=stats.failed,
        elapsed=engine.clock.monotonic() - stats.started,
        submit_rate=rate.rate,
        max_submit_rate=rate.max_rate,
    )


def summarize(engine: Engine) -> Summary:
    stats, fatal = engine.stats, engine.control.fatal_error
    return Summary(
        exit_code=engine.exit_code,
        outcome=engine.outcome.value,
        found=stats.found,
        skipped=stats.skipped,
        submitted=stats.submitted,
        extra=stats.extra,
        downloaded=stats.downloaded,
        failed=stats.failed,
        left=stats.left,
        retries=engine.retry.retries,
        slowdowns=engine.submit_rate.slowdowns + engine.poll_rate.slowdowns,
        wall=engine.clock.monotonic() - stats.started,
        failures=dict(stats.failures),
        fatal_reason=fatal.reason if fatal else None,
        fatal_code=fatal.code if fatal else "",
    )
