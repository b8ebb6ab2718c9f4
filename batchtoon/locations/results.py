"""Result files: a downloaded result checked whole, then written under each of its outputs.

Guarantees:
- a result is held in memory only up to `IN_MEMORY` bytes (a usual 1536 px result is well
  under); beyond that it streams into its part file as it arrives, so memory stays bounded
  whatever a server sends (with every download worker busy: workers x `IN_MEMORY`);
- nothing is kept unless it is a whole image (`intact_format`): a cut-short or broken body
  raises `Transient` (the caller fetches it again), a pixel bomb `ItemRejected`;
- each output is written to a part file *in its own folder*
  (`.<name>.<unique>.batchtoon-part`), fsync'd, then renamed over its final name: `<out>`
  never holds a partial result, and any journal location and any file system work (the
  rename never crosses devices);
- a part file's name is its writer's own (`Layout.part`) and it is created exclusively,
  never through a symbolic link (`files.create_part`): two writers of one output never share a
  part, a link planted where a part goes is left alone and named in the error, and a part a
  killed run left is replaced by the resume's write of the same output; a failed attempt
  removes its own part by name;
- a file that cannot be written is `Unwritable`, naming the path (disk full, read-only...);
- the bytes are kept as served; the extension follows the content, not the URL.

For an output in a store (a URL, see `storage`) the result is one whole PUT, from memory or
from the part file (a local one in the run's work folder, gone after the upload), checked
after (size, and MD5 where the store's ETag is one): a store never holds part of a result.
Copies for duplicates are made by the store itself. A write the store failed in a way that
may pass is `StoreBusy` (the downloader retries it within the retry policy; still failing,
the run stops as for a full disk); a store that refuses (no bucket, no right) and a failed
copy are `Unwritable`.

Blocking, except `Spool.write`: call the rest in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from PIL import Image

from batchtoon.errors import ItemRejected, StoreBusy, StoreFailure, Transient, Unwritable
from batchtoon.images.intact import TooManyPixels, intact_format
from batchtoon.locations import storage
from batchtoon.locations.files import Fill, create_part, write_whole
from batchtoon.locations.layout import Layout
from batchtoon.locations.storage import Location
from batchtoon.pipeline.outcomes import Filed

__all__ = ["IN_MEMORY", "Spool", "copy_result", "file_spool"]

IN_MEMORY = 2 << 20  # bytes of a result held in memory before it goes to its part file
CHUNK = 1 << 20


class Spool:
    """A result as it streams in: in memory up to `in_memory` bytes, then in `part`."""

    def __init__(self, part: Path, in_memory: int = IN_MEMORY) -> None:
        self.part = part
        self.size = 0
        self._in_memory = in_memory
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._hash.update(chunk)
        if self._file is None and self.size <= self._in_memory:
            self._buffer += chunk
            return
        try:
            if self._file is None:
                self.part.parent.mkdir(parents=True, exist_ok=True)
                self._file = create_part(self.part)
                self._file.write(self._buffer)
                self._buffer = bytearray()
            self._file.write(chunk)
        except OSError as error:
            raise Unwritable.from_os_error(error, self.part, "write") from None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def check(self) -> str:
        """The result's image format, if it is a whole image (see the module docstring)."""
        try:
            if self._file is not None:
                self._file.flush()
                return intact_format(self.part)
            return intact_format(bytes(self._buffer))
        except (TooManyPixels, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ItemRejected("the result declares too many pixels to open safely") from None
        except (OSError, SyntaxError, ValueError):
            raise Transient("the result does not decode as an image") from None

    def commit(self, dest: Location) -> None:
        """Make the result `dest`: written (if still in memory), fsync'd, renamed into place;
        for a URL, uploaded whole."""
        if isinstance(dest, str):
            self._upload(dest)
            return
        if self._file is None:
            _through_part(dest, bytes(self._buffer), self.part)
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self.part, dest)
        except OSError as error:
            raise Unwritable.from_os_error(error, dest, "write") from None

    def _upload(self, dest: str) -> None:
        if self._file is None:
            _put(dest, bytes(self._buffer))
            return
        try:
            self._file.close()
        except OSError as error:
            raise Unwritable.from_os_error(error, self.part, "write") from None
        self._file = None
        try:
            _put(dest, self.part)
        finally:
            self.part.unlink(missing_ok=True)

    def close(self) -> None:
        """Let go of what was not committed: the memory, and the part file, by its name."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
            self.part.unlink(missing_ok=True)


def file_spool(spool: Spool, bases: Sequence[str], layout: Layout) -> Filed:
    """Check the spooled result whole, then write it under every base (one thread hop)."""
    fmt = spool.check()
    if not fmt:
        raise Transient("the result is an image of no known format")
    dests = tuple(layout.path(base, fmt) for base in bases)
    spool.commit(dests[0])
    layout.wrote(dests[0])
    for dest in dests[1:]:
        _copy(dests[0], dest, layout)
    return Filed(tuple(bases), dests, spool.size, spool.sha256)


def copy_result(
    first: Location, bases: Sequence[str], layout: Layout, known: tuple[int, str] | None = None
) -> Filed:
    """The result already written at `first`, written again under `bases`; `known`: its size
    and sha256, when the caller has them (else it is read back)."""
    ext = first.suffix[1:] if isinstance(first, Path) else first.rpartition(".")[2]
    dests = tuple(layout.file(base, ext) for base in bases)
    for dest in dests:
        _copy(first, dest, layout)
    size, digest = known or _digest(first)
    return Filed(tuple(bases), dests, size, digest)


def _put(dest: str, data: bytes | Path) -> None:
    try:
        storage.put(dest, data)
    except StoreFailure as failure:
        if failure.transient:
            raise StoreBusy(f"cannot write {dest}: {failure}") from None
        raise _refused(dest, failure) from None


def _refused(dest: str, failure: StoreFailure) -> Unwritable:
    return Unwritable(
        f"cannot write {dest}: {failure}: check the store and your rights to it, then run "
        "the same command again"
    )


def _copy(source: Location, dest: Location, layout: Layout) -> None:
    if isinstance(source, str) and isinstance(dest, str):
        try:
            storage.copy(source, dest)
        except StoreFailure as failure:  # the store's client retried it already
            raise _refused(dest, failure) from None
        layout.wrote(dest)
        return
    assert isinstance(source, Path) and isinstance(dest, Path)

    def copy(file: IO[bytes]) -> None:
        with open(source, "rb") as original:
            shutil.copyfileobj(original, file, CHUNK)

    _through_part(dest, copy, layout.part_of(dest))


def _through_part(dest: Path, data: bytes | Fill, part: Path) -> None:
    try:
        try:
            write_whole(dest, data, part=part)
        except FileNotFoundError:  # its folder is not there yet: made, once (not a call each)
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_whole(dest, data, part=part)
    except OSError as error:
        raise Unwritable.from_os_error(error, dest, "write") from None


def _digest(path: Location) -> tuple[int, str]:
    if isinstance(path, str):
        try:
            data = storage.read(path, storage.stat(path).size)
        except StoreFailure as failure:
            raise Unwritable(f"cannot read {path} back to copy it: {failure}") from None
        return len(data), hashlib.sha256(data).hexdigest()
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
