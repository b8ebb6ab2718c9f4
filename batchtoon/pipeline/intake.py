"""`Intake`: admission in practice — what an earlier run left, and what the producer finds,
judged by `admission.decide` and put where the verdict says.

Guarantees:
- an item is opened (`RunControl.open`) before its first await, so a duplicate of it admitted
  meanwhile is attached to it rather than submitted again;
- the output location's record (`locations.provenance`) is asked before the journal's silence
  is taken for "new": a (photo, style) whose result the record names, and whose file is
  there, is already done, whatever journal made it (nothing paid, nothing downloaded; it is
  journaled as downloaded, at that file);
- every (source file, style) gets an output path of its own, whatever the template: a path
  already claimed by another source or another style, in this journal or in the output
  location's record, or where a file is that no record gives to this photo and style (the
  user's own), gets the content's first 8 hex digits (and the style, then a number)
  appended; the name is claimed in the record before anything is paid for it;
- a (photo, style) that another journal has claimed and not finished is left to it (said, and
  counted as left): two processes given one shard never pay twice;
- a lost item is submitted again only from its own unchanged bytes (its source read again and
  checked against the item's sha256); if none of its sources still holds them, it fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import anyio
from anyio.abc import ObjectReceiveStream

from batchtoon.errors import InputError, Unwritable
from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Made, Provenance
from batchtoon.locations.results import copy_result
from batchtoon.locations.sources import BadLine, Source, display
from batchtoon.locations.storage import location
from batchtoon.pipeline.admission import Verdict, decide
from batchtoon.pipeline.clock import Clock
from batchtoon.pipeline.lifecycle import RunControl, RunOutcome
from batchtoon.pipeline.producer import Check
from batchtoon.pipeline.router import Router
from batchtoon.pipeline.stats import Stats
from batchtoon.records.ledger import Entry
from batchtoon.settings.styles import style_slug

__all__ = ["Intake"]


class Intake:
    def __init__(
        self,
        router: Router,
        *,
        run: RunControl,
        layout: Layout,
        record: Provenance,
        check: Check,
        clock: Clock,
        task_ttl: float,
        styles: tuple[int, ...],
        stats: Stats,
        retry_failed: bool = False,
    ) -> None:
        self._router, self.ledger = router, router.journal.ledger
        self._run, self._layout, self._check, self._clock = run, layout, check, clock
        self._record = record
        self._task_ttl, self._styles = task_ttl, styles
        self.stats = stats
        self._retry_failed = retry_failed
        self._taken: set[int] = set()  # the source files taken in this run (their hashes)

    def __repr__(self) -> str:
        return f"<Intake {self._run!r}>"

    async def resume(self) -> None:
        """What an earlier run left with the provider is picked up before anything new."""
        now = self._clock.wall()
        for entry in list(self.ledger.entries.values()):
            if entry.state not in ("submitted", "succeeded"):
                continue
            self._run.open(entry.key)
            verdict = decide(
                entry, in_hand=False, retry_failed=False, now=now, task_ttl=self._task_ttl
            )
            if verdict == "resubmit":
                await self._router.lose(entry, _gone_reason(entry))
            else:
                self._router.route(entry)

    async def take(self, item: Source | BadLine, outcome: Prepared | str) -> None:
        """One pre-flighted source: refused (a reason) or admitted in each of its styles. A
        file reached twice (a folder and an image in it, both given) is taken once."""
        styles = (item.styles if isinstance(item, Source) else None) or self._styles
        where = item.where if isinstance(item, BadLine) else display(item.path)
        if isinstance(item, Source) and not self._first_time(item):
            return
        if isinstance(outcome, str):
            self.stats.tally.photo(where, len(styles))
            await self._reject(where, styles, outcome)
            return
        assert isinstance(item, Source)
        self.stats.tally.photo(str(item.path), len(styles))
        if outcome.converted:
            self.stats.converted_photos += 1
            self.stats.converted.update(outcome.reasons)
        for style in styles:
            await self._admit(item, style, outcome)

    def _first_time(self, item: Source) -> bool:
        mark = hash(str(item.path))  # 8 bytes a photo, where the path would be tens
        if mark in self._taken:
            return False
        self._taken.add(mark)
        return True

    async def _reject(self, where: str, styles: tuple[int, ...], reason: str) -> None:
        """Refused by pre-flight: news, unless an earlier run said the same of it already."""
        earlier = self.ledger.rejected
        new = [style for style in styles if earlier.get((where, style)) != reason]
        for style in styles:
            self.stats.tally.result(where, "refused" if style in new else "refused earlier")
        if not new:
            return
        self._router.report(f"refused {where}: {reason}")
        self.stats.news(reason, len(new))
        for style in new:
            await self._router.journal.write(
                "rejected", durable=False, source=where, style=style, reason=reason
            )

    async def _admit(self, source: Source, style: int, image: Prepared) -> None:
        """Take one (source file, style) on, as `admission.decide` says."""
        key = f"{image.sha256}:{style}"
        entry = self.ledger.entries.get(key)
        try:
            placed = await self._place(source, style, key, entry)
        except Unwritable as problem:  # the output's record cannot be written: as a result
            self._run.stop(RunOutcome.BLOCKED, problem)
            self.stats.tally.result(str(source.path), "left")
            return
        if isinstance(placed, Made):
            await self._adopt(source, key, placed)
            return
        if placed is None:
            self._leave(source, style)
            return
        base = placed
        retry = self._retry_failed and entry is not None and entry.state == "failed"
        if entry is None or base not in entry.targets or retry:
            extra = {"retry": True} if retry else {}
            await self._router.journal.write(  # not waited for: a lost "queued" is queued again
                "queued", durable=False, key=key, source=str(source.path), output=base, **extra
            )
            entry = self.ledger.entries[key]
        in_hand = self._run.is_open(key)
        if not in_hand:
            self._run.open(key)  # before any await: a duplicate admitted meanwhile waits
        present = await self._present(entry) if not in_hand else set[str]()
        verdict = decide(
            entry, in_hand=in_hand, retry_failed=self._retry_failed, now=self._clock.wall(),
            task_ttl=self._task_ttl, present=present,
        )  # fmt: skip
        self._count(str(source.path), verdict, key, base in present)
        await self._follow(verdict, entry, image, present)

    async def _adopt(self, source: Source, key: str, made: Made) -> None:
        """A result the output location's record names: this journal takes it as done."""
        base, _, _ = made.name.rpartition(".")
        write, where = self._router.journal.write, str(source.path)
        await write("queued", durable=False, key=key, source=where, output=base)
        output = str(self._layout.file(base, made.name.rpartition(".")[2]))
        await write(
            "downloaded", key=key, source=where, output=output, size=made.size, sha256=made.sha256
        )
        self.stats.tally.result(where, "already done")

    def _leave(self, source: Source, style: int) -> None:
        """Another journal has this photo in this style in hand: it is left to that run."""
        self._router.report(
            f"left {display(source.path)} ({style_slug(style)}): another batchtoon run (another "
            "journal) has it in hand for this output; that run finishes it"
        )
        self.stats.left += 1
        self.stats.tally.result(str(source.path), "left")

    def _count(self, source: str, verdict: Verdict, key: str, there: bool) -> None:
        """This (photo, style)'s term, now or once its item ends (see `stats.Tally`)."""
        tally = self.stats.tally
        if verdict == "failed":
            tally.result(source, "failed earlier")
        elif verdict == "done" or (verdict == "copy" and there):
            tally.result(source, "already done")
        else:
            tally.hold(key, source)

    async def _follow(
        self, verdict: Verdict, entry: Entry, image: Prepared, present: set[str]
    ) -> None:
        if verdict == "duplicate":
            return  # in hand in this run: this target is written with the others
        if verdict in ("failed", "done"):
            # A duplicate admitted while this was judged waits on it: it ends the same way.
            self.stats.tally.end(
                entry.key, "failed earlier" if verdict == "failed" else "already done"
            )
            self._run.close(entry.key)
        elif verdict == "copy":
            await self._copy(entry, present)
        elif verdict == "resubmit":
            await self._router.record("lost", entry, reason=_gone_reason(entry))
            await self._router.upload(entry, image)
        elif verdict == "submit":
            await self._router.upload(entry, image)
        else:
            self._router.route(entry)

    async def _place(
        self, source: Source, style: int, key: str, entry: Entry | None
    ) -> Made | str | None:
        """Where this target goes, in one thread hop (see `_placed`); asked again if another
        source of this run took the same name meanwhile."""
        mine, look = (str(source.path), style), entry is None and not self._run.is_open(key)
        while True:
            placed = await anyio.to_thread.run_sync(self._placed, source, style, key, entry, look)
            if not isinstance(placed, str) or self.ledger.owner(placed) in (None, mine):
                return placed

    def _placed(
        self, source: Source, style: int, key: str, entry: Entry | None, look: bool
    ) -> Made | str | None:
        """Blocking. A result the output's record already holds for this photo and style (if
        `look`: the journal does not know it); else this target's output name: the one the
        journal knows (claimed in the record too, for a journal from before the record), or a
        new one that no other source takes, in the journal or in the record; None if another
        journal has claimed this photo in this style."""
        sha256, record = key[:64], self._record
        if look and (made := record.lookup(sha256, style)) is not None:
            return made
        source_text = str(source.path)
        known = [b for b, s in (entry.targets.items() if entry else ()) if s == source_text]
        if known:
            record.claim(known[0], sha256, style, adopt=True)
            return known[0]
        for candidate in self._candidates(self._layout.base(source, style, sha256), key, style):
            if self.ledger.owner(candidate) not in (None, (source_text, style)):
                continue  # this journal gave it to another source or style
            claim = record.claim(candidate, sha256, style)
            if claim != "taken":
                return candidate if claim == "mine" else None
        raise AssertionError("unreachable: the candidates never end")

    @staticmethod
    def _candidates(base: str, key: str, style: int) -> Iterator[str]:
        """The names a target may take, in order: the template's, then ones of its own."""
        sha8 = key[:8]
        yield from (base, f"{base}-{sha8}", f"{base}-{sha8}-{style}")
        for number in itertools.count(1):
            yield f"{base}-{sha8}-{style}-{number}"

    async def _present(self, entry: Entry) -> set[str]:
        """The entry's output bases whose files exist (asked of the disk for a done entry)."""
        if entry.state != "downloaded":
            return set()
        return await anyio.to_thread.run_sync(self._layout.existing, entry.targets, entry.ext)

    async def _copy(self, entry: Entry, present: set[str]) -> None:
        """Downloaded before, some outputs gone or new: copy one that is there to the rest."""
        missing = [base for base in entry.targets if base not in present]
        first = self._layout.file(next(iter(present)), entry.ext)
        try:
            filed = await anyio.to_thread.run_sync(copy_result, first, missing, self._layout)
        except Unwritable as problem:
            self._router.blocked(entry, problem)
            return
        await self._router.store(entry, filed, on_disk=present)

    async def resubmit(self, lost: ObjectReceiveStream[Entry]) -> None:
        """Submit again what the provider lost: its source read again (it must be unchanged)."""
        async with lost:
            async for entry in lost:
                image = await self._reread(entry)
                if image is not None:
                    await self._router.upload(entry, image)

    async def _reread(self, entry: Entry) -> Prepared | None:
        for source in entry.targets.values():
            try:
                image = await anyio.to_thread.run_sync(self._check, location(source))
            except InputError:
                continue
            if image.sha256 == entry.sha256:
                return image
        await self._router.fail(entry, "InputError", "its source files changed or are gone")
        return None


def _gone_reason(entry: Entry) -> str:
    if entry.state == "downloaded":
        return "its output files were deleted"
    if entry.state == "succeeded":
        return "the result URL expired before it was downloaded"
    return "the task is older than the provider keeps tasks"
