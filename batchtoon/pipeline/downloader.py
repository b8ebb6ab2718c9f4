"""`Downloader`: fetches finished results before their URLs expire and files them.

Guarantees:
- a result is checked whole (its `Content-Length` met, its structure intact) before anything
  is written; a cut-short or broken body is fetched again within the retry policy;
- every target of the item (each source file with that content and style) gets its own file
  (see `batchtoon.locations.results` for how a file is written);
- an expired URL, or one that is already past its expiry when its turn comes, is `Gone`: the
  item goes back to be submitted again; a result that can never be kept is `Refused`;
- a result that cannot be written (the disk or the store, not the result) is `Blocked`: it
  stays `succeeded` in the journal for the same command to finish later; a store's passing
  failure (`StoreBusy`) is retried first, within the retry policy;
- memory is bounded whatever a server sends (see `batchtoon.locations.results.Spool`);
- once a result is stored, the photo's prepared upload is removed from the `prepared` cache
  (`preflight.forget`): a finished batch leaves no converted copies behind.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream

from batchtoon.errors import ApiError, StoreBusy, TaskGone, Unwritable
from batchtoon.images.preflight import forget
from batchtoon.locations.layout import Layout
from batchtoon.locations.results import Spool, file_spool
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.outcomes import Blocked, Filed, Gone, Outbox, Outcome, Refused, Stored
from batchtoon.provider.api import Api
from batchtoon.provider.retry import RetryPolicy
from batchtoon.records.ledger import Entry

__all__ = ["Downloader"]


class Downloader:
    def __init__(
        self,
        api: Api,
        retry: RetryPolicy,
        outbox: Outbox,
        layout: Layout,
        *,
        max_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
        prepared: Path | None = None,
    ) -> None:
        self._api, self._retry, self._outbox, self._layout = api, retry, outbox, layout
        self._max_bytes = max_bytes
        self._prepared = prepared  # the cache of prepared uploads, emptied as results are stored
        self._clock = clock
        self.downloaded = 0

    def __repr__(self) -> str:
        return f"<Downloader downloaded={self.downloaded}>"

    async def run(self, results: ObjectReceiveStream[Entry]) -> None:
        async with results:
            async for entry in results:
                await self._outbox.deliver(await self._fetch(entry))

    async def _fetch(self, entry: Entry) -> Outcome:
        url = entry.result_url  # the one fetched, whatever happens to the entry meanwhile
        if self._clock.wall() > entry.expires_at:
            return Gone(entry, "the result URL expired before it was downloaded", url)
        bases = list(entry.targets)  # all of them: a resume may come after a partial write
        try:
            filed = await self._fetch_and_file(entry, url, bases)
        except TaskGone as error:
            return Gone(entry, error.reason, url)
        except StoreBusy as error:  # retried to the policy's end: the store stays unwritable
            return Blocked(entry, Unwritable(f"{error}: check the store, then run again"), url)
        except ApiError as error:
            return Refused(entry, error, about=url)
        except Unwritable as problem:
            return Blocked(entry, problem, url)
        self.downloaded += 1
        if self._prepared is not None:
            await anyio.to_thread.run_sync(forget, self._prepared, entry.sha256)
        return Stored(entry, filed, url)

    async def _fetch_and_file(self, entry: Entry, url: str, bases: list[str]) -> Filed:
        async for attempt in self._retry.attempts(entry.name):
            with attempt:
                spool = Spool(self._layout.part(bases[0]))
                try:
                    await self._api.download(url, spool, max_bytes=self._max_bytes)
                    if not entry.holds(url):  # lost meanwhile: these bytes are not its result
                        raise TaskGone("the item was submitted again while this downloaded")
                    return await anyio.to_thread.run_sync(file_spool, spool, bases, self._layout)
                finally:
                    spool.close()
        raise AssertionError("unreachable: tenacity reraises the last error")
