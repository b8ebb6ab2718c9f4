"""`Downloader`: fetches finished results and files them; copies a result already written to
the outputs that still lack it.

Guarantees:
- a result is checked whole (its `Content-Length` met, its structure intact) before anything
  is written; a cut-short or broken body is fetched again within the retry policy;
- every base on the ticket (each source file with that content and style) gets its own file
  (see `batchtoon.locations.results` for how a file is written);
- an expired URL, or one whose ticket's `expires_at` has passed when its turn comes, is
  `Gone`: the machine has the item submitted again; a result that can never be kept is
  `Refused`;
- a result that cannot be written (the disk or the store, not the result) is `Blocked`: it
  stays `succeeded` in the journal for the same command to finish later; a store's passing
  failure (`StoreBusy`) is retried first, within the retry policy;
- memory is bounded whatever a server sends (see `batchtoon.locations.results.Spool`);
- once a result is stored, the photo's prepared upload is removed from the `prepared` cache
  (`preflight.forget`): a finished batch leaves no converted copies behind;
- every result written is named in the output location's record (`locations.provenance`:
  which photo and style it is the result of, with one of the item's sources) before the
  outcome is delivered: any journal, on any machine, finds it there;
- a download costs one hop to a worker thread: the result's check, its files, its record and
  the prepared upload's removal go together.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream

from batchtoon.errors import ApiError, StoreBusy, TaskGone, Unwritable
from batchtoon.images.preflight import forget
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Made, Provenance
from batchtoon.locations.results import Spool, copy_result, file_spool
from batchtoon.locations.storage import Location
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.outcomes import Blocked, Filed, Gone, Outbox, Outcome, Refused, Stored
from batchtoon.pipeline.tickets import URL_EXPIRED, CopyTicket, DownloadTicket
from batchtoon.provider.api import Api
from batchtoon.provider.retry import RetryPolicy

__all__ = ["Downloader"]


class Downloader:
    def __init__(
        self,
        api: Api,
        retry: RetryPolicy,
        outbox: Outbox,
        layout: Layout,
        record: Provenance,
        *,
        max_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
        prepared: Path | None = None,
    ) -> None:
        self._api, self._retry, self._outbox, self._layout = api, retry, outbox, layout
        self._record = record
        self._max_bytes = max_bytes
        self._prepared = prepared  # the cache of prepared uploads, emptied as results are stored
        self._clock = clock
        self.downloaded = 0

    def __repr__(self) -> str:
        return f"<Downloader downloaded={self.downloaded}>"

    async def run(self, tickets: ObjectReceiveStream[DownloadTicket | CopyTicket]) -> None:
        async with tickets:
            async for ticket in tickets:
                if isinstance(ticket, CopyTicket):
                    await self._outbox.deliver(await self._copy(ticket))
                else:
                    await self._outbox.deliver(await self._fetch(ticket))

    async def _fetch(self, ticket: DownloadTicket) -> Outcome:
        url = ticket.result_url
        if self._clock.wall() > ticket.expires_at:
            return Gone(ticket, URL_EXPIRED, url)
        try:
            filed = await self._retry.call(ticket.name, self._try_once, ticket)
        except TaskGone as error:
            return Gone(ticket, error.reason, url)
        except StoreBusy as error:  # retried to the policy's end: the store stays unwritable
            return Blocked(ticket, Unwritable(f"{error}: check the store, then run again"), url)
        except ApiError as error:
            return Refused(ticket, error, about=url)
        except Unwritable as problem:
            return Blocked(ticket, problem, url)
        self.downloaded += 1
        return Stored(ticket, filed, url)

    async def _try_once(self, ticket: DownloadTicket) -> Filed:
        bases = ticket.bases  # all of them: a resume may come after a partial write
        spool = Spool(self._layout.part(bases[0]))
        try:
            await self._api.download(ticket.result_url, spool, max_bytes=self._max_bytes)
            return await anyio.to_thread.run_sync(self._file, spool, ticket)
        finally:
            spool.close()

    async def _copy(self, ticket: CopyTicket) -> Outcome:
        """The result already in `first`'s file, written again under the ticket's bases."""
        first = self._layout.file(ticket.first, ticket.ext)
        try:
            filed = await anyio.to_thread.run_sync(self._copy_file, first, ticket)
        except Unwritable as problem:
            return Blocked(ticket, problem)
        return Stored(ticket, filed)

    # Blocking: the files, then the output's record of them.

    def _file(self, spool: Spool, ticket: DownloadTicket) -> Filed:
        """The result written and recorded, then its photo's prepared upload forgotten: all in
        the one thread hop of a download."""
        filed = self._recorded(file_spool(spool, ticket.bases, self._layout), ticket)
        if self._prepared is not None:
            forget(self._prepared, ticket.key.partition(":")[0])
        return filed

    def _copy_file(self, first: Location, ticket: CopyTicket) -> Filed:
        filed = copy_result(first, ticket.bases, self._layout, ticket.known)
        return self._recorded(filed, ticket)

    def _recorded(self, filed: Filed, ticket: DownloadTicket | CopyTicket) -> Filed:
        """Name the result written in the output's record (`Unwritable` if it says no): its
        first file (the others are copies of it: the record needs one)."""
        photo, _, style = ticket.key.partition(":")
        name = f"{filed.bases[0]}.{str(filed.paths[0]).rpartition('.')[2]}"
        self._record.record(photo, int(style), Made(name, filed.size, filed.sha256), ticket.name)
        return filed
