"""The hot folder (`--watch`): the SOURCE arguments scanned again and again, each photo handed on
once it has stopped changing.

A photo is taken when its size and modification time (for an object in a store: its size and
version) have stayed the same for `watch.settle` seconds, seen by two scans that far apart:
a file still being written, however slowly, is never taken half-written. The photos already
there (the backfill) are taken the same way, after one settle. A photo is taken again when it
changes (a replaced photo is new content: a new item); one that stays as it was is taken once.

Scans: of every SOURCE every `watch.scan_interval` seconds; sooner, every `CHECK_FRACTION` of
the settle time, while a photo is settling; and at once when the OS says a local folder changed
(`watchfiles`; without it, or for `s3://`, the scans alone find new photos).

`--idle-exit S`: the watch ends once S seconds passed since the last photo was taken (or since
it began) while nothing settles, nothing it sent waits for pre-flight (`taken` counts them in)
and `busy()` says the run has nothing in hand.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import ObjectSendStream

from batchtoon.errors import StoreFailure
from batchtoon.locations import storage
from batchtoon.locations.sources import BadLine, Filter, Source, iter_sources
from batchtoon.locations.storage import Location
from batchtoon.pipeline.clock import Clock
from batchtoon.settings.config import WatchSettings

__all__ = ["CHECK_FRACTION", "Settler", "Signature", "Watch"]

CHECK_FRACTION = 0.25  # a settling photo is looked at again after this part of the settle time
EVENTS_TIMEOUT_MS = 200  # the OS events' thread looks up this often: a stop waits no longer
SHORTEST_CHECK = 0.05  # seconds: the scans never come closer than this
Signature = tuple[object, ...]  # (size, modification time) of a file, (size, version) of an object


class Settler:
    """Which files have stopped changing: pure, fed with what each scan saw and when."""

    def __init__(self, settle: float) -> None:
        self._settle = settle
        self._taken: dict[str, Signature] = {}  # path -> the signature it was taken with
        self._settling: dict[str, tuple[Signature, float]] = {}  # path -> (signature, since)

    @property
    def settling(self) -> bool:
        return bool(self._settling)

    def saw(self, path: str, signature: Signature, now: float) -> bool:
        """True once (for this signature) when the file has held it for the settle time."""
        if self._taken.get(path) == signature:
            self._settling.pop(path, None)
            return False
        since = self._settling.get(path)
        if since is None or since[0] != signature:
            self._settling[path] = (signature, now)
            since = (signature, now)
        if now - since[1] < self._settle:
            return False
        del self._settling[path]
        self._taken[path] = signature
        return True

    def gone(self, seen: set[str]) -> None:
        """Forget the settling files no longer there."""
        for path in set(self._settling) - seen:
            del self._settling[path]


def signature(path: Location) -> Signature | None:
    """The file's size and modification time (a store's object: size and version); None if it
    is gone."""
    try:
        if isinstance(path, Path):
            info = os.stat(path)
            return (info.st_size, info.st_mtime_ns)
        found = storage.stat(path)
        return (found.size, *found.version)
    except (OSError, StoreFailure):
        return None


def scan(sources: list[Location], only: Filter) -> list[tuple[Source | BadLine, Signature]]:
    """Every item of the sources now, with its signature (a bad line: its reason)."""
    seen: list[tuple[Source | BadLine, Signature]] = []
    for item in iter_sources(sources, only):
        if isinstance(item, BadLine):
            seen.append((item, (item.reason,)))
        elif (mark := signature(item.path)) is not None:
            seen.append((item, mark))
    return seen


class Watch:
    def __init__(
        self,
        sources: list[Location],
        only: Filter,
        settings: WatchSettings,
        *,
        busy: Callable[[], bool],
        clock: Clock,
        log: logging.Logger | None = None,
    ) -> None:
        self._sources, self._only, self._settings = sources, only, settings
        self._busy, self._clock = busy, clock
        self._log = log or logging.getLogger("batchtoon")
        self._settler = Settler(settings.settle)
        self._changed = anyio.Event()
        self._last_taken = clock.monotonic()
        self._handed = 0  # photos sent on, not yet in intake's hands (`taken`)

    def __repr__(self) -> str:
        return f"<Watch settling={self._settler.settling}>"

    async def run(self, send: ObjectSendStream[Source | BadLine]) -> None:
        """Hand each settled photo to `send` until idle for `watch.idle_exit` (or cancelled)."""
        async with send, anyio.create_task_group() as group:
            group.start_soon(self._os_events)
            while True:
                await self._round(send)
                if self._idle():
                    group.cancel_scope.cancel()
                    return
                with anyio.move_on_after(self._pause()):
                    await self._changed.wait()
                self._changed = anyio.Event()

    async def _round(self, send: ObjectSendStream[Source | BadLine]) -> None:
        items = await anyio.to_thread.run_sync(scan, self._sources, self._only)
        now = self._clock.monotonic()
        for item, mark in items:
            where = str(item.path) if isinstance(item, Source) else item.where
            if self._settler.saw(where, mark, now):
                self._last_taken = now
                self._handed += 1
                await send.send(item)
        self._settler.gone({str(i.path) if isinstance(i, Source) else i.where for i, _ in items})

    def taken(self, count: int) -> None:
        """Intake has `count` photos this watch sent: they are the run's (`busy`) from now on."""
        self._handed = max(0, self._handed - count)

    def _pause(self) -> float:
        settings = self._settings
        if self._settler.settling:
            return max(SHORTEST_CHECK, settings.settle * CHECK_FRACTION)
        pause = settings.scan_interval
        if settings.idle_exit is not None:  # wake up in time to end
            pause = min(pause, max(SHORTEST_CHECK, settings.idle_exit * CHECK_FRACTION))
        return pause

    def _idle(self) -> bool:
        limit, now = self._settings.idle_exit, self._clock.monotonic()
        if self._busy() or self._settler.settling or self._handed:
            self._last_taken = now  # idle is counted from the last work
            return False
        return limit is not None and now - self._last_taken >= limit

    async def _os_events(self) -> None:
        """Wake the scan when the OS says a local SOURCE folder changed; without such events
        (no folder, no watchfiles, no inotify left), the periodic scans carry on alone."""
        folders = [s for s in self._sources if isinstance(s, Path) and s.is_dir()]
        if not folders:
            return
        try:
            from watchfiles import awatch

            # Its thread cannot be cancelled: it comes back every `rust_timeout` ms to see
            # whether the watch is over (the default, 5 s, would hold a stop up that long).
            changes = awatch(*folders, debounce=50, step=10, rust_timeout=EVENTS_TIMEOUT_MS)
            async for _ in changes:
                self._changed.set()
        except (ImportError, OSError, RuntimeError) as error:
            self._log.warning("no file events (%s): scanning every %ss", error,
                              self._settings.scan_interval)  # fmt: skip
