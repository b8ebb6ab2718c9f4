"""The `batchtoon` command: `run`, `plan`, `status` and `sandbox`.

Exit codes: 0 everything downloaded; 1 some items failed; 2 usage or config error; 3 stopped by
a run-fatal API error (bad key, out of credits) after finishing what was submitted; 4 the
`--max-submissions` budget was reached; 70 an internal error (a bug: the journal is intact);
130 stopped by Ctrl-C / SIGTERM (run it again to go on).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from tqdm import tqdm

from . import __version__
from .api import ApiClient
from .batch import Batch, Summary
from .config import Settings, load_settings
from .errors import ApiError, UsageError
from .exitcodes import ExitCode
from .journal import Journal
from .ledger import Ledger
from .planner import make_plan
from .progress import Bars, summary
from .sources import check_sources, display
from .styles import parse_styles

__all__ = ["main"]

SANDBOX_SPEEDUP = 10.0  # --sandbox runs the provider's timings ten times faster


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
        return code
    except KeyboardInterrupt:
        return ExitCode.STOPPED
    except Exception as raised:  # one line, never a traceback: the traceback goes to the log
        error = _innermost(raised)
        if isinstance(error, UsageError):
            print(f"batchtoon: {error}", file=sys.stderr)
            return ExitCode.USAGE
        logging.getLogger("batchtoon").exception("internal error")
        print(
            f"batchtoon: internal error ({type(error).__name__}: {error}); the journal is "
            "intact: run the same command again, and please report this with the log",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


def _innermost(error: BaseException) -> BaseException:
    """The error itself, out of the task groups' exception groups that wrap it."""
    while (inner := getattr(error, "exceptions", None)) and len(inner) == 1:
        error = inner[0]
    return error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchtoon", description="Turn folders of photos into cartoons, resumably."
    )
    parser.add_argument("--version", action="version", version=f"batchtoon {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="process SOURCE folders or manifests")
    run.set_defaults(command=_run)
    _add_run_arguments(run)
    run.add_argument("--dry-run", action="store_true", help="only print the plan (see plan)")
    plan = commands.add_parser("plan", help="what a run would cost; submits nothing")
    plan.set_defaults(command=_plan)
    _add_run_arguments(plan)

    status = commands.add_parser("status", help="what a journal says")
    status.set_defaults(command=_status)
    status.add_argument("--journal", type=Path, help="journal file")
    status.add_argument("--out", help="output folder whose journal to read")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object")

    sandbox = commands.add_parser("sandbox", help="serve the built-in API sandbox")
    sandbox.set_defaults(command=_sandbox)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--api-key", default="sandbox-key")
    sandbox.add_argument("--processing-time", default="2-6", help="seconds: N or A-B")
    sandbox.add_argument("--time-scale", type=float, default=1.0, help="real s per virtual s")
    sandbox.add_argument("--submit-rate", type=float, help="account limit, requests/s")
    sandbox.add_argument("--query-rate", type=float, help="account limit, requests/s")
    sandbox.add_argument("--credits", type=int, help="credit balance (default: unlimited)")
    sandbox.add_argument("--render", choices=("cartoon", "quick", "echo"), default="cartoon")
    sandbox.add_argument("--seed", type=int)
    return parser


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("sources", nargs="+", type=Path, metavar="SOURCE")
    run.add_argument("--config", type=Path, help="YAML config (see configs/default.yaml)")
    run.add_argument("--style", help="styles: 0-8 or names, comma-separated (e.g. 0,2d,5-6)")
    run.add_argument("--out", help="output folder")
    run.add_argument("--journal", help="journal file (default: <out>/.batchtoon/journal.jsonl)")
    target = run.add_mutually_exclusive_group()
    target.add_argument("--api-base", help="API base URL")
    target.add_argument("--sandbox", action="store_true", help="run against a built-in sandbox")
    run.add_argument("--poll-interval", type=float, help="seconds between polls of a task")
    run.add_argument("--concurrency", type=int, help="uploads in flight at once")
    run.add_argument("--rate", type=float, help="submissions per second")
    run.add_argument("--poll-rate", type=float, help="queries per second")
    run.add_argument(
        "--fix",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="convert what the API refuses, shrink large photos (on; --no-fix: send as they are)",
    )
    run.add_argument("--max-submissions", type=int, help="stop submitting after N")
    run.add_argument("--retry-failed", action="store_true", help="try failed items again")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--json", action="store_true", help="plan only: one JSON object")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    try:
        styles = parse_styles(args.style) if getattr(args, "style", None) else None
    except ValueError as error:
        raise UsageError(f"--style: {error}") from None
    return settings.override(
        styles=styles,
        output__dir=args.out,
        journal=args.journal and str(args.journal),
        api__base_url=getattr(args, "api_base", None),
        poll__interval=getattr(args, "poll_interval", None),
        submit__concurrency=getattr(args, "concurrency", None),
        submit__rate=getattr(args, "rate", None),
        poll__rate=getattr(args, "poll_rate", None),
        prepare__fix=getattr(args, "fix", None),
        max_submissions=getattr(args, "max_submissions", None),
    )


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _plan(args)
    settings = _settings(args)
    check_sources(args.sources)
    key = os.environ.get(settings.api.key_env, "")
    if not key and not args.sandbox:
        raise UsageError(
            f"no API key: set {settings.api.key_env} (export {settings.api.key_env}=...), "
            "or try the built-in sandbox with --sandbox"
        )
    return anyio.run(_run_async, args, settings, key)


async def _run_async(args: argparse.Namespace, settings: Settings, key: str) -> int:
    quiet = args.quiet or not sys.stderr.isatty()
    bars = None if quiet else Bars()
    async with _api_target(args, settings, key) as (settings, key):
        batch = Batch(
            settings, api_key=key, retry_failed=args.retry_failed, on_progress=bars,
            on_problem=_show_problem,
        )  # fmt: skip
        try:
            async with batch, anyio.create_task_group() as group:
                group.start_soon(_on_signals, batch)
                done = await batch.run(args.sources)
                group.cancel_scope.cancel()
        finally:
            if bars is not None:
                bars.close()
    print(summary(done))
    _advise(done, settings)
    return done.exit_code


@asynccontextmanager
async def _api_target(
    args: argparse.Namespace, settings: Settings, key: str, *, quiet: bool = False
) -> AsyncIterator[tuple[Settings, str]]:
    """The API to talk to: the configured one, or a sandbox started here for `--sandbox`."""
    if not args.sandbox:
        yield settings, key
        return
    from .sandbox import Sandbox  # only --sandbox needs the server

    key = secrets.token_hex(16)
    scale = 1 / SANDBOX_SPEEDUP
    async with Sandbox(api_keys=(key,), time_scale=scale, processing_time=(2.0, 6.0)) as sandbox:
        if not quiet:
            print(f"sandbox: {sandbox.base_url} (the provider's timings x{SANDBOX_SPEEDUP:g})")
        yield (
            settings.override(
                api__base_url=sandbox.base_url,
                poll__interval=args.poll_interval or settings.poll.interval * scale,
                submit__rate=args.rate or settings.submit.rate / scale,
                poll__rate=args.poll_rate or (settings.poll.rate and settings.poll.rate / scale),
            ),
            key,
        )


async def _on_signals(batch: Batch) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stopping = False
        async for _ in signals:
            if stopping:
                print("\nbatchtoon: stopped at once; the journal replays", file=sys.stderr)
                os._exit(ExitCode.STOPPED)
            print("\nbatchtoon: stopping (Ctrl-C again to quit at once)...", file=sys.stderr)
            stopping = True
            batch.stop()


def _show_problem(line: str) -> None:
    """A per-item problem, on the terminal above the progress bars (the log has it too)."""
    tqdm.write(f"batchtoon: {display(line)}", file=sys.stderr)


def _advise(done: Summary, settings: Settings) -> None:
    again = shlex.join(["batchtoon", *sys.argv[1:]])
    if done.fatal_reason is not None:
        advice = {
            "ERROR_NOT_ENOUGH_CREDITS": "top up the account's credits",
            "ERROR_USER_LOCKED": "ask the provider why the account is locked",
        }.get(done.fatal_code, f"check the API key in ${settings.api.key_env}")
        print(
            f"batchtoon: the API stopped this run: {done.fatal_reason}\n"
            f"  {advice}, then run the same command again: {again}",
            file=sys.stderr,
        )
    elif done.exit_code == ExitCode.STOPPED:
        print(f"batchtoon: stopped; to go on, run: {again}", file=sys.stderr)
    elif done.exit_code == ExitCode.BUDGET:
        print(f"batchtoon: submission budget reached; to go on, run: {again}", file=sys.stderr)
    elif done.exit_code == ExitCode.LEFT:
        print(
            f"batchtoon: {done.left} paid tasks could not be followed to the end now (see the "
            f"log); they are kept: to pick them up, run: {again}",
            file=sys.stderr,
        )


def _plan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_sources(args.sources)
    return anyio.run(_plan_async, args, settings, os.environ.get(settings.api.key_env, ""))


async def _plan_async(args: argparse.Namespace, settings: Settings, key: str) -> int:
    path = settings.journal_path
    ledger = Journal.replay(path).ledger if path.exists() else Ledger()
    plan = await make_plan(settings, args.sources, ledger, retry_failed=args.retry_failed)
    if key or args.sandbox:
        async with _api_target(args, settings, key, quiet=args.json) as (settings, key):
            plan.balance = await _balance(settings, key)
    print(json.dumps(plan.as_json(), ensure_ascii=False) if args.json else plan)
    return 0


async def _balance(settings: Settings, key: str) -> float | None:
    """The account's credit balance, or None (said on stderr) if the API cannot tell."""
    async with aiohttp.ClientSession() as session:
        api = ApiClient(session, settings.api.base_url, key, timeout=settings.api.timeout)
        try:
            balances = await api.credits()
        except ApiError as error:
            print(f"batchtoon: could not read the balance: {error.reason}", file=sys.stderr)
            return None
    return min((b.balance for b in balances), default=None)


def _status(args: argparse.Namespace) -> int:
    settings = load_settings(args.config).override(output__dir=args.out)
    path = args.journal or settings.journal_path
    if not path.exists():
        raise UsageError(f"no journal at {path}: pass --journal or --out")
    ledger = Journal.replay(path).ledger
    report: dict[str, Any] = {"counts": ledger.counts(), "failed": ledger.failures()}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(", ".join(f"{state} {n}" for state, n in report["counts"].items()))
    for row in report["failed"]:
        print(f"failed: {row['source']} (style {row['style']}): {row['reason']}")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox import Sandbox, SandboxConfig

    low, _, high = args.processing_time.partition("-")
    try:
        times = (float(low), float(high or low))
    except ValueError:
        raise UsageError("--processing-time takes seconds: N or A-B (e.g. 2-6)") from None
    config = SandboxConfig(
        api_keys=(args.api_key,),
        processing_time=times,
        time_scale=args.time_scale,
        submit_rate=args.submit_rate,
        query_rate=args.query_rate,
        credits=args.credits,
        render=args.render,
        seed=args.seed,
        host=args.host,
        port=args.port,
    )

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Sandbox(config) as sandbox:
                print(f"batchtoon sandbox at {sandbox.base_url} (Ctrl-C stops it)", flush=True)
                print(f"  header:  ailabapi-api-key: {args.api_key}", flush=True)
                async for _ in signals:
                    break
        print("sandbox stopped", flush=True)

    try:
        anyio.run(serve)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    return 0
