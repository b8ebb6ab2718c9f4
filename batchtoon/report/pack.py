"""A `Gallery` packed into the compact JSON the page's script renders from: an index, inline in
the page, and the cards in data files of `PER_FILE` cards each, which the page loads as it
needs them (`Packer`: one file's cards at a time, so a page of a million photos is packed in
the memory of one file).

Every text the page shows is escaped here (`shown`), and every link is made here: relative to
the page's folder, percent-encoded from the file name's bytes. The script only sets text and
link properties from it. The format (`assets/page.js` reads it), the index:

    title, made, run   texts: the title, when the page was made, the last run (when it ran,
                       how long, and its own counts), "" without one
    counts             [[label, number], ...]: photos and results, then results by state (done,
                       failed, refused, pending): the cards' own, as the filters count them
    cost               [[label, number], ...]: submissions the journal records
    styles             [[index, name], ...]: the columns, in order
    thumbs             the thumbnails' folder, as a link prefix ("<name>.jpg" follows)
    kinds              [[state, label, cells, group], ...]: refused and failed, grouped by kind
    tally              per column, [done, failed, refused, pending]: its cells by state
    files              {"dir": link prefix of the data files ("<n>.js" follows), "sizes": each
                       file's cards, "passes": each file's cards that pass each filter, at
                       (column + 1) * 4 + state (column -1: all)}

and a data file, `batchtoonData(n, {"dirs": ..., "reasons": ..., "cards": ...})`:

    dirs               folder prefixes shared by paths and links, each ending in "/" (or "")
    reasons            [[text, group], ...]: group is the kind's (`kinds`), -1 for a pending one
    cards              [[name, dir, original, thumb, outdir, outprefix, cells, view], ...]
      name, dir        the source's path is dirs[dir] + name
      original         0 (no file) or [dir, file]: the link dirs[dir] + file (file 0: name)
      thumb            the original's thumbnail, "" for none
      outdir, outprefix  every result link of the card starts with dirs[outdir] + outprefix
                       (outprefix 0: the original's file up to and including its last ".")
      cells            one per style: 0 (not asked for this photo); done: [suffix] or
                       [suffix, thumb], the link being the prefix + suffix; else [state, reason]
                       with state 1 failed, 2 refused, 3 pending
      view             0, or [dir, file]: the original's browser-viewable copy (HEIC, TIFF...),
                       which the page links to instead

Links share their folders and a card's results share their prefix, so 10,000 photos in 3
styles pack into about 1.3 MB.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchtoon.report.model import STATES, Card, Cell, Gallery
from batchtoon.report.thumbs import FOLDER
from batchtoon.settings.styles import STYLE_NAMES

__all__ = ["PER_FILE", "Kinds", "Links", "Packer", "file_data", "shown"]

CODES = {"failed": 1, "refused": 2, "pending": 3}
CODES_ALL = {"done": 0, **CODES}
KINDS = ("failed", "refused")  # the states grouped by the kind of their reason
NUMBER = re.compile(r"(\d+(?:\.\d+)?)")  # split by it: texts at even places, numbers at odd
# C0 and C1 controls, and the characters that reorder text (a name could hide its extension).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """`text` fit to show anywhere: bytes that are not UTF-8 (a file name's surrogate escapes)
    as `\\xNN`, control and reordering characters as `\\xNN` or `\\uNNNN`, all else as is."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        raw = text.encode("utf-8", "backslashreplace")
    return CONTROL.sub(_escape, raw.decode("utf-8", "backslashreplace"))


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Links:
    """Links from a page in `base` to files: relative, and percent-encoded from the names'
    bytes (so spaces, `#`, `?`, `%`, `:`, non-ASCII and non-UTF-8 names all survive). Each
    folder's relative part is worked out once."""

    def __init__(self, base: Path) -> None:
        self.base = os.path.abspath(base)
        self.folders: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        folder, name = os.path.split(os.path.abspath(path))
        prefix = self.folders.get(folder)
        if prefix is None:
            relative = os.path.relpath(folder, self.base)
            prefix = "" if relative == "." else quote(os.fsencode(relative), safe="/") + "/"
            self.folders[folder] = prefix
        return prefix + quote(os.fsencode(name), safe="")


PER_FILE = 1000  # cards in one data file: about 130 KB of it


class Kinds:
    """Refused and failed cells whose reasons differ at most in their numbers, counted as
    they come: a kind's label keeps the numbers all its reasons share and shows the others
    as "…". Each kind is a group, numbered as it is first met."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, tuple[str, ...]], int] = {}
        self._labels: list[list[str]] = []  # each group's label, split by NUMBER
        self._cells: list[int] = []
        self._states: list[str] = []

    def group(self, state: str, reason: str) -> int:
        """The group of a refused or failed cell, counted."""
        parts = NUMBER.split(reason)
        key = (state, tuple(parts[0::2]))
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = len(self._labels)
            self._labels.append(parts)
            self._cells.append(0)
            self._states.append(state)
        label = self._labels[found]
        for i in range(1, len(parts), 2):
            if label[i] != parts[i]:
                label[i] = "…"
        self._cells[found] += 1
        return found

    def rows(self) -> list[list[Any]]:
        """[[state, label, cells, group], ...]: refused before failed, the most frequent first."""
        rows = [
            [self._states[g], "".join(label), self._cells[g], g]
            for g, label in enumerate(self._labels)
        ]
        return sorted(rows, key=lambda row: (row[0] != "refused", -row[2], row[1]))


def file_data(n: int, packed: Mapping[str, Any]) -> bytes:
    """A data file's script: JSON (a subset of JavaScript) handed to the page's script."""
    text = json.dumps(packed, ensure_ascii=False, separators=(",", ":"))
    return f"batchtoonData({n},{text});\n".encode()


class Packer:
    """The page's data, one file of cards at a time (`file`), and the index of them all
    (`index`, once every file is packed)."""

    def __init__(self, out: Path, styles: Sequence[int]) -> None:
        self.link = Links(out)
        self.styles = list(styles)
        self.kinds = Kinds()
        self.tally = [[0, 0, 0, 0] for _ in self.styles]
        self.photos = 0
        self.sizes: list[int] = []
        self.passes: list[list[int]] = []
        self._thumbs: Mapping[Path, str | None] = {}
        self._views: Mapping[Path, Path] = {}
        self._dirs, self._reasons = _Table(), _Table()

    def file(
        self,
        cards: Sequence[Card],
        thumbs: Mapping[Path, str | None],
        views: Mapping[Path, Path],
    ) -> dict[str, Any]:
        """One data file's cards (the format above); `thumbs` names the thumbnail of each
        original and result (as `Thumbnails.names` returns), `views` the browser-viewable copy
        of an original a browser cannot show (as `viewable_copies` returns)."""
        self._thumbs, self._views = thumbs, views
        self._dirs, self._reasons = _Table(), _Table()
        passes = [0] * (len(self.styles) + 1) * 4
        packed = []
        for card in cards:
            packed.append(self._card(card))
            states = [CODES_ALL.get(cell.state, -1) if cell else -1 for cell in
                      (card.results.get(style) for style in self.styles)]  # fmt: skip
            for column, state in enumerate(states):
                if state >= 0:
                    self.tally[column][state] += 1
                    passes[(column + 1) * 4 + state] += 1
            for state in set(states) - {-1}:
                passes[state] += 1
            self.photos += bool(card.results)
        self.sizes.append(len(packed))
        self.passes.append(passes)
        return {"dirs": self._dirs.items, "reasons": self._reasons.items, "cards": packed}

    def index(self, gallery: Gallery, files: str) -> dict[str, Any]:
        """The page's index, `files` being the data files' folder as a link prefix."""
        states = [sum(column[k] for column in self.tally) for k in range(4)]
        counts = [["photos", self.photos], ["results", sum(states)]]
        return {
            "title": shown(gallery.title),
            "made": _when(gallery.made),
            "run": _last_run(gallery),
            "counts": counts + [[state, states[k]] for k, state in enumerate(STATES)],
            "cost": [["accepted submissions", gallery.accepted], ["extra cost", gallery.extra]],
            "styles": [[style, STYLE_NAMES[style]] for style in self.styles],
            "thumbs": f"{FOLDER}/",
            "kinds": [
                [state, shown(label), cells, group]
                for state, label, cells, group in self.kinds.rows()
            ],
            "tally": self.tally,
            "files": {"dir": files, "sizes": self.sizes, "passes": self.passes},
        }

    def _card(self, card: Card) -> list[Any]:
        sdir, name = self._split(shown(card.source))
        original: Any = 0
        implied = ""  # what the results' links start with in the usual layout
        if card.original is not None:
            odir, file = self._split(self.link(card.original))
            original = [odir, 0 if file == name else file]
            implied = file[: file.rfind(".") + 1]
        results = [card.results.get(style) for style in self.styles]
        links = [self.link(cell.output) if cell and cell.output else "" for cell in results]
        outdir, rest = self._prefix([text for text in links if text], implied)
        cut = len(self._dirs.items[outdir]) + len(rest)
        cells = [self._cell(cell, text[cut:]) for cell, text in zip(results, links, strict=True)]
        outprefix = 0 if implied and rest == implied else rest
        view = self._views.get(card.original) if card.original is not None else None
        shows = 0 if view is None else list(self._split(self.link(view)))
        thumb = self._thumb(view or card.original)
        return [name, sdir, original, thumb, outdir, outprefix, cells, shows]

    def _prefix(self, links: list[str], implied: str) -> tuple[int, str]:
        """What every link starts with, as a folder's index and the rest: `implied` if they
        all start with that much (then it need not be stored), else as much as they share."""
        common = os.path.commonprefix(links) if links else ""  # noqa: RUF071  by character
        outdir, rest = self._split(common)
        return outdir, implied if implied and rest.startswith(implied) else rest

    def _cell(self, cell: Cell | None, suffix: str) -> Any:
        if cell is None:
            return 0
        if cell.state == "done":
            thumb = self._thumb(cell.output)
            return [suffix, thumb] if thumb else [suffix]
        group = self.kinds.group(cell.state, cell.reason) if cell.state in KINDS else -1
        reason = self._reasons.add((group, cell.reason), [shown(cell.reason), group])
        return [CODES[cell.state], reason]

    def _thumb(self, path: Path | None) -> str:
        return (self._thumbs.get(path) or "") if path is not None else ""

    def _split(self, text: str) -> tuple[int, str]:
        cut = text.rfind("/") + 1
        return self._dirs.add(text[:cut], text[:cut]), text[cut:]


class _Table:
    """Strings (or rows) kept once, referred to by index."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.items: list[Any] = []

    def add(self, key: Any, item: Any) -> int:
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.items)
            self.items.append(item)
        return found


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _last_run(gallery: Gallery) -> str:
    """`Last run 2026-12-02 17:40, 3 s: 5 found · 3 done now · 2 already done`; "" if the page
    was not written by a run (its counts are then the journal's, said by the header)."""
    started, finished = gallery.started, gallery.finished
    if started is None:
        return ""
    text = f"Last run {_when(started)}"
    if finished is not None:
        seconds = round((finished - started).total_seconds())
        text += f", {seconds // 60} min {seconds % 60} s" if seconds >= 60 else f", {seconds} s"
    terms = " · ".join(f"{number} {shown(label)}" for label, number in gallery.counts.items())
    return f"{text}: {terms}" if terms else text
