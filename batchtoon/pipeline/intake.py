"""`Intake`: the stage where photos come in. It gathers the facts admission needs and delivers
them as outcomes; what becomes of an item is the state machine's call (`machine`).

- `known` (in the walk's thread, asked of every local photo before anything is made of it,
  `sources.Knows`): a photo whose every style an earlier run finished, whose fingerprint
  (size, times: `preflight.fingerprint`) is the one the journal recorded, and whose output
  files are there, is delivered in bulk as `Unchanged`, neither read nor hashed; any other
  goes on to pre-flight. Its output files are found by name alone (the likely name, checked
  against the hash of the one the journal holds; else the item's record read back);
- `take` (the producer's `Take`, a pre-flight batch at once: the names of all its targets
  are claimed in one thread hop): a pre-flighted photo is `Found`, with, for each of its styles
  whose item an earlier run finished, which of its output files exist (asked of the disk or
  the store); for each style whose item the journal does not know, a result the output
  location's record holds (`locations.provenance`: any journal's, from any machine); and, in a
  run (`claims`), each target's output name, claimed in that record first; a photo pre-flight
  refused is `Rejected`;
- `reread`: a lost item routed here (`RereadTicket`) has its sources read and checked again,
  and is delivered as `Reread` with the first image whose bytes are still the item's, or None.

Guarantees: intake never writes the journal, and calls nothing of the machine's; it only
reads (the ledger, the sources, the output folder), but for its claims in the output's record:
- every (source file, style) gets an output name of its own, whatever the template: the one
  the journal knows for it, else the template's, unless the journal gives it to another
  source or style, another target of this run is taking it, or the record does (another photo
  or style's, or a file there that no record gives to this photo and style: the user's own);
  then the content's first 8 hex digits (and the style, then a number) are appended;
- the name is claimed in the record before the machine may pay for it; a photo and style
  another journal has claimed is named None: left to that run (two processes given one shard
  never pay twice).
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

import anyio
from anyio.abc import ObjectReceiveStream

from batchtoon.errors import InputError, Unwritable
from batchtoon.images.preflight import Prepared, file_fingerprint
from batchtoon.locations.layout import Layout, Listed
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import BadLine, Source, display
from batchtoon.locations.storage import location
from batchtoon.pipeline.outcomes import (
    Found,
    Outbox,
    Recorded,
    Rejected,
    Reread,
    Unchanged,
    UnchangedPhoto,
)
from batchtoon.pipeline.producer import Check
from batchtoon.pipeline.tickets import RereadTicket
from batchtoon.records.compact import key_of
from batchtoon.records.ledger import Ledger, Target

MOST_NAMES = 1000  # names tried for one target: more means the record is broken, not busy
Placed = Recorded | str | None  # a result already there; the name claimed; another's

__all__ = ["Intake"]


class Intake:
    def __init__(
        self,
        outbox: Outbox,
        *,
        ledger: Ledger,
        layout: Layout,
        record: Provenance,
        check: Check,
        styles: tuple[int, ...],
        claims: bool = True,
    ) -> None:
        self._outbox, self._ledger, self._layout = outbox, ledger, layout
        self._record, self._claims = record, claims  # the plan claims nothing
        self._check, self._styles = check, styles
        self._placing: set[str] = set()  # names claimed for photos not yet delivered
        self._results = Listed(layout)  # (the walk's: `known`)
        # `known` asks of what earlier runs did: a photo this run took twice is found the
        # long way (read, its content's key in hand), as one photo in two folders always is.
        ledger.done.only_targets_now()

    def __repr__(self) -> str:
        return f"<Intake styles={self._styles}>"

    def known(self, path: str, rel: str, styles: tuple[int, ...] | None) -> UnchangedPhoto | None:
        """Blocking: the photo at `path` (`rel` below its SOURCE) as `Unchanged` knows it, if it
        is (see the module docstring): one `stat` of it, its results found by name."""
        done, keys, now = self._ledger.done, [], 0
        for style in styles or self._styles:
            target = done.target(path, style)
            if target is None:
                return None
            now = now or file_fingerprint(path)
            if not now or target.seen != now:
                return None
            result = self._result(path, rel, style, target)
            if result is None or not self._results.has(*result):
                return None
            keys.append(target.key)
        return path, tuple(keys)

    def _result(self, path: str, rel: str, style: int, target: Target) -> tuple[str, str] | None:
        """The output base and extension of done `target` (of `path`'s photo in `style`)."""
        likely = self._layout.likely_base(rel, style)
        if target.ext and key_of(likely) == target.base:
            return likely, target.ext
        record = self._ledger.read(target.offset)
        base = next((base for base, source, _ in record["targets"] if source == path), None)
        return None if base is None else (base, record["ext"])

    async def unchanged(self, known: list[UnchangedPhoto]) -> None:
        await self._outbox.deliver(Unchanged(tuple(known)))

    async def take(self, taken: list[tuple[Source | BadLine, Prepared | str]]) -> None:
        """Pre-flighted sources, each delivered in turn: its image and what exists of its
        outputs, or why not. What the output's record says of all their targets is asked in
        one thread hop (`_ask_all`); each name is kept at its photo's turn."""
        told = await self._ask_all(
            [
                (item, got)
                for item, got in taken
                if isinstance(item, Source) and isinstance(got, Prepared)
            ]
        )
        for item, outcome in taken:
            styles = (item.styles if isinstance(item, Source) else None) or self._styles
            if isinstance(item, BadLine):
                await self._outbox.deliver(Rejected(item.where, styles, item.reason))
            elif isinstance(outcome, str):
                where, path = display(item.path), str(item.path)
                await self._outbox.deliver(Rejected(where, styles, outcome, path))
            else:
                await self._found(item, outcome, styles, told)

    async def _found(
        self, source: Source, image: Prepared, styles: tuple[int, ...], told: dict[At, Told]
    ) -> None:
        present = {style: await self._present(f"{image.sha256}:{style}") for style in styles}
        placed = {style: await self._settle(*told[id(source), style]) for style in styles}
        recorded = {s: p for s, p in placed.items() if isinstance(p, Recorded)}
        names = {s: p for s, p in placed.items() if p is None or isinstance(p, str)}
        try:
            await self._outbox.deliver(Found(source, image, styles, present, recorded, names))
        finally:  # the journal holds them now (or the run is over)
            self._placing.difference_update(n for n in names.values() if n is not None)

    async def _ask_all(self, found: list[tuple[Source, Prepared]]) -> dict[At, Told]:
        """Each target of these photos (by the source's `id` and the style): its question to
        the output's record and the answer (`_placed`), all in one thread hop."""
        targets = [
            ((id(source), style), self._ask(source, style, image.sha256))
            for source, image in found
            for style in source.styles or self._styles
        ]
        asks = [ask for _, ask in targets if ask is not None]
        answers: list[Placed | bool] = []
        if asks:
            answers = await anyio.to_thread.run_sync(self._placed_each, asks, set(self._placing))
        told = iter(answers)  # in the order of `asks`
        return {at: (ask, False if ask is None else next(told)) for at, ask in targets}

    async def _settle(self, ask: _Ask | None, answer: Placed | bool) -> Placed | bool:
        """The answer, if its name is this target's to keep now; else asked again alone (the
        name went to another target of this run meanwhile); False: nothing was asked (see
        `_ask`)."""
        if ask is None or not isinstance(answer, str) or self._keep(answer, ask):
            return answer
        return await self._place(ask)

    def _ask(self, source: Source, style: int, sha256: str) -> _Ask | None:
        """What `_placed` is asked of this target; None: nothing to ask (the plan, for an
        item the journal knows)."""
        key = f"{sha256}:{style}"
        entry = self._ledger.entries.get(key)
        if entry is not None and not self._claims:
            return None
        path = str(source.path)
        # The name the journal gives this target, read here: the event loop changes the entry.
        known = next((b for b, s in (entry.targets.items() if entry else ()) if s == path), None)
        return _Ask(source, path, style, key, entry is not None, known)

    def _keep(self, name: str, ask: _Ask) -> bool:
        """Take `name` for this target, unless another of this run's has it meanwhile."""
        if name in self._placing or self._ledger.taken_by_other(name, ask.path, ask.style):
            return False
        self._placing.add(name)
        return True

    async def _place(self, ask: _Ask) -> Placed | bool:
        """`_placed` of one target, until the name it gives is this target's to keep."""
        while True:
            placed = await anyio.to_thread.run_sync(self._placed, ask, frozenset(self._placing))
            if not isinstance(placed, str) or self._keep(placed, ask):
                return placed

    def _placed_each(self, asks: list[_Ask], skip: set[str]) -> list[Placed | bool]:
        """Blocking: `_placed` of each target, a name given to one passed over by the others
        (not by the same target given twice: it is one target, with one name)."""
        answers: list[Placed | bool] = []
        given: dict[str, tuple[str, int]] = {}  # name -> the target it was given to
        for ask in asks:
            mine = ask.path, ask.style
            others = skip | {name for name, target in given.items() if target != mine}
            answers.append(placed := self._placed(ask, others))
            if isinstance(placed, str):
                given[placed] = mine
        return answers

    def _placed(self, ask: _Ask, skip: Container[str]) -> Placed | bool:
        """Blocking: what the output's record says of this target (`journaled`: the journal
        has the item; `known`: the name it gives this target), names in `skip` passed over."""
        source, style, key, record = ask.source, ask.style, ask.key, self._record
        sha256 = key[:64]
        if not ask.journaled and (made := record.lookup(sha256, style)) is not None:
            base, _, ext = made.name.rpartition(".")
            output = str(self._layout.file(base, ext))
            return Recorded(base, output, made.size, made.sha256)
        if not self._claims:
            return False
        if ask.known is not None:  # claimed for the record too (a journal from before it)
            record.claim(ask.known, sha256, style, adopt=True)
            return ask.known
        for candidate in _candidates(self._layout.base(source, style, sha256), key, style):
            if candidate in skip or self._ledger.taken_by_other(candidate, ask.path, style):
                continue  # another target's, in this run or in the journal
            claim = record.claim(candidate, sha256, style)
            if claim != "taken":
                return candidate if claim == "mine" else None
        raise Unwritable(
            f"no free output name for {display(source.path)} in {MOST_NAMES} tries: the "
            f"output's record ({display(str(self._record.out))}/.batchtoon/names) is not as "
            "batchtoon writes it; check it"
        )

    async def _present(self, key: str) -> frozenset[str]:
        """The output bases of an item an earlier run finished whose files exist."""
        entry = self._ledger.entries.get(key)
        if entry is None or entry.state != "downloaded":
            return frozenset()
        bases, ext = list(entry.targets), entry.ext
        return frozenset(await anyio.to_thread.run_sync(self._layout.existing, bases, ext))

    async def reread(self, tickets: ObjectReceiveStream[RereadTicket]) -> None:
        """Read the sources of what the provider lost again (they must be unchanged)."""
        async with tickets:
            async for ticket in tickets:
                await self._outbox.deliver(Reread(ticket, await self._reread(ticket)))

    async def _reread(self, ticket: RereadTicket) -> Prepared | None:
        for source in ticket.sources:
            try:
                image = await anyio.to_thread.run_sync(self._check, location(source))
            except InputError:
                continue
            if image.sha256 == ticket.sha256:
                return image
        return None


@dataclass(frozen=True, slots=True)
class _Ask:
    """One target's question to the output's record: its source (and as text), style, item
    key; whether the journal has the item, and the name it gives this target."""

    source: Source
    path: str
    style: int
    key: str
    journaled: bool
    known: str | None


At = tuple[int, int]  # a target of a batch: its source's `id`, and the style
Told = tuple[_Ask | None, Placed | bool]  # a target's question (None: none), and the answer


def _candidates(base: str, key: str, style: int) -> Iterator[str]:
    """The names a target may take, in order: the template's, then ones of its own."""
    sha8 = key[:8]
    yield from (base, f"{base}-{sha8}", f"{base}-{sha8}-{style}")
    for number in range(1, MOST_NAMES - 2):
        yield f"{base}-{sha8}-{style}-{number}"
