"""The run's log file (beside the journal), and its lines on screen with `-v`.

Guarantees, for every line of the log and of the screen handler alike:
- the API key is scrubbed (`***`), wherever it occurs;
- control characters (escape sequences, carriage returns, newlines) in a message are shown as
  escapes (`sources.display`): a file name or a provider's message cannot forge a log line or
  drive the terminal. A traceback (`log.exception`) keeps its lines;
- a log file that cannot be written (a full disk) stops being written, once, quietly: logging's
  own handler would print a traceback to the screen for every line; the run says what the disk
  did through its own errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from batchtoon.locations.sources import display

__all__ = ["LOGGER", "open_log", "screen_handler"]

LOGGER = "batchtoon"
_OURS = "_batchtoon_file"  # marks the handler open_log made, so a new run replaces only it


class _Scrub(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = display(record.getMessage())
        if self._secret:
            message = message.replace(self._secret, "***")
        record.msg, record.args = message, ()
        return True


def open_log(path: Path, secret: str) -> logging.Logger:
    """The `batchtoon` logger, writing to `path`; closes the file a previous run left open
    (other handlers, such as the screen's, stay)."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, _OURS, False):
            logger.removeHandler(handler)
            handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _File(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_Scrub(secret))
    setattr(handler, _OURS, True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class _File(logging.FileHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        self.setLevel(logging.CRITICAL + 1)  # the disk said no: write no more lines


class _Screen(logging.Handler):
    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except Exception:
            self.handleError(record)


def screen_handler(write: Callable[[str], None], secret: str) -> logging.Handler:
    """A handler showing the log's INFO lines and above through `write` (`-v`), scrubbed as
    the log is; add it to `logging.getLogger(LOGGER)`, remove it when done."""
    handler = _Screen(write)
    handler.setFormatter(logging.Formatter("batchtoon: %(levelname)s %(message)s"))
    handler.addFilter(_Scrub(secret))
    return handler
