"""What is known about every item: the journal's records folded into one `Entry` per key.

An item's key is its content's sha256 and the style, `"<sha256>:<style>"`: two files with the
same bytes are one item (one submission) with two targets (two output files). The ledger is
rebuilt by replaying the journal and kept current by applying each record as it is written,
so that what a run decides and what a resume would decide are the same function.

Records (one JSON object a line; `v` format version, `t` unix time, `event`, `key`, and the
source path(s): `source` where the record is about one file, else `sources`, all of the item's):

    queued      source, output [, seen, retry]   a target (source file -> output path, no
                                           extension; `seen`: the source's `fingerprint` as read)
    submitted   sources, task_id [, sent, saved, unanswered]
                                           the API accepted the image (bytes sent; bytes
                                           preparation saved; uploads before it unanswered)
    seen        source, output, seen       the source of a target read again, with this
                                           fingerprint (touched: same bytes, new times)
    succeeded   sources, result_url, expires_at
    downloaded  source, output, size, sha256   one per target file written
    lost        sources, reason            the task or its result URL is gone: submit again
    failed      sources, class, reason     the item cannot succeed
    item        state, targets [[output, source, seen]...] and the state's own fields (ext,
                written, task_id, submitted_at, result_url, expires_at, class, reason, subs):
                                           the whole item, as of then (format 2: written when
                                           an item is done, and by compaction, which writes
                                           each source as [folder number, name])
    rejected    source, style, reason      pre-flight refused a source file (no key)
    totals      sent, saved, first, last, out   the uploads of the records compaction dropped,
                                           and where results went (no key; format 2)
    folders     folders                    the sources' folders, numbered in order (format 2)
    journal     id                         the journal's id (no key), its first record

Memory: an item in hand is an `Entry`; a done item whose `item` record is on disk is a row of
compact tables (`DoneItems`: about 100 bytes, whatever its paths), made into an `Entry` again,
from that record, when something asks for it (`entries` is the mapping of both).
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

from batchtoon.records.compact import MASK64, MISSING, HashIndex, SortedIndex, key_of

__all__ = [
    "COMPACT_FORMAT", "FORMAT_VERSION", "STATES", "DoneItems", "Entries", "Entry", "Event",
    "Ledger", "State", "Uploads", "make_record",
]  # fmt: skip

FORMAT_VERSION = 1  # of the records a run writes as it goes
COMPACT_FORMAT = 2  # of `item` and `totals`, which old versions of batchtoon do not read
State = Literal["queued", "submitted", "succeeded", "downloaded", "failed"]
STATES: tuple[State, ...] = get_args(State)
Event = Literal[
    "queued", "seen", "submitted", "succeeded", "downloaded", "lost", "failed", "item",
    "rejected", "totals", "folders", "journal",
]  # fmt: skip
Reader = Callable[[int], dict[str, Any]]  # a journal offset -> the record written there
BIG = 100_000  # rows from which numpy sorts them
# The extensions results are written with (`layout.EXTENSIONS`), which a done row keeps as a
# number; any other is read from the item's record.
EXTENSIONS = ("jpg", "png", "webp", "bmp")
_EXT_NUMBERS = {ext: number for number, ext in enumerate(EXTENSIONS, 1)}


class Target(NamedTuple):
    """A done target, as its row holds it (`DoneItems.target`)."""

    seen: int  # its source's fingerprint when it was read (0: not known)
    key: int  # key_of(its item's key)
    base: int  # key_of(its output base)
    ext: str  # its files' extension, "" if the row does not hold it
    offset: int  # its item's record in the journal


def make_record(event: Event, t: float, **fields: Any) -> dict[str, Any]:
    """One journal record as written: format version, unix time (to the ms), event, fields."""
    if event in ("item", "totals", "folders"):  # a snapshot: when is not its news
        return {"v": COMPACT_FORMAT, "event": event, **fields}
    return {"v": FORMAT_VERSION, "t": round(t, 3), "event": event, **fields}


@dataclass(slots=True)
class Entry:
    key: str
    state: State = "queued"
    targets: dict[str, str] = field(default_factory=dict)  # output base -> source path
    seen: dict[str, int] = field(default_factory=dict)  # output base -> its source's fingerprint
    ext: str = ""  # the result's file extension, once downloaded
    written: int = 0  # target files written since the result was last (re)made
    task_id: str = ""
    submitted_at: float = 0.0
    result_url: str = ""
    expires_at: float = 0.0
    error_class: str = ""
    reason: str = ""
    submissions: int = 0  # accepted submissions over all runs: more than 1 is extra cost

    @property
    def name(self) -> str:
        """What to call the item in a message: its first source path (else its key)."""
        return next(iter(self.targets.values()), self.key)

    @property
    def sha256(self) -> str:
        return self.key.partition(":")[0]

    @property
    def style(self) -> int:
        return int(self.key.rpartition(":")[2])

    @property
    def done(self) -> bool:
        return self.state == "downloaded" and self.written >= len(self.targets)

    def fields(self) -> dict[str, Any]:
        """The item as an `item` record's fields: what its state needs, and no default."""
        targets = [[base, source, self.seen.get(base, 0)] for base, source in self.targets.items()]
        fields: dict[str, Any] = {"key": self.key, "state": self.state, "targets": targets}
        state = self.state
        for name, value, needed in (
            ("ext", self.ext, True), ("written", self.written, not self.done),
            ("subs", self.submissions, True),
            ("task_id", self.task_id, state in ("submitted", "succeeded")),
            ("submitted_at", self.submitted_at, state in ("submitted", "succeeded")),
            ("result_url", self.result_url, state == "succeeded"),
            ("expires_at", self.expires_at, state == "succeeded"),
            ("class", self.error_class, True), ("reason", self.reason, True),
        ):  # fmt: skip
            if value and needed:
                fields[name] = value
        return fields

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Entry:
        """The item an `item` record holds."""
        targets, done = record["targets"], record["state"] == "downloaded"
        entry = cls(
            str(record["key"]), record["state"], ext=sys.intern(record.get("ext", "")),
            written=int(record.get("written", len(targets) if done else 0)),
            task_id=str(record.get("task_id", "")),
            submitted_at=float(record.get("submitted_at", 0.0)),
            result_url=str(record.get("result_url", "")),
            expires_at=float(record.get("expires_at", 0.0)),
            error_class=str(record.get("class", "")), reason=str(record.get("reason", "")),
            submissions=int(record.get("subs", 0)),
        )  # fmt: skip
        if entry.state not in STATES:
            raise ValueError(f"unknown state {entry.state!r}")
        for base, source, seen in targets:
            entry.targets[base] = source
            if seen:
                entry.seen[base] = seen
        return entry


@dataclass(slots=True)
class Uploads:
    """What the accepted uploads of every run sent, over the time they went out."""

    sent: int = 0  # bytes
    saved: int = 0  # bytes preparation kept off the wire
    first: float = float("inf")  # unix time of the first accepted upload ...
    last: float = float("-inf")  # ... and of the last

    def add(self, record: dict[str, Any]) -> None:
        self.sent += record.get("sent", 0)
        self.saved += record.get("saved", 0)
        self.first, self.last = min(self.first, record["t"]), max(self.last, record["t"])

    def fold(self, totals: dict[str, Any]) -> None:
        """Add a `totals` record's uploads."""
        self.sent += totals["sent"]
        self.saved += totals["saved"]
        if totals.get("first") is not None:
            self.first = min(self.first, totals["first"])
            self.last = max(self.last, totals["last"])

    def fields(self) -> dict[str, Any]:
        """As a `totals` record's fields."""
        span = {"first": self.first, "last": self.last} if self.last >= self.first else {}
        return {"sent": self.sent, "saved": self.saved, **span}

    @classmethod
    def joint(cls, each: list[Uploads]) -> Uploads:
        """The uploads of several journals (shards) together: sums, over their joint span."""
        return cls(
            sum(u.sent for u in each), sum(u.saved for u in each),
            min((u.first for u in each), default=float("inf")),
            max((u.last for u in each), default=float("-inf")),
        )  # fmt: skip

    def as_json(self) -> dict[str, float]:
        span = self.last - self.first
        rate = self.sent / span / 1e6 if span > 0 else 0.0
        mb = {"uploaded_mb": self.sent / 1e6, "saved_mb": self.saved / 1e6, "mb_per_s": rate}
        return {name: round(value, 2) for name, value in mb.items()}


class DoneItems:
    """Done items as rows: where each one's `item` record is in the journal, how many target
    files it has and their extension (`EXTENSIONS`' number); per target, its source's
    fingerprint, and the hashes (`key_of`) that find it: of (source, style), of its output
    base, of its source. About 75 bytes an item with one target, its indexes included
    (tests/test_compact.py), whatever the lengths of its paths. Rows are appended as the
    journal is read; the indexes over them (`SortedIndex`) are built when first asked, and a
    row made again (a later one for the same item) shadows the earlier, then let go."""

    def __init__(self) -> None:
        self.keys = array("Q")  # row -> key_of(item key)
        self.offsets = array("q")  # row -> its record's offset in the journal; -1: let go
        self.files = array("H")  # row -> its target files
        self.exts = bytearray()  # row -> its files' extension: 1 + its place in EXTENSIONS, or 0
        self.target_keys = array("Q")  # target -> key_of((source, style))
        self.target_bases = array("Q")  # target -> key_of(output base)
        self.target_sources = array("Q")  # target -> key_of(source)
        self.target_rows = array("I")  # target -> row
        self.target_seen = array("q")  # target -> the source's fingerprint (0: not known)
        self._rows = SortedIndex(self.keys)
        self._targets = SortedIndex(self.target_keys)
        self._bases = SortedIndex(self.target_bases)
        self._gone = 0  # rows let go of
        # The target files of the rows that speak for their item, kept as they change: a count
        # at a run's end is then no walk over a million rows (nor numpy's 11 MiB at 100,000).
        self._files_written = 0

    def __repr__(self) -> str:
        return f"<DoneItems {self.count}>"

    @property
    def count(self) -> int:
        """Rows that speak for their item."""
        self._settle()
        return len(self.offsets) - self._gone

    def add(self, key: str, offset: int, style: int, targets: list[list[Any]], ext: str) -> None:
        """A done item's row (`key_of` written out: a replay calls this a million times). A
        record of another shape adds nothing: what it appended is taken back."""
        row, first = len(self.offsets), len(self.target_rows)
        files = min(len(targets), 0xFFFF)
        try:
            self.keys.append(hash(key) & MASK64 or 1)
            self.offsets.append(offset)
            self.files.append(files)
            self.exts.append(_EXT_NUMBERS.get(ext, 0))
            for base, source, seen in targets:
                self.target_keys.append(hash((source, style)) & MASK64 or 1)
                self.target_bases.append(hash(base) & MASK64 or 1)
                self.target_sources.append(hash(source) & MASK64 or 1)
                self.target_rows.append(row)
                self.target_seen.append(seen)
        except (TypeError, ValueError, OverflowError):
            for column in (self.keys, self.offsets, self.files, self.exts):
                del column[row:]
            for column in self._target_columns:
                del column[first:]
            raise
        self._files_written += files

    @property
    def _target_columns(self) -> tuple[array[int], ...]:
        return (
            self.target_keys, self.target_bases, self.target_sources, self.target_rows,
            self.target_seen,
        )  # fmt: skip

    def offset(self, key: str) -> int:
        """The offset of `key`'s record, or `MISSING`."""
        return self.offset_of(key_of(key))

    def offset_of(self, hashed: int) -> int:
        row = self._row(hashed)
        return MISSING if row == MISSING else self.offsets[row]

    def drop(self, key: str) -> None:
        """`key` is in hand again (or made again): its row no longer speaks for it."""
        self._let_go(self._row(key_of(key)))

    def only_targets_now(self) -> None:
        """`target` answers from the rows there now, never from one added later (a run's own:
        its walk asks of every photo, and an index of the rows it adds would cost it some 20
        bytes a photo for what it knows otherwise)."""
        self._targets.upto = len(self.target_keys)

    def target(self, source: str, style: int) -> Target | None:
        """The done target of (`source`, `style`), if a row that speaks for its item has one
        (of those there at `only_targets_now`, if it was called)."""
        target = self._targets.get(key_of((source, style)))
        if target == MISSING:
            return None
        row = self.target_rows[target]
        offset = self.offsets[row]
        if offset == MISSING:
            return None
        ext = self.exts[row]
        return Target(
            self.target_seen[target], self.keys[row], self.target_bases[target],
            EXTENSIONS[ext - 1] if ext else "", offset,
        )  # fmt: skip

    def claimant(self, base: str) -> int:
        """`key_of((source, style))` of the done target whose output is `base`, or `MISSING`."""
        target = self._bases.get(key_of(base))
        return MISSING if target == MISSING else self.target_keys[target]

    def located(self) -> Iterator[tuple[int, int]]:
        """(row, offset) of every row that speaks for its item, in journal order."""
        self._settle()
        offsets = self.offsets
        if _ascending(offsets):  # rows are made in journal order (a run's end: no numpy)
            rows: Iterable[int] = range(len(offsets))
        elif len(offsets) < BIG:
            rows = sorted(range(len(offsets)), key=offsets.__getitem__)
        else:
            import numpy as np  # (loaded for a big table only: 0.1 s of start-up)

            rows = map(int, np.argsort(np.frombuffer(offsets, dtype=np.int64), kind="stable"))
        return ((row, offsets[row]) for row in rows if offsets[row] != MISSING)

    @staticmethod
    def distinct_sources(each: Iterable[DoneItems]) -> Distinct:
        """`key_of` the source of every done target of these tables, each once: a set, or
        for big tables a sorted numpy array (a tenth of a set's memory) that answers
        `difference` as a set does."""
        tables = list(each)
        for table in tables:
            table._settle()
        if sum(len(table.target_sources) for table in tables) < BIG:
            return {
                source
                for table in tables
                for row, source in zip(table.target_rows, table.target_sources, strict=True)
                if table.offsets[row] != MISSING
            }
        import numpy as np

        alive = [
            np.frombuffer(table.target_sources, dtype=np.uint64)[
                np.frombuffer(table.offsets, dtype=np.int64)[
                    np.frombuffer(table.target_rows, dtype=np.uint32)
                ] != MISSING
            ]
            for table in tables
        ]  # fmt: skip
        keys = np.sort(np.concatenate(alive))  # (np.unique: ten times slower, hashing first)
        return _SortedKeys(keys[np.concatenate(([True], keys[1:] != keys[:-1]))])

    def files_written(self) -> int:
        self._settle()
        return self._files_written

    def _row(self, hashed: int) -> int:
        self._settle()
        return self._rows.get(hashed)

    def _settle(self) -> None:
        """Let go of the rows a later one for the same item shadows."""
        for row in self._rows.catch_up():
            self._let_go(row)

    def _let_go(self, row: int) -> None:
        if row != MISSING and self.offsets[row] != MISSING:
            self.offsets[row] = MISSING
            self._gone += 1
            self._files_written -= self.files[row]


class _SortedKeys:
    """Distinct keys in a sorted numpy array, with the one set operation `status` needs."""

    def __init__(self, keys: Any) -> None:
        self._keys = keys

    def difference(self, other: Iterable[int]) -> set[int] | _SortedKeys:
        import numpy as np

        drop = np.array(sorted(other), dtype=np.uint64)
        return _SortedKeys(self._keys[~np.isin(self._keys, drop, assume_unique=True)])

    def __len__(self) -> int:
        return len(self._keys)


Distinct = set[int] | _SortedKeys


class Entries(Mapping[str, Entry]):
    """Every item by key: those in hand as they are, done ones made from their record (a new
    `Entry` each time: change an item through `Ledger.apply` only)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getitem__(self, key: str) -> Entry:
        ledger = self._ledger
        entry = ledger.live.get(key)
        if entry is not None:
            return entry
        offset = ledger.done.offset(key)
        if offset != MISSING:
            entry = Entry.from_record(ledger.read(offset))
            if entry.key == key:  # (the row's number is a hash: this makes sure)
                return entry
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._ledger.live) + self._ledger.done.count

    def __iter__(self) -> Iterator[str]:
        return (entry.key for entry in self.values())

    def values(self) -> Iterator[Entry]:  # type: ignore[override]
        """Done items in journal order, then those in hand; made one at a time."""
        ledger = self._ledger
        for _, offset in ledger.done.located():
            yield Entry.from_record(ledger.read(offset))
        yield from list(ledger.live.values())


class Ledger:
    def __init__(self, read: Reader | None = None) -> None:
        self.live: dict[str, Entry] = {}  # items in hand, and done ones not yet on disk whole
        self.done = DoneItems()
        self.entries = Entries(self)
        self.rejected: dict[tuple[str, int], str] = {}  # (source, style) -> reason
        # key_of(output base) -> key_of((source, style)) of the target claiming it, for the
        # items in hand (a done item's targets: `DoneItems.claimant`)
        self.claims = HashIndex(values="Q")
        self.uploads = Uploads()
        # The sources' folders (with their last separator), numbered as met: a compacted
        # journal names a source by its folder's number and its name.
        self.folders: dict[str, int] = {}
        self.journal_id = ""  # the journal's own id (its `journal` record), once it has one
        self.out = ""  # where its results went, as its first `downloaded` record says
        self._read = read
        self._folder_names: list[str] = []  # by number

    def __repr__(self) -> str:
        return f"<Ledger entries={len(self.entries)} rejected={len(self.rejected)}>"

    def read(self, offset: int) -> dict[str, Any]:
        """The `item` record at `offset` in the journal, its sources named in full."""
        if self._read is None:
            raise KeyError("this ledger has no journal to read its done items from")
        return self.named(self._read(offset))

    def named(self, record: dict[str, Any]) -> dict[str, Any]:
        """`record` (an `item`) with each [folder number, name] source as one path."""
        for target in record["targets"]:
            if isinstance(target[1], list):
                number, name = target[1]
                target[1] = self._folder_names[number] + name
        return record

    def interned(self, record: dict[str, Any]) -> bool:
        """Name `record`'s sources (an `item`'s) as [folder number, name], each whose folder
        is numbered (every folder of a target applied is); True if it changed."""
        changed = False
        for target in record["targets"]:
            source = target[1]
            if isinstance(source, str):
                cut = _folder_end(source)
                number = self.folders.get(source[:cut])
                if number is not None:
                    target[1] = [number, source[cut:]]
                    changed = True
        return changed

    def _folder(self, folder: str) -> int:
        number = self.folders.get(folder)
        if number is None:
            number = self.folders[folder] = len(self.folders)
            self._folder_names.append(folder)
        return number

    def apply(self, record: dict[str, Any], offset: int = MISSING) -> None:
        """Fold one record in (`offset`: where it is in the journal, if it is there). Written
        as one flat function: replay calls it a million times."""
        event = record["event"]
        if event == "item":  # (first: a compacted journal is little else)
            self._item(record, offset)
            return
        if event == "rejected":
            self.rejected[record["source"], record["style"]] = record["reason"]
            return
        if event == "journal":
            self.journal_id = str(record["id"])
            return
        if event == "totals":
            self.uploads.fold(record)
            self.out = self.out or str(record.get("out", ""))
            return
        if event == "folders":
            for folder in record["folders"]:
                self._folder(folder)
            return
        key = record["key"]
        entry = self.live.get(key) or self._in_hand(key)
        if event == "queued":
            output, source = record["output"], record["source"]
            self._claim(output, source, entry.style)
            entry.targets[output] = source
            if record.get("seen"):
                entry.seen[output] = record["seen"]
            if self.rejected:
                self.rejected.pop((source, entry.style), None)
            if entry.state == "failed" and record.get("retry"):
                entry.state, entry.reason, entry.error_class = "queued", "", ""
        elif event == "seen":
            entry.seen[record["output"]] = record["seen"]
        elif event == "submitted":
            entry.state, entry.task_id, entry.submitted_at = (
                "submitted",
                str(record["task_id"]),
                float(record["t"]),  # a record of another shape fails here, not later
            )
            entry.submissions += 1
            self.uploads.add(record)
        elif event == "succeeded":
            entry.state, entry.result_url, entry.expires_at = (
                "succeeded",
                str(record["result_url"]),
                float(record["expires_at"]),
            )
        elif event == "downloaded":
            output = record["output"]
            entry.ext = sys.intern(output[output.rfind(".") + 1 :])  # "jpg", once: not per item
            if not self.out:
                self.out = _folder_of(output, entry)
            entry.written += 1
            if entry.written >= len(entry.targets):
                # Done: what only a pending task needs is let go (a ledger may hold millions).
                entry.state, entry.task_id, entry.result_url = "downloaded", "", ""
        elif event == "lost":
            entry.state, entry.task_id, entry.result_url = "queued", "", ""
            entry.written = 0  # whatever was written is gone too, or it would not be lost
        elif event == "failed":
            entry.state, entry.error_class, entry.reason = (
                "failed",
                record["class"],
                record["reason"],
            )
        else:
            raise KeyError(f"unknown event {event!r}")

    def _item(self, record: dict[str, Any], offset: int) -> None:
        """An `item` record: a done one on disk becomes a row (its targets' claims are the
        row's); any other is an `Entry`. Called a million times by a replay."""
        key, targets = str(record["key"]), record["targets"]
        for target in targets:
            source = target[1]
            if isinstance(source, list):  # [folder number, name]
                target[1] = self._folder_names[source[0]] + source[1]
            else:
                self._folder(source[: _folder_end(source)])
        if record["state"] == "downloaded" and offset != MISSING:
            if self.live and (entry := self.live.pop(key, None)) is not None:
                self._unclaim(entry)
            self.done.add(key, offset, int(key.rpartition(":")[2]), targets, record.get("ext", ""))
            return
        if offset != MISSING or key not in self.live:  # (else: the run's own, as it is)
            self.done.drop(key)
            entry = self.live[key] = Entry.from_record(record)
            for base, source in entry.targets.items():
                self._claim(base, source, entry.style)

    def located(self, record: dict[str, Any], offset: int) -> None:
        """An `item` record this run wrote is on disk at `offset`: a done item that has not
        changed since is let go of, to its row."""
        key = record["key"]
        entry = self.live.get(key)
        if (
            entry is not None
            and entry.done
            and record["state"] == "downloaded"
            and len(record["targets"]) == len(entry.targets)
            and record.get("subs", 0) == entry.submissions
        ):
            del self.live[key]
            self.done.add(key, offset, entry.style, record["targets"], record.get("ext", ""))
            self._unclaim(entry)

    def _in_hand(self, key: str) -> Entry:
        """The item `key`, taken in hand: made from its record if it is done, else new."""
        offset = self.done.offset(key)
        entry = Entry.from_record(self.read(offset)) if offset != MISSING else Entry(key)
        self.done.drop(key)
        self.live[key] = entry
        return entry

    def knows(self, key: str) -> bool:
        """Has the item `key` a record? (Told by the hash of its key alone, for a done one.)"""
        return key in self.live or self.done.offset(key) != MISSING

    def find(self, hashed: int) -> Entry | None:
        """The item whose key `key_of` makes `hashed`, if any (a rare question: the live items
        are searched one by one)."""
        for entry in self.live.values():
            if key_of(entry.key) == hashed:
                return entry
        offset = self.done.offset_of(hashed)
        return None if offset == MISSING else Entry.from_record(self.read(offset))

    def _claim(self, base: str, source: str, style: int) -> None:
        self.claims.put(key_of(base), key_of((source, style)))
        self._folder(source[: _folder_end(source)])

    def _unclaim(self, entry: Entry) -> None:
        """`entry` is a done row now, which answers for its targets' claims (`claimant`):
        `claims` keeps only those of items in hand."""
        for base, source in entry.targets.items():
            hashed = key_of(base)
            if self.claims.get(hashed) == key_of((source, entry.style)):
                self.claims.take_out(hashed)

    def taken_by_other(self, base: str, source: str, style: int) -> bool:
        """Does another (source, style) than this one claim output `base`?"""
        claimant = self.claims.get(key_of(base))
        if claimant == MISSING:
            claimant = self.done.claimant(base)
        return claimant not in (MISSING, key_of((source, style)))

    def claimed(self) -> int:
        """How many claims were made, at least (a number that only grows)."""
        return len(self.claims) + len(self.done.target_bases)

    def counts(self) -> dict[State, int]:
        """Targets (source file x style) by state; a rejected source counts as failed."""
        counts = dict.fromkeys(STATES, 0)
        counts["downloaded"] = self.done.files_written()
        for entry in self.live.values():
            written = min(entry.written, len(entry.targets))
            counts["downloaded"] += written
            counts[_pending(entry.state)] += len(entry.targets) - written
        counts["failed"] += len(self.rejected)
        return counts

    def failures(self) -> list[dict[str, Any]]:
        rows = [
            {"source": source, "style": style, "reason": reason}
            for (source, style), reason in self.rejected.items()
        ]
        for entry in self.live.values():
            if entry.state == "failed":
                rows += [
                    {"source": source, "style": entry.style, "reason": entry.reason}
                    for source in entry.targets.values()
                ]
        return rows

    def item_count(self) -> int:
        """Records a compacted journal holds: one an item, one a refused target."""
        return len(self.live) + self.done.count + len(self.rejected)


def _ascending(offsets: array[int]) -> bool:
    """Whether the offsets held (all but `MISSING`) only grow."""
    last = MISSING
    for offset in offsets:
        if offset != MISSING:
            if offset < last:
                return False
            last = offset
    return True


def _folder_of(output: str, entry: Entry) -> str:
    """The output location `output` (a file written for `entry`) is below: "." for the current
    folder, "" if no target of the entry names it."""
    for base in entry.targets:
        name = f"{base}.{entry.ext}"
        if output == name:
            return "."
        if output.endswith(f"/{name}"):
            return output[: -len(name) - 1]
    return ""


def _folder_end(source: str) -> int:
    """Where `source`'s folder ends (after its last separator): 0 for a bare name."""
    return max(source.rfind("/"), source.rfind(os.sep)) + 1


def _pending(state: State) -> State:
    # A target not yet written while its entry is "downloaded" waits for a copy: queued.
    return "queued" if state == "downloaded" else state
