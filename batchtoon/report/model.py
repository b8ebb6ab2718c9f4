"""What the gallery shows: plain data a run fills in, and `from_ledger`, which fills it from a
journal's `Ledger`.

A `Gallery` holds one `Card` per source photo; a card holds one `Cell` per style asked for
that photo, in one of four states: `done` (its result file exists), `failed` (the API or a
download said no), `refused` (pre-flight turned the photo down, nothing was sent) or `pending`
(queued, submitted or finished but not yet downloaded: a later run goes on with it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from batchtoon.locations.layout import Layout
from batchtoon.locations.storage import is_url
from batchtoon.records.ledger import Entry, Ledger
from batchtoon.settings.config import OutputSettings

__all__ = ["STATES", "Card", "Cell", "Gallery", "State", "from_ledger"]

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
    in the order given, with a column per style in `styles`."""

    title: str
    counts: Mapping[str, int]
    styles: Sequence[int]
    cards: Sequence[Card]
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
    location's record holds that other journals made (another shard's results)."""
    ledgers = [ledger] if isinstance(ledger, Ledger) else list(ledger)
    base = cwd or Path.cwd()
    cells: dict[str, dict[int, Cell]] = {}
    layout = Layout(out, OutputSettings().template)  # only its file naming is used
    for each in [*shown_too, *ledgers]:
        for entry in each.entries.values():  # in journal order: a photo changed since shows
            for output, source in entry.targets.items():  # its newest item, written last
                cells.setdefault(source, {})[entry.style] = _entry_cell(entry, layout, output)
    for each in ledgers:
        for (source, style), reason in each.rejected.items():
            cells.setdefault(source, {}).setdefault(style, Cell("refused", reason=reason))
    cards = [
        Card(source, _existing(base, source), results) for source, results in sorted(cells.items())
    ]
    return Gallery(
        title=title or f"batchtoon: {os.fsdecode(Path(out).absolute().name)}",
        counts=dict(counts) if counts is not None else _counts(ledgers),
        styles=sorted({style for results in cells.values() for style in results}),
        cards=cards,
        accepted=sum(e.submissions for each in ledgers for e in each.entries.values()),
        extra=sum(max(0, e.submissions - 1) for each in ledgers for e in each.entries.values()),
        started=started,
        finished=finished,
    )


def _counts(ledgers: Sequence[Ledger]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in ledgers:
        for state, number in each.counts().items():
            total[state] = total.get(state, 0) + number
    return total


def _entry_cell(entry: Entry, layout: Layout, output: str) -> Cell:
    if entry.state == "failed":
        return Cell("failed", reason=entry.reason)
    if entry.state == "downloaded" and entry.ext:
        path = layout.file(output, entry.ext)
        if isinstance(path, Path) and path.is_file():
            return Cell("done", output=path)
    return Cell("pending", reason=WAITING.get(entry.state, entry.state))


def _existing(base: Path, source: str) -> Path | None:
    if is_url(source):
        return None  # a photo in a store: the page links local files only
    path = base / source
    return path if path.is_file() else None
