"""Where images come from: SOURCE arguments walked lazily, one `Source` at a time.

A SOURCE is a folder (walked recursively, in name order, following links to folders but never
round a loop), a manifest (`.jsonl`: `{"path": ..., "style": ...}` a line; `.csv`: `path[,style]`
with an optional header), or a single image. Nothing is loaded up front: `iter_sources` is a
generator, so a million-line manifest costs one line of memory at a time.

A manifest line that cannot be used is yielded as a `BadLine` with its line number, and the
walk goes on.

With `Knows` (a resume: `intake.Intake.known`), every local photo is first offered to it as
text, and what it answers is yielded in the photo's place: a photo an earlier run finished
costs no `Source`, no `Path` and no question of the output's record (its fingerprint, which
it compares, is a file batchtoon took before, never one of its results).

A `Filter` (`--include`/`--exclude`, config `sources`) keeps a folder's files by globs on their
path below the folder, posix-style: `*` within a name, `**` across folders, a pattern without
`/` on the name alone (`*.gif`), case ignored as the suffixes are; an excluded folder is not
walked. Manifests and single images are taken as given.

A SOURCE may be a URL (`s3://bucket/photos`, see `storage`): a folder is then one listing of
its prefix, under the same rules, and a manifest's relative paths are taken from its own
folder in the store; a `Source.path` is then the object's URL (text; local ones are `Path`s).

A `Shard` (`--shard K/N`) keeps the items whose identity hashes to K of N: the same on every
machine, so N processes with the same SOURCEs take each item exactly once between them. The
identity is the path below the SOURCE folder (a manifest line's own path; a single image's
name) without its extension: files that the default layout would name alike (`a.jpg` and
`a.png`) fall in one shard, where the journal tells their outputs apart.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, overload

import orjson
from wcmatch import glob

from batchtoon.errors import StoreFailure, UsageError
from batchtoon.locations import storage
from batchtoon.locations.storage import Location
from batchtoon.settings.styles import parse_styles

__all__ = [
    "IMAGE_SUFFIXES",
    "BadLine",
    "Filter",
    "Knows",
    "Shard",
    "Source",
    "check_sources",
    "count_sources",
    "display",
    "iter_sources",
]

# What a folder walk picks up: the formats the API takes, and the ones it refuses, so those are
# reported rather than silently passed over.
IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .webp .gif .tif .tiff .heic .heif .avif".split()  # noqa: SIM905
)
MANIFEST_SUFFIXES = frozenset({".jsonl", ".csv"})
HEADER_WORDS = frozenset({"path", "file", "filename", "file name", "image", "photo", "source"})


@dataclass(frozen=True, slots=True)
class Source:
    path: Location  # the file to read: a `Path`, or an object's URL
    rel: PurePosixPath  # where it sits below its SOURCE, for the output layout
    styles: tuple[int, ...] | None = None  # a manifest row's own styles


@dataclass(frozen=True, slots=True)
class BadLine:
    where: str  # "list.csv line 7"
    reason: str


# A local photo's path and its place below its SOURCE (posix), as text, and a manifest row's own
# styles -> what stands for the photo if it needs no reading, else None.
Knows = Callable[[str, str, tuple[int, ...] | None], tuple[Any, ...] | None]


# What must never reach a terminal raw: C0 and C1 controls and DEL (escape sequences, a carriage
# return that overwrites the line), and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def display(path: Location | bytes) -> str:
    """A path, or any text from outside (a file name, a provider's message), fit to print on a
    terminal or in the log: control characters as `\\xNN` escapes (`\\x1b`, `\\n`), and
    the bytes of a name that is not UTF-8 as `\\xNN` escapes too. It never changes text
    without either."""
    text = os.fsdecode(path)
    if text.isascii() and text.isprintable():  # the common case, quickly
        return text
    text = _CONTROL.sub(_escape, text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


OWN_FOLDER = ".batchtoon"  # batchtoon's own folder: never walked
_GLOB = glob.GLOBSTAR | glob.MATCHBASE | glob.DOTGLOB | glob.IGNORECASE | glob.FORCEUNIX


@dataclass(frozen=True, slots=True)
class Shard:
    """The K-th of N shares of every SOURCE's items (0 <= K < N), by a stable hash."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"K/N"`, or `ValueError` saying what is wrong with it."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if found is None:
            raise ValueError(f"{text} is not K/N (this process's share: 0/4 ... 3/4)")
        index, count = int(found[1]), int(found[2])
        if count < 1:
            raise ValueError(f"{text}: N must be 1 or more")
        if index >= count:
            raise ValueError(f"{text}: K must be below N (shards count from 0 to N-1)")
        return cls(index, count)

    def takes(self, identity: str) -> bool:
        digest = hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count == self.index


def _identity(rel: PurePosixPath) -> str:
    """What a shard is chosen by: the path without its extension (see the module docstring)."""
    return str(rel.parent / rel.stem)


@dataclass(frozen=True)
class Filter:
    """Which files of a folder SOURCE to take: those matching an `include` glob (every one, if
    there are none) and no `exclude` glob; a folder matching an `exclude` glob is skipped, and
    so is batchtoon's own: any `.batchtoon` folder, and the folders in `avoid` (the output
    folder), so a run never cartoonises its own cartoons. A file `results` says is one of
    batchtoon's results (the output location's record) is never taken either, wherever it is
    met (the output folder given as a SOURCE, a manifest line). With a `shard`, of every
    SOURCE's items (manifest lines and single images too) only that shard's.

    As rclone's filters do, a pattern that matches a folder matches everything below it:
    `--include 'Summer trip'` takes the files in that folder (at any depth), as `--exclude
    thumbs` skips that one. `unmatched()` names the patterns that matched nothing so far."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    avoid: tuple[Location, ...] = ()
    shard: Shard | None = None
    results: Callable[[Location], bool] | None = None
    _includes: glob.WcMatcher[str] | None = field(init=False, repr=False, compare=False)
    _excludes: glob.WcMatcher[str] | None = field(init=False, repr=False, compare=False)
    # each pattern that has matched nothing yet, by its flag: ("--include", "Summer trip")
    _unseen: dict[tuple[str, str], glob.WcMatcher[str]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name, patterns in (("_includes", self.include), ("_excludes", self.exclude)):
            compiled = glob.compile(list(patterns), flags=_GLOB) if patterns else None
            object.__setattr__(self, name, compiled)
        unseen = {
            (flag, pattern): glob.compile([pattern], flags=_GLOB)
            for flag, patterns in (("--include", self.include), ("--exclude", self.exclude))
            for pattern in patterns
        }
        object.__setattr__(self, "_unseen", unseen)

    def takes(self, rel: str) -> bool:
        """Whether the file at `rel` (posix, below its SOURCE folder) is taken: an include
        may match it or any folder it is in (the folders an exclude matches are not walked)."""
        if self._includes is not None:
            within = [rel, *(str(folder) for folder in PurePosixPath(rel).parents)][:-1]
            if not any(self._includes.match(path) for path in within):
                return False
            self._seen("--include", within)
        if self._excludes is not None and self._excludes.match(rel):
            self._seen("--exclude", [rel])
            return False
        return True

    def skips_folder(self, rel: str, path: Location) -> bool:
        own = (path.name if isinstance(path, Path) else storage.name(path)) == OWN_FOLDER
        if own or any(_same(path, avoided) for avoided in self.avoid):
            return True
        if self._excludes is not None and self._excludes.match(rel):
            self._seen("--exclude", [rel])
            return True
        return False

    def unmatched(self) -> list[str]:
        """`--include 'Sumer trip'`: each pattern that has matched no file nor folder."""
        return [f"{flag} {pattern!r}" for flag, pattern in self._unseen]

    def _seen(self, flag: str, paths: list[str]) -> None:
        """Note which of the patterns not yet seen match one of `paths` (once all have been
        seen, this costs nothing)."""
        for (kind, pattern), matcher in list(self._unseen.items()):
            if kind == flag and any(matcher.match(path) for path in paths):
                del self._unseen[kind, pattern]

    def keeps(self, item: Source | BadLine) -> bool:
        """Whether `item` is taken: this process's, and no result of batchtoon's."""
        return self.in_shard(item) and not self.is_result(item)

    def is_result(self, item: Source | BadLine) -> bool:
        """Whether `item` is one of batchtoon's results (the output location's record says)."""
        return isinstance(item, Source) and self.results is not None and self.results(item.path)

    def in_shard(self, item: Source | BadLine) -> bool:
        """Whether `item` is this process's (always, without a shard)."""
        if self.shard is None:
            return True
        if isinstance(item, BadLine):
            return self.shard.takes(item.where)
        return self.rel_in_shard(str(item.rel))

    def line_in_shard(self, line: str) -> bool:
        """Whether the photo a manifest line gives as `line` is this process's."""
        return self.shard is None or self.rel_in_shard(line.replace("\\", "/"))

    def rel_in_shard(self, rel: str) -> bool:
        """Whether the photo at `rel` (posix, below its SOURCE) is this process's."""
        return self.shard is None or self.shard.takes(_identity(PurePosixPath(rel)))


def _same(path: Location, other: Location) -> bool:
    if isinstance(path, str) or isinstance(other, str):
        return isinstance(path, str) and isinstance(other, str) and _same_url(path, other)
    try:
        return path.samefile(other)
    except OSError:
        return False


def _same_url(url: str, other: str) -> bool:
    return url.rstrip("/") == other.rstrip("/")


EVERYTHING = Filter()


def check_sources(arguments: Sequence[Location]) -> None:
    """Refuse, before anything runs, a SOURCE that is not there or not something we read (for
    a URL: a store that cannot be reached, a missing bucket or object, one line naming it)."""
    for argument in arguments:
        if isinstance(argument, str):
            _check_url(argument)
        elif not argument.exists():
            raise UsageError(
                f"SOURCE {display(argument)} does not exist: give a folder or a manifest"
            )
        elif argument.is_file() and _ext(argument) not in MANIFEST_SUFFIXES | IMAGE_SUFFIXES:
            raise UsageError(
                f"SOURCE {display(argument)} is not a folder, a .jsonl/.csv manifest or an image"
            )


def _check_url(url: str) -> None:
    try:
        storage.check_container(url)
        folder = storage.is_dir(url)
    except StoreFailure as failure:
        if failure.missing:
            raise UsageError(
                f"SOURCE {display(url)} does not exist: give a folder or a manifest"
            ) from None
        raise UsageError(f"SOURCE {display(url)}: {display(str(failure))}") from None
    if not folder and _ext(url) not in MANIFEST_SUFFIXES | IMAGE_SUFFIXES:
        raise UsageError(
            f"SOURCE {display(url)} is not a folder, a .jsonl/.csv manifest or an image"
        )


@overload
def iter_sources(
    arguments: Sequence[Location], only: Filter = EVERYTHING, known: None = None
) -> Iterator[Source | BadLine]: ...


@overload
def iter_sources(
    arguments: Sequence[Location], only: Filter, known: Knows
) -> Iterator[Source | BadLine | tuple[Any, ...]]: ...


def iter_sources(
    arguments: Sequence[Location], only: Filter = EVERYTHING, known: Knows | None = None
) -> Iterator[Source | BadLine | tuple[Any, ...]]:
    """Every item of the SOURCE `arguments` that `only` keeps; with `known`, what it answers
    for a local photo in its place (see the module docstring)."""
    for argument in arguments:
        kind = _kind(argument)
        if isinstance(kind, BadLine):
            yield kind
        elif kind == "folder":
            if isinstance(argument, Path):
                yield from _walk(argument, only, known)
            else:
                yield from _walk_url(argument, only)
        elif kind == "image":
            item = Source(argument, PurePosixPath(_name(argument)))
            if only.keeps(item):
                yield _asked(known, item)
        else:
            yield from _manifest(argument, only, known)


def _asked(known: Knows | None, item: Source) -> Source | tuple[Any, ...]:
    """What `known` answers for `item` (a local photo), or the item."""
    if known is None or not isinstance(item.path, Path):
        return item
    return known(str(item.path), str(item.rel), item.styles) or item


def _idle() -> None:
    pass


def count_sources(
    arguments: Sequence[Location], only: Filter = EVERYTHING, *, tick: Callable[[], None] = _idle
) -> int:
    """How many items `iter_sources` will yield, roughly and quickly: names only, no file read
    but manifests (a line is an item; with a shard, the lines of this shard); blocking. A
    manifest row's own styles are not read. `tick` is called for every item walked: it may
    raise to end a walk no longer wanted (a worker thread's `anyio.from_thread.check_cancelled`)."""
    total = 0
    for argument in arguments:
        kind = _kind(argument)
        if kind == "manifest" and only.shard is None and isinstance(argument, Path):
            total += _lines(argument)
        elif kind == "image":
            total += only.in_shard(Source(argument, PurePosixPath(_name(argument))))
        elif not isinstance(kind, BadLine):
            for item in iter_sources([argument], only):
                tick()
                total += isinstance(item, Source)
    return total


def _kind(argument: Location) -> str | BadLine:
    """ "folder", "manifest" or "image"; or why a SOURCE URL cannot be read now."""
    if isinstance(argument, Path):
        folder = argument.is_dir()
    else:
        try:
            folder = storage.is_dir(argument)
        except StoreFailure as failure:
            return BadLine(display(argument), f"cannot read this folder: {failure}")
    if folder:
        return "folder"
    return "manifest" if _ext(argument) in MANIFEST_SUFFIXES else "image"


def _name(where: Location) -> str:
    return os.fsdecode(where.name) if isinstance(where, Path) else storage.name(where)


def _ext(where: Location) -> str:
    """A SOURCE's extension, lower case (a local one as `Path.suffix` has it)."""
    return where.suffix.lower() if isinstance(where, Path) else _suffix(storage.name(where))


def _manifest(
    manifest: Location, only: Filter, known: Knows | None
) -> Iterator[Source | BadLine | tuple[Any, ...]]:
    read, expected = (_jsonl, _JSONL) if _ext(manifest) == ".jsonl" else (_csv, _CSV)
    lines = _Lines(manifest, only, known)
    try:
        for number, row in read(manifest):
            try:
                if isinstance(row, str):
                    raise ValueError(row)
                item = lines.item(*row)
            except ValueError as exc:
                bad = BadLine(f"{display(manifest)} line {number}", f"{exc}: expected {expected}")
                if only.in_shard(bad):
                    yield bad
                continue
            if item is not None:
                yield item
    except (OSError, UnicodeError, csv.Error, StoreFailure) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        yield BadLine(display(manifest), f"cannot read the manifest: {reason}")


_JSONL, _CSV = '{"path": "...", "style": 0}', "path[,style]"  # what a line should be


class _Lines:
    """A manifest's lines made items, under `only`, asked of `known` first where they can be
    as text (see the module docstring)."""

    def __init__(self, manifest: Location, only: Filter, known: Knows | None) -> None:
        self._manifest, self._only = manifest, only
        self._inside = self._prefix = ""  # a manifest in a store: its lines are URLs
        self._known: Knows | None = None
        if isinstance(manifest, Path):
            self._inside = storage.folder_text(manifest.parent)
            folder = str(manifest.parent)
            # What joins a line's relative path into its file's, as `Path` would.
            self._prefix = "" if folder == "." else folder.rstrip("/") + "/"
            self._known = known

    def item(self, raw_path: object, raw_style: object) -> Source | tuple[Any, ...] | None:
        """A line's item (None: another process's, or one of batchtoon's results);
        `ValueError` if the line cannot be used."""
        if not isinstance(raw_path, str) or not raw_path.strip():
            raise ValueError("no path")
        raw = raw_path.strip()
        styles = None if raw_style in (None, "") else parse_styles(raw_style)  # type: ignore[arg-type]
        if not self._only.line_in_shard(raw):
            return None
        if self._known is not None and _plain(raw):
            answer = self._known(self._prefix + raw, raw, styles)
            if answer is not None:
                return answer
            source = Source(Path(self._prefix + raw), PurePosixPath(raw), styles)
        else:
            asked = _asked(self._known, self._source(raw, styles))
            if isinstance(asked, tuple):
                return asked
            source = asked
        return None if self._only.is_result(source) else source

    def _source(self, raw: str, styles: tuple[int, ...] | None) -> Source:
        manifest = self._manifest
        if isinstance(manifest, str) or storage.is_url(raw):
            url, rel = _url_below(manifest, raw)
            return Source(url, rel, styles)
        return Source(manifest.parent / raw, _below(self._inside, raw), styles)


def _plain(raw: str) -> bool:
    """Whether a line's path is relative and plain (no empty part, none starting with a
    dot: no `.` nor `..`): then its file is the manifest's folder joined to it as text, and its
    place below the output the path itself, as `Path` and `_below` would make them."""
    return not raw.startswith("/") and "//" not in raw and "/." not in "/" + raw and raw[-1] != "/"


def _lines(manifest: Path) -> int:
    try:
        with open(manifest, "rb") as file:
            return sum(1 for line in file if line.strip())
    except OSError:
        return 0


def _walk(
    root: Path, only: Filter, known: Knows | None
) -> Iterator[Source | BadLine | tuple[Any, ...]]:
    seen: set[tuple[int, int]] = set()
    unreadable: list[OSError] = []
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable.append):
        while unreadable:
            error = unreadable.pop()
            where = display(error.filename or folder)
            yield BadLine(where, f"cannot read this folder: {error.strerror}")
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:  # a link back up the tree: a loop
            dirs.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        rel_folder = PurePosixPath(os.fsdecode(os.path.relpath(folder, root)))
        dirs[:] = sorted(
            d for d in dirs if not only.skips_folder(str(rel_folder / d), Path(folder, d))
        )
        # As text, as `Path` would write them: a resume walks a million photos.
        inside = "" if str(rel_folder) == "." else f"{rel_folder}/"
        folder_text = "" if str(Path(folder)) == "." else os.path.join(str(Path(folder)), "")
        for name in sorted(files):
            rel = inside + os.fsdecode(name)
            if _suffix(name) not in IMAGE_SUFFIXES or not only.takes(rel):
                continue
            if not only.rel_in_shard(rel):
                continue
            if known is not None and (answer := known(folder_text + name, rel, None)) is not None:
                yield answer
                continue
            item = Source(Path(folder, name), PurePosixPath(rel))
            if not only.is_result(item):
                yield item


def _walk_url(root: str, only: Filter) -> Iterator[Source | BadLine]:
    """A folder in a store: one listing of its prefix, read as it is walked (a page at a
    time), under `_walk`'s rules."""
    found = storage.find(root)
    skipped: dict[str, bool] = {}  # folder below root -> skipped, asked once a folder

    def skips(folder: PurePosixPath) -> bool:
        key = str(folder)
        if key == ".":
            return False
        if key not in skipped:
            own = only.skips_folder(key, storage.join_url(root, key))
            skipped[key] = skips(folder.parent) or own
        return skipped[key]

    while True:
        try:
            url, key = next(found)
        except StopIteration:
            return
        except StoreFailure as failure:
            yield BadLine(display(root), f"cannot read this folder: {failure}")
            return
        text = key.lstrip("/")  # `in//a.jpg`: its URL kept whole, named and filtered as `a.jpg`
        rel = PurePosixPath(text)
        if _suffix(rel.name) in IMAGE_SUFFIXES and not skips(rel.parent) and only.takes(text):
            item = Source(url, rel)
            if only.keeps(item):
                yield item


def _suffix(name: str | bytes) -> str:
    """The extension, lower case, dot included: `..png` has one (os.path.splitext says not)."""
    text = os.fsdecode(name)
    return "." + text.rpartition(".")[2].lower() if "." in text else ""


Row = tuple[int, "tuple[object, object] | str"]  # line number; its path and style, or why not


def _url_below(manifest: Location, raw: str) -> tuple[str, PurePosixPath]:
    """A manifest line's object (a URL, or a path from the manifest's folder in its store) and
    where it sits below the output folder, as `_below` says for files."""
    if storage.is_url(raw):
        where, path = storage.split(raw)
        folder = "/"
    else:
        assert isinstance(manifest, str)
        where, folder = storage.split(storage.parent(manifest))
        path = posixpath.join(folder or "/", raw)
    path = posixpath.normpath("/" + path.lstrip("/"))
    inside = (folder.rstrip("/") + "/") if folder.strip("/") else "/"
    rel = path[len(inside) :] if path.startswith(inside) else path
    parts = [p for p in PurePosixPath(rel).parts if p not in ("/", "..", ".")]
    return where + path, PurePosixPath(*parts)


def _below(inside: str, raw: str) -> PurePosixPath:
    """Where a manifest line's file `raw` should sit below the output folder: relative to the
    manifest's folder `inside` (absolute, its separator at the end) when it is inside it, else
    its own parts with any root and `..` dropped. (Text, not `Path` methods, nor the current
    folder asked again: a million-line manifest takes it a million times.)"""
    absolute = os.path.normpath(os.path.join(inside, raw))
    if absolute.startswith(inside):
        parts = absolute[len(inside) :].split(os.sep)
    else:
        parts = absolute[len(os.path.splitdrive(absolute)[0]) :].split(os.sep)
    return PurePosixPath(*(os.fsdecode(p) for p in parts if p not in ("", "..", ".")))


def _open_text(manifest: Location, newline: str | None = None) -> IO[str]:
    if isinstance(manifest, str):
        return storage.open_text(manifest, newline)
    # utf-8-sig: a spreadsheet's export starts with a byte-order mark; it is not a character
    return open(manifest, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def _jsonl(manifest: Location) -> Iterator[Row]:
    with _open_text(manifest) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = _json_row(line)
            except ValueError as exc:
                yield number, str(exc)
                continue
            if isinstance(row, dict):
                yield number, (row.get("path"), row.get("style"))
            else:
                yield number, "not an object"


def _json_row(line: str) -> Any:
    """A `.jsonl` line read (orjson: a million of them; json for what orjson refuses, such as
    a name with an unpaired surrogate)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _csv(manifest: Location) -> Iterator[Row]:
    with _open_text(manifest, newline="") as lines:
        for number, row in enumerate(csv.reader(lines), 1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0].strip().lower() in HEADER_WORDS:
                continue  # a header, as spreadsheets write one
            if len(row) > 2:
                yield number, f"{len(row)} columns"
            else:
                yield number, (row[0], row[1] if len(row) > 1 else None)
