"""Where each result goes: the output template, kept inside the output folder whatever a
manifest or a file name holds.

The template's fields: `{dir}` (the source's folder below its SOURCE, empty at the top),
`{stem}` and `{name}` (the source's file name without and with its extension), `{style}` (the
index), `{style_name}` (its slug, e.g. `2d`), `{sha8}` (the first 8 hex digits of the content's
sha256) and `{ext}` (from the result's bytes, known only once downloaded: it must come last).

With `portable=True` (`output.portable_names`) every component of a name is made valid on every
common file system (see `portable_part`): what a Linux run writes can be copied to Windows, a
FAT-formatted card or a Mac without a file refused or renamed on the way.

The output may be a URL (`s3://bucket/cartoons`, see `storage`): names are the same below it;
a result's part file is then a local one in `spill` (the run's work folder), and which results
exist is known from one listing of the output, kept current with what this run writes.

A part file's name is its writer's own: `.<name>.<tag>.batchtoon-part`, the tag being the
journal's (one process at a time holds a journal), else random for each write: two writers of
one output, in two processes, never share one, and a part a killed run left is the resume's to
replace (`files.create_part`).
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from batchtoon.errors import StoreFailure, Unwritable, UsageError
from batchtoon.locations import storage
from batchtoon.locations.files import part_name
from batchtoon.locations.sources import Source
from batchtoon.locations.storage import Location
from batchtoon.settings.styles import STYLE_SLUGS, style_slug

__all__ = ["EXTENSIONS", "PART_SUFFIX", "Layout", "Listed", "portable_part"]

PART_SUFFIX = ".batchtoon-part"  # a result being written: `.<name>.<unique>.batchtoon-part`
# A name's bytes at most, so that with what may be added (a `-<sha8>-<style>` to tell it from a
# namesake, `.jpeg`, the part file's `.` and suffix) it fits the 255 bytes file systems allow.
MAX_NAME_BYTES = 200

FIELDS = frozenset({"dir", "stem", "name", "style", "style_name", "sha8", "ext"})
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}

# Windows' reserved device names, whatever follows the first dot (NUL.tar.gz is NUL).
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]) *(\..*)?", re.IGNORECASE)
# What Windows refuses in a name, control characters (C0, DEL, C1), and lone surrogates (the
# bytes of a name that is not UTF-8, which macOS and Windows cannot store).
_UNSAFE = re.compile('[<>:"/\\\\|?*\x00-\x1f\x7f-\x9f\ud800-\udfff]')
MOST_LISTED = 20_000  # names of one output folder a resume holds at once, at most
MAX_PART_BYTES = 240  # of 255 (ext4, NTFS, APFS): room for ".<sha8>" and ".<ext>"


class Layout:
    def __init__(
        self,
        out: Location,
        template: str,
        *,
        portable: bool = False,
        spill: Path | None = None,
        tag: str = "",
    ) -> None:
        self.out = out
        self.portable = portable
        self._spill = spill
        self._tag = tag  # in part files' names: the writer's own (see the module docstring)
        self._objects: set[str] | None = None  # a URL output's names below it, once listed
        self._out_text = os.path.join(out, "") if isinstance(out, Path) else ""
        self._listing = threading.Lock()
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if unknown := used - FIELDS:
            raise UsageError(
                f"output template {template!r}: unknown field {{{sorted(unknown)[0]}}} "
                f"(known: {', '.join('{' + f + '}' for f in sorted(FIELDS))})"
            )
        if not template.endswith(".{ext}") or "{ext}" in template[: -len("{ext}")]:
            raise UsageError(f"output template {template!r} must end with .{{ext}}")
        self._template = template[: -len(".{ext}")]

    def base(self, source: Source, style: int, sha256: str) -> str:
        """The output path below `out`, without its extension, as posix text."""
        rel = source.rel
        folder = "" if str(rel.parent) == "." else str(rel.parent)
        text = self._template.format(
            dir=folder,
            stem=rel.stem,
            name=rel.name,
            style=style,
            style_name=style_slug(style),
            sha8=sha256[:8],
        )
        parts = [p for p in PurePosixPath(text).parts if p not in ("/", ".", "..")]
        if self.portable:
            parts = [portable_part(p) for p in parts]
        parts = [_fitting(p) for p in parts]
        return str(PurePosixPath(*parts)) if parts else f"{sha256[:8]}.{style}"

    def likely_base(self, rel: str, style: int) -> str:
        """What `base` most likely is for a source at `rel` (posix text below its SOURCE),
        by text alone: a resume asks it of every photo, and checks it against the base the
        journal holds (any name `base` would change, or a `{sha8}`, makes it differ)."""
        folder, _, name = rel.rpartition("/")
        dot = name.rfind(".")
        stem = name[:dot] if dot > 0 else name
        text = self._template.format(
            dir=folder, stem=stem, name=name, style=style, style_name=STYLE_SLUGS[style], sha8=""
        )
        return text[1:] if text.startswith("/") else text

    def path(self, base: str, fmt: str) -> Location:
        """The file for a result of Pillow format `fmt` (JPEG -> .jpg)."""
        return self.file(base, EXTENSIONS.get(fmt, fmt.lower()))

    def file(self, base: str, ext: str) -> Location:
        return storage.join(self.out, f"{base}.{ext}")

    def part(self, base: str) -> Path:
        """The part file a result for `base` is written through (see the module docstring): in
        the result's own folder; for a URL output, a local file in `spill`."""
        if isinstance(self.out, Path):
            return self._part(self.out / base)
        name = hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self._part((self._spill or Path(tempfile.gettempdir())) / name)

    def part_of(self, dest: Path) -> Path:
        """The part file for the local result `dest` (the same as its base's, whatever its
        extension)."""
        return self._part(dest.with_suffix(""))

    def _part(self, bare: Path) -> Path:
        if self._tag:
            return bare.with_name(f".{bare.name}.{self._tag}{PART_SUFFIX}")
        return bare.with_name(part_name(bare.name, PART_SUFFIX))

    def existing(self, bases: Iterable[str], ext: str) -> set[str]:
        """The bases whose file with extension `ext` exists (blocking: run it in a thread).
        For a URL output, by one listing of it (`StoreFailure` if it cannot be
        listed), kept current by `wrote`."""
        return {base for base in bases if self.has(base, ext)}

    def has(self, base: str, ext: str) -> bool:
        """Whether the file for `base` with extension `ext` exists, as `existing` says."""
        if self._out_text:  # (as text: a resume asks it of every photo)
            return os.path.isfile(f"{self._out_text}{base}.{ext}")
        with self._listing:
            if self._objects is None:
                self._objects = _listing(str(self.out))
            return f"{base}.{ext}" in self._objects

    def wrote(self, dest: Location) -> None:
        """Note a result written (to a store: the listing made once stays true)."""
        if isinstance(dest, str) and isinstance(self.out, str):
            with self._listing:
                if self._objects is not None:
                    self._objects.add(dest[len(self.out.rstrip("/")) + 1 :])


class Listed:
    """Which result files a local output holds, for a walk that asks it of every photo in
    order: the names of one folder at a time, each folder listed once (the first time one of
    its results is asked), a quarter of a `stat` a file. A folder come back to, or holding over
    `MOST_LISTED` names, is asked file by file. One thread at a time (the walk's)."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._folder: str | None = None  # the folder listed last ...
        self._names: frozenset[str] | None = None  # ... its files (None: asked file by file)
        self._met: set[str] = set()  # every folder listed, or found too big to

    def has(self, base: str, ext: str) -> bool:
        """`Layout.has`, for a local output by the listing of `base`'s folder."""
        folder, _, name = base.rpartition("/")
        if folder != self._folder:
            self._folder, self._names = folder, self._listed(folder)
        if self._names is None:
            return self._layout.has(base, ext)
        return f"{name}.{ext}" in self._names

    def _listed(self, folder: str) -> frozenset[str] | None:
        out = self._layout.out
        if not isinstance(out, Path) or folder in self._met:
            return None
        self._met.add(folder)
        names = []
        try:
            with os.scandir(out / folder) as entries:
                for entry in entries:
                    if entry.is_file():  # (a link: what it leads to, as `isfile` says)
                        names.append(entry.name)
                        if len(names) > MOST_LISTED:
                            return None
        except OSError:
            return None
        return frozenset(names)


def _listing(out: str) -> set[str]:
    try:
        return storage.listing(out)
    except StoreFailure as failure:
        raise Unwritable(
            f"cannot list {out}: {failure}: check the store and your rights to it"
        ) from None


def _fitting(part: str) -> str:
    """`part`, or if its name would be too long for a file system once the extension and the
    part file's affixes are added, its start and a hash of the whole (so it stays distinct)."""
    if len(os.fsencode(part)) <= MAX_NAME_BYTES:
        return part
    tag = "~" + hashlib.sha256(os.fsencode(part)).hexdigest()[:8]
    while len(os.fsencode(part)) > MAX_NAME_BYTES - len(tag):
        part = part[:-1]
    return part + tag


def portable_part(part: str) -> str:
    """One path component, valid on every common file system: Windows' forbidden characters
    (`<>:"/\\|?*`), control characters and undecodable bytes become `_`; trailing dots and
    spaces go; a reserved device name (`CON`, `NUL.txt`, `com1.jpg`, ...) gets a `_` in front;
    and it is cut to `MAX_PART_BYTES` bytes of UTF-8, never inside a character."""
    part = _UNSAFE.sub("_", part)
    encoded = part.encode("utf-8")
    if len(encoded) > MAX_PART_BYTES:
        part = encoded[:MAX_PART_BYTES].decode("utf-8", "ignore")
    part = part.rstrip(". ") or "_"
    return f"_{part}" if _RESERVED.fullmatch(part) else part
