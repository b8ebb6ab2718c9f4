"""Where images come from: SOURCE arguments walked lazily, one `Source` at a time.

A SOURCE is a folder (walked recursively, in name order, following links to folders but never
round a loop), a manifest (`.jsonl`: `{"path": ..., "style": ...}` a line; `.csv`: `path[,style]`
with an optional header), or a single image. Nothing is loaded up front: `iter_sources` is a
generator, so a million-line manifest costs one line of memory at a time.

A manifest line that cannot be used is yielded as a `BadLine` with its line number, and the
walk goes on.

A `Filter` (`--include`/`--exclude`, config `sources`) keeps a folder's files by globs on their
path below the folder, posix-style: `*` within a name, `**` across folders, a pattern without
`/` on the name alone (`*.gif`), case ignored as the suffixes are; an excluded folder is not
walked. Manifests and single images are taken as given.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wcmatch import glob

from .errors import UsageError
from .styles import parse_styles

__all__ = [
    "IMAGE_SUFFIXES",
    "BadLine",
    "Filter",
    "Source",
    "check_sources",
    "count_sources",
    "display",
    "iter_sources",
    "next_batch",
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
    path: Path  # the file to read
    rel: PurePosixPath  # where it sits below its SOURCE, for the output layout
    styles: tuple[int, ...] | None = None  # a manifest row's own styles


@dataclass(frozen=True, slots=True)
class BadLine:
    where: str  # "list.csv line 7"
    reason: str


# What must never reach a terminal raw: C0 and C1 controls and DEL (escape sequences, a carriage
# return that overwrites the line), and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def display(path: Path | str | bytes) -> str:
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


_GLOB = glob.GLOBSTAR | glob.MATCHBASE | glob.DOTGLOB | glob.IGNORECASE | glob.FORCEUNIX


@dataclass(frozen=True)
class Filter:
    """Which files of a folder SOURCE to take: those matching an `include` glob (every one, if
    there are none) and no `exclude` glob; a folder matching an `exclude` glob is skipped, and
    so is batchtoon's own: any `.batchtoon` folder, and the folders in `avoid` (the output
    folder), so a run never cartoonises its own cartoons."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    avoid: tuple[Path, ...] = ()
    _includes: glob.WcMatcher[str] | None = field(init=False, repr=False, compare=False)
    _excludes: glob.WcMatcher[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, patterns in (("_includes", self.include), ("_excludes", self.exclude)):
            compiled = glob.compile(list(patterns), flags=_GLOB) if patterns else None
            object.__setattr__(self, name, compiled)

    def takes(self, rel: str) -> bool:
        """Whether the file at `rel` (posix, below its SOURCE folder) is taken."""
        if self._includes is not None and not self._includes.match(rel):
            return False
        return self._excludes is None or not self._excludes.match(rel)

    def skips_folder(self, rel: str, path: Path) -> bool:
        if path.name == OWN_FOLDER or any(_same(path, avoided) for avoided in self.avoid):
            return True
        return self._excludes is not None and self._excludes.match(rel)


OWN_FOLDER = ".batchtoon"


def _same(path: Path, other: Path) -> bool:
    try:
        return path.samefile(other)
    except OSError:
        return False


EVERYTHING = Filter()


def check_sources(arguments: list[Path]) -> None:
    """Refuse, before anything runs, a SOURCE that is not there or not something we read."""
    for argument in arguments:
        if not argument.exists():
            raise UsageError(
                f"SOURCE {display(argument)} does not exist: give a folder or a manifest"
            )
        if argument.is_file() and argument.suffix.lower() not in MANIFEST_SUFFIXES | IMAGE_SUFFIXES:
            raise UsageError(
                f"SOURCE {display(argument)} is not a folder, a .jsonl/.csv manifest or an image"
            )


def iter_sources(arguments: list[Path], only: Filter = EVERYTHING) -> Iterator[Source | BadLine]:
    for argument in arguments:
        if argument.is_dir():
            yield from _walk(argument, only)
            continue
        if argument.suffix.lower() not in MANIFEST_SUFFIXES:
            yield Source(argument, PurePosixPath(os.fsdecode(argument.name)))
            continue
        try:
            yield from (_jsonl if argument.suffix.lower() == ".jsonl" else _csv)(argument)
        except (OSError, UnicodeError, csv.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            yield BadLine(display(argument), f"cannot read the manifest: {reason}")


def count_sources(arguments: list[Path], only: Filter = EVERYTHING) -> int:
    """How many items `iter_sources` will yield, roughly and quickly: names only, no file read
    but manifests (a line is an item); blocking. A manifest row's own styles are not read."""
    total = 0
    for argument in arguments:
        if argument.is_dir():
            total += sum(isinstance(item, Source) for item in _walk(argument, only))
        elif argument.suffix.lower() in MANIFEST_SUFFIXES:
            total += _lines(argument)
        else:
            total += 1
    return total


def _lines(manifest: Path) -> int:
    try:
        with open(manifest, "rb") as file:
            return sum(1 for line in file if line.strip())
    except OSError:
        return 0


def next_batch(items: Iterator[Source | BadLine], size: int = 256) -> list[Source | BadLine]:
    """Up to `size` more items (run it in a thread: walking and reading manifests block)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            break
    return batch


def _walk(root: Path, only: Filter) -> Iterator[Source | BadLine]:
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
        for name in sorted(files):
            if _suffix(name) in IMAGE_SUFFIXES:
                rel = rel_folder / os.fsdecode(name)
                if only.takes(str(rel)):
                    yield Source(Path(folder, name), rel)


def _suffix(name: str | bytes) -> str:
    """The extension, lower case, dot included: `..png` has one (os.path.splitext says not)."""
    text = os.fsdecode(name)
    return "." + text.rpartition(".")[2].lower() if "." in text else ""


def _row_source(manifest: Path, raw_path: object, raw_style: object) -> Source:
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise ValueError("no path")
    path = manifest.parent / raw_path.strip()
    styles = None if raw_style in (None, "") else parse_styles(raw_style)  # type: ignore[arg-type]
    return Source(path, _below(manifest.parent, path), styles)


def _below(base: Path, path: Path) -> PurePosixPath:
    """The path as it should sit below the output folder: relative to the manifest's folder when
    it is inside it, else its own parts with any root and `..` dropped."""
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(os.path.abspath(base))
    except ValueError:
        rel = Path(*absolute.parts[1:])
    return PurePosixPath(*(os.fsdecode(p) for p in rel.parts if p not in ("..", ".")))


def _jsonl(manifest: Path) -> Iterator[Source | BadLine]:
    # utf-8-sig: a spreadsheet's export starts with a byte-order mark; it is not a character
    with open(manifest, encoding="utf-8-sig", errors="surrogateescape") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{display(manifest)} line {number}"
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
                yield _row_source(manifest, row.get("path"), row.get("style"))
            except ValueError as exc:
                yield BadLine(where, f'{exc}: expected {{"path": "...", "style": 0}}')


def _csv(manifest: Path) -> Iterator[Source | BadLine]:
    with open(manifest, encoding="utf-8-sig", errors="surrogateescape", newline="") as lines:
        for number, row in enumerate(csv.reader(lines), 1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0].strip().lower() in HEADER_WORDS:
                continue  # a header, as spreadsheets write one
            where = f"{display(manifest)} line {number}"
            try:
                if len(row) > 2:
                    raise ValueError(f"{len(row)} columns")
                yield _row_source(manifest, row[0], row[1] if len(row) > 1 else None)
            except ValueError as exc:
                yield BadLine(where, f"{exc}: expected path[,style]")
