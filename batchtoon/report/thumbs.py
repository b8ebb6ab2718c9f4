"""Thumbnails: one small JPEG per distinct picture, under `<out>/.batchtoon/thumbs/`.

Guarantees:
- a thumbnail is at most `SIZE` px on its long side (EXIF rotation applied, transparency
  flattened onto white), a JPEG at quality `QUALITY`: a few KB to a few tens of KB; it holds
  the picture only, nothing else of its file's (no EXIF, GPS, XMP, ICC profile or comment);
- it is named by the content of the file it shows (`NAME_CHARS` base32 digits of its sha256,
  60 bits), so copies of a photo share one, a file changed in place gets a new one, and a
  thumbnail already there is reused as it is, never decoded or written again;
- which file has which name is remembered by (path, size, mtime) in `memo.sqlite` beside the
  thumbnails, on disk (never all in memory), a file's line only once its thumbnail is there:
  a page's each as it is made, `name_each`'s together once its files are done (one transaction
  for them all, held for no longer: other processes may share the memo; a crash before it
  costs only reading those files again); a later call, a resumed run included, reads only the
  files that changed since, not every photo again, and makes no thumbnail twice;
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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import ExifTags, Image, ImageOps

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
    "thumbnail",
    "thumbs_dir",
    "upright",
]

FOLDER = PurePosixPath(".batchtoon", "thumbs")  # below the output folder

SIZE = 256  # px, the long side: a box on the page is ~215 px wide in a 1200 px window
QUALITY = 80
NAME_CHARS = 12  # base32 digits: 60 bits, no collision to fear among millions of pictures
MEMO = "memo.sqlite"
SUFFIX = ".jpg"

Stamp = tuple[int, int]  # a file's size and mtime_ns, as the memo knows it
Line = tuple[bytes, int, int, str]  # a memo line: the file's path, its stamp, its thumbnail name


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
        none can be made, or not now (stopped, or its thumbnail cannot be written)."""
        return self.name_each([path])[0]

    def name_each(
        self, paths: list[Path], *, before_each: Callable[[], object] = lambda: None
    ) -> list[str | None]:
        """`name` of each path, in this thread, `before_each` called before each (what it
        raises ends the call); the memo lines of the files read here written together at the
        end, also when ended so (a thumbnail it did not make is left for a later call)."""
        lines: list[Line] = []
        names: list[str | None] = []
        try:
            for path in paths:
                before_each()
                known, stamp = self._recall(path)
                line = None if known is not None or stamp is None else self._try_make(path, stamp)
                if line is not None:
                    lines.append(line)
                names.append((known if line is None else line[3]) or None)
        finally:
            self._remember(lines)
        return names

    def names(self, paths: Iterable[Path], *, workers: int) -> dict[Path, str | None]:
        """Each path's thumbnail name, or None: the known ones looked up here, the others read
        and thumbnailed in `workers` threads (Pillow decodes and hashlib hashes without the
        GIL). `Stopped` if `stop()` came meanwhile."""
        known = {path: self._recall(path) for path in dict.fromkeys(paths)}
        todo = {path: stamp for path, (name, stamp) in known.items() if name is None and stamp}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            made = dict(zip(todo, pool.map(self._name_now, todo, todo.values()), strict=True))
        if self.stopped:
            raise Stopped(f"thumbnails in {self.folder}: stopped")
        return {
            path: (made[path] if name is None else name) or None
            for path, (name, _) in known.items()
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

    def _recall(self, path: Path) -> tuple[str | None, Stamp | None]:
        """The name known for this file as it is now ("" for "none can be made"), or None to
        make it; and its stamp (None if it is gone: nothing to show, nothing to remember)."""
        try:
            stamp = _stamp(path)  # before reading: a change meanwhile shows at the next call
        except OSError:
            return "", None
        known = self.known(path)
        if known is None or known[:2] != stamp or not self._usable(known[2]):
            return None, stamp
        return known[2], stamp

    def _name_now(self, path: Path, stamp: Stamp) -> str:
        """The name of a thumbnail made now, remembered at once; "" if there is none (now)."""
        line = self._make_now(path, stamp)
        self._remember([] if line is None else [line])
        return "" if line is None else line[3]

    def _try_make(self, path: Path, stamp: Stamp) -> Line | None:
        """`_make_now`, None where the thumbnail cannot be written now (left for a later call,
        which may say why)."""
        try:
            return self._make_now(path, stamp)
        except OSError:
            return None

    def _make_now(self, path: Path, stamp: Stamp) -> Line | None:
        """The memo line of a file whose thumbnail is there now (its name "" if none can be
        made), or None: stopped, or unreadable; OSError if the thumbnail cannot be written."""
        if self.stopped:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        name = content_name(data)
        if not self._usable(name):
            if self._write(data, name + SUFFIX):
                self.made += 1
            else:
                name = ""
        return (_key(path), *stamp, name)

    def _usable(self, name: str) -> bool:
        """True for "" (known to be impossible) and for a thumbnail that is there, not empty."""
        if not name:
            return True
        try:
            return (self.folder / (name + SUFFIX)).stat().st_size > 0
        except OSError:
            return False

    def _write(self, data: bytes, name: str) -> bool:
        """True once the thumbnail of `data` is written, False if none can be made."""
        try:
            encoded = thumbnail(data)
        except Exception:  # any decoder failure (there are many kinds) means a placeholder
            return False
        try:  # not durable: a thumbnail lost is made again
            write_whole(self.folder / name, encoded, durable=False)
        except FileNotFoundError:  # no folder (never made, or deleted to reclaim its space)
            self.folder.mkdir(parents=True, exist_ok=True)
            write_whole(self.folder / name, encoded, durable=False)
        return True

    def _remember(self, lines: list[Line]) -> None:
        """The lines written in one transaction (none of them if it fails)."""
        if not lines:
            return
        with self._lock:
            memo = self._open()
            if memo is None:
                return
            try:
                memo.execute("BEGIN")
                memo.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?)", lines)
                memo.execute("COMMIT")
            except sqlite3.Error:
                self._lose()  # closed: an open transaction is rolled back

    def _open(self) -> sqlite3.Connection | None:
        """The memo, opened at the first call (None if it cannot be: every file is then read,
        its thumbnail still reused)."""
        if not self._opened:
            self._opened = True
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                memo = sqlite3.connect(
                    self.folder / MEMO, timeout=10, isolation_level=None, check_same_thread=False
                )  # isolation_level None: no transaction but those `_remember` begins
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


def _stamp(path: Path) -> Stamp:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def content_name(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return base64.b32encode(digest).decode("ascii")[:NAME_CHARS].lower()


def thumbnail(data: bytes) -> bytes:
    """The JPEG thumbnail of an image's bytes. JPEGs are decoded at a reduced scale (draft
    mode: 1/2 to 1/8 of the pixels, still at least `SIZE`), which is most of the speed."""
    encoded = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        refuse_pixel_bomb(image)  # a PNG cannot be decoded small: 12000x12000 would take 1 GB
        image.draft("RGB", (SIZE, SIZE))
        flat = flat_rgb(upright(image))
        flat.thumbnail((SIZE, SIZE))
        flat.info.clear()  # the picture only: Pillow would carry over the photo's JPEG comment
        flat.save(encoded, "JPEG", quality=QUALITY)
    return encoded.getvalue()


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; itself, loaded, if that is upright
    already (`ImageOps.exif_transpose` would copy it)."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) not in TURNED:
        image.load()
        return image
    return ImageOps.exif_transpose(image)


TURNED = range(2, 9)  # the EXIF orientations other than upright (1)


def flat_rgb(image: Image.Image) -> Image.Image:
    """RGB (the image itself if it is RGB already); what was transparent shows white, as in
    most viewers."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
