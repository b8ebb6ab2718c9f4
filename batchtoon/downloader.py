"""`Downloader`: fetches finished results before their URLs expire and files them.

Guarantees:
- a result is streamed to a temporary file in the run's work folder, checked to decode as an
  image, fsync'd, and only then renamed into place: `<out>` never holds a partial file;
- the bytes are kept as served; the extension follows the content, not the URL;
- every target of the item (each source file with that content and style) gets its own file,
  and each is journaled `downloaded` with its size and sha256;
- a cut-short or undecodable body is retried within the retry policy; an expired URL sends
  the item back to be submitted again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ObjectReceiveStream
from PIL import Image

from .api import Download
from .errors import ApiError, ItemRejected, TaskGone, Transient
from .ledger import Entry
from .retry import retrying

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Downloader"]


class Downloader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.downloaded = 0

    def __repr__(self) -> str:
        return f"<Downloader downloaded={self.downloaded}>"

    async def run(self, results: ObjectReceiveStream[Entry]) -> None:
        async with results:
            async for entry in results:
                await self._handle(entry)

    async def _handle(self, entry: Entry) -> None:
        engine = self._engine
        if time.time() > entry.expires_at:
            await engine.lost(entry, "the result URL expired before it was downloaded")
            return
        part = engine.workdir / f"{entry.key.replace(':', '.')}.part"
        try:
            download, fmt = await self._fetch(entry, part)
            await engine.store(entry, part, fmt, download)
            self.downloaded += 1
        except TaskGone as error:
            await engine.lost(entry, error.reason)
        except ApiError as error:
            await engine.fail(entry, error)
        finally:
            part.unlink(missing_ok=True)

    async def _fetch(self, entry: Entry, part: Path) -> tuple[Download, str]:
        engine = self._engine
        async for attempt in retrying(engine.settings.retry, engine.note_retry):
            with attempt:
                download = await engine.api.download(
                    entry.result_url, part, max_bytes=engine.settings.output.max_result_bytes
                )
                return download, await anyio.to_thread.run_sync(_decodable, part)
        raise AssertionError("unreachable: tenacity reraises the last error")


def _decodable(part: Path) -> str:
    """The image format of a finished download, once it is known to decode; then fsync it."""
    try:
        with Image.open(part) as image:
            image.load()
            fmt = image.format or ""
    except (OSError, SyntaxError, ValueError):
        raise Transient("the result does not decode as an image") from None
    if not fmt:
        raise ItemRejected("the result is an image of unknown format")
    with open(part, "rb") as file:
        os.fsync(file.fileno())
    return fmt


def place(part: Path, dest: Path) -> None:
    """Rename a finished, checked file into place (same file system: atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
