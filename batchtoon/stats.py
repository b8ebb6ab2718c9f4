"""`Stats`: what this run did, counted as it happens, for the progress display and the summary."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Stats"]


@dataclass
class Stats:
    started: float  # the run's clock, monotonic
    found: int = 0  # targets (source file x style) seen
    skipped: int = 0  # already downloaded by an earlier run
    submitted: int = 0  # accepted submissions in this run
    extra: int = 0  # of those, items the provider had already accepted once: extra cost
    finished: int = 0  # tasks that reached a final state
    downloaded: int = 0  # files written
    failed: int = 0  # targets that failed
    left: int = 0  # paid tasks left for a later run
    unanswered: int = 0  # uploads sent whole whose answer never came: possible extra cost
    failures: dict[str, int] = field(default_factory=dict)  # reason -> targets

    def count_failure(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1
