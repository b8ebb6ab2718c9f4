"""`run`, `plan` and `sandbox`: the commands that talk to an API, or serve one."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import secrets
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar, get_args

import anyio
from filelock import FileLock, Timeout

from batchtoon.batch import Batch, Summary
from batchtoon.cli.found import resolved, say_first
from batchtoon.cli.heap import keep_lean, steady_heap
from batchtoon.cli.live import LiveFile, live_path
from batchtoon.cli.parser import did_you_mean, setting_flags
from batchtoon.cli.progress import Bars, StatusLines, summary
from batchtoon.errors import ApiError, InputError, RunFatal, StoreFailure, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.locations import storage
from batchtoon.locations.layout import Layout
from batchtoon.locations.sources import check_sources, display
from batchtoon.locations.storage import Location, is_url, location
from batchtoon.pipeline.engine import STOP_GRACE
from batchtoon.pipeline.planner import Plan, make_plan
from batchtoon.pipeline.producer import checker
from batchtoon.provider.api import ApiClient, LazySession
from batchtoon.provider.keys import key_problem, trimmed_key
from batchtoon.records.events import EventStream
from batchtoon.records.journal import Journal, refuse_foreign
from batchtoon.records.ledger import Ledger
from batchtoon.records.logs import LOGGER, screen_handler
from batchtoon.settings.config import Resolved, Settings, check_number, check_whole, shown
from batchtoon.settings.styles import STYLE_SLUGS
from batchtoon.words import counted

__all__ = [
    "SANDBOX_SPEEDUP",
    "api_key",
    "check_places",
    "in_loop",
    "plan",
    "run",
    "sandbox",
    "try_styles",
]

SANDBOX_SPEEDUP = 10.0  # --sandbox runs the provider's timings ten times faster

T = TypeVar("T")


def in_loop(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`main(*args)` run to its end in an event loop of its own: uvloop's where it is installed
    (its sockets, timers and callbacks are C: less CPU a photo), else asyncio's. The command
    picks the loop; `Batch` runs in whichever loop its caller has."""
    try:
        import uvloop  # noqa: F401  (anyio builds the loop from it)
    except ImportError:
        return anyio.run(main, *args)
    return anyio.run(main, *args, backend_options={"use_uvloop": True})


def api_key(settings: Settings, *, required: bool) -> str:
    """The API key from the environment, without whitespace around it (said on stderr),
    checked: `UsageError` if it is missing (and `required`) or could never go in a request
    header (a CR/LF or a space inside it, say)."""
    name = settings.api.key_env
    key, trimmed = trimmed_key(os.environ.get(name, ""))
    if not key and required:
        raise UsageError(
            f"no API key: set {name} (export {name}=...), "
            "or try the built-in sandbox with --sandbox"
        )
    if problem := key_problem(key):
        raise UsageError(f"{name}: the API key {problem}: set it again without it")
    if trimmed:
        print(f"batchtoon: the API key in ${name} {trimmed}", file=sys.stderr)
    return key


# run


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return plan(args)
    settings = resolved(args)
    say_first(settings)
    check_places(args.sources, settings.settings)
    key = "" if args.sandbox else api_key(settings.settings, required=True)
    if not args.quiet:
        _say_where(settings.settings)
    steady_heap()  # the command owns its process: a library's caller keeps its own allocator
    return in_loop(_run_async, args, settings, key)


def check_places(sources: list[Location], settings: Settings) -> None:
    """Refuse, before anything runs (the sandbox included), a SOURCE that cannot be read, a
    journal file that is not one, or an output in a store that cannot be used (no backend, no
    bucket, no right, no network): one line naming it."""
    check_sources(sources)
    refuse_foreign(Path(settings.journal_path))
    out = location(settings.output.dir)
    if isinstance(out, str):
        try:
            storage.check_container(out)
        except StoreFailure as failure:
            raise UsageError(f"--out {display(out)}: {display(str(failure))}") from None


def _say_where(settings: Settings) -> None:
    """For an output in a store: where its journal and work folder are kept (locally), once."""
    if not is_url(settings.output.dir):
        return
    journal = "" if settings.journal else f"journal {display(str(settings.journal_path))}; "
    print(
        f"batchtoon: output {display(settings.output.dir)}: {journal}work folder "
        f"{display(str(settings.work_dir))}; no gallery (it is for local folders)",
        file=sys.stderr,
    )


async def _run_async(args: argparse.Namespace, resolved: Resolved, key: str) -> int:
    bars = _progress(args, resolved.settings)
    events = resolved.settings.events
    try:
        async with api_target(args, resolved, key, keep_state=True) as (settings, key):
            live = closing(LiveFile(live_path(settings.journal_path), bars))
            with _log_on_screen(args.verbose, key), _event_stream(events) as stream, live as show:
                batch = Batch(
                    settings, api_key=key, retry_failed=args.retry_failed, on_progress=show,
                    on_problem=None if args.verbose else _show_problem,
                    on_event=stream.write if stream is not None else None,
                    config_file=resolved.config,
                )  # fmt: skip
                async with batch, anyio.create_task_group() as group:
                    group.start_soon(_on_signals, batch, _again(args.argv))
                    group.start_soon(keep_lean)
                    done = await batch.run(args.sources)
                    group.cancel_scope.cancel()
    finally:
        if isinstance(bars, Bars):
            bars.close()
    out = sys.stderr if events == "-" else sys.stdout  # stdout carries the events
    try:
        if args.json:
            print(json.dumps(done.as_json(), ensure_ascii=False), file=out)
        else:
            print_lines(summary(done), out)
            if done.gallery is not None:
                print_lines(f"gallery: {done.gallery}", out)
    finally:  # on stderr even if stdout's reader is gone (`| tee`, which a Ctrl-C ends too)
        _advise(done, settings, args.argv)
        _advise_gallery(done, settings)
    return done.exit_code


def _progress(args: argparse.Namespace, settings: Settings) -> Bars | StatusLines | None:
    """A bar on a terminal; elsewhere (cron, a pipe, a file), a status line now and then."""
    if args.quiet:
        return None
    if args.progress or (sys.stderr.isatty() and not os.environ.get("NO_COLOR")):
        return Bars()
    return StatusLines(settings.progress.interval)


@asynccontextmanager
async def api_target(
    args: argparse.Namespace, resolved: Resolved, key: str, *, keep_state: bool
) -> AsyncIterator[tuple[Settings, str]]:
    """The API to talk to: the configured one, or for `--sandbox` a sandbox started here, at
    ten times the provider's pace. With `keep_state` its tasks are kept beside the journal
    (`<out>/.batchtoon/sandbox`, with the run's key), so a resumed run polls its old tasks
    instead of submitting them again."""
    settings = resolved.settings
    if not args.sandbox:
        yield settings, key
        return
    from batchtoon.sandbox import Sandbox, run_key  # only --sandbox needs the server

    scale = 1 / SANDBOX_SPEEDUP
    state = settings.work_dir / "sandbox" if keep_state else None
    with _locked(state):
        key = run_key(state) if state is not None else secrets.token_hex(16)
        async with Sandbox(
            api_keys=(key,), state_dir=state, time_scale=scale, processing_time=(2.0, 6.0)
        ) as sandbox:
            if keep_state and not args.quiet:
                print(
                    f"sandbox: {sandbox.base_url} (the provider's timings "
                    f"x{SANDBOX_SPEEDUP:g}; its state in {display(str(state))})",
                    file=sys.stderr,
                )
            yield _at_sandbox_pace(settings, resolved.origins, sandbox.base_url, scale), key


def _at_sandbox_pace(
    settings: Settings, origins: Mapping[str, str], base_url: str, scale: float
) -> Settings:
    """The settings for a sandbox `scale` times the provider's pace: the defaults of the
    paces scaled, what the user set (anywhere) kept as set."""
    paced: dict[str, Any] = {"api__base_url": base_url}
    if origins["poll.interval"] == "default":
        paced["poll__interval"] = settings.poll.interval * scale
    if origins["submit.rate"] == "default":
        paced["submit__rate"] = settings.submit.rate / scale
    if origins["poll.rate"] == "default" and settings.poll.rate is not None:
        paced["poll__rate"] = settings.poll.rate / scale
    return settings.override(**paced)


@contextmanager
def _locked(state: Path | None) -> Iterator[None]:
    """Hold the sandbox state folder for this process (two runs must not share it)."""
    if state is None:
        yield
        return
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with FileLock(state / "lock", timeout=0):
            yield
    except Timeout:
        raise UsageError(
            f"the sandbox state in {display(str(state))} is in use by another batchtoon run"
        ) from None


@contextmanager
def _log_on_screen(verbose: bool, key: str) -> Iterator[None]:
    """With `-v`, the log's lines on screen too (above the bars), scrubbed as the log is."""
    if not verbose:
        yield
        return
    from tqdm import tqdm  # (loaded where it writes: a run with nothing to say never does)

    logger = logging.getLogger(LOGGER)
    handler = screen_handler(lambda line: tqdm.write(line, file=sys.stderr), key)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def _on_signals(batch: Batch, again: str) -> None:
    """The first Ctrl-C or SIGTERM stops the batch (the prompt is back within `STOP_GRACE` + 1
    s); a second quits at once: every record that mattered is on disk already, and the same
    command goes on from there."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stopping = False
        async for _ in signals:
            if stopping:
                print(
                    f"\nbatchtoon: stopped at once; nothing is lost: to go on, run: {again}",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(ExitCode.STOPPED)
            print(
                f"\nbatchtoon: stopping (up to {STOP_GRACE:g} s for the uploads on the wire; "
                "Ctrl-C again to quit at once)...",
                file=sys.stderr,
            )
            stopping = True
            batch.stop()


def _show_problem(line: str) -> None:
    """A per-item problem, on the terminal above the progress bars (the log has it too)."""
    from tqdm import tqdm

    tqdm.write(f"batchtoon: {display(line)}", file=sys.stderr)


def print_lines(text: str, out: TextIO | None = None) -> None:
    """Print `text` line by line, each fit for a terminal (`sources.display`)."""
    print("\n".join(display(line) for line in text.split("\n")), file=out or sys.stdout)


@contextmanager
def _event_stream(where: str | None) -> Iterator[EventStream | None]:
    if where is None:
        yield None
        return
    with EventStream(where) as stream:
        yield stream


def _again(argv: list[str]) -> str:
    """The command that goes on where this one ends."""
    return display(shlex.join(["batchtoon", *argv]))


def _advise(done: Summary, settings: Settings, argv: list[str]) -> None:
    again = _again(argv)
    if done.fatal_reason is not None:
        advice = {
            "ERROR_NOT_ENOUGH_CREDITS": "top up the account's credits",
            "ERROR_USER_LOCKED": "ask the provider why the account is locked",
        }.get(done.fatal_code, f"check the API key in ${settings.api.key_env}")
        print(
            f"batchtoon: the API stopped this run: {display(done.fatal_reason)}\n"
            f"  {advice}, then run the same command again: {again}",
            file=sys.stderr,
        )
    elif done.problem is not None:
        print(f"batchtoon: stopped: {display(done.problem)}; then run: {again}", file=sys.stderr)
    elif done.exit_code == ExitCode.STOPPED:
        print(f"batchtoon: stopped; to go on, run: {again}", file=sys.stderr)
    elif done.exit_code == ExitCode.BUDGET:
        print(f"batchtoon: submission budget reached; to go on, run: {again}", file=sys.stderr)
    elif done.exit_code == ExitCode.LEFT:
        print(
            f"batchtoon: {done.left_tasks} paid tasks could not be followed to the end now (see "
            f"the log); they are kept: to pick them up, run: {again}",
            file=sys.stderr,
        )


def _advise_gallery(done: Summary, settings: Settings) -> None:
    """A run that should have written the gallery but did not (stopped, or it could not): the
    command that writes it."""
    if done.gallery is not None or not settings.report.enabled or is_url(settings.output.dir):
        return
    command = ["batchtoon", "report", "--out", settings.output.dir]
    if settings.journal:
        command += ["--journal", str(settings.journal)]
    print(
        "batchtoon: the gallery was not written this time; to write it, run: "
        + display(shlex.join(command)),
        file=sys.stderr,
    )


# plan


def plan(args: argparse.Namespace) -> int:
    """Exit 0 if a run could go ahead; 3 if the API would stop it (the key refused, or fewer
    credits than billable submissions)."""
    settings = resolved(args)
    say_first(settings)
    check_places(args.sources, settings.settings)
    key = "" if args.sandbox else api_key(settings.settings, required=False)
    return in_loop(_plan_async, args, settings, key)


async def _plan_async(args: argparse.Namespace, resolved: Resolved, key: str) -> int:
    settings = resolved.settings
    path = settings.journal_path
    ledger = Journal.replay(path).ledger if path.exists() else Ledger()
    made = await make_plan(settings, args.sources, ledger, retry_failed=args.retry_failed)
    refused = ""
    if key or args.sandbox:
        async with api_target(args, resolved, key, keep_state=False) as (target, key):
            made.balance, refused = await _balance(target, key)
    print_lines(json.dumps(made.as_json(), ensure_ascii=False) if args.json else str(made))
    return _verdict(made, refused, settings)


async def _balance(settings: Settings, key: str) -> tuple[float | None, str]:
    """The account's credit balance (None, said on stderr, if the API cannot tell now), and
    why the API refused the key ("" if it did not)."""
    session = LazySession()
    try:
        balances = await ApiClient.from_settings(session, settings, key).credits()
    except RunFatal as error:
        return None, error.reason
    except ApiError as error:
        print(f"batchtoon: could not read the balance: {display(error.reason)}", file=sys.stderr)
        return None, ""
    finally:
        await session.close()
    return min((b.balance for b in balances), default=None), ""


def _verdict(made: Plan, refused: str, settings: Settings) -> int:
    if refused:
        print(
            f"batchtoon: the API refused the key in ${settings.api.key_env}: {display(refused)}",
            file=sys.stderr,
        )
        return ExitCode.FATAL
    balance = made.balance
    if balance is not None and 0 <= balance < made.billable:
        print(
            f"batchtoon: not enough credits: the balance is {balance:g} and this run needs "
            f"{made.billable}: top up, or pass --max-submissions {int(balance)}",
            file=sys.stderr,
        )
        return ExitCode.FATAL
    return ExitCode.OK


# sandbox


def sandbox(args: argparse.Namespace) -> int:
    from batchtoon.sandbox import Sandbox

    config = _sandbox_config(args)

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Sandbox(config) as server:
                print(f"batchtoon sandbox at {server.base_url} (Ctrl-C stops it)", flush=True)
                print(f"  header:  ailabapi-api-key: {display(args.api_key)}", flush=True)
                if config.state_dir is not None:
                    print(f"  state:   {display(str(config.state_dir))}", flush=True)
                async for _ in signals:
                    break
        print("sandbox stopped", flush=True)

    try:
        anyio.run(serve)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {args.host}:{config.port}: {error.strerror or error}"
        ) from None
    return 0


def _sandbox_config(args: argparse.Namespace) -> Any:
    from batchtoon.sandbox import Faults, SandboxConfig
    from batchtoon.sandbox.config import Endpoint

    def optional(raw: str | None, where: str, low: float) -> float | None:
        return None if raw is None else check_number(raw, where, low=low)

    def window(raw: str | None, where: str) -> int | None:
        return None if raw is None else check_whole(raw, where, low=1)

    low, dash, high = args.processing_time.partition("-")
    if dash and not high:
        raise UsageError(f"--processing-time: {shown(args.processing_time)} is not N or A-B")
    times = (
        check_number(low, "--processing-time", low=0),
        check_number(high or low, "--processing-time", low=0),
    )
    if times[0] > times[1]:
        raise UsageError(f"--processing-time: {shown(args.processing_time)}: A is above B")
    redirects: dict[Endpoint, int] = {}
    for item in args.redirect:
        name, status = _pair(item, "--redirect", "ENDPOINT=STATUS", get_args(Endpoint))
        redirects[name] = check_whole(status, f"--redirect {name}", low=300, high=399)  # type: ignore[index]
    faults: dict[str, float] = {}
    fault_names = [f.name for f in dataclasses.fields(Faults)]
    for item in args.fault:
        name, rate = _pair(item, "--fault", "NAME=RATE", fault_names)
        high_rate = None if name.endswith("_seconds") else 1.0
        faults[name] = check_number(rate, f"--fault {name}", low=0, high=high_rate)
    return SandboxConfig(
        api_keys=(args.api_key,),
        processing_time=times,
        time_scale=check_number(args.time_scale, "--time-scale", low=1e-6),
        submit_rate=optional(args.submit_rate, "--submit-rate", 0.001),
        query_rate=optional(args.query_rate, "--query-rate", 0.001),
        submit_window=window(args.submit_window, "--submit-window"),
        query_window=window(args.query_window, "--query-window"),
        credits=None if args.credits is None else check_whole(args.credits, "--credits", low=0),
        render=args.render,
        seed=None if args.seed is None else check_whole(args.seed, "--seed"),
        faults=Faults(**faults),
        host=args.host,
        port=check_whole(args.port, "--port", low=0, high=65535),
        redirects=redirects,
        result_encoding=args.result_encoding,
        key_in_result_url=args.key_in_result_url,
        uplink=optional(args.uplink, "--uplink", 1.0),
        state_dir=args.state_dir,
    )


def _pair(item: str, flag: str, form: str, names: Any) -> tuple[str, str]:
    """`NAME=VALUE` with NAME one of `names`, or a one-line `UsageError`."""
    name, equals, value = item.partition("=")
    name = name.strip()
    if not equals:
        raise UsageError(f"{flag}: {shown(item)} is not {form}")
    if name not in names:
        hint = did_you_mean(name, list(names)) or f" (one of {', '.join(names)})"
        raise UsageError(f"{flag}: unknown {form.partition('=')[0].lower()} {shown(name)}{hint}")
    return name, value


def try_styles(args: argparse.Namespace) -> int:
    """`batchtoon try PHOTO`: the photo in each style (all nine unless --style), a contact
    sheet and a small page of them; its results go in the journal like a run's."""
    found = resolved(args)
    say_first(found)
    if "styles" not in setting_flags(args):
        found = dataclasses.replace(
            found, settings=found.settings.override(styles=tuple(range(len(STYLE_SLUGS))))
        )
    settings = found.settings
    photo = location(args.photo)
    if not isinstance(photo, Path) or is_url(settings.output.dir):
        raise UsageError("try takes a local photo and a local --out (its sheet is a file)")
    check_places([photo], settings)
    try:
        checker(settings, cache=False)(photo)  # refused now, before anything is asked
    except InputError as error:
        raise UsageError(f"{display(str(photo))}: {error}") from None
    _ask(args, photo, len(settings.styles))
    key = "" if args.sandbox else api_key(settings, required=True)
    return in_loop(_try_async, args, found, key, photo)


def _ask(args: argparse.Namespace, photo: Path, styles: int) -> None:
    """Say the cost; on a terminal ask, elsewhere go on only with --yes."""
    cost = f"{counted(styles, 'style')} of {display(str(photo))}: up to " + counted(
        styles, "submission"
    )
    print(f"batchtoon: {cost} (a style already done costs nothing)", file=sys.stderr)
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"not on a terminal: pass --yes to pay for up to {styles} submissions")
    if input("go on? [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("nothing sent")


async def _try_async(args: argparse.Namespace, found: Resolved, key: str, photo: Path) -> int:
    async with api_target(args, found, key, keep_state=True) as (settings, key):
        settings = settings.override(report__enabled=False)  # its own small page instead
        async with Batch(settings, api_key=key, on_problem=_show_problem) as batch:
            done = await batch.run([photo])
    results = _results(settings, photo)
    folder = Path(settings.output.dir) / "try"
    from batchtoon.report.contact import write_contact  # (Pillow's drawing: `try` only)

    sheet, page = await anyio.to_thread.run_sync(write_contact, photo, results, folder, photo.stem)
    print_lines(summary(done))
    print_lines(f"contact sheet: {sheet}\ngallery: {page}")
    return done.exit_code


def _results(settings: Settings, photo: Path) -> dict[int, Path | None]:
    """Each style's result file of `photo`, as the journal knows it (None: none)."""
    ledger = Journal.replay(settings.journal_path).ledger
    layout = Layout(location(settings.output.dir), settings.output.template,
                    portable=settings.output.portable_names)  # fmt: skip
    results: dict[int, Path | None] = dict.fromkeys(settings.styles)
    for entry in ledger.entries.values():
        if entry.state != "downloaded" or entry.style not in results:
            continue
        for base, source in entry.targets.items():
            if source == str(photo):
                file = layout.file(base, entry.ext)
                results[entry.style] = file if isinstance(file, Path) and file.is_file() else None
    return results
