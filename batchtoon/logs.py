"""The run's log file (beside the journal), with the API key scrubbed from every line."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["open_log"]


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secret:
            record.msg = record.getMessage().replace(self._secret, "***")
            record.args = ()
        return True


def open_log(path: Path, secret: str) -> logging.Logger:
    """The `batchtoon` logger, writing to `path`; closes handlers a previous run left."""
    logger = logging.getLogger("batchtoon")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_Redact(secret))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
