"""`write_whole`: a file written so that a reader (a resume, a browser, another thread) sees the
old file or the new one, never a part.

Guarantees: the bytes go to a part file in the destination's own folder (so the rename never
crosses file systems), are fsync'd when `durable`, and the part is renamed over the
destination; if anything fails the part is removed, by its name, and the `OSError` is raised
for the caller to say what it means. A part file has a name no other writer uses (random, or
one the caller gives that is its own alone: two writers of one file never share a part), and
is created by `create_part`: exclusively, never through a symbolic link
(`O_CREAT|O_EXCL|O_NOFOLLOW`). A regular file already at a part's name is a part its owner
left when killed: removed, by its name (a hard link's target stays as it is); a symbolic link
there is left alone, and the write fails naming it, rather than writing where the link points.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["create_part", "part_name", "remove_left_part", "write_whole"]

Fill = Callable[[IO[bytes]], object]


def part_name(name: str, suffix: str = ".tmp") -> str:
    """A part file's name for a file named `name`: hidden, and unique to this write."""
    return f".{name}.{uuid.uuid4().hex[:12]}{suffix}"


def remove_left_part(part: Path) -> None:
    """A part file a killed write of the same owner left at `part`: removed, by its name, if it
    is a regular file (a link or a folder there is left alone)."""
    if not part.is_symlink() and part.is_file():
        part.unlink(missing_ok=True)


def create_part(part: Path) -> IO[bytes]:
    """The part file, created for writing: exclusively, never through a symbolic link (see the
    module docstring; `FileExistsError` if a link or a folder is there: it is left alone)."""
    remove_left_part(part)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "wb")


def write_whole(
    dest: Path, data: bytes | Fill, *, durable: bool = True, part: Path | None = None
) -> None:
    """Write `data` (bytes, or a function that writes into the open part file) as `dest`,
    through `part` (the caller's own name for it), else a part of a random name."""
    part = part or dest.with_name(part_name(dest.name))
    made = False
    try:
        with create_part(part) as file:
            made = True
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(part, dest)
    except BaseException:
        if made:  # ours: removed by its name; anything else there is not ours to remove
            part.unlink(missing_ok=True)
        raise
