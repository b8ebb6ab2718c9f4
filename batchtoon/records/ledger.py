"""What is known about every item: the journal's records folded into one `Entry` per key.

An item's key is its content's sha256 and the style, `"<sha256>:<style>"`: two files with the
same bytes are one item (one submission) with two targets (two output files). The ledger is
rebuilt by replaying the journal and kept current by applying each record as it is written,
so that what a run decides and what a resume would decide are the same function.

Records (one JSON object a line; `v` format version, `t` unix time, `event`, `key`, and the
source path(s): `source` where the record is about one file, else `sources`, all of the item's):

    queued      source, output [, retry]   a target (source file -> output path, no extension)
    submitted   sources, task_id [, sent, saved, unanswered]
                                           the API accepted the image (bytes sent; bytes
                                           preparation saved; uploads before it unanswered)
    succeeded   sources, result_url, expires_at
    downloaded  source, output, size, sha256   one per target file written
    lost        sources, reason            the task or its result URL is gone: submit again
    failed      sources, class, reason     the item cannot succeed
    rejected    source, style, reason      pre-flight refused a source file (no key)
    journal     id                         the journal's id (no key), its first record
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "FORMAT_VERSION", "STATES", "Entry", "Event", "Ledger", "State", "Uploads", "make_record",
]  # fmt: skip

FORMAT_VERSION = 1
State = Literal["queued", "submitted", "succeeded", "downloaded", "failed"]
STATES: tuple[State, ...] = get_args(State)
Event = Literal[
    "queued", "submitted", "succeeded", "downloaded", "lost", "failed", "rejected", "journal"
]


def make_record(event: Event, t: float, **fields: Any) -> dict[str, Any]:
    """One journal record as written: format version, unix time (to the ms), event, fields."""
    return {"v": FORMAT_VERSION, "t": round(t, 3), "event": event, **fields}


@dataclass(slots=True)
class Entry:
    key: str
    state: State = "queued"
    targets: dict[str, str] = field(default_factory=dict)  # output base -> source path
    ext: str = ""  # the result's file extension, once downloaded
    written: int = 0  # target files written since the result was last (re)made
    task_id: str = ""
    submitted_at: float = 0.0
    result_url: str = ""
    expires_at: float = 0.0
    error_class: str = ""
    reason: str = ""
    submissions: int = 0  # accepted submissions over all runs: more than 1 is extra cost

    @property
    def name(self) -> str:
        """What to call the item in a message: its first source path (else its key)."""
        return next(iter(self.targets.values()), self.key)

    @property
    def sha256(self) -> str:
        return self.key.partition(":")[0]

    @property
    def style(self) -> int:
        return int(self.key.rpartition(":")[2])


@dataclass(slots=True)
class Uploads:
    """What the accepted uploads of every run sent, over the time they went out."""

    sent: int = 0  # bytes
    saved: int = 0  # bytes preparation kept off the wire
    first: float = float("inf")  # unix time of the first accepted upload ...
    last: float = float("-inf")  # ... and of the last

    def add(self, record: dict[str, Any]) -> None:
        self.sent += record.get("sent", 0)
        self.saved += record.get("saved", 0)
        self.first, self.last = min(self.first, record["t"]), max(self.last, record["t"])

    @classmethod
    def joint(cls, each: list[Uploads]) -> Uploads:
        """The uploads of several journals (shards) together: sums, over their joint span."""
        return cls(
            sum(u.sent for u in each), sum(u.saved for u in each),
            min((u.first for u in each), default=float("inf")),
            max((u.last for u in each), default=float("-inf")),
        )  # fmt: skip

    def as_json(self) -> dict[str, float]:
        span = self.last - self.first
        rate = self.sent / span / 1e6 if span > 0 else 0.0
        mb = {"uploaded_mb": self.sent / 1e6, "saved_mb": self.saved / 1e6, "mb_per_s": rate}
        return {name: round(value, 2) for name, value in mb.items()}


class Ledger:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.rejected: dict[tuple[str, int], str] = {}  # (source, style) -> reason
        # output base -> the key of the item claiming it (the entry's own string: no copy)
        self.outputs: dict[str, str] = {}
        self.uploads = Uploads()
        self.journal_id = ""  # the journal's own id (its `journal` record), once it has one
        self.out = ""  # where its results went, as its first `downloaded` record says

    def __repr__(self) -> str:
        return f"<Ledger entries={len(self.entries)} rejected={len(self.rejected)}>"

    def apply(self, record: dict[str, Any]) -> None:
        """Fold one record in. Written as one flat function: replay calls it a million times."""
        event = record["event"]
        if event == "rejected":
            self.rejected[record["source"], record["style"]] = record["reason"]
            return
        if event == "journal":
            self.journal_id = str(record["id"])
            return
        key = record["key"]
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(key)
        if event == "queued":
            output, source = record["output"], record["source"]
            self.outputs[output] = entry.key
            entry.targets[output] = source
            if self.rejected:
                self.rejected.pop((source, entry.style), None)
            if entry.state == "failed" and record.get("retry"):
                entry.state, entry.reason, entry.error_class = "queued", "", ""
        elif event == "submitted":
            entry.state, entry.task_id, entry.submitted_at = (
                "submitted",
                str(record["task_id"]),
                float(record["t"]),  # a record of another shape fails here, not later
            )
            entry.submissions += 1
            self.uploads.add(record)
        elif event == "succeeded":
            entry.state, entry.result_url, entry.expires_at = (
                "succeeded",
                str(record["result_url"]),
                float(record["expires_at"]),
            )
        elif event == "downloaded":
            output = record["output"]
            entry.ext = sys.intern(output[output.rfind(".") + 1 :])  # "jpg", once: not per item
            if not self.out:
                self.out = _folder_of(output, entry)
            entry.written += 1
            if entry.written >= len(entry.targets):
                # Done: what only a pending task needs is let go (a ledger may hold millions).
                entry.state, entry.task_id, entry.result_url = "downloaded", "", ""
        elif event == "lost":
            entry.state, entry.task_id, entry.result_url = "queued", "", ""
            entry.written = 0  # whatever was written is gone too, or it would not be lost
        elif event == "failed":
            entry.state, entry.error_class, entry.reason = (
                "failed",
                record["class"],
                record["reason"],
            )
        else:
            raise KeyError(f"unknown event {event!r}")

    def owner(self, base: str) -> tuple[str, int] | None:
        """The (source, style) whose output `base` is, if any claims it."""
        key = self.outputs.get(base)
        if key is None:
            return None
        entry = self.entries[key]
        return entry.targets[base], entry.style

    def counts(self) -> dict[State, int]:
        """Targets (source file x style) by state; a rejected source counts as failed."""
        counts = dict.fromkeys(STATES, 0)
        for entry in self.entries.values():
            written = min(entry.written, len(entry.targets))
            counts["downloaded"] += written
            counts[_pending(entry.state)] += len(entry.targets) - written
        counts["failed"] += len(self.rejected)
        return counts

    def failures(self) -> list[dict[str, Any]]:
        rows = [
            {"source": source, "style": style, "reason": reason}
            for (source, style), reason in self.rejected.items()
        ]
        for entry in self.entries.values():
            if entry.state == "failed":
                rows += [
                    {"source": source, "style": entry.style, "reason": entry.reason}
                    for source in entry.targets.values()
                ]
        return rows


def _folder_of(output: str, entry: Entry) -> str:
    """The output location `output` (a file written for `entry`) is below: "." for the current
    folder, "" if no target of the entry names it."""
    for base in entry.targets:
        name = f"{base}.{entry.ext}"
        if output == name:
            return "."
        if output.endswith(f"/{name}"):
            return output[: -len(name) - 1]
    return ""


def _pending(state: State) -> State:
    # A target not yet written while its entry is "downloaded" waits for a copy: queued.
    return "queued" if state == "downloaded" else state
