"""`write_whole`: a file written so that a reader (a resume, a browser, another thread) sees the
old file or the new one, never a part.

Guarantees: the bytes go to a part file in the destination's own folder (so the rename never
crosses file systems), are fsync'd when `durable`, and the part is renamed over the
destination; if anything fails the part is removed, by its name, and the `OSError` is raised
for the caller to say what it means. The part's name is unique unless the caller gives one (a
fixed name lets a later write of the same file overwrite what a killed process left).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_whole"]

Fill = Callable[[IO[bytes]], object]


def write_whole(
    dest: Path, data: bytes | Fill, *, durable: bool = True, part: Path | None = None
) -> None:
    """Write `data` (bytes, or a function that writes into the open part file) as `dest`."""
    part = part or dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(part, "wb") as file:
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
