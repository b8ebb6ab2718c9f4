"""`Downloader`: fetches finished results before their URLs expire and files them.

Guarantees:
- a result is checked whole (its `Content-Length` met, its structure intact) before anything
  is written; a cut-short or broken body is fetched again within the retry policy;
- it is written to a temporary file in the run's work folder, fsync'd, and only then renamed
  into place: `<out>` never holds a partial file;
- the bytes are kept as served; the extension follows the content, not the URL;
- every target of the item (each source file with that content and style) gets its own file,
  and each is journaled `downloaded` with its size and sha256;
- an expired URL sends the item back to be submitted again.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ObjectReceiveStream

from .errors import ApiError, TaskGone, Transient
from .intact import intact_format
from .layout import Layout
from .ledger import Entry
from .retry import retrying

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Downloader", "Filed", "Written", "file_result", "write_files"]


@dataclass(frozen=True)
class Written:
    size: int
    sha256: str


@dataclass(frozen=True)
class Filed:
    paths: list[Path]  # one per base, in order
    written: Written


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
        bases = list(entry.targets)  # all of them: a resume may come after a partial write
        try:
            filed = await self._fetch_and_file(entry, bases)
        except TaskGone as error:
            await engine.lost(entry, error.reason)
        except ApiError as error:
            await engine.fail(entry, error)
        else:
            await engine.stored(entry, bases, filed)
            self.downloaded += 1

    async def _fetch_and_file(self, entry: Entry, bases: list[str]) -> Filed:
        engine = self._engine
        async for attempt in retrying(engine.settings.retry, engine.note_retry):
            with attempt:
                data = await engine.api.download(
                    entry.result_url, max_bytes=engine.settings.output.max_result_bytes
                )
                return await anyio.to_thread.run_sync(
                    file_result, data, bases, engine.layout, engine.workdir
                )
        raise AssertionError("unreachable: tenacity reraises the last error")


def file_result(data: bytes, bases: list[str], layout: Layout, workdir: Path) -> Filed:
    """Check a downloaded result whole, then write it under every base (one thread hop)."""
    try:
        fmt = intact_format(data)
    except (OSError, SyntaxError, ValueError):
        raise Transient("the result does not decode as an image") from None
    if not fmt:
        raise Transient("the result is an image of no known format")
    dests = [layout.path(base, fmt) for base in bases]
    return Filed(dests, write_files(data, dests, workdir))


def write_files(data: bytes, dests: list[Path], workdir: Path) -> Written:
    """Write `data` to every path in `dests`, each through an fsync'd temporary and a rename."""
    for dest in dests:
        part = workdir / f"{uuid.uuid4().hex}.part"
        with open(part, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)  # same file system as the work folder: atomic
    return Written(len(data), hashlib.sha256(data).hexdigest())
