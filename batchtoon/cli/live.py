"""The numbers of a run still going, for `batchtoon status` to show while it runs: the very
`Snapshot` the run's own progress display reads, kept beside the journal
(`<journal>.live.json`), so the two never disagree.

Guarantees: the file is written whole (`files.write_whole`) with every snapshot, before the
run's own display is handed it, so `status` never shows less than the run's last line (the
snapshots come every `Batch.progress_interval`, a quarter of a second by default); `read_live`
gives it only while the run that wrote it is alive (its pid), so a file a killed run left is
never shown as a run; the key is never in it (it holds counts and rates only).
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

    def __call__(self, snapshot: Snapshot) -> None:
        data = {"pid": os.getpid(), **dataclasses.asdict(snapshot)}
        with contextlib.suppress(OSError):  # a full disk is said by the run's own writes
            write_whole(self._path, json.dumps(data).encode(), durable=False)
        if self._then is not None:
            self._then(snapshot)


def read_live(journal: Path) -> Snapshot | None:
    """The snapshot of the run writing `journal` now; None if none is running."""
    try:
        data: dict[str, Any] = json.loads(live_path(journal).read_bytes())
        if not _alive(int(data.pop("pid"))):
            return None
        return Snapshot(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


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
