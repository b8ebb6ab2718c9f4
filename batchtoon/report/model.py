"""What the gallery shows: plain data a run fills in, and `from_ledger`, which fills it from a
journal's `Ledger`.

A `Gallery` holds one `Card` per source photo; a card holds one `Cell` per style asked for
that photo, in one of four states: `done` (its result file exists), `failed` (the API or a
download said no), `refused` (pre-flight turned the photo down, nothing was sent) or `pending`
(queued, submitted or finished but not yet downloaded: a later run goes on with it).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from batchtoon.locations.layout import Layout
from batchtoon.locations.storage import is_url
from batchtoon.records.ledger import Ledger
from batchtoon.settings.config import OutputSettings

__all__ = ["STATES", "Card", "Cell", "Gallery", "LedgerCards", "State", "from_ledger"]

State = Literal["done", "failed", "refused", "pending"]
STATES: tuple[State, ...] = ("done", "failed", "refused", "pending")

# What a pending cell says, by the entry's state in the ledger.
WAITING = {
    "queued": "queued: not submitted yet",
    "submitted": "submitted: waiting for the result",
    "succeeded": "finished: not downloaded yet",
    "downloaded": "its result file is gone: the next run writes it again",
}


@dataclass(frozen=True, slots=True)
class Cell:
    """One photo in one style. A `done` cell always has its `output` file."""

    state: State
    output: Path | None = None  # the result file
    reason: str = ""  # why it failed, was refused, or is still pending

    def __post_init__(self) -> None:
        if (self.state == "done") != (self.output is not None):
            raise ValueError(f"a {self.state} cell: only a done cell has an output file")


@dataclass(frozen=True, slots=True)
class Card:
    """One source photo: `source` as the run knew it (shown escaped), the file to link to
    (None when it is gone or was never a file, e.g. a manifest line), and a cell per style."""

    source: str
    original: Path | None
    results: Mapping[int, Cell]


@dataclass(frozen=True, slots=True)
class Gallery:
    """A run's page: its header (`counts` are label -> number, shown in their order; `accepted`
    submissions and the `extra` ones, submitted again; the run's times) and its cards, shown
    in the order given, with a column per style in `styles`. `cards` is read once per page, in
    one pass: it may be a list, or made as it is read (`from_ledger`'s)."""

    title: str
    counts: Mapping[str, int]
    styles: Sequence[int]
    cards: Iterable[Card]
    accepted: int = 0
    extra: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    made: datetime = field(default_factory=lambda: datetime.now().astimezone())


def from_ledger(
    ledger: Ledger | Sequence[Ledger],
    out: Path,
    *,
    title: str | None = None,
    counts: Mapping[str, int] | None = None,
    started: datetime | None = None,
    finished: datetime | None = None,
    cwd: Path | None = None,
    shown_too: Sequence[Ledger] = (),
) -> Gallery:
    """The gallery of everything the ledger (or ledgers: several journals, one page) knows
    about, cards in source-path order; where two ledgers know a target, the later one's word
    stands.

    Relative source paths are taken from `cwd` (default: the current folder), as the run that
    journaled them did. A target is `done` only if its result file is on disk. `counts`
    defaults to the ledgers' own per-state counts, added up. `shown_too`: ledgers whose
    targets are shown (first, so the ledgers' word stands) but not counted: what the output
    location's record holds that other journals made (another shard's results).

    The cards are made as they are read, each time: the ledgers' targets sorted by source in
    runs of `RUN` (spilled to temporary files) and merged, so a page of a million photos holds
    a few thousand of them at once, never one object per photo."""
    ledgers = [ledger] if isinstance(ledger, Ledger) else list(ledger)
    styles: set[int] = set()
    accepted = extra = 0
    for each in [*shown_too, *ledgers]:
        counted = any(each is one for one in ledgers)
        for entry in each.entries.values():
            if entry.targets:
                styles.add(entry.style)
            if counted:
                accepted += entry.submissions
                extra += max(0, entry.submissions - 1)
    for each in ledgers:
        styles.update(style for _, style in each.rejected)
    return Gallery(
        title=title or f"batchtoon: {os.fsdecode(Path(out).absolute().name)}",
        counts=dict(counts) if counts is not None else _counts(ledgers),
        styles=sorted(styles),
        cards=LedgerCards([*shown_too, *ledgers], ledgers, out, cwd or Path.cwd()),
        accepted=accepted,
        extra=extra,
        started=started,
        finished=finished,
    )


# Targets sorted in memory at once; more are spilled to a temporary file per run. Some 350
# bytes a target while sorted: 20,000 added 7 MiB to a 30,000-photo run's peak, 8,192 add 3;
# a million photos merge 123 files, far below the open-file limit.
RUN = 8_192

# A target as sorted: (source, style, order, state, reason, output base, extension); `order`
# -1 for a refused one (any item's word stands over it), else its place in the ledgers.
Row = tuple[str, int, int, str, str, str, str]


class LedgerCards:
    """The cards of ledgers, in source-path order, made again each time they are read."""

    def __init__(
        self, shown: Sequence[Ledger], counted: Sequence[Ledger], out: Path, base: Path
    ) -> None:
        self._shown, self._counted, self._base = shown, counted, base
        self._layout = Layout(out, OutputSettings().template)  # only its file naming is used

    def __iter__(self) -> Iterator[Card]:
        with tempfile.TemporaryDirectory(prefix="batchtoon-gallery-") as spill:
            rows = _sorted_rows(self._rows(), Path(spill))
            for source, group in itertools.groupby(rows, key=lambda row: row[0]):
                results: dict[int, Cell] = {}
                for row in group:  # by style, then order: the last row of a style stands
                    results[row[1]] = self._cell(row)
                yield Card(source, _existing(self._base, source), results)

    def _rows(self) -> Iterator[Row]:
        order = 0
        for each in self._shown:  # in journal order: a photo changed since shows its newest
            for entry in each.entries.values():  # item, written last
                for output, source in entry.targets.items():
                    yield (source, entry.style, order, entry.state, entry.reason, output,
                           entry.ext)  # fmt: skip
                    order += 1
        for each in self._counted:
            for (source, style), reason in each.rejected.items():
                yield source, style, -1, "refused", reason, "", ""

    def _cell(self, row: Row) -> Cell:
        _, _, _, state, reason, output, ext = row
        if state == "refused":
            return Cell("refused", reason=reason)
        if state == "failed":
            return Cell("failed", reason=reason)
        if state == "downloaded" and ext:
            path = self._layout.file(output, ext)
            if isinstance(path, Path) and path.is_file():
                return Cell("done", output=path)
        return Cell("pending", reason=WAITING.get(state, state))


def _sorted_rows(rows: Iterator[Row], spill: Path) -> Iterator[Row]:
    """`rows` sorted by (source, style, order): in memory up to `RUN` of them, else as runs
    of `RUN` written to `spill` and merged (an external sort)."""
    runs: list[Path] = []
    while batch := list(itertools.islice(rows, RUN)):
        batch.sort()
        if not runs and len(batch) < RUN:
            yield from batch
            return
        path = spill / f"{len(runs)}.jsonl"
        with open(path, "w", encoding="ascii") as file:  # ASCII: names that are not UTF-8 too
            file.writelines(json.dumps(row) + "\n" for row in batch)
        runs.append(path)
    with contextlib.ExitStack() as files:
        readers = [
            (tuple(json.loads(line)) for line in files.enter_context(open(path, encoding="ascii")))
            for path in runs
        ]
        yield from heapq.merge(*readers)


def _counts(ledgers: Sequence[Ledger]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in ledgers:
        for state, number in each.counts().items():
            total[state] = total.get(state, 0) + number
    return total


def _existing(base: Path, source: str) -> Path | None:
    if is_url(source):
        return None  # a photo in a store: the page links local files only
    path = base / source
    return path if path.is_file() else None
