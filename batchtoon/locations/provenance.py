"""The output location's own record of what is in it: which photo (its content's sha256) and
which style each result is the cartoon of, kept in the output location itself (a folder or a
bucket prefix), so any journal, on any machine, from any current folder, reads the same.

Its form: small JSON files (objects in a store) below `<out>/.batchtoon/` (a folder no walk
takes photos from), one per output name and one per (photo, style):

    names/<base>.json            a claim: {"photo": sha256, "style": 3, "journal": id,
                                 "host": the claimant's host name, "path": its journal}
    made/<sha256>.<style>.json   {"name": "<base>.<ext>", "size": bytes, "sha256": result's,
                                  "source": the photo as the run that made it named it}

Why files of their own, not one index: a store has no append and no rename, and two processes
may write one output location at once. Each fact is its own file, written whole by the one
process that claimed it; nothing is ever edited by two writers. Reads are by name (one read per
photo and style admitted, one per file met below the output by a walk): nothing to load first,
and always what is there now, whatever another process wrote a moment ago.

Guarantees:
- a name is claimed before a result may be written under it, and the claim is exclusive: a
  local file created with `O_CREAT|O_EXCL|O_NOFOLLOW`, an object by a conditional put
  (`If-None-Match: *`, which S3 and moto honour); of two processes claiming one name, one wins
  and the other takes a name of its own;
- a name where a file already is that the record does not give to this photo and style (the
  user's own, another photo's, a result of a batchtoon before this record) is never claimed,
  unless the journal itself knows that file as its own (`adopt`);
- `lookup` gives a result only if its file is there now, at the size recorded;
- `is_ours` says whether a file below the output location is a result (at a name claimed for
  a photo and style the record holds a result of), so a walk never takes one as a photo
  (`--out` inside SOURCE, or equal to it);
- a record that cannot be read (garbled, or not JSON) claims nothing for anyone: its name is
  left alone as taken;
- a claim of another journal is that run's, but for one made on this host by a journal that
  is gone (its file deleted, or another journal in its place): that one is taken over, so a
  run started afresh after its journal was removed finishes what the old one left.

Blocking: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from batchtoon.errors import StoreFailure, Unwritable
from batchtoon.locations import storage
from batchtoon.locations.files import CREATE, part_name, read_all, write_all, write_whole
from batchtoon.locations.layout import EXTENSIONS
from batchtoon.locations.storage import Location

__all__ = ["RESULT_EXTENSIONS", "Claim", "Made", "Provenance", "Result"]

HOST = socket.gethostname()
FOLDER = ".batchtoon"  # below the output location: never walked for photos (`sources`)
RESULT_EXTENSIONS = tuple(EXTENSIONS.values())  # what a result may be written as

# mine: the name is this photo's in this style, for this journal; taken: someone else's (or a
# file that is no one's result); elsewhere: this photo in this style, claimed by another journal.
Claim = Literal["mine", "taken", "elsewhere"]


@dataclass(frozen=True, slots=True)
class Made:
    """A result the record names: its name below the output, size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Result:
    """A result of a local output folder, as its record has it (for the gallery)."""

    photo: str
    style: int
    name: str
    source: str


class Provenance:
    def __init__(self, out: Location, journal: str = "", journal_path: Path | None = None) -> None:
        self.out = out
        self.journal = journal  # the claiming journal's id (`Ledger.journal_id`): for claims
        self._me = {"journal": journal, "host": HOST, "path": str(journal_path or "")}
        self._living: dict[tuple[str, str], bool] = {}  # (journal path, id) -> it is there
        self._root = storage.join(out, FOLDER)
        self._objects: set[str] | None = None  # a store's names below `out`, once listed
        self._listing = threading.Lock()
        self._folders: set[Path] = set()  # local folders of the record made by this process
        self._cwd = os.getcwd() if isinstance(out, Path) else "/"  # (for relative paths)
        # The output folder, absolute, as given and with its links followed (a separator last)
        self._out_text = (
            (storage.folder_text(out), _real_folder(os.path.abspath(out)))
            if isinstance(out, Path)
            else ("", "")
        )

    def __repr__(self) -> str:
        return f"<Provenance {self.out}>"

    def lookup(self, photo: str, style: int) -> Made | None:
        """This photo's result in this style, if the record has one and its file is there at
        the recorded size."""
        made = self._read(f"made/{photo}.{style}.json") or {}
        name, size = made.get("name"), made.get("size")
        if not isinstance(name, str) or not isinstance(size, int):
            return None
        if _size(storage.join(self.out, name)) != size:
            return None
        return Made(name, size, str(made.get("sha256", "")))

    def claim(self, base: str, photo: str, style: int, *, adopt: bool = False) -> Claim:
        """Claim the output name `base` (no extension) for this photo and style. `adopt`: the
        journal knows files there as this item's, so they do not make the name taken."""
        wanted = {"photo": photo, "style": style}
        for _ in range(2):  # a claim removed between our create and our read: once more
            held = self._read(_name_file(base))
            if held is not None:
                return self._verdict(base, held, wanted)
            if not adopt and self._occupied(base):
                return "taken"
            if self._create(_name_file(base), {**wanted, **self._me}):
                return "mine"
        return "taken"

    def record(self, photo: str, style: int, made: Made, source: str) -> None:
        """Say that `made.name` (a claimed name and its extension) now holds this photo's
        result in this style; `source`: the photo, as this run names it."""
        result = {"name": made.name, "size": made.size, "sha256": made.sha256, "source": source}
        self._write(f"made/{photo}.{style}.json", result)

    def results(
        self, known: Callable[[str, int], bool] = lambda photo, style: False
    ) -> Iterator[Result]:
        """Every result a local output folder's record names whose file is there, but those
        of a (photo, style) `known` knows already (told by the record's file name: not read),
        as the folder lists them."""
        assert isinstance(self.out, Path), "a gallery is made for a local folder only"
        try:
            listing = os.scandir(self.out / FOLDER / "made")
        except FileNotFoundError:
            return
        with listing:
            for file in listing:
                photo, _, style = file.name.removesuffix(".json").partition(".")
                if not style.isdigit() or known(photo, int(style)):
                    continue
                made = self.lookup(photo, int(style))
                source = (self._read(f"made/{file.name}") or {}).get("source")
                if made is not None and isinstance(source, str):
                    yield Result(photo, int(style), made.name, source)

    def is_ours(self, where: Location) -> bool:
        """Whether `where` is one of batchtoon's results: below the output location, with a
        result's extension, at a name claimed for a photo and style the record holds a result
        of (the first file written, or a copy of it for the photo's other paths)."""
        rel = self._below(where)
        if rel is None or rel.suffix[1:].lower() not in RESULT_EXTENSIONS:
            return False
        held = self._read(_name_file(str(rel.with_suffix("")))) or {}
        return self._named(held.get("photo"), held.get("style")) is not None

    def _named(self, photo: object, style: object) -> str | None:
        """The result's name the record gives this photo and style, if any (its file may be
        gone)."""
        made = self._read(f"made/{photo}.{style}.json") if photo and style is not None else None
        name = (made or {}).get("name")
        return name if isinstance(name, str) else None

    def _verdict(self, base: str, held: dict[str, Any], wanted: dict[str, Any]) -> Claim:
        if any(held.get(k) != v for k, v in wanted.items()):
            return "taken"
        if held.get("journal") == self.journal:
            return "mine"
        if not self._gone(held):
            return "elsewhere"
        self._write(_name_file(base), {**wanted, **self._me})  # taken over (see the docstring)
        return "mine"

    def _gone(self, held: dict[str, Any]) -> bool:
        """Whether the journal that made this claim is gone: on this host, and its file is no
        longer there with that id in it (asked once a journal)."""
        path, journal = held.get("path"), held.get("journal")
        if held.get("host") != HOST or not isinstance(path, str) or not path:
            return False
        if not isinstance(journal, str) or not journal:
            return False
        if (path, journal) not in self._living:
            self._living[path, journal] = _holds(Path(path), journal)
        return not self._living[path, journal]

    def _occupied(self, base: str) -> bool:
        """Whether a file is at `base` with any extension a result could have. In a store, by
        one listing of the output made once (the files in question were there before)."""
        names = [f"{base}.{ext}" for ext in RESULT_EXTENSIONS]
        if isinstance(self.out, Path):
            return any(_size(self.out / name) is not None for name in names)
        with self._listing:
            if self._objects is None:
                try:
                    self._objects = storage.listing(self.out)
                except StoreFailure as failure:
                    raise Unwritable(f"cannot list {self.out}: {failure}") from None
            return any(name in self._objects for name in names)

    def release(self, base: str, photo: str, style: int) -> None:
        """Let go of this journal's claim of `base` for a photo and style that will have no
        result (it failed): another journal may take the photo on."""
        held = self._read(_name_file(base)) or {}
        mine = {"photo": photo, "style": style, "journal": self.journal}
        named = self._named(photo, style)
        ours = all(held.get(k) == v for k, v in mine.items())
        if ours and (named is None or named.rpartition(".")[0] != base):
            storage.remove(storage.join(self._root, _name_file(base)))

    def _below(self, where: Location) -> PurePosixPath | None:
        if isinstance(where, Path) and isinstance(self.out, Path):
            # As text: a walk asks this of every photo it meets.
            absolute = os.path.normpath(os.path.join(self._cwd, where))  # (no getcwd a photo)
            rel = _inside(absolute, self._out_text[0])
            if rel is None:  # perhaps through a link: as the OS sees them (its folder's once)
                folder, name = os.path.split(absolute)
                link = os.path.islink(absolute)
                real = os.path.realpath(absolute) if link else _real_folder(folder) + name
                rel = _inside(real, self._out_text[1])
            return None if rel is None else PurePosixPath(rel.replace(os.sep, "/"))
        if isinstance(where, str) and isinstance(self.out, str):
            prefix = self.out.rstrip("/") + "/"
            return PurePosixPath(where[len(prefix) :]) if where.startswith(prefix) else None
        return None

    # The files themselves.

    def _read(self, rel: str) -> dict[str, Any] | None:
        where = storage.join(self._root, rel)
        try:
            data = _read_local(where) if isinstance(where, Path) else _read_url(where)
        except FileNotFoundError:
            return None
        try:
            found = json.loads(data)
        except ValueError:
            return {}  # unreadable: claims nothing for anyone
        return found if isinstance(found, dict) else {}

    def _create(self, rel: str, content: dict[str, Any]) -> bool:
        where = storage.join(self._root, rel)
        data = json.dumps(content).encode()
        if isinstance(where, str):
            try:
                return storage.create(where, data)
            except StoreFailure as failure:
                raise Unwritable(f"cannot claim {where}: {failure}") from None
        try:
            self._folder(where.parent)
        except OSError as error:  # (a file where the folder goes: never "claimed already")
            raise Unwritable.from_os_error(error, where.parent, "make the folder") from None
        try:
            return _create_whole(where, data)
        except OSError as error:
            raise Unwritable.from_os_error(error, where, "write") from None

    def _folder(self, folder: Path) -> None:
        """Make `folder` (once a process: a claim a photo must not cost a walk up the tree)."""
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)

    def _write(self, rel: str, content: dict[str, Any]) -> None:
        where = storage.join(self._root, rel)
        data = json.dumps(content).encode()
        try:
            if isinstance(where, str):
                storage.put(where, data)
                return
            self._folder(where.parent)
            write_whole(where, data, durable=False)
        except StoreFailure as failure:
            raise Unwritable(f"cannot write {where}: {failure}") from None
        except OSError as error:
            raise Unwritable.from_os_error(error, where, "write") from None


def _create_whole(where: Path, data: bytes) -> bool:
    """Create `where` holding `data`, unless something (a file, a link) is there: False then.
    Written beside it first and hard-linked into place, so that another process never reads
    a claim half written (it would take it for garbage, name the photo apart and pay for it
    again); where the file system has no hard links, created in place exclusively."""
    part = where.with_name(part_name(where.name, ".part"))
    _write_new(part, data)
    try:
        os.link(part, where)  # never through a link planted at `where`: EEXIST
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    finally:
        part.unlink(missing_ok=True)
    try:
        _write_new(where, data)
    except FileExistsError:
        return False
    return True


def _write_new(where: Path, data: bytes) -> None:
    fd = os.open(where, CREATE, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _holds(journal: Path, journal_id: str) -> bool:
    """Whether the file `journal` is there with the record of this id in it (in doubt: yes)."""
    wanted = f'"id":"{journal_id}"'.encode()
    try:
        with open(journal, "rb") as file:
            return any(wanted in line for line in file if line.startswith(b'{"v":'))
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _inside(path: str, folder: str) -> str | None:
    """`path` below `folder` (which ends with its separator), or None if it is not below it."""
    return path[len(folder) :] if path.startswith(folder) else None


@functools.lru_cache(maxsize=1024)
def _real_folder(folder: str) -> str:
    """The absolute `folder` with its links followed, its separator at the end."""
    return os.path.join(os.path.realpath(folder), "")


def _name_file(base: str) -> str:
    return f"names/{base}.json"


def _size(where: Location) -> int | None:
    """The size of the file at `where`, None if none is there."""
    if isinstance(where, Path):
        with contextlib.suppress(OSError):
            return where.stat().st_size if where.is_file() else None
        return None
    try:
        return storage.stat(where).size
    except StoreFailure as failure:
        if failure.missing:
            return None
        raise Unwritable(f"cannot read {where}: {failure}") from None


def _read_local(where: Path) -> bytes:
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileNotFoundError(where) from None
        if error.errno == errno.ELOOP:
            return b""  # a link where a record should be: it claims nothing
        raise Unwritable.from_os_error(error, where, "read") from None
    try:
        return read_all(fd, 1 << 16)
    finally:
        os.close(fd)


def _read_url(where: str) -> bytes:
    try:
        return storage.read(where, storage.stat(where).size)
    except StoreFailure as failure:
        if failure.missing:
            raise FileNotFoundError(where) from None
        raise Unwritable(f"cannot read {where}: {failure}") from None
