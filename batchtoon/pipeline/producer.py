"""The producer: SOURCE arguments walked in a thread, each item pre-flighted in worker threads.

`preflight_feed` is the one fan-out, used by the run and by the plan: a feed sends the items
(`walk`: one thread walks the sources lazily, a million-line manifest costing one batch of
lines at a time, and with a `Known` hands it, in bulk, the photos it knows as they are,
those an earlier run finished that have not changed since; or, with --watch,
`watcher.Watch`), `workers` tasks check them (each check in a worker thread, several items
per thread hop), and every item is
handed to `take(item, outcome)` — its `Prepared` upload, or the one-line reason it cannot be
sent — awaited in the checking task, so a slow `take` holds the feed back (backpressure).
`preflight_sources` is the walk's fan-out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from batchtoon.errors import InputError
from batchtoon.images.preflight import Prepared, check
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import (
    EVERYTHING,
    BadLine,
    Filter,
    Shard,
    Source,
    iter_sources,
)
from batchtoon.locations.storage import Location, location
from batchtoon.settings.config import Settings

__all__ = [
    "Check",
    "Feed",
    "Known",
    "Take",
    "checker",
    "preflight_feed",
    "preflight_sources",
    "preflight_workers",
    "prepared_cache",
    "shard_of",
    "source_filter",
    "waiting",
    "walk",
]

PREPARE_BATCH = 16  # items pre-flighted in one thread hop, at most
WALK_BATCH, KNOWN_BATCH = 256, 4096  # items to pre-flight, and photos known, a walk's hop
STORE_WORKERS_PER_CORE = 4  # photos in a store: each read waits on the network, not a core

Check = Callable[[Location], Prepared]
Take = Callable[[list[tuple[Source | BadLine, Prepared | str]]], Awaitable[None]]
Feed = Callable[[ObjectSendStream[Source | BadLine]], Coroutine[Any, Any, None]]
T = TypeVar("T")


class Known(Protocol):
    """What a walk asks before it hands photos on (`intake.Intake`)."""

    def known(self, path: str, rel: str, styles: tuple[int, ...] | None) -> tuple[Any, ...] | None:
        """Blocking: what stands for this local photo if it needs no pre-flight, else None
        (`sources.Knows`)."""
        ...

    async def unchanged(self, known: list[Any]) -> None:
        """Hand on what `known` answered."""
        ...


def prepared_cache(settings: Settings) -> Path:
    """Where converted uploads wait for their submission: `<work>/prepared`."""
    return settings.work_dir / "prepared"


def checker(settings: Settings, *, cache: bool = True) -> Check:
    """The pre-flight check these settings ask for; with `cache`, conversions are kept in
    `prepared_cache` for a resume (a plan, which writes nothing, keeps none)."""
    kept = prepared_cache(settings) if cache else None
    return partial(check, settings=settings.prepare, cache=kept)


def source_filter(settings: Settings) -> Filter:
    """Which files of a folder SOURCE these settings take (`sources.include`/`exclude`), never
    those in the output folder nor a result its record names (wherever they are met); with
    `sources.shard`, only that shard's items."""
    found = settings.sources
    out = location(settings.output.dir)
    results = Provenance(out).is_ours
    return Filter(
        found.include, found.exclude, avoid=(out,), shard=shard_of(settings), results=results
    )


def preflight_workers(settings: Settings, sources: Sequence[Location]) -> int:
    """Photos pre-flighted at once: `prepare.workers`; by default one per core, and when a
    SOURCE is in a store `STORE_WORKERS_PER_CORE` per core."""
    in_store = any(isinstance(source, str) for source in sources)
    per_core = STORE_WORKERS_PER_CORE if in_store and not settings.prepare.workers else 1
    return settings.prepare.threads * per_core


def shard_of(settings: Settings) -> Shard | None:
    """This process's shard (`sources.shard`, checked when the settings were read)."""
    return Shard.parse(settings.sources.shard) if settings.sources.shard else None


async def preflight_sources(
    sources: list[Location], check: Check, workers: int, take: Take, *, only: Filter = EVERYTHING
) -> None:
    await preflight_feed(partial(walk, sources, only), check, workers, take)


async def preflight_feed(feed: Feed, check: Check, workers: int, take: Take) -> None:
    """Pre-flight every item `feed` sends (a walk, or a watch), `workers` at once."""
    send, receive = anyio.create_memory_object_stream[Source | BadLine](64)
    async with anyio.create_task_group() as group:
        group.start_soon(feed, send)
        for _ in range(workers):
            group.start_soon(_prepare, receive.clone(), check, take)
        receive.close()


async def walk(
    sources: list[Location],
    only: Filter,
    send: ObjectSendStream[Source | BadLine],
    *,
    known: Known | None = None,
) -> None:
    """Send every item of the sources, once; with `known`, those it knows go to it instead."""
    items = iter_sources(sources, only, known.known if known is not None else None)
    async with send:
        while True:
            batch, done = await anyio.to_thread.run_sync(_next_sifted, items)
            if done and known is not None:
                await known.unchanged(done)
            for item in batch:
                await send.send(item)
            if not batch and not done:
                return


def _next_sifted(
    items: Iterator[Source | BadLine | tuple[Any, ...]],
) -> tuple[list[Source | BadLine], list[tuple[Any, ...]]]:
    """The next batch of items to pre-flight (`WALK_BATCH` at most), and of what `Known`
    answered (`KNOWN_BATCH` at most: a resume's million unchanged photos cost a thread hop,
    and the event loop's turn, each batch); empty lists at the end."""
    batch: list[Source | BadLine] = []
    known: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, tuple):
            known.append(item)
        else:
            batch.append(item)
        if len(batch) == WALK_BATCH or len(known) == KNOWN_BATCH:
            break
    return batch, known


async def _prepare(
    receive: MemoryObjectReceiveStream[Source | BadLine], check: Check, take: Take
) -> None:
    async with receive:
        async for first in receive:
            # What else is already waiting is checked in the same thread hop: at high rates
            # a hop (and its GIL hand-offs) per photo costs more than the check itself.
            batch = [first, *waiting(receive, PREPARE_BATCH - 1)]
            outcomes = await anyio.to_thread.run_sync(_check_all, batch, check)
            await take(list(zip(batch, outcomes, strict=True)))


def _check_all(batch: list[Source | BadLine], check: Check) -> list[Prepared | str]:
    """Pre-flight each item (in a worker thread): its upload, or why it cannot be sent. A
    stopped run does not wait for the rest of the batch (each check can take a second)."""
    outcomes: list[Prepared | str] = []
    for item in batch:
        anyio.from_thread.check_cancelled()
        if isinstance(item, BadLine):
            outcomes.append(item.reason)
            continue
        try:
            outcomes.append(check(item.path))
        except InputError as error:
            outcomes.append(str(error))
    return outcomes


def waiting(receive: MemoryObjectReceiveStream[T], most: int) -> list[T]:
    """Up to `most` items already in the stream, without waiting for more."""
    items: list[T] = []
    while len(items) < most:
        try:
            items.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return items
