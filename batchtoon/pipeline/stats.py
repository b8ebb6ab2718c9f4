"""What this run did, counted as it happens: `Stats` (work and cost) and `Tally` (what became
of every photo, and of every photo x style result).

The tally's terms, as the summary, `run --json`, `status` and `plan` use them (the README
defines them for the user):

    already done     its output was there before this run (an earlier run made it)
    done now         its output was written by this run
    failed           the provider, or a download, said no in this run
    failed earlier   an earlier run failed it, and this run left it so (no --retry-failed)
    refused          pre-flight refused it in this run: nothing was sent
    refused earlier  refused by an earlier run for the same reason, and unchanged since
    left             not finished by this run (stopped, budget, or a paid task that could not
                     be followed): the next run goes on with it

Guarantees: every (photo, style) found by this run is counted once, in exactly one term, so
`found` is the sum of the terms, for results and for photos alike. A photo counts under the
worst term of its styles, in the order above read backwards (refused first). Results this run
finished for an earlier run's photos that this run's sources do not hold are `also_finished`,
outside the sum. `duplicates` counts results that shared another's submission (same content,
same style). Only `failed` and `refused` are news: they are what makes a run exit 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, get_args

from batchtoon.records.compact import key_of

__all__ = ["NEWS", "TERMS", "Stats", "Tally", "Term"]

Term = Literal[
    "already done", "done now", "failed", "failed earlier", "refused", "refused earlier", "left"
]
TERMS: tuple[Term, ...] = get_args(Term)
NEWS: frozenset[Term] = frozenset({"failed", "refused"})
_WORST_FIRST: tuple[Term, ...] = tuple(reversed(TERMS))


@dataclass
class _Photo:
    waiting: int  # its styles without a term yet
    terms: set[Term] = field(default_factory=set)


class Tally:
    def __init__(self) -> None:
        self.results: Counter[Term] = Counter()
        self.photos: Counter[Term] = Counter()
        self.duplicates = 0
        self.also_finished = 0
        self._photos: dict[str, _Photo] = {}  # photos with a style still waiting
        self._holding: dict[str, list[str]] = {}  # item key -> the sources waiting on it
        # key_of(item key) -> files this run wrote for it before any of its photos was reached
        # (an earlier run's task, finished now): those photos, when reached, are done now
        self._written_ahead: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<Tally results={dict(self.results)} photos={dict(self.photos)}>"

    @property
    def found(self) -> int:
        return sum(self.results.values()) + self.waiting

    @property
    def photos_found(self) -> int:
        return sum(self.photos.values()) + len(self._photos)

    @property
    def waiting(self) -> int:
        return sum(len(sources) for sources in self._holding.values())

    @property
    def settled(self) -> int:
        """Results that have their term already (the rest wait on the provider)."""
        return sum(self.results.values())

    def photo(self, source: str, styles: int) -> None:
        """A photo found, to be judged in `styles` styles. A path found again with new content
        (replaced in a watched folder) while its first version still waits is one photo with
        both versions' results."""
        waiting = self._photos.get(source)
        if waiting is not None:
            waiting.waiting += styles
        else:
            self._photos[source] = _Photo(styles)

    def result(self, source: str, term: Term) -> None:
        """One (photo, style) has its term now."""
        self.results[term] += 1
        photo = self._photos[source]
        photo.terms.add(term)
        photo.waiting -= 1
        if not photo.waiting:
            del self._photos[source]
            self.photos[next(t for t in _WORST_FIRST if t in photo.terms)] += 1

    def held(self, key: str) -> int:
        """How many (photo, style) results wait on item `key`."""
        return len(self._holding.get(key, ()))

    def waiting_items(self) -> dict[str, list[str]]:
        """Item key -> the sources whose results wait on it."""
        return {key: list(sources) for key, sources in self._holding.items()}

    def hold(self, key: str, source: str) -> None:
        """One (photo, style) waits on item `key` (submitted, polled, downloaded...)."""
        sources = self._holding.setdefault(key, [])
        self.duplicates += bool(sources)
        sources.append(source)

    def end(self, key: str, term: Term, *, files: int = 0) -> None:
        """Item `key` ended in `term`: so did every (photo, style) waiting on it. `files`: the
        outputs it wrote, some of which may be for photos this run did not find."""
        sources = self._holding.pop(key, [])
        for source in sources:
            self.result(source, term)
        ahead = max(0, files - len(sources))
        self.also_finished += ahead
        if ahead:
            hashed = key_of(key)
            self._written_ahead[hashed] = self._written_ahead.get(hashed, 0) + ahead

    def unchanged(self, photos: list[tuple[str, tuple[int, ...]]]) -> int:
        """Photos found with every style's output there (each: its path, `key_of` its items),
        as `found_done` says of each; those none of whose items was written ahead counted at
        once (a resume meets a million). The number of their results."""
        results = plain = plain_results = 0
        ahead = self._written_ahead
        for source, keys in photos:
            results += len(keys)
            if source in self._photos or (ahead and any(key in ahead for key in keys)):
                self.photo(source, len(keys))
                for key in keys:
                    self.found_done(key, source)
            else:
                plain += 1
                plain_results += len(keys)
        if plain:
            self.results["already done"] += plain_results
            self.photos["already done"] += plain
        return results

    def found_done(self, key: int, source: str) -> None:
        """A (photo, style) found with its output there (`key`: `key_of` its item): `already
        done`, or `done now` if this run wrote that output before the photo was reached (then
        it is no longer counted among the results finished for an earlier run's photos)."""
        if self._written_ahead.get(key, 0) > 0:
            self._written_ahead[key] -= 1
            self.also_finished -= 1
            self.result(source, "done now")
        else:
            self.result(source, "already done")

    def finish(self) -> None:
        """The run is over: whatever still waits is left for the next run."""
        for key in list(self._holding):
            self.end(key, "left")
        for source, photo in list(self._photos.items()):  # styles never reached (a stop)
            for _ in range(photo.waiting):
                self.result(source, "left")


@dataclass
class Stats:
    """The run's work and cost, as counters."""

    started: float  # the run's clock, monotonic
    tally: Tally = field(default_factory=Tally)
    submitted: int = 0  # accepted submissions in this run
    extra: int = 0  # of those, items the provider had already accepted once: extra cost
    unanswered: int = 0  # uploads sent whole whose answer never came: possible extra cost
    left: int = 0  # paid tasks left for a later run
    expected: int | None = None  # results the sources hold, once a quick count has run
    uploaded_bytes: int = 0  # bytes of accepted uploads
    saved_bytes: int = 0  # bytes preparation kept off the wire, over those uploads
    upload_span: tuple[float, float] | None = None  # first upload began, last one answered
    converted_photos: int = 0
    converted: Counter[str] = field(default_factory=Counter)  # why: reason -> photos
    cropped: int = 0  # photos found wider or taller than 3:2: the provider keeps their centre
    failures: Counter[str] = field(default_factory=Counter)  # this run's news: reason -> results

    def news(self, reason: str, results: int = 1) -> None:
        self.failures[reason] += results

    def uploaded(self, sent: int, saved: int, began: float, now: float) -> None:
        self.uploaded_bytes += sent
        self.saved_bytes += saved
        first = self.upload_span[0] if self.upload_span else began
        self.upload_span = (min(first, began), now)

    @property
    def upload_rate(self) -> float:
        """Bytes per second, over the span in which uploads were going out."""
        if self.upload_span is None:
            return 0.0
        began, ended = self.upload_span
        return self.uploaded_bytes / (ended - began) if ended > began else 0.0
