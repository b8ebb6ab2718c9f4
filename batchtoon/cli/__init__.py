# PYTHON_ARGCOMPLETE_OK
"""The `batchtoon` command: `run`, `plan`, `status`, `report`, `config`, `sandbox` and
`completion`.

Exit codes (`ExitCode`, listed in the README): 0 everything downloaded; 1 some items failed;
2 usage, config or environment error; 3 the API stopped the run (or, for `plan`, would); 4 the
`--max-submissions` budget was reached; 5 paid tasks left for the next run; 70 an internal error
(a bug: the journal is intact); 74 a file could not be written (disk full, read-only, ...);
130 stopped by Ctrl-C / SIGTERM; 141 the reader of the output went away
(`batchtoon status | head -1`).

Whatever the environment does (a closed pipe, a terminal that cannot show a name, a bad
variable), the command says so in one line and never shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Sequence

from batchtoon.cli.parser import Handler, build, parse
from batchtoon.errors import DISK_TROUBLE, BatchtoonError, Unwritable, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.locations.sources import display
from batchtoon.records.logs import LOGGER

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding cannot show
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = build(
        {
            "run": _lazy("commands", "run", images=True),
            "plan": _lazy("commands", "plan", images=True),
            "try": _lazy("commands", "try_styles", images=True),
            "status": _lazy("show", "status"),
            "report": _lazy("show", "report", images=True),
            "config": _lazy("show", "config"),
            "sandbox": _lazy("commands", "sandbox", images=True),
            "completion": _lazy("show", "completion"),
        }
    )
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer, and exit
        import argcomplete  # only then: it is not free to load

        argcomplete.autocomplete(parser)
    try:
        args = parse(parser, argv)
        args.argv = argv
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        return ExitCode.STOPPED
    except Exception as raised:  # one line, never a traceback: the traceback goes to the log
        return _failed(_innermost(raised))


def _lazy(module: str, name: str, *, images: bool = False) -> Handler:
    """A command's handler, its module imported only when the command runs: `--version` and
    `--help` answer without loading the engine, its HTTP client and Pillow. Only a command
    that reads or writes `images` loads Pillow before it starts (`_quiet_pixel_bombs`)."""

    def handler(args: argparse.Namespace) -> int:
        if images:
            _quiet_pixel_bombs()
        command: Handler = getattr(importlib.import_module(f"batchtoon.cli.{module}"), name)
        return command(args)

    return handler


def _quiet_pixel_bombs() -> None:
    """An image with more pixels than Pillow decodes safely is refused with a reason
    (pre-flight, results); Pillow's own warning about it would only be a second line."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _failed(error: BaseException) -> int:
    if isinstance(error, BrokenPipeError):
        # The reader went away (`| head`): say nothing more, and do not let the exit's own
        # flush of stdout fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE
    if isinstance(error, OSError) and error.filename and error.errno in DISK_TROUBLE:
        # A file of the user's environment said no (the sandbox's state, a config file...):
        # the environment, not a bug, whichever call met it first.
        error = Unwritable.from_os_error(error, error.filename, "use")
    if isinstance(error, UsageError | Unwritable):
        message = str(error)
        prefix = "" if message.startswith("batchtoon") else "batchtoon: "
        print(f"{prefix}{display(message)}", file=sys.stderr)
        return ExitCode.USAGE if isinstance(error, UsageError) else ExitCode.UNWRITABLE
    where = _keep_traceback(error)
    print(
        f"batchtoon: internal error ({type(error).__name__}: {display(str(error))}); the "
        f"journal is intact: run the same command again, and please report this with {where}",
        file=sys.stderr,
    )
    return ExitCode.INTERNAL


def _keep_traceback(error: BaseException) -> str:
    """The traceback, in the run's log if one is open, else in a file of its own."""
    log = logging.getLogger(LOGGER)
    if any(isinstance(handler, logging.FileHandler) for handler in log.handlers):
        log.error("internal error", exc_info=error)
        return "the log"
    with tempfile.NamedTemporaryFile(
        "w", prefix="batchtoon-error-", suffix=".txt", delete=False
    ) as file:
        traceback.print_exception(error, file=file)
    return f"the traceback in {file.name}"


def _innermost(error: BaseException) -> BaseException:
    """The error itself, out of the task groups' exception groups that wrap it: the first of
    ours if several tasks met one (a full disk fails every writer at once), else the first."""
    leaves = list(_leaves(error))
    return next((e for e in leaves if isinstance(e, BatchtoonError)), leaves[0])


def _leaves(error: BaseException) -> Iterator[BaseException]:
    inner = getattr(error, "exceptions", None)
    if not inner:
        yield error
        return
    for each in inner:
        yield from _leaves(each)
