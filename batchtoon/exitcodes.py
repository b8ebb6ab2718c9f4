"""The exit codes of `batchtoon`, defined once: the CLI returns them, the README lists them."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0  # everything asked for is done
    FAILED = 1  # some items failed (each is listed, with its reason)
    USAGE = 2  # a bad command line, config or environment variable; the journal in use
    FATAL = 3  # the API stopped the run (bad key, locked account, out of credits)
    BUDGET = 4  # --max-submissions reached
    LEFT = 5  # paid tasks could not be followed to the end now: the next run picks them up
    INTERNAL = 70  # a bug in batchtoon (EX_SOFTWARE): one line, the traceback in the log
    UNWRITABLE = 74  # a file could not be written (disk full, read-only, ...: EX_IOERR)
    STOPPED = 130  # Ctrl-C or SIGTERM
    BROKEN_PIPE = 141  # the reader of the output went away (`| head`): 128 + SIGPIPE, as a shell
