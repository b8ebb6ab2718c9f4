"""`Intake`: the stage where photos come in. It gathers the facts admission needs and delivers
them as outcomes; what becomes of an item is the state machine's call (`machine`).

- `take` (the producer's `Take`): a pre-flighted photo is `Found`, with, for each of its styles
  whose item an earlier run finished, which of its output files exist (asked of the disk or
  the store); a photo pre-flight refused is `Rejected`;
- `reread`: a lost item routed here (`RereadTicket`) has its sources read and checked again,
  and is delivered as `Reread` with the first image whose bytes are still the item's, or None.

Guarantees: intake only reads (the ledger, the sources, the output folder): it never writes
the journal, and calls nothing of the machine's.
"""

from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream

from batchtoon.errors import InputError
from batchtoon.images.preflight import Prepared
from batchtoon.locations.layout import Layout
from batchtoon.locations.sources import BadLine, Source, display
from batchtoon.locations.storage import location
from batchtoon.pipeline.outcomes import Found, Outbox, Rejected, Reread
from batchtoon.pipeline.producer import Check
from batchtoon.pipeline.tickets import RereadTicket
from batchtoon.records.ledger import Ledger

__all__ = ["Intake"]


class Intake:
    def __init__(
        self,
        outbox: Outbox,
        *,
        ledger: Ledger,
        layout: Layout,
        check: Check,
        styles: tuple[int, ...],
    ) -> None:
        self._outbox, self._ledger, self._layout = outbox, ledger, layout
        self._check, self._styles = check, styles

    def __repr__(self) -> str:
        return f"<Intake styles={self._styles}>"

    async def take(self, item: Source | BadLine, outcome: Prepared | str) -> None:
        """One pre-flighted source: its image and what exists of its outputs, or why not."""
        styles = (item.styles if isinstance(item, Source) else None) or self._styles
        if isinstance(item, BadLine):
            await self._outbox.deliver(Rejected(item.where, styles, item.reason))
        elif isinstance(outcome, str):
            where, path = display(item.path), str(item.path)
            await self._outbox.deliver(Rejected(where, styles, outcome, path))
        else:
            present = {style: await self._present(f"{outcome.sha256}:{style}") for style in styles}
            await self._outbox.deliver(Found(item, outcome, styles, present))

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
