"""The command line: the commands, their flags and help, and errors of one line.

Every setting's flag comes from one table, `FLAGS`: its name, metavar and help; its type,
range and default come from the settings themselves (`config.SETTINGS`). A flag's value is
kept as typed, `(spelling, text)`, and checked by `config.resolve` exactly as a config file's
or an environment variable's would be.

Errors are one line naming the command: an unknown flag or command gets "did you mean", never
the usage dump. Abbreviated flags are not accepted (`--con` is not `--concurrency`): a new flag
can never change what an old command line means.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from batchtoon.errors import UsageError
from batchtoon.locations.storage import location
from batchtoon.settings.config import ENV_PREFIX, LOCAL_CONFIG, SETTINGS, Setting, check, shown
from batchtoon.settings.styles import STYLE_SLUGS
from batchtoon.version import __version__

__all__ = [
    "COMMANDS",
    "FLAGS",
    "CommandLineError",
    "Flag",
    "build",
    "did_you_mean",
    "flag_variables",
    "parse",
    "setting_flags",
    "variable",
]

COMMANDS = ("run", "plan", "status", "report", "config", "try", "sandbox", "completion")
STATES = ("failed", "refused", "pending", "done")


class CommandLineError(UsageError):
    """A command line argparse (or we) cannot take: one line, `batchtoon <command>: <why>`."""


@dataclass(frozen=True)
class Flag:
    key: str  # the setting it sets: "submit.rate"
    name: str  # "--rate"
    metavar: str  # "" for a switch (--fix/--no-fix)
    help: str
    group: str


_WHAT, _WHERE, _API, _PACE, _RETRY, _IMAGES, _SHOW = (
    "what to process",
    "where results go",
    "the API",
    "pace and cost",
    "retries and expiry",
    "images",
    "display",
)

FLAGS: tuple[Flag, ...] = (
    Flag("styles", "--style", "LIST", "styles, comma-separated, by number, range (5-6) or "
         "name: " + ", ".join(f"{i}={slug}" for i, slug in enumerate(STYLE_SLUGS)), _WHAT),
    Flag("sources.include", "--include", "GLOB", "take only files below a SOURCE folder that "
         "match (repeatable; '*.jpg', 'trips/**')", _WHAT),
    Flag("sources.exclude", "--exclude", "GLOB", "skip files and folders that match "
         "(repeatable; 'raw', '**/tmp/**')", _WHAT),
    Flag("sources.shard", "--shard", "K/N", "take only share K of N (0 <= K < N) of the "
         "photos, the same share on every machine; it then takes 1/N of the account's rates",
         _WHAT),
    Flag("watch.enabled", "--watch", "", "after the photos there, keep running and take each "
         "new or replaced photo once it stopped changing", _WHAT),
    Flag("watch.settle", "--settle", "S", "with --watch: seconds a photo must not change", _WHAT),
    Flag("watch.scan_interval", "--scan-interval", "S", "with --watch: seconds between scans",
         _WHAT),
    Flag("watch.idle_exit", "--idle-exit", "S", "with --watch: end after S seconds with nothing "
         "new and nothing in flight", _WHAT),
    Flag("events", "--events", "FILE", "one JSON object a line per change of a result's state "
         "(- for stdout; the summary then goes to stderr)", _WHERE),
    Flag("exec.command", "--exec", "CMD", "run CMD after each stored result; {output} {photo} "
         "{style} replaced as whole arguments, no shell", _WHERE),
    Flag("exec.concurrency", "--exec-concurrency", "N", "hooks running at once", _WHERE),
    Flag("exec.timeout", "--exec-timeout", "S", "seconds before a hook is killed", _WHERE),
    Flag("output.dir", "--out", "DIR", "output folder or URL (s3://bucket/x)", _WHERE),
    Flag("journal", "--journal", "FILE", "journal (default: <out>/.batchtoon/journal.jsonl; "
         "for a URL --out, ./.batchtoon/<the URL>/journal.jsonl)", _WHERE),
    Flag("log_file", "--log-file", "FILE", "the run's log (default: beside the journal, "
         "batchtoon.log)", _WHERE),
    Flag("compact_journal", "--compact-journal", "", "end the run by rewriting the journal as "
         "one record an item (--no-compact-journal: keep every record)", _WHERE),
    Flag("output.template", "--template", "TEXT", "output names: fields dir stem name style "
         "style_name sha8 ext", _WHERE),
    Flag("output.portable_names", "--portable-names", "", "output names valid on every common "
         "file system (Windows, FAT, macOS)", _WHERE),
    Flag("output.max_result_bytes", "--max-result-bytes", "N", "refuse a larger result", _WHERE),
    Flag("report.enabled", "--report", "", "write <out>/index.html, a before/after gallery",
         _WHERE),
    Flag("api.base_url", "--api-base", "URL", "API base URL", _API),
    Flag("api.key_env", "--key-env", "NAME", "environment variable holding the API key", _API),
    Flag("api.timeout", "--timeout", "S", "one request, start to finish", _API),
    Flag("api.answer_timeout", "--answer-timeout", "S", "how long an upload's answer may take",
         _API),
    Flag("submit.concurrency", "--concurrency", "N", "uploads in flight at once (default: "
         "sized from the rate, a quarter second of uploads, 4 to 256)", _PACE),
    Flag("submit.rate", "--rate", "R", "submissions per second, all workers together", _PACE),
    Flag("poll.interval", "--poll-interval", "S", "seconds between two queries of a task", _PACE),
    Flag("poll.rate", "--poll-rate", "R", "ceiling on queries per second (default: sized from "
         "the work)", _PACE),
    Flag("poll.concurrency", "--poll-concurrency", "N", "queries in flight at once", _PACE),
    Flag("download.workers", "--download-workers", "N", "results downloaded at once", _PACE),
    Flag("max_submissions", "--max-submissions", "N", "stop submitting after N accepted "
         "submissions in this run (exit 4; run again to go on)", _PACE),
    Flag("submit.max_resubmissions", "--max-resubmissions", "N", "per photo and style, "
         "submissions again after the provider lost one", _PACE),
    Flag("retry.attempts", "--retry-attempts", "N", "tries per request, the first included",
         _RETRY),
    Flag("retry.backoff", "--retry-backoff", "S", "first backoff (exponential, full jitter)",
         _RETRY),
    Flag("retry.max_backoff", "--retry-max-backoff", "S", "longest backoff", _RETRY),
    Flag("retry.total", "--retry-total", "S", "give up on a request after this long", _RETRY),
    Flag("retry.max_wait", "--retry-max-wait", "S", "longest Retry-After honoured", _RETRY),
    Flag("result_ttl", "--result-ttl", "S", "how long the provider keeps a task and its result",
         _RETRY),
    Flag("prepare.fix", "--fix", "", "prepare images that fail only the size or format rules "
         "(rotate, downscale, re-encode)", _IMAGES),
    Flag("prepare.max_short_side", "--max-short-side", "PX", "with --fix, shrink a photo whose "
         "short side is above this ('null': never)", _IMAGES),
    Flag("prepare.quality", "--quality", "Q", "JPEG quality of a prepared upload", _IMAGES),
    Flag("prepare.fit", "--fit", "crop|pad", "a photo wider or taller than 3:2: let the provider "
         "crop its centre (plan says which), or pad it to 3:2 first to keep it all", _IMAGES),
    Flag("prepare.workers", "--prepare-workers", "N", "pre-flight threads (0: one per core)",
         _IMAGES),
    Flag("prepare.keep_metadata", "--keep-metadata", "", "send a photo's EXIF (GPS, serial "
         "numbers), XMP and text chunks on when it is sent as it is", _IMAGES),
    Flag("progress.interval", "--stats-interval", "S", "seconds between status lines when not "
         "on a terminal", _SHOW),
)  # fmt: skip

# What only a run uses: `plan` (which submits, polls and downloads nothing) takes these flags,
# so that `run` and `plan` take one command line, but its help does not list them.
RUN_ONLY = frozenset({
    "output.max_result_bytes", "log_file", "compact_journal", "report.enabled",
    "api.answer_timeout",
    "submit.concurrency", "submit.rate", "submit.max_resubmissions", "poll.interval",
    "poll.rate", "poll.concurrency", "download.workers", "max_submissions", "retry.attempts",
    "retry.backoff", "retry.max_backoff", "retry.total", "retry.max_wait", "progress.interval",
    "watch.enabled", "watch.settle", "watch.scan_interval", "watch.idle_exit", "events",
    "exec.command", "exec.concurrency", "exec.timeout",
})  # fmt: skip

_DEST = "setting:"  # a setting flag's dest: "setting:submit.rate"
CONFIG_HELP = "config file (`batchtoon config` prints the settings in force, as a file holds them)"

EPILOG_KEY = """\
The API key is read from $AILAB_API_KEY (or the variable --key-env names); it is never written
to the journal, the log, a report or any output. Every setting also comes from a config file
(--config FILE, else $BATCHTOON_CONFIG, else ./batchtoon.yaml, else the user config folder;
one found, not named, may not set api.base_url or api.key_env; --no-config skips those) or
an environment variable named after its flag (--out: BATCHTOON_OUT=cartoons) or its key
(output.dir: BATCHTOON_OUTPUT_DIR=cartoons); flags win, then the environment, then the file.
`batchtoon config` shows what is in force and where from."""

_RUN_EXAMPLES = """\
examples:
  export AILAB_API_KEY=...
  batchtoon run ~/Pictures --style 2d,vintage-comic --out cartoons
  batchtoon run photos --exclude 'raw' --include '*.jpg' --max-submissions 100
  batchtoon run ~/Pictures --sandbox --out /tmp/try  # offline, no key: a built-in sandbox

"""

_EXIT_CODES = """\
exit codes: 0 all done; 1 some items failed; 2 usage, config or environment error; 3 the API
stopped the run (key, account, credits); 4 --max-submissions reached; 5 paid tasks left for
the next run; 70 a bug; 130 Ctrl-C/SIGTERM; 141 the reader of the output went away (| head)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors and negative numbers such as `-inf` taken as values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        # `--rate -inf` is the value -inf (then refused as not finite), not an unknown flag.
        self._negative_number_matcher = re.compile(
            r"^-(\d|\.\d|inf$|infinity$|nan$)", re.IGNORECASE
        )

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        raise CommandLineError(f"{self.prog}: {message} (see {self.prog} --help)")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrapped at spaces only: a style's name (`vintage-comic`) or a flag stays whole."""
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _SettingAction(argparse.Action):
    """Keeps a setting's flag as it was typed: `(spelling, text)`; repeatable flags gather a
    list. `config.resolve` checks it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if self.nargs == 0:
            values = [not (option_string or "").startswith("--no-")]
        elif self.const == "append":
            earlier = getattr(namespace, self.dest, None)
            values = [*(earlier[1] if earlier else []), values]
        value = values[0] if self.nargs == 0 and isinstance(values, list) else values
        setattr(namespace, self.dest, (option_string, value))


def _default_text(key: str) -> str:
    default = SETTINGS[key].default
    if default is None:
        return ""
    if isinstance(default, bool):
        return " (default: on)" if default else " (default: off)"
    if isinstance(default, tuple):
        return f" (default: {','.join(map(str, default))})" if default else ""
    return f" (default: {shown(default)})"


def add_setting_flags(
    parser: argparse.ArgumentParser,
    keys: Sequence[str] | None = None,
    *,
    unlisted: Collection[str] = (),
) -> None:
    """The flags of `FLAGS` (or of `keys` only), in their groups, with defaults in their help;
    those of `unlisted` are taken but not shown in the help."""
    groups: dict[str, Any] = {}
    for flag in FLAGS:
        if keys is not None and flag.key not in keys:
            continue
        group = groups.get(flag.group) or groups.setdefault(
            flag.group, parser.add_argument_group(flag.group)
        )
        options: dict[str, Any] = {
            "dest": _DEST + flag.key,
            "action": _SettingAction,
            "default": argparse.SUPPRESS,
            "help": flag.help + _default_text(flag.key),
        }
        if flag.key in unlisted:
            options["help"] = argparse.SUPPRESS
        names = [flag.name]
        if not flag.metavar:  # a switch: --fix / --no-fix
            names.append("--no-" + flag.name.removeprefix("--"))
            options["nargs"] = 0
        else:
            options["metavar"] = flag.metavar
            if SETTINGS[flag.key].kind == "patterns":
                options["const"] = "append"
        action = group.add_argument(*names, **options)
        if flag.key == "styles":
            action.completer = _style_names  # argcomplete's hook


def _style_names(**_: object) -> tuple[str, ...]:
    """What the shell completes `--style` with (argcomplete calls it, any callable will do)."""
    return STYLE_SLUGS


# The switches of `run` (and `plan`) that set no setting; each is read from a variable named
# after it too (`--sandbox`: BATCHTOON_SANDBOX=yes) when it is not given.
SWITCHES = ("--sandbox", "--retry-failed", "--verbose", "--quiet", "--progress", "--dry-run",
            "--json", "--no-config")  # fmt: skip


_SWITCH = Setting("", "bool", False, None, None, False)  # how a switch's variable is read


def variable(flag: str) -> str:
    """The variable named after a flag: `--rate` -> `BATCHTOON_RATE`."""
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


def flag_variables() -> dict[str, str | None]:
    """A variable named after each flag: a setting's (`{"BATCHTOON_RATE": "submit.rate"}`; the
    setting's own, `BATCHTOON_SUBMIT_RATE`, works too), or None for a switch of `SWITCHES`,
    which `parse` reads itself."""
    return {
        **{variable(flag.name): flag.key for flag in FLAGS},
        **dict.fromkeys(map(variable, SWITCHES)),
    }


def setting_flags(args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """The settings given as flags: `{"submit.rate": ("--rate", "5")}`."""
    return {
        name.removeprefix(_DEST): value
        for name, value in vars(args).items()
        if name.startswith(_DEST)
    }


Handler = Callable[[argparse.Namespace], int]


def build(handlers: dict[str, Handler]) -> argparse.ArgumentParser:
    """The whole command line; `handlers` maps each command to the function that runs it."""
    parser = _Parser(
        prog="batchtoon",
        description="Turn folders of photos into cartoons through the AILabTools API, resumably.",
        epilog=_RUN_EXAMPLES + EPILOG_KEY + "\n\n" + _EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"batchtoon {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", dest="command_name")

    def command(name: str, summary: str, epilog: str = EPILOG_KEY) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, epilog=epilog)
        sub.set_defaults(handler=handlers[name], parser=sub)
        return sub

    run = command(
        "run",
        "turn SOURCE folders, manifests or images into cartoons",
        _RUN_EXAMPLES + EPILOG_KEY + "\n\n" + _EXIT_CODES,
    )
    _add_run_arguments(run, only_run=True)
    run.add_argument("--dry-run", action="store_true", help="only print the plan (see plan)")
    run.add_argument(
        "--json", action="store_true", help="the summary (with --dry-run: the plan) as JSON"
    )

    plan = command(
        "plan",
        "what a run would cost; submits nothing (exit 3: the API would stop the run: key "
        "refused, or not enough credits)",
    )
    _add_run_arguments(plan, only_run=False)
    plan.add_argument("--json", action="store_true", help="one JSON object")

    status = command("status", "what a journal says: counts, failures by kind, items")
    add_config_arguments(status)
    add_setting_flags(status, ("output.dir",))
    _add_journals_argument(status, "their sum")
    status.add_argument("--state", choices=STATES, help="list only the items in this state")
    status.add_argument(
        "--list", action="store_true", help="each item: source, style, state, output or reason"
    )
    status.add_argument(
        "--json", action="store_true", help="JSON (with --list or --state: one object a line)"
    )

    report = command("report", "write the before/after gallery of journals: <out>/index.html")
    add_config_arguments(report)
    add_setting_flags(report, ("output.dir",))
    _add_journals_argument(report, "one page")

    config = command("config", "the settings in force, and where each came from")
    add_config_arguments(config)
    config.add_argument("--json", action="store_true", help="one JSON object")
    add_setting_flags(config)

    preview = command(
        "try",
        "one photo in each style (all nine unless --style): a contact sheet and a small page",
    )
    preview.add_argument("photo", metavar="PHOTO", help="a photo (a local file)")
    add_config_arguments(preview)
    preview.add_argument("--sandbox", action="store_true", help="try against a built-in sandbox")
    preview.add_argument("--yes", action="store_true", help="do not ask before paying")
    preview.set_defaults(quiet=False)
    add_setting_flags(preview, unlisted=RUN_ONLY)

    completion = command("completion", "print the shell completion script", _COMPLETION)
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))

    _add_sandbox_arguments(command("sandbox", "serve the built-in API sandbox", _SANDBOX))
    return parser


_SANDBOX = """\
examples:
  batchtoon sandbox --port 8765 --api-key KEY --processing-time 2-6
  batchtoon sandbox --time-scale 0.01 --fault drop=0.05 --fault throttle=0.02 --redirect query=307
  AILAB_API_KEY=KEY batchtoon run photos --api-base http://127.0.0.1:8765"""

_COMPLETION = """\
install (then open a new shell):
  bash:  batchtoon completion bash > ~/.local/share/bash-completion/completions/batchtoon
  zsh:   batchtoon completion zsh > ~/.zfunc/_batchtoon   (with fpath+=(~/.zfunc) before compinit)
  fish:  batchtoon completion fish > ~/.config/fish/completions/batchtoon.fish"""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`, or `--no-config`: read no config file that was found, not named."""
    either = parser.add_mutually_exclusive_group()
    either.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    either.add_argument(
        "--no-config",
        action="store_true",
        help=f"do not look for ./{LOCAL_CONFIG} or the user's config.yaml",
    )


def _add_run_arguments(run: argparse.ArgumentParser, *, only_run: bool) -> None:
    """The arguments of `run`; `only_run` False: for `plan`, which takes them all but lists
    only those it uses (not `RUN_ONLY`'s, nor the screen's)."""
    add = run.add_argument

    def listed(text: str) -> str:
        return text if only_run else argparse.SUPPRESS

    add(
        "sources",
        nargs="+",
        type=location,  # a URL stays text: Path("s3://b") would be "s3:/b"
        metavar="SOURCE",
        help="a folder (walked recursively), a .jsonl/.csv manifest or an image; or a URL of "
        "one (s3://bucket/photos)",
    )
    add_config_arguments(run)
    add(
        "--sandbox",
        action="store_true",
        help="run against a built-in sandbox (no key needed; its state is kept in "
        "<out>/.batchtoon/sandbox)",
    )
    add("--retry-failed", action="store_true", help="try failed items again")
    # (argparse cannot draw the usage of a group whose every member is unlisted)
    loud: Any = run.add_mutually_exclusive_group() if only_run else run
    loud.add_argument(
        "-v", "--verbose", action="store_true", help=listed("the log's lines on screen too")
    )
    loud.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help=listed("only errors (items that fail) on screen: no bars"),
    )
    loud.add_argument(
        "-P",
        "--progress",
        action="store_true",
        help=listed(
            "the progress bar even when stderr is not a terminal (default: the bar on "
            "a terminal, a status line every --stats-interval elsewhere)"
        ),
    )
    add_setting_flags(run, unlisted=() if only_run else RUN_ONLY)


def _add_journals_argument(parser: argparse.ArgumentParser, together: str) -> None:
    parser.add_argument(
        "--journal",
        action="append",
        metavar="FILE",
        dest="journals",
        help=f"journal (repeatable, or a glob such as 'journal-*.jsonl': {together}; default: "
        "<out>/.batchtoon/journal.jsonl)",
    )


def _add_sandbox_arguments(sandbox: argparse.ArgumentParser) -> None:
    add = sandbox.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", default="8765", help="port (default: 8765; 0: any free one)")
    add("--api-key", default="sandbox-key", help="the key it accepts (default: sandbox-key)")
    add("--processing-time", default="2-6", metavar="S", help="seconds: N or A-B (default: 2-6)")
    add("--time-scale", default="1", metavar="X", help="real s per virtual s (default: 1)")
    add("--submit-rate", metavar="R", help="account limit, submissions/s (default: none)")
    add("--query-rate", metavar="R", help="account limit, queries/s (default: none)")
    add("--submit-window", metavar="N",
        help="at most N submissions in any 1 s of arrival, else 429 (default: none)")  # fmt: skip
    add("--query-window", metavar="N",
        help="at most N queries in any 1 s of arrival, else 429 (default: none)")  # fmt: skip
    add("--credits", metavar="N", help="credit balance (default: unlimited)")
    add("--render", choices=("cartoon", "quick", "echo"), default="cartoon",
        help="cartoon (default), quick (posterised), echo (the upload back)")  # fmt: skip
    add("--seed", metavar="N", help="random seed for faults and timings")
    add("--uplink", metavar="BYTES_PER_S", help="bandwidth shared by all uploads")
    add("--state-dir", type=Path, metavar="DIR",
        help="keep tasks, results, credits and clock here across restarts")  # fmt: skip
    add("--result-encoding", choices=("identity", "gzip", "deflate"), default="identity",
        help="compress result downloads on the wire (default: identity)")  # fmt: skip
    add("--redirect", action="append", default=[], metavar="ENDPOINT=STATUS",
        help="answer an endpoint (submit, query, credits, result) with a redirect to another "
        "origin, e.g. query=307 (repeatable)")  # fmt: skip
    add("--key-in-result-url", action="store_true", help="result URLs carry the caller's key")
    from batchtoon.sandbox.config import (
        Faults,  # the sandbox (its server) loads only when asked for
    )

    rates = [f.name for f in dataclasses.fields(Faults) if not f.name.endswith("_seconds")]
    add(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help=f"a fault's rate, 0..1: {', '.join(rates)}; or its seconds: slow_seconds=S, "
        "throttle_seconds=S, late_seconds=S, stuck_seconds=S (repeatable)",
    )


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The command line, or `CommandLineError` in one line (with "did you mean")."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None and not any(a in ("-h", "--help", "--version") for a in argv):
        raise CommandLineError(
            f"batchtoon: give a command: {', '.join(COMMANDS)} (see batchtoon --help)"
        )
    if first is not None and first not in COMMANDS and argv and argv[0] == first:
        raise CommandLineError(f"batchtoon: unknown command {first}{did_you_mean(first, COMMANDS)}")
    args, extras = parser.parse_known_args(argv)
    if extras:
        raise CommandLineError(_unknown(args.parser, extras))
    _switches_from(os.environ, args)  # those of the switches this command has
    return args


def _switches_from(environ: Mapping[str, str], args: argparse.Namespace) -> None:
    """Each switch of `SWITCHES` that the command has and that is not given on the command
    line, from its variable (checked as a setting's switch is: true/false/yes/no/on/off/1/0)."""
    for flag in SWITCHES:
        dest, name = flag.removeprefix("--").replace("-", "_"), variable(flag)
        if not getattr(args, dest, True) and environ.get(name, "").strip():
            setattr(
                args,
                dest,
                check(Setting("", "bool", False, None, None, False), environ[name], name),
            )
    loud = [f"--{dest}" for dest in ("verbose", "quiet", "progress") if getattr(args, dest, False)]
    if len(loud) > 1:
        raise UsageError(f"{' and '.join(loud)} cannot go together (see the BATCHTOON_ variables)")


def _unknown(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    flag = next((e for e in extras if e.startswith("-")), None)
    if flag is None:
        return f"{parser.prog}: unexpected argument {extras[0]!r} (see {parser.prog} --help)"
    flag = flag.partition("=")[0]
    known = [o for action in parser._actions for o in action.option_strings]
    suggestion = did_you_mean(flag, known) or f" (see {parser.prog} --help)"
    return f"{parser.prog}: unknown flag {flag}{suggestion}"


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """`: did you mean X?` (or `X or Y`), from what `word` begins or is closest to; or ""."""
    close = [c for c in candidates if c.startswith(word)] if len(word) > 3 else []
    if not 0 < len(close) <= 3:
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.7)
    return f": did you mean {' or '.join(close)}?" if close else ""
