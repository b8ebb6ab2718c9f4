"""Writing a file whole: a reader (a browser, another run) sees the old file or the new one,
never a part."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["write_whole"]


def write_whole(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (atomic on
    one file system). With `durable`, the data is on disk before the rename. The file is made
    readable by everyone (0644): a page and its thumbnails are for sharing. If this process
    dies first, a `.<name>.<random>.tmp` file may be left beside `path`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
