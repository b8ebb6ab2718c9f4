"""What a stage hands on: one typed outcome per piece of work, delivered to one `Outbox`.

The stages (`SubmitWorker`, `Poller`, `Downloader`) never decide what an outcome means for the
run; they compute it and `await outbox.deliver(outcome)` in their own task. The engine's
`Router` is the one implementation: the single fold from outcome to journal record and route.

    outcome    from             meaning                                   the journal then says
    Accepted   SubmitWorker     the API took the upload: a paid task     submitted
    Refused    any stage        this item cannot succeed                  failed
    Fatal      SubmitWorker,    the account cannot go on (bad key,        (unchanged)
               Poller           locked, out of credits): stop submitting
    Unsent     SubmitWorker     not sent: the run stopped submitting      (unchanged: queued)
    Finished   Poller           the task reached a final state            succeeded or failed
    Gone       Poller,          the task or its result URL is gone:       lost
               Downloader       submit the item again
    Stored     Downloader       the result is in its output files         downloaded, per file
    Left       Poller           a paid task cannot be followed now: a     (unchanged: submitted)
                                later run picks it up
    Blocked    Downloader       the result cannot be written (disk full,  (unchanged: succeeded)
                                read-only...): the run stops as Ctrl-C
                                does, and the same command goes on later

`Accepted` and `Refused` from the submit worker also say how many uploads of the item went
unanswered on the way (`unanswered`): each may have been accepted, so each is possible extra
cost. An outcome of the poller or the downloader says what it is `about`: the task id asked
about, or the result URL fetched. If the item has moved on since (the task was lost, the item
submitted again), the outcome is stale, and the router drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from batchtoon.errors import ApiError, InputError, RunFatal, Unwritable
from batchtoon.provider.api import TaskState
from batchtoon.records.ledger import Entry

__all__ = [
    "Accepted",
    "Blocked",
    "Fatal",
    "Filed",
    "Finished",
    "Gone",
    "Left",
    "Outbox",
    "Outcome",
    "Refused",
    "Stored",
    "Unsent",
]


@dataclass(frozen=True, slots=True)
class Filed:
    """One result written under several output bases: where each went, and what was written."""

    bases: tuple[str, ...]
    paths: tuple[Path | str, ...]  # one per base, in order (a URL as text)
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Accepted:
    entry: Entry
    task_id: str
    unanswered: int = 0
    sent: int = 0  # bytes uploaded
    saved: int = 0  # bytes preparation kept off the wire (the original's size less `sent`)
    began: float = 0.0  # when the accepted attempt began (the run's clock)


@dataclass(frozen=True, slots=True)
class Refused:
    entry: Entry
    error: ApiError | InputError
    unanswered: int = 0
    about: str = ""  # the result URL, when a download was refused


@dataclass(frozen=True, slots=True)
class Fatal:
    entry: Entry
    error: RunFatal


@dataclass(frozen=True, slots=True)
class Unsent:
    entry: Entry


@dataclass(frozen=True, slots=True)
class Finished:
    entry: Entry
    about: str  # the task asked about
    state: TaskState


@dataclass(frozen=True, slots=True)
class Gone:
    entry: Entry
    reason: str
    about: str  # the task, or the result URL, that is gone


@dataclass(frozen=True, slots=True)
class Stored:
    entry: Entry
    filed: Filed
    about: str = ""  # the result URL the files came from ("" for copies made on arrival)


@dataclass(frozen=True, slots=True)
class Left:
    entry: Entry
    reason: str


@dataclass(frozen=True, slots=True)
class Blocked:
    entry: Entry
    problem: Unwritable
    about: str = ""


Outcome = Accepted | Refused | Fatal | Unsent | Finished | Gone | Stored | Left | Blocked


class Outbox(Protocol):
    """Where stages send outcomes. `deliver` returns once the outcome's journal record, if it
    has one that matters, is on disk: a stage awaits it before taking its next piece of work."""

    async def deliver(self, outcome: Outcome) -> None: ...
