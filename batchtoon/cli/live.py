"""The numbers of a run still going, for `batchtoon status` to show while it runs: the very
`Snapshot` the run's own progress display reads, kept beside the journal
(`<journal>.live.json`), so the two never disagree.

Guarantees: the file is written whole (`files.write_whole`) with every snapshot, before the
run's own display is handed it, so `status` never shows less than the run's last line (the
snapshots come every `Batch.progress_interval`, a quarter of a second by default); the run
removes it when it ends (`close`); `read_live` gives it only while the process that wrote it
is alive: its pid, and where Linux's `/proc` tells it, its start time, so a file a killed run
left is never shown as a run, not even once its pid is another process's (a new container's
pid 1, say); the key is never in it (it holds counts and rates only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchtoon.locations.files import write_whole
from batchtoon.snapshot import Snapshot

__all__ = ["LiveFile", "live_path", "read_live"]


def live_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".live.json")


class LiveFile:
    """A progress callback for `Batch`: writes each snapshot to `path`, then hands it on to
    `then` (the bar or the status lines), if any."""

    def __init__(self, path: Path, then: Callable[[Snapshot], None] | None = None) -> None:
        self._path, self._then = path, then
        self._process = {"pid": os.getpid(), "started": _started(os.getpid())}
        self._written = False

    def __call__(self, snapshot: Snapshot) -> None:
        data = {**self._process, **dataclasses.asdict(snapshot)}
        with contextlib.suppress(OSError):  # a full disk is said by the run's own writes
            write_whole(self._path, json.dumps(data).encode(), durable=False)
            self._written = True
        if self._then is not None:
            self._then(snapshot)

    def close(self) -> None:
        """The run is over: its file removed, by its name (if this run wrote it: a run that
        found the journal in another's hands leaves that run's file alone)."""
        if self._written:
            with contextlib.suppress(OSError):
                self._path.unlink()


def read_live(journal: Path) -> Snapshot | None:
    """The snapshot of the run writing `journal` now; None if none is running."""
    try:
        data: dict[str, Any] = json.loads(live_path(journal).read_bytes())
        if not _running(int(data.pop("pid")), data.pop("started", None)):
            return None
        return Snapshot(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _running(pid: int, started: int | None) -> bool:
    """Process `pid` is alive, and is the one that started at `started` where both are told."""
    if not _alive(pid):
        return False
    now = _started(pid)
    return started is None or now is None or now == started


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def _started(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, from Linux's `/proc`), or None where
    that cannot be told (another system, or the process is not there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat.rpartition(b")")[2].split()[19])  # (its name may hold ")")
    except (OSError, ValueError, IndexError):
        return None
