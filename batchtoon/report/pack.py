"""A `Gallery` packed into the compact JSON the page's script renders from.

Every text the page shows is escaped here (`shown`), and every link is made here: relative to
the page's folder, percent-encoded from the file name's bytes. The script only sets text and
link properties from it. The format (`assets/page.js` reads it):

    title, made, run   texts: the title, when the page was made, the last run (when it ran,
                       how long, and its own counts), "" without one
    counts             [[label, number], ...]: photos and results, then results by state (done,
                       failed, refused, pending): the cards' own, as the filters count them
    cost               [[label, number], ...]: submissions the journal records
    styles             [[index, name], ...]: the columns, in order
    thumbs             the thumbnails' folder, as a link prefix ("<name>.jpg" follows)
    dirs               folder prefixes shared by paths and links, each ending in "/" (or "")
    reasons            [[text, kind], ...]: kind indexes `kinds`, -1 for a pending reason
    kinds              [[state, label, cells], ...]: refused and failed, grouped by kind
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

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchtoon.report.model import STATES, Card, Cell, Gallery
from batchtoon.report.thumbs import FOLDER
from batchtoon.settings.styles import STYLE_NAMES

__all__ = ["Kind", "Links", "header_counts", "pack", "problem_kinds", "shown"]

CODES = {"failed": 1, "refused": 2, "pending": 3}
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


@dataclass(frozen=True, slots=True)
class Kind:
    """Refused or failed cells whose reasons differ at most in their numbers; the label
    keeps the numbers they share and shows the others as "…"."""

    state: str
    label: str
    reasons: frozenset[str]
    cells: int


def problem_kinds(cards: Iterable[Card]) -> list[Kind]:
    """The kinds of problem, refused before failed, the most frequent first."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for card in cards:
        for cell in card.results.values():
            if cell.state in ("failed", "refused"):
                texts = tuple(NUMBER.split(cell.reason)[0::2])
                groups.setdefault((cell.state, texts), []).append(cell.reason)
    kinds = [
        Kind(state, _label(set(reasons)), frozenset(reasons), len(reasons))
        for (state, _), reasons in groups.items()
    ]
    return sorted(kinds, key=lambda kind: (kind.state != "refused", -kind.cells, kind.label))


def _label(reasons: set[str]) -> str:
    splits = [NUMBER.split(reason) for reason in sorted(reasons)]
    return "".join(
        part if i % 2 == 0 or all(s[i] == part for s in splits) else "…"
        for i, part in enumerate(splits[0])
    )


def pack(
    gallery: Gallery,
    out: Path,
    thumbs: Mapping[Path, str | None],
    views: Mapping[Path, Path] | None = None,
) -> dict[str, Any]:
    """The page's data (the format above) for a page in `out`; `thumbs` names the thumbnail
    of each original and result (as `make_thumbnails` returns), `views` the browser-viewable
    copy of an original a browser cannot show (as `viewable_copies` returns)."""
    kinds = problem_kinds(gallery.cards)
    packer = _Packer(out, thumbs, kinds, views or {})
    cards = [packer.card(card, gallery.styles) for card in gallery.cards]
    return {
        "title": shown(gallery.title),
        "made": _when(gallery.made),
        "run": _last_run(gallery),
        "counts": header_counts(gallery.cards),
        "cost": [["accepted submissions", gallery.accepted], ["extra cost", gallery.extra]],
        "styles": [[style, STYLE_NAMES[style]] for style in gallery.styles],
        "thumbs": f"{FOLDER}/",
        "dirs": packer.dirs.items,
        "reasons": packer.reasons.items,
        "kinds": [[kind.state, shown(kind.label), kind.cells] for kind in kinds],
        "cards": cards,
    }


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


def header_counts(cards: Iterable[Card]) -> list[list[Any]]:
    """What the page's header counts: photos, results, and results by state, from the cards
    themselves (so the header and the filters, which count the same cells, agree)."""
    states = Counter(cell.state for card in cards for cell in card.results.values())
    photos = sum(1 for card in cards if card.results)
    rows: list[list[Any]] = [["photos", photos], ["results", states.total()]]
    return rows + [[state, states[state]] for state in STATES]


class _Packer:
    def __init__(
        self,
        out: Path,
        thumbs: Mapping[Path, str | None],
        kinds: list[Kind],
        views: Mapping[Path, Path],
    ) -> None:
        self.link = Links(out)
        self.thumbs = thumbs
        self.views = views
        self.kind_of = {(k.state, r): i for i, k in enumerate(kinds) for r in k.reasons}
        self.dirs = _Table()
        self.reasons = _Table()

    def card(self, card: Card, styles: Iterable[int]) -> list[Any]:
        sdir, name = self._split(shown(card.source))
        original: Any = 0
        implied = ""  # what the results' links start with in the usual layout
        if card.original is not None:
            odir, file = self._split(self.link(card.original))
            original = [odir, 0 if file == name else file]
            implied = file[: file.rfind(".") + 1]
        results = [card.results.get(style) for style in styles]
        links = [self.link(cell.output) if cell and cell.output else "" for cell in results]
        outdir, rest = self._prefix([text for text in links if text], implied)
        cut = len(self.dirs.items[outdir]) + len(rest)
        cells = [self._cell(cell, text[cut:]) for cell, text in zip(results, links, strict=True)]
        outprefix = 0 if implied and rest == implied else rest
        view = self.views.get(card.original) if card.original is not None else None
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
        kind = self.kind_of.get((cell.state, cell.reason), -1)
        reason = self.reasons.add((cell.state, cell.reason), [shown(cell.reason), kind])
        return [CODES[cell.state], reason]

    def _thumb(self, path: Path | None) -> str:
        return (self.thumbs.get(path) or "") if path is not None else ""

    def _split(self, text: str) -> tuple[int, str]:
        cut = text.rfind("/") + 1
        return self.dirs.add(text[:cut], text[:cut]), text[cut:]


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
