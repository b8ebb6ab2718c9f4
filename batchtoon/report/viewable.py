"""Originals a browser can show: for a photo in a format browsers do not open (HEIC, HEIF,
TIFF, ...), a JPEG copy under `<out>/.batchtoon/originals/`, which the page's "Original" links
to and its thumbnail is made from.

Guarantees:
- a photo whose suffix a browser shows (`SHOWN`: JPEG, PNG, GIF, WEBP, BMP, AVIF) gets no copy:
  the page links the file itself;
- a copy is upright (EXIF rotation applied), flattened onto white, at most `LONG_SIDE` px on
  its long side, a JPEG at `QUALITY`; it is named by the photo's path, size and mtime, so it is
  made once and a photo changed in place gets a new one;
- every copy is written whole (`files.write_whole`), in batchtoon's own folder only, never
  through a symbolic link planted there;
- a photo no decoder here reads gets no copy (the page links the file as it is) and never
  raises. Nothing is ever deleted: delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from PIL import ImageOps

from batchtoon.images.preflight import opened
from batchtoon.locations.files import write_whole
from batchtoon.report.thumbs import flat_rgb

__all__ = ["FOLDER", "LONG_SIDE", "SHOWN", "viewable_copies"]

FOLDER = PurePosixPath(".batchtoon", "originals")  # below the output folder
SHOWN = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".avif"})
LONG_SIDE = 4096
QUALITY = 90


def viewable_copies(paths: Iterable[Path], out: Path, *, workers: int) -> dict[Path, Path]:
    """The browser-viewable copy of each of `paths` a browser cannot show (made in `workers`
    threads if it is not there yet); the others, and those no decoder reads, are left out."""
    todo = [path for path in dict.fromkeys(paths) if path.suffix.lower() not in SHOWN]
    if not todo:
        return {}
    folder = out / FOLDER
    if any((out / below).is_symlink() for below in (FOLDER.parent, FOLDER)):
        return {}  # planted: batchtoon writes through no link into a folder not its own
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        copies = pool.map(lambda path: _copy(path, folder), todo)
        return {path: copy for path, copy in zip(todo, copies, strict=True) if copy is not None}


def _copy(path: Path, folder: Path) -> Path | None:
    try:
        stat = path.stat()
        stamp = f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}"
        copy = folder / (hashlib.sha256(os.fsencode(stamp)).hexdigest()[:20] + ".jpg")
        if copy.is_symlink():
            return None
        if copy.is_file() and copy.stat().st_size > 0:
            return copy
        write_whole(copy, _as_jpeg(path.read_bytes()), durable=False)
    except Exception:  # unreadable, or no decoder for it (there are many ways to fail)
        return None
    return copy


def _as_jpeg(data: bytes) -> bytes:
    with opened(data) as image:
        upright = ImageOps.exif_transpose(image)
        upright.thumbnail((LONG_SIDE, LONG_SIDE))
        flat = flat_rgb(upright)
    encoded = io.BytesIO()
    flat.save(encoded, "JPEG", quality=QUALITY)
    return encoded.getvalue()
