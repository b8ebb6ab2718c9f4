"""Events: one JSON object per change of a result's state, for other programs (`--events`) and
for the library's `Batch(on_event=...)`; both get the same records.

A result is one (photo, style). Its events, derived from the journal records the state machine
writes (so they match the journal one for one) and, at the end of a run, from what it left:

    event      journal record   when
    found      queued           a photo in a style is taken on for the first time
    refused    rejected         pre-flight refused the photo
    submitted  submitted        its upload was accepted: this one costs a submission
    done       downloaded       its cartoon is on disk (`output`)
    failed     failed           it will not be done (`reason`)
    left       (none)           the run ended before it finished: the same command goes on

The schema is stable (`EVENTS_VERSION`); every object has every field:

    {"v": 1, "time": 1733160000.123, "event": "done", "photo": "shots/a.jpg",
     "style": "anime", "output": "out/a.anime.png", "reason": null, "cost": false}

`time` is unix time in seconds; `photo` the photo's path (or a manifest's line); `output` the
result's file, once it exists (else null); `reason` why it was refused, failed or left (else
null); `cost` true on the one event of a submission the account pays for. Nothing else: no
key, no task id.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from batchtoon.errors import Unwritable
from batchtoon.settings.styles import style_slug

__all__ = ["EVENTS_VERSION", "EventKind", "EventStream", "OnEvent", "from_record", "left"]

EVENTS_VERSION = 1
EventKind = Literal["found", "refused", "submitted", "done", "failed", "left"]
OnEvent = Callable[[dict[str, Any]], None]

_KINDS: dict[str, EventKind] = {
    "queued": "found",
    "rejected": "refused",
    "submitted": "submitted",
    "downloaded": "done",
    "failed": "failed",
}
LEFT_REASON = "the run ended before it finished: run the same command again"


def _event(
    kind: EventKind, time: float, photo: str, style: int, *, output: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "v": EVENTS_VERSION, "time": time, "event": kind, "photo": photo,
        "style": style_slug(style), "output": output, "reason": reason,
        "cost": kind == "submitted",
    }  # fmt: skip


def from_record(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events of one journal record: one per photo it is about (none for a record that
    changes no result's state, such as `succeeded` or `lost`)."""
    kind = _KINDS.get(record["event"])
    if kind is None:
        return
    style = record["style"] if "style" in record else int(record["key"].rsplit(":", 1)[1])
    photos = [record["source"]] if "source" in record else record.get("sources", [])
    output = record.get("output") if kind == "done" else None
    for photo in photos:
        yield _event(kind, record["t"], photo, style, output=output, reason=record.get("reason"))


def left(time: float, key: str, photos: list[str]) -> Iterator[dict[str, Any]]:
    """The events of an item the run ends with in hand: one per photo waiting on it."""
    style = int(key.rsplit(":", 1)[1])
    for photo in photos:
        yield _event("left", time, photo, style, reason=LEFT_REASON)


class EventStream:
    """`--events FILE`: each event as one JSON line, flushed as it is written (appended to
    FILE; `-`: stdout). A file that cannot be written is said in one line (`Unwritable`)."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._file: IO[str] | None = None

    def __enter__(self) -> EventStream:
        if self._where == "-":
            self._file = sys.stdout
            return self
        try:
            self._file = open(self._where, "a", encoding="utf-8")
        except OSError as error:
            raise Unwritable.from_os_error(
                error, Path(self._where), "open the events file"
            ) from None
        return self

    def __exit__(self, *_: object) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()

    def write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("EventStream used outside `with`")
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()
