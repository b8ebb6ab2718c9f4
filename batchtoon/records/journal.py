"""The JSON-lines journal: the one owner of the file every state change is appended to.

Guarantees:
- `write(record)` returns only once the record is on disk (written, flushed and fsync'd);
  the flusher waits `linger` seconds (5 ms) so that the records written meanwhile, and those
  written while a flush is under way, are committed together (group commit): many writers cost
  one fsync per batch, not one each. A crash loses at most the records whose `write` had not
  returned: the transitions in flight.
- the flush is shielded from cancellation: a stopped run never leaves half a batch.
- `replay` tolerates a torn last line (a crash mid-write) and truncates it before appending;
  a line it cannot read (garbled, or written by another version with other types) is skipped
  and counted, and so is every such line that held a task id: that task may be paid again.
- only a batchtoon journal is ever written, read or given a lock and a log: an existing file
  that is not one (not empty, and its first line no journal record: a user's notes, a photo,
  `~/.profile` named by a config file) is refused with one line (`UsageError`, exit 2) before
  anything is made beside it;
- a journal has an id (its `journal` record, written when it is first opened), by which the
  output location's record (`locations.provenance`) tells this journal's claims from others';
- a lock file beside the journal's real file (symbolic links resolved, so no path trick runs
  two writers; `filelock`, so it works on every platform) stops a second run from sharing the
  journal; the OS drops the lock when the process dies, even by SIGKILL.
- a journal that cannot be written (disk full, read-only, not a file) is an `Unwritable` error
  naming the path; after a failed flush nothing more is appended, so the file ends at most in a
  torn line, which the next `open` drops.
- nothing secret goes in: the API key, if a record holds it (an answer echoing it back), is
  replaced by `***` in the values written (a key under 8 characters only where it is a whole
  value: `k` must not take every k out of the paths).
- compaction (`compact`: at the end of a run, and on opening a journal that holds over
  `COMPACT_RATIO` lines an item) rewrites it as one record per item (`item`, `rejected`) after
  its `journal` and `totals` records, beside the real file and then renamed over it, fsync'd
  before and after: a crash at any point leaves the old journal or the new one, whole, and
  the lock is held throughout; the rewrite's own temporary file (`.<name>.compacting`) is the
  only file it removes, by that name. Every format ever written is still read.
- done items are read back from the journal itself when asked for (`Ledger.entries`): the
  ledger keeps where their `item` record is, not the record.
- nothing process-wide is touched (an application may embed `Batch`): replay leaves the garbage
  collector alone, at a cost measured in `benchmarks/bench_replay.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import anyio
import orjson
from filelock import FileLock, Timeout

from batchtoon.errors import Unwritable, UsageError
from batchtoon.locations.files import create_part, remove_left_part
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.records.ledger import Event, Ledger, make_record

__all__ = ["COMPACT_RATIO", "Journal", "refuse_foreign"]

COMPACT_RATIO = 3  # lines an item over which opening a journal compacts it ...
COMPACT_FLOOR = 1000  # ... once it holds at least this many lines
HEAD = 3  # a compacted journal's records before its items: journal, totals, folders
SHORTEST_SECRET = 8  # characters a key needs to be scrubbed from within a longer text


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        linger: float = 0.005,
        secret: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self.linger = linger
        self.ledger = Ledger(self._record_at)
        self.lines = 0  # records in the file (as read, and written since)
        self._reader: IO[bytes] | None = None  # for the records of done items
        self.skipped_lines = 0  # unreadable lines met by replay (not counting a torn tail)
        self.skipped_tasks = 0  # of those, lines that held a task id: possibly paid again
        self._secret = secret
        self._clock = clock
        self._file: IO[bytes] | None = None
        self._lock: FileLock | None = None
        self._broken: Unwritable | None = None
        self._pending: list[tuple[bytes, dict[str, Any]]] = []  # encoded, and as a record
        self._written = 0  # records handed to write()
        self._durable = 0  # records known to be on disk
        self.flushes = 0
        self._flushed = anyio.Event()
        self._flushing = False
        # Called with each record once it is on disk: how tests wait on a state change.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def __repr__(self) -> str:
        return (
            f"<Journal {self.path} durable={self._durable} flushes={self.flushes} {self.ledger!r}>"
        )

    @classmethod
    def replay(cls, path: Path) -> Journal:
        """Read the journal (without locking or opening it for writing)."""
        refuse_foreign(path)
        journal = cls(path)
        journal._read()
        return journal

    def open(self) -> None:
        """Lock the journal, replay it, and make it ready for appending."""
        refuse_foreign(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = self._acquire_lock()
            good_length = self._read()
            remove_left_part(self._compaction_file()[1])  # a crashed compaction's
            self._file = open(self.path, "ab")  # noqa: SIM115  closed in close()
            if self._file.tell() != good_length:
                self._file.truncate(good_length)  # drop a torn last line
            elif good_length and not self._ends_with_newline():
                _append(self._file, b"\n")  # a whole last record whose newline never came
            if not self.ledger.journal_id:
                self._identify()
            if self.lines >= COMPACT_FLOOR and self.lines > COMPACT_RATIO * self.compacted_lines:
                with contextlib.suppress(OSError):  # (kept whole as it is: only longer)
                    self.compact()
        except OSError as error:
            self.close()
            raise Unwritable.from_os_error(error, self.path, "open the journal") from None

    def _identify(self) -> None:
        """Give the journal its id: a `journal` record, on disk before anything else."""
        assert self._file is not None
        record = make_record("journal", self._clock.wall(), id=uuid.uuid4().hex)
        _append(self._file, _encode(record))
        self.ledger.apply(record)
        self.lines += 1

    def close(self) -> None:
        """Write what is still pending (records that were not waited for), then let go."""
        try:
            if self._file is not None and self._pending and self._broken is None:
                _append(self._file, self._encoded(self._pending))
                self._pending = []
        except OSError:
            pass  # those records were not waited for: a resume redoes them
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"

    def _acquire_lock(self) -> FileLock:
        real = self.path.resolve()  # the file itself, whatever links lead to it
        path = real.with_name(real.name + ".lock")
        lock = FileLock(path, timeout=0, on_acquired=_write_pid)
        try:
            lock.acquire()
        except Timeout:
            raise UsageError(
                f"journal {self.path} is in use by another batchtoon run (pid {_holder(path)}): "
                "wait for it to finish, or give this run its own --journal"
            ) from None
        return lock

    def _read(self) -> int:
        """Fold every readable line into the ledger; the length of the file's good part.

        The file is streamed, so memory holds the ledger, not the journal."""
        try:
            file = open(self.path, "rb")  # noqa: SIM115  closed by the with below
        except FileNotFoundError:
            return 0
        good_length, lines, apply = 0, 0, self.ledger.apply
        with file:
            for line in file:
                try:
                    apply(_decode(line), good_length)
                    lines += 1
                except (ValueError, KeyError, TypeError, AttributeError):
                    if not line.endswith(b"\n"):
                        break  # a torn tail: the record never finished
                    self.skipped_lines += bool(line.strip())
                    self.skipped_tasks += b'"task_id"' in line
                good_length += len(line)
        self.lines = lines
        self._reader = open(self.path, "rb")  # noqa: SIM115  closed in close(), or with it
        return good_length

    def _record_at(self, offset: int) -> dict[str, Any]:
        """The record at `offset` (a done item's, which the ledger asks for)."""
        return _decode(self._line_at(offset))

    def _line_at(self, offset: int) -> bytes:
        if self._reader is None:
            self._reader = open(self.path, "rb")  # noqa: SIM115  closed in close()
        fd, chunk = self._reader.fileno(), b""
        while True:
            more = os.pread(fd, 4096, offset + len(chunk))
            chunk += more
            end = chunk.find(b"\n")
            if end >= 0:
                return chunk[: end + 1]
            if not more:
                raise ValueError(f"no whole record at offset {offset} of {self.path}")

    @property
    def compacted_lines(self) -> int:
        """The lines the journal would hold compacted."""
        return HEAD + self.ledger.item_count()

    def compact(self) -> None:
        """Rewrite the journal as one record per item (see the module docstring). Blocking."""
        assert self._file is not None, "Journal.open() first"
        if self._pending:  # records nobody waited for: they go first, as they would have
            _append(self._file, self._encoded(self._pending))
            self._pending = []
        real, temp = self._compaction_file()
        out = create_part(temp)  # (a crashed compaction's removed; anything else left alone)
        try:
            with out:
                moved, placed, lines = self._write_compacted(out)
        except BaseException:
            temp.unlink(missing_ok=True)  # ours: made just now
            raise
        os.replace(temp, real)  # from here on, the new journal: a reader sees one or the other
        _sync_folder(real.parent)
        self._file.close()
        self._file = open(self.path, "ab")  # noqa: SIM115  closed in close()
        if self._reader is not None:
            self._reader.close()
        self._reader = open(self.path, "rb")  # noqa: SIM115  closed in close()
        rows, offsets = moved
        for row, offset in zip(rows, offsets, strict=True):
            self.ledger.done.offsets[row] = offset
        for record, offset in placed:  # done items that were in hand: rows now
            self.ledger.located(record, offset)
        self.lines = lines

    def _compaction_file(self) -> tuple[Path, Path]:
        """The journal's real file (through links) and the compaction's file beside it."""
        real = self.path.resolve()
        return real, real.with_name(f".{real.name}.compacting")

    def _write_compacted(
        self, out: IO[bytes]
    ) -> tuple[tuple[array[int], array[int]], list[tuple[dict[str, Any], int]], int]:
        """Write the compacted journal to `out`, fsync'd; the done items' rows and each one's
        new offset, the records of the items in hand and their offsets, and the lines written.
        The rows and offsets are arrays: 12 bytes a done item, where a list of pairs of ints
        took some 140 (14 MiB at 100,000 photos, the peak of a run's end)."""
        ledger, now = self.ledger, self._clock.wall()
        head = [
            make_record("journal", now, id=ledger.journal_id),
            make_record("totals", now, **ledger.uploads.fields(), out=ledger.out),
            make_record("folders", now, folders=list(ledger.folders)),
            *(
                make_record("rejected", now, source=source, style=style, reason=reason)
                for (source, style), reason in ledger.rejected.items()
            ),
        ]
        rows, offsets = array("I"), array("q")
        placed: list[tuple[dict[str, Any], int]] = []
        offset = 0
        for record in head:
            offset += out.write(self._line(record))
        for row, old in ledger.done.located():
            rows.append(row)
            offsets.append(offset)
            line = self._line_at(old)
            record = _decode(line)
            if ledger.interned(record):  # (written by a run: sources in full)
                line = self._line(record)
            offset += out.write(line)
        for entry in list(ledger.live.values()):
            record = make_record("item", now, **entry.fields())
            placed.append((record, offset))
            ledger.interned(record)
            offset += out.write(self._line(record))
            ledger.named(record)  # (as `located` takes it)
        out.flush()
        os.fsync(out.fileno())
        return (rows, offsets), placed, len(head) + len(rows) + len(placed)

    async def write(self, event: Event, *, durable: bool = True, **fields: Any) -> None:
        """Fold a record into the ledger and append it (see `append`), stamped now."""
        record = make_record(event, self._clock.wall(), **fields)
        if self._broken is not None:
            raise self._broken
        self.ledger.apply(record)
        await self.append(record, durable=durable)

    async def append(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """Append a record the ledger has folded in already (the state machine folds its own);
        with `durable` (the default) return once it is on disk.

        `durable=False` is for records whose loss costs nothing (a resume redoes them): they go
        out with the next flush, and since flushes keep order, any durable record written after
        one carries it to disk too; such an append returns without yielding to another task."""
        if self._broken is not None:
            raise self._broken
        self._pending.append((self._line(record), record))
        self._written += 1
        self.lines += 1
        mine = self._written
        while durable and self._durable < mine:
            if self._flushing:
                await self._flushed.wait()
            else:
                with anyio.CancelScope(shield=True):
                    await self._flush()

    async def _flush(self) -> None:
        assert self._file is not None, "Journal.open() first"
        self._flushing = True
        self.flushes += 1
        await anyio.sleep(self.linger)  # let the records written meanwhile join this batch
        batch, self._pending, upto = self._pending, [], self._written
        try:
            start = self._file.tell()
            await anyio.to_thread.run_sync(_append, self._file, self._encoded(batch))
            self._durable = upto
        except OSError as error:
            self._broken = Unwritable.from_os_error(error, self.path, "write the journal")
            raise self._broken from None
        except BaseException:
            self._pending = batch + self._pending  # the next flush tries them again
            raise
        finally:
            self._flushing = False
            self._flushed.set()
            self._flushed = anyio.Event()
        offset = start
        for encoded, record in batch:
            if record["event"] == "item":
                self.ledger.located(record, offset)
            offset += len(encoded)
            for observer in self.observers:
                observer(record)

    def _encoded(self, batch: list[tuple[bytes, dict[str, Any]]]) -> bytes:
        return b"".join(encoded for encoded, _ in batch)

    def _line(self, record: dict[str, Any]) -> bytes:
        """`record` as its line in the journal, the key scrubbed from its values."""
        line = _encode(record)
        if self._secret and self._secret.encode() in line:
            line = _encode(_scrubbed(record, self._secret))
        return line


def _encode(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # a file name that is not UTF-8: json escapes its surrogates, orjson won't
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _scrubbed(value: Any, secret: str) -> Any:
    """`value` (a record, or within one) with `secret` replaced by `***` in its text values;
    a secret under `SHORTEST_SECRET` characters only where it is the whole value (within a
    longer text it cannot be told from ordinary characters). Names of fields are kept."""
    if isinstance(value, str):
        if len(secret) >= SHORTEST_SECRET:
            return value.replace(secret, "***")
        return "***" if value == secret else value
    if isinstance(value, dict):
        return {name: _scrubbed(inner, secret) for name, inner in value.items()}
    if isinstance(value, list):
        return [_scrubbed(inner, secret) for inner in value]
    return value


def _decode(line: bytes) -> dict[str, Any]:
    try:
        record: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError:
        record = json.loads(line)  # the escaped surrogates of _encode's fallback
    return record


JOURNAL_START = re.compile(rb'\{\s*"v"\s*:')  # how every record starts (`_encode`: v first)


def refuse_foreign(path: Path) -> None:
    """`UsageError` if `path` is a file that is not a batchtoon journal (see the docstring)."""
    try:
        with open(path, "rb") as file:
            start = file.read(64)
    except (FileNotFoundError, IsADirectoryError):
        return  # a new journal; a folder is refused by the open, naming it
    except OSError:
        return  # unreadable: the open says why, naming it
    if start and not JOURNAL_START.match(start):
        raise UsageError(
            f"{path} is not a batchtoon journal (it holds something else): give --journal a "
            "new file name, or an existing journal"
        )


def _write_pid(fd: int) -> None:
    """Leave the holder's pid in the lock file, for the message a second run gets."""
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform can: not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a folder that cannot be fsync'd: the rename is as durable as the system makes it
    finally:
        os.close(fd)


def _append(file: IO[bytes], data: bytes) -> None:
    file.write(data)
    file.flush()
    os.fsync(file.fileno())
