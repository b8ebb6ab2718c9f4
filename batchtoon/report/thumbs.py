"""Thumbnails: one small JPEG per distinct picture, under `<out>/.batchtoon/thumbs/`.

Guarantees:
- a thumbnail is at most `SIZE` px on its long side (EXIF rotation applied, transparency
  flattened onto white), a JPEG at quality `QUALITY`: a few KB to a few tens of KB;
- it is named by the content of the file it shows (`NAME_CHARS` base32 digits of its sha256,
  60 bits), so copies of a photo share one, a file changed in place gets a new one, and a
  thumbnail already there is reused as it is, never decoded or written again;
- which file has which name is remembered by (path, size, mtime) in `memo.sqlite` beside the
  thumbnails, on disk (never all in memory), each as it is made (its own transaction, held for
  no longer: other processes may share the memo): a later call, a resumed run included, reads
  only the files that changed since, not every photo again, and makes no thumbnail twice;
- every file here is written whole (a temporary file renamed over it): a crash never leaves a
  torn thumbnail, and two processes making the same one both end with a good file;
- a file that cannot be read or that Pillow cannot open (HEIC without a plugin, a truncated
  image, more pixels than Pillow decodes safely: told from its header, never decoded) gets no
  thumbnail (None) and never raises;
- `Thumbnails.stop()` (from any thread) ends its work at once: a thread finishes at most the
  one thumbnail it is making, and a page being made stops (`Stopped`);
- nothing is ever deleted: a thumbnail no page shows any more stays (a later run may show it
  again), and so does its file's line in the memo; delete the folder to reclaim the space,
  the next page makes what it needs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import sqlite3
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, ImageOps

from batchtoon.images.intact import refuse_pixel_bomb
from batchtoon.locations.files import write_whole

__all__ = [
    "FOLDER",
    "NAME_CHARS",
    "SIZE",
    "Stopped",
    "Thumbnails",
    "flat_rgb",
    "make_thumbnails",
    "thumbs_dir",
]

FOLDER = PurePosixPath(".batchtoon", "thumbs")  # below the output folder

SIZE = 256  # px, the long side: a box on the page is ~215 px wide in a 1200 px window
QUALITY = 80
NAME_CHARS = 12  # base32 digits: 60 bits, no collision to fear among millions of pictures
MEMO = "memo.sqlite"
SUFFIX = ".jpg"


def thumbs_dir(out: Path) -> Path:
    return out / FOLDER


def make_thumbnails(paths: Iterable[Path], folder: Path, *, workers: int) -> dict[Path, str | None]:
    """Each path's thumbnail name (the file is `folder / (name + ".jpg")`), or None where there
    can be none; the memo then knows the files met here (see `Thumbnails.names`)."""
    thumbnails = Thumbnails(folder)
    names = thumbnails.names(paths, workers=workers)
    thumbnails.save()
    return names


class Thumbnails:
    """The thumbnails of one folder over a while: made one at a time as files come (`name`,
    from any thread), then those a page needs (`names`), the memo written as they go.
    `stop()`, from any thread, makes every call still to come return at once. `made` counts
    the thumbnails this one encoded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # the memo's connection is shared by the threads
        self._memo: sqlite3.Connection | None = None
        self._opened = False

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def name(self, path: Path) -> str | None:
        """The file's thumbnail name, made now if no earlier call made it (blocking); None if
        none can be made, or once stopped."""
        known = self._recall(path)
        return (self._make_now(path) if known is None else known) or None

    def names(self, paths: Iterable[Path], *, workers: int) -> dict[Path, str | None]:
        """Each path's thumbnail name, or None: the known ones looked up here, the others read
        and thumbnailed in `workers` threads (Pillow decodes and hashlib hashes without the
        GIL). `Stopped` if `stop()` came meanwhile."""
        known = {path: self._recall(path) for path in dict.fromkeys(paths)}
        todo = [path for path, name in known.items() if name is None]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            made = dict(zip(todo, pool.map(self._make_now, todo), strict=True))
        if self.stopped:
            raise Stopped(f"thumbnails in {self.folder}: stopped")
        return {
            path: (made[path] if name is None else name) or None for path, name in known.items()
        }

    def save(self) -> None:
        """Close the memo (a later call opens it again): every file is in it already."""
        with self._lock:
            self._lose()
            self._opened = False

    def known(self, path: Path) -> tuple[int, int, str] | None:
        """What the memo holds for a file: its (size, mtime_ns, thumbnail name), or None."""
        with self._lock:
            memo = self._open()
            row = None if memo is None else self._query(memo, path)
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    def _recall(self, path: Path) -> str | None:
        """The name known for this file as it is now ("" for "none can be made"), or None to
        make it."""
        try:
            stamp = _stamp(path)
        except OSError:
            return ""  # gone: nothing to show, and nothing to remember
        known = self.known(path)
        if known is None or list(known[:2]) != stamp or not self._usable(known[2]):
            return None
        return known[2]

    def _make_now(self, path: Path) -> str:
        if self.stopped:
            return ""
        try:
            stamp = _stamp(path)  # before reading: a change meanwhile shows at the next call
            data = path.read_bytes()
        except OSError:
            return ""
        name = content_name(data)
        if not self._usable(name):
            if _write(data, self.folder, name + SUFFIX):
                self.made += 1
            else:
                name = ""
        self._remember(path, stamp, name)
        return name

    def _usable(self, name: str) -> bool:
        """True for "" (known to be impossible) and for a thumbnail that is there, not empty."""
        if not name:
            return True
        try:
            return (self.folder / (name + SUFFIX)).stat().st_size > 0
        except OSError:
            return False

    def _remember(self, path: Path, stamp: list[int], name: str) -> None:
        with self._lock:
            memo = self._open()
            if memo is None:
                return
            try:
                memo.execute(
                    "INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?)", (_key(path), *stamp, name)
                )
            except sqlite3.Error:
                self._lose()

    def _open(self) -> sqlite3.Connection | None:
        """The memo, opened at the first call (None if it cannot be: every file is then read,
        its thumbnail still reused)."""
        if not self._opened:
            self._opened = True
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                memo = sqlite3.connect(
                    self.folder / MEMO, timeout=10, isolation_level=None, check_same_thread=False
                )  # isolation_level None: each statement its own transaction
                memo.execute("PRAGMA journal_mode=WAL")
                memo.execute("PRAGMA synchronous=OFF")  # a memo lost costs reading files again
                memo.execute(
                    "CREATE TABLE IF NOT EXISTS memo (path BLOB PRIMARY KEY, size INTEGER, "
                    "mtime INTEGER, name TEXT) WITHOUT ROWID"
                )
                self._memo = memo
            except (OSError, sqlite3.Error):
                self._memo = None
        return self._memo

    def _query(self, memo: sqlite3.Connection, path: Path) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = memo.execute(
                "SELECT size, mtime, name FROM memo WHERE path = ?", (_key(path),)
            ).fetchone()
        except sqlite3.Error:
            self._lose()
            return None
        return row

    def _lose(self) -> None:
        """A memo that fails (a full disk, a damaged file): go on without it."""
        if self._memo is not None:
            with contextlib.suppress(sqlite3.Error):
                self._memo.close()
        self._memo = None


def _key(path: Path) -> bytes:
    return os.fsencode(os.path.abspath(path))


class Stopped(Exception):
    """`Thumbnails.names` was stopped before it had every name."""


def _write(data: bytes, folder: Path, name: str) -> bool:
    try:
        encoded = thumbnail(data)
    except Exception:  # any decoder failure (there are many kinds) means a placeholder
        return False
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / name, encoded, durable=False)  # a thumbnail lost is made again
    return True


def _stamp(path: Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def content_name(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return base64.b32encode(digest).decode("ascii")[:NAME_CHARS].lower()


def thumbnail(data: bytes) -> bytes:
    """The JPEG thumbnail of an image's bytes. JPEGs are decoded at a reduced scale (draft
    mode: 1/2 to 1/8 of the pixels, still at least `SIZE`), which is most of the speed."""
    with Image.open(io.BytesIO(data)) as image:
        refuse_pixel_bomb(image)  # a PNG cannot be decoded small: 12000x12000 would take 1 GB
        image.draft("RGB", (SIZE, SIZE))
        upright = ImageOps.exif_transpose(image)
    flat = flat_rgb(upright)
    flat.thumbnail((SIZE, SIZE))
    encoded = io.BytesIO()
    flat.save(encoded, "JPEG", quality=QUALITY)
    return encoded.getvalue()


def flat_rgb(image: Image.Image) -> Image.Image:
    """RGB; what was transparent shows white, as in most viewers."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
