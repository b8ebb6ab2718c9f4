"""`ArrivingThumbnails`: the gallery's thumbnails made while a run goes, as each result is
stored, so that the page at the run's end only looks them up.

    arriving = ArrivingThumbnails(Thumbnails(thumbs_dir(out)), process=ThumbnailProcess(...))
    engine = Engine(..., on_stored=arriving.offer)  # in the run's task group: arriving.run()

Guarantees:
- it never holds up the pipeline: `offer` (called in the event loop, where a result is stored)
  never waits and never raises; a file that finds the backlog (`BACKLOG` paths) full is left
  for the page at the end to make;
- the work is off the event loop: with a `process` (`maker.ThumbnailProcess`, as a run has
  one), in that child process, so it never takes the GIL from the run; else, or once the
  child is gone, in at most `workers` threads. The files waiting are taken `BATCH` at a time
  (one hand-off for them all); memory is bounded by the backlog, which holds paths, never
  images;
- cancelled (the run ends or is stopped), it waits for at most the one thumbnail each thread,
  or the child, is making; a thumbnail that cannot be made or written now is left for the
  page, which says why if it cannot either.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchtoon.locations.storage import Location, is_url
from batchtoon.pipeline.producer import waiting
from batchtoon.report.maker import ThumbnailProcess
from batchtoon.report.thumbs import Thumbnails

__all__ = ["BACKLOG", "BATCH", "ArrivingThumbnails"]

BACKLOG = 1024  # paths waiting for a thread, at most (~100 KB)
# Files made in one thread hop, at most: a hop per file (two a photo) and its GIL hand-offs
# cost the event loop more than a small photo's thumbnail.
BATCH = 32


class ArrivingThumbnails:
    def __init__(
        self,
        thumbnails: Thumbnails,
        *,
        workers: int = 1,
        backlog: int = BACKLOG,
        cwd: Path | None = None,
        process: ThumbnailProcess | None = None,
    ) -> None:
        self.thumbnails = thumbnails
        self.left = 0  # files the backlog had no room for
        self._workers = workers
        self._process = process
        self._cwd = cwd or Path.cwd()  # what relative source paths are relative to
        self._send, self._receive = anyio.create_memory_object_stream[Path](backlog)

    def __repr__(self) -> str:
        waiting = self._send.statistics().current_buffer_used
        return f"<ArrivingThumbnails waiting={waiting} left={self.left}>"

    def offer(self, source: str, output: Location) -> None:
        """A result was stored: its photo's thumbnail and its own, when a thread is free."""
        original = None if is_url(source) else self._cwd / source
        for path in (original, output):
            if not isinstance(path, Path):
                continue  # a file in a store: the gallery is for local files
            try:
                self._send.send_nowait(path)
            except anyio.WouldBlock:
                self.left += 1

    def stop(self) -> None:
        """A stopped run: its thumbnails stop, in this process and in the child."""
        self.thumbnails.stop()
        if self._process is not None:
            self._process.stop()

    async def run(self) -> None:
        """Make the thumbnails offered, until cancelled."""
        try:
            async with anyio.create_task_group() as group:
                for _ in range(self._workers):
                    group.start_soon(self._work, self._receive.clone())
        finally:
            if self._process is not None:
                await self._process.aclose()

    async def _work(self, receive: MemoryObjectReceiveStream[Path]) -> None:
        async with receive:
            async for path in receive:
                paths = [path, *waiting(receive, BATCH - 1)]
                if self._process is None or not await self._process.make(paths):
                    await anyio.to_thread.run_sync(self._make, paths)

    def _make(self, paths: list[Path]) -> None:
        """Blocking: each file's thumbnail, their memo lines in one transaction; a cancelled
        run does not wait for the rest, and one not writable now is skipped (both are left
        for the page at the end, which tries again, and says why if it cannot either)."""
        self.thumbnails.name_each(paths, before_each=anyio.from_thread.check_cancelled)
