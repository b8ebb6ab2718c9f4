"""`write_whole`: a file written so that a reader (a resume, a browser, another thread) sees the
old file or the new one, never a part.

Guarantees: the bytes go to a part file in the destination's own folder (so the rename never
crosses file systems), are fsync'd when `durable`, and the part is renamed over the
destination; if anything fails the part is removed, by its name, and the `OSError` is raised
for the caller to say what it means. A part file has a name no other writer uses (this
process's: a random tag and a count, `part_name`; or one the caller gives that is its own
alone: two writers of one file never share a part), and is created exclusively, never through
a symbolic link (`O_CREAT|O_EXCL|O_NOFOLLOW`). A regular file already at a given part's name is
a part its owner left when killed: removed, by its name (a hard link's target stays as it is);
a symbolic link there is left alone, and the write fails naming it, rather than writing where
the link points.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["create_part", "part_name", "read_all", "remove_left_part", "write_all", "write_whole"]

Fill = Callable[[IO[bytes]], object]
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class _Names:
    """This process's part names: a random tag (made again in a forked child) and a count, so
    a name is unique without a call to the OS's randomness each time."""

    def __init__(self) -> None:
        self.afresh()

    def afresh(self) -> None:
        self.tag = secrets.token_hex(6)
        self.count = itertools.count()


_NAMES = _Names()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_NAMES.afresh)


def part_name(name: str, suffix: str = ".tmp") -> str:
    """A part file's name for a file named `name`: hidden, and unique to this write."""
    return f".{name}.{_NAMES.tag}{next(_NAMES.count):x}{suffix}"


def remove_left_part(part: Path) -> None:
    """A part file a killed write of the same owner left at `part`: removed, by its name, if it
    is a regular file (a link or a folder there is left alone)."""
    if not part.is_symlink() and part.is_file():
        part.unlink(missing_ok=True)


def create_part(part: Path) -> IO[bytes]:
    """The part file, created for writing: exclusively, never through a symbolic link (see the
    module docstring; `FileExistsError` if a link or a folder is there: it is left alone)."""
    return os.fdopen(_created(part), "wb")


def _created(part: Path) -> int:
    """`part` created exclusively; if something is there, a left part is removed by its name
    and the create tried once more. Looked at only when the create fails: from a worker
    thread, each call to the OS lets go of the GIL."""
    try:
        return os.open(part, CREATE, 0o644)
    except FileExistsError:
        remove_left_part(part)
        return os.open(part, CREATE, 0o644)


def write_whole(
    dest: Path, data: bytes | Fill, *, durable: bool = True, part: Path | None = None
) -> None:
    """Write `data` (bytes, or a function that writes into the open part file) as `dest`,
    through `part` (the caller's own name for it, which a killed write may have left), else a
    part of a name of its own. Bytes go straight to the file descriptor: a write from a worker
    thread makes as few calls that let go of the GIL as it can."""
    if part is None:  # a name no one else has: nothing can have been left there
        part = dest.with_name(part_name(dest.name))
        fd = os.open(part, CREATE, 0o644)
    else:
        fd = _created(part)
    try:
        try:
            if isinstance(data, bytes):
                write_all(fd, data)
            else:
                with os.fdopen(fd, "wb", closefd=False) as file:
                    data(file)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)  # ours: removed by its name, nothing else is
        raise


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to the open file `fd` (a write may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_all(fd: int, most: int) -> bytes:
    """The open file `fd`'s bytes, `most` at most, in as few calls as the file allows."""
    chunks, size = [], 0
    while size < most and (chunk := os.read(fd, most - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
