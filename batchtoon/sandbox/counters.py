"""What clients did to the sandbox, for tests and benchmarks to read. Never an API key: only
whether one came where it should not have."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from batchtoon.sandbox.tasks import Task

__all__ = ["Counters", "Upload", "Visit", "query_gaps"]


class Upload(NamedTuple):
    """One accepted upload, as the sandbox decoded it."""

    sha256: str
    style: int
    size: int  # bytes of the image part
    format: str  # JPEG, PNG, BMP or WEBP
    width: int
    height: int


class Visit(NamedTuple):
    """One request that reached the other host (see `elsewhere.Elsewhere`)."""

    method: str
    path: str  # with its query string
    carried_key: bool  # it came with an `ailabapi-api-key` header


@dataclass
class Counters:
    """What clients did, for tests and benchmarks to read."""

    submit_requests: int = 0
    accepted: Counter[tuple[str, int]] = field(default_factory=Counter)  # (sha256, style)
    query_requests: int = 0
    downloads: int = 0  # complete result downloads
    throttled: int = 0  # 429/503 answers for rate or bursts
    rejected: Counter[str] = field(default_factory=Counter)  # error code -> answers
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> times injected
    failed_tasks: Counter[tuple[str, int]] = field(default_factory=Counter)  # (sha256, style)
    upload_bytes: int = 0  # every byte of every submitted form part, accepted or not
    uploads: list[Upload] = field(default_factory=list)  # accepted ones, in order
    elsewhere: list[Visit] = field(default_factory=list)  # requests the other host got

    @property
    def accepted_total(self) -> int:
        return sum(self.accepted.values())

    @property
    def keys_leaked(self) -> int:
        """Requests that carried the API key to the other host."""
        return sum(visit.carried_key for visit in self.elsewhere)

    def as_json(self, tasks: dict[str, Task]) -> dict[str, object]:
        per_task = [len(task.queries) for task in tasks.values()]
        sizes = [upload.size for upload in self.uploads]
        return {
            "submit_requests": self.submit_requests,
            "accepted": self.accepted_total,
            "accepted_unique": len(self.accepted),
            "query_requests": self.query_requests,
            "queries_per_task_max": max(per_task, default=0),
            "query_gap_min": min(query_gaps(tasks), default=None),
            "downloads": self.downloads,
            "throttled": self.throttled,
            "rejected": dict(self.rejected),
            "faults": dict(self.faults),
            "failed_tasks": sum(self.failed_tasks.values()),
            "upload_bytes": self.upload_bytes,
            "upload_size_mean": sum(sizes) / len(sizes) if sizes else 0,
            "upload_size_max": max(sizes, default=0),
            "elsewhere_requests": len(self.elsewhere),
            "keys_leaked": self.keys_leaked,
        }


def query_gaps(tasks: dict[str, Task]) -> list[float]:
    """Every gap between two queries of one task in a row, in real seconds of arrival."""
    return [b - a for task in tasks.values() for a, b in itertools.pairwise(task.queries)]
