"""Compact tables for what a run keeps about every item: sizes that do not grow with path
lengths nor with Python's per-object overhead.

- `HashIndex`: 64-bit hashes -> a number, in two flat arrays (open addressing, linear
  probing, at most `MAX_LOAD` full): about 21 bytes an entry with 32-bit numbers, where a dict
  of ints costs over 100. A key is a hash (Python's `hash()` of a string or a tuple, stable
  within a process), never the string itself: whoever needs certainty checks what the number
  leads to. A key taken out leaves a marker, dropped when the table is next rebuilt, which
  is sized by the keys in it then: a table of what is in hand stays as small as that.
- `HashSet`: the same, its numbers a byte each (about 16 bytes an entry).
- `SortedIndex`: keys kept in an array anyway -> their position: a hash table of positions
  alone (`_Positions`: 5 to 10 bytes an entry, the keys read from the array), or, for many
  appended at once, sorted in bulk when first asked (12.5 bytes an entry): a million
  appended cost no index until one is looked up.

Thread safety: lookups may run in worker threads while the event loop adds; the table is
swapped whole when it grows, so a lookup sees the old or the new one, never half of each. Adds
come from one thread at a time (the event loop).
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections.abc import Callable, Iterator

__all__ = ["MASK64", "MISSING", "HashIndex", "HashSet", "SortedIndex", "key_of"]

BULK = 200_000  # keys appended since the last lookup from which they are sorted (numpy: some
# 10 MiB of a process's memory) rather than put one by one
# A table this full doubles: 1.25 to 2.5 slots an entry. Keys are hashes, spread evenly, so
# linear probing stays short even so: a key not there costs 0.5 µs at 0.8 full, 0.4 at 0.7.
MAX_LOAD = 0.8
MISSING = -1
MASK64 = (1 << 64) - 1
_TAKEN_OUT = MASK64  # the key of a slot whose key was taken out: `key_of` never makes it, as
# Python's `hash()` is never -1


def key_of(value: object) -> int:
    """The table key of `value`: its hash as an unsigned 64-bit number, never 0 (0 is empty)."""
    return (hash(value) & MASK64) or 1


class HashIndex:
    """Keys (from `key_of`) -> numbers: 0 .. 2**32-1, or with `values="Q"` 0 .. 2**64-1 (with
    `"B"`: 0 only, a set's)."""

    __slots__ = ("_code", "_live", "_table", "_used")

    def __init__(self, *, values: str = "I", capacity: int = 1024) -> None:
        self._code = values  # the numbers' array code
        self._used = 0  # slots holding a key or a marker
        self._live = 0
        self._table = _empty(capacity, self._code)

    def __len__(self) -> int:
        return self._live

    def __repr__(self) -> str:
        return f"<HashIndex {self._live} of {len(self._table[0])}>"

    def items(self) -> Iterator[tuple[int, int]]:
        """Every (key, number), in no particular order."""
        keys, values, _ = self._table
        return (
            (key, int(value))
            for key, value in zip(keys, values, strict=True)
            if key and key != _TAKEN_OUT
        )

    def get(self, key: int) -> int:
        """The number stored for `key`, or `MISSING`."""
        keys, values, mask = self._table
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                return int(values[slot])
            if not found:
                return MISSING
            slot = (slot + 1) & mask

    def put(self, key: int, value: int, *, replace: bool = True) -> bool:
        """Store `value` for `key` (if it is there: only to `replace` what was); True if `key`
        was not there."""
        keys, values, mask = self._table
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                if replace:
                    values[slot] = value
                return False
            if not found:
                break
            slot = (slot + 1) & mask
        if (self._used + 1) > MAX_LOAD * (mask + 1):
            self._grow(int(2 * (self._live + 1) / MAX_LOAD))
            return self.put(key, value)
        values[slot] = value
        keys[slot] = key  # the key last: a reader in another thread never sees it without it
        self._used += 1
        self._live += 1
        return True

    def take_out(self, key: int) -> bool:
        """Forget `key` (its slot keeps a marker, so later keys are still found past it); True
        if it was there."""
        keys, _, mask = self._table
        slot = key & mask
        while found := keys[slot]:
            if found == key:
                keys[slot] = _TAKEN_OUT
                self._live -= 1
                return True
            slot = (slot + 1) & mask
        return False

    def reserve(self, more: int) -> None:
        """Make room for `more` keys at once (not by doubling again and again)."""
        if self._used + more > MAX_LOAD * (self._table[2] + 1):
            self._grow(int((self._live + more) / MAX_LOAD) + 1)

    def _grow(self, size: int) -> None:
        """The table made again at `size` slots (a power of two at least), without markers."""
        keys, values, _ = self._table
        table = _empty(size, self._code)
        new_keys, new_values, new_mask = table
        for key, value in zip(keys, values, strict=True):
            if key and key != _TAKEN_OUT:
                slot = key & new_mask
                while new_keys[slot]:
                    slot = (slot + 1) & new_mask
                new_keys[slot], new_values[slot] = key, value
        self._used = self._live
        self._table = table


class HashSet:
    """A set of keys (from `key_of`)."""

    __slots__ = ("_index",)

    def __init__(self) -> None:
        self._index = HashIndex(values="B")

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: int) -> bool:
        return self._index.get(key) != MISSING

    def add(self, key: int) -> bool:
        """Add `key`; True if it was not there."""
        return self._index.put(key, 0, replace=False)


def _empty(capacity: int, code: str) -> tuple[array[int], array[int], int]:
    values, mask = _empty_slots(capacity, code)
    return array("Q", bytes(8 * (mask + 1))), values, mask


def _empty_slots(capacity: int, code: str = "I") -> tuple[array[int], int]:
    size = 1 << max(4, (capacity - 1).bit_length())
    return array(code, bytes(array(code).itemsize * size)), size - 1


class _Positions:
    """Keys kept in an array by its owner -> the last position holding each, for
    `SortedIndex`: open addressing as in `HashIndex`, but a slot holds a position + 1 alone (0:
    empty), 4 bytes where a `HashIndex` slot takes 12; its key is read from the array. Not
    thread-safe: its owner locks."""

    __slots__ = ("_keys", "_live", "_table")

    def __init__(self, keys: array[int]) -> None:
        self._keys = keys
        self._live = 0
        self._table = _empty_slots(16)

    def get(self, key: int) -> int:
        """The position indexed for `key`, or `MISSING`."""
        keys, (slots, mask) = self._keys, self._table
        slot = key & mask
        while at := slots[slot]:
            if keys[at - 1] == key:
                return at - 1
            slot = (slot + 1) & mask
        return MISSING

    def put_each(
        self, first: int, end: int, before: Callable[[int], int] | None = None
    ) -> list[int]:
        """Index each position from `first` to `end` (excluded), in order, for its key; the
        positions they shadow: the one indexed for the key before, or for a key new here,
        the one `before` gives (`MISSING`: none). One loop, no call a key (but `before`): a
        resume indexes 100,000 rows at once."""
        self.reserve(end - first)
        keys, (slots, mask) = self._keys, self._table
        shadowed, added = [], 0
        for position in range(first, end):
            key = keys[position]
            slot = key & mask
            while (at := slots[slot]) and keys[at - 1] != key:
                slot = (slot + 1) & mask
            if at:
                shadowed.append(at - 1)
            else:
                added += 1
                if before is not None and (earlier := before(key)) != MISSING:
                    shadowed.append(earlier)
            slots[slot] = position + 1
        self._live += added
        return shadowed

    def reserve(self, more: int) -> None:
        """Make room for `more` positions at once (not by doubling again and again)."""
        if self._live + more > MAX_LOAD * len(self._table[0]):
            self._grow(int((self._live + more) / MAX_LOAD) + 1)

    def _grow(self, size: int) -> None:
        keys, (slots, _) = self._keys, self._table
        table = _empty_slots(size)
        new_slots, new_mask = table
        for at in slots:
            if at:
                slot = keys[at - 1] & new_mask
                while new_slots[slot]:
                    slot = (slot + 1) & new_mask
                new_slots[slot] = at
        self._table = table


class SortedIndex:
    """Keys appended to an array by its owner -> the last position holding each. What was
    appended since the last lookup goes into a table of positions (`_Positions`), unless it is
    over `BULK` keys (a replayed journal): then the whole array is sorted (numpy) and
    searched. Replaying a million items appends and never looks up (a status): it costs no
    index at all.

    `catch_up` says which positions a later one with the same key shadows (the owner's rows
    made again). Lookups may come from worker threads: a lock keeps the building whole."""

    def __init__(self, keys: array[int]) -> None:
        self._keys = keys
        # Sorted by numpy (loaded for a big table only), searched by `bisect`: a lookup at a
        # time, numpy's call costs more than the search. Keys are hashes, spread evenly: their
        # top bits say where in `_sorted` to look (`_starts`: half a byte a key), so a search
        # touches a cache line or two, not twenty (a lookup at a million: 0.93 µs, from 1.37).
        self._sorted = array("Q")
        self._order = array("I")  # positions, in the order of `_sorted`
        self._starts = array("I", [0, 0])  # bucket -> where its keys start in `_sorted`
        self._shift = 64  # a key's bucket: key >> _shift
        self._recent = _Positions(keys)
        self._seen = 0  # positions indexed
        self.upto: int | None = None  # the positions from this one on are not indexed
        self._lock = threading.Lock()

    def get(self, key: int) -> int:
        """The last position whose key is `key`, or `MISSING`."""
        with self._lock:
            self._catch_up()
            found = self._recent.get(key)
            if found != MISSING:
                return found
            return self._in_sorted(key)

    def catch_up(self) -> list[int]:
        """Index what was appended; the positions shadowed by a later one with their key."""
        with self._lock:
            return self._catch_up()

    def _in_sorted(self, key: int) -> int:
        bucket = key >> self._shift
        low = self._starts[bucket]
        at = bisect.bisect_right(self._sorted, key, low, self._starts[bucket + 1]) - 1
        return self._order[at] if at >= low and self._sorted[at] == key else MISSING

    def _catch_up(self) -> list[int]:
        count = len(self._keys) if self.upto is None else min(self.upto, len(self._keys))
        if count == self._seen:
            return []
        if count - self._seen > BULK:
            return self._rebuild(count)
        # (A key new since the sort shadows the position the sort holds for it, if any.)
        before = self._in_sorted if self._sorted else None
        shadowed = self._recent.put_each(self._seen, count, before)
        self._seen = count
        return shadowed

    def _rebuild(self, count: int) -> list[int]:
        import numpy as np

        keys = np.frombuffer(self._keys, dtype=np.uint64, count=count)
        order = np.argsort(keys, kind="stable")  # equal keys: positions in order
        ordered = keys[order]
        last = np.ones(count, dtype=bool)
        last[:-1] = ordered[1:] != ordered[:-1]
        distinct = ordered[last]
        self._sorted = array("Q", distinct.tobytes())
        self._order = array("I", order[last].astype(np.uint32).tobytes())
        bits = max(1, len(distinct).bit_length() - 3)  # 4 to 8 keys a bucket: a cache line
        bounds = np.arange(1, 1 << bits, dtype=np.uint64) << np.uint64(64 - bits)
        starts = np.concatenate(([0], np.searchsorted(distinct, bounds), [len(distinct)]))
        self._starts = array("I", starts.astype(np.uint32).tobytes())
        self._shift = 64 - bits
        self._recent, self._seen = _Positions(self._keys), count
        return [int(position) for position in order[~last]]
