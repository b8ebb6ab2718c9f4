"""What a stage hands on: one typed outcome per piece of work, delivered to one `Outbox`.

The stages (`Intake`, `SubmitWorker`, `Poller`, `Downloader`) never decide what an outcome means
for the run; they compute it and `await outbox.deliver(outcome)` in their own task. The engine's
`Driver` is the one implementation: it hands the outcome to the state machine (`machine`), which
alone turns it into journal records and routes.

    outcome    from             meaning                                   the journal then says
    Found      Intake           a photo pre-flighted, with the facts       queued (new targets);
                                admission needs (which outputs exist;      downloaded, for a
                                per style, a result the output's record    result the record
                                holds, or the name claimed in it)          holds
    Rejected   Intake           pre-flight refused a photo                 rejected
    Unchanged  Intake           photos an earlier run finished, unchanged  (unchanged)
                                since (size, times): nothing read
    Reread     Intake           a lost item's source read again (its      (unchanged: queued)
                                image, or None if no source holds it)
    Accepted   SubmitWorker     the API took the upload: a paid task      submitted
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
about, or the result URL fetched; and every outcome carries the ticket it answers. Whether the
item still waits on that ticket is for the machine to say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batchtoon.errors import ApiError, InputError, RunFatal, Unwritable
from batchtoon.images.preflight import Prepared
from batchtoon.locations.sources import Source
from batchtoon.pipeline.tickets import (
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    UploadTicket,
)
from batchtoon.provider.api import TaskState

__all__ = [
    "Accepted",
    "Answer",
    "Blocked",
    "Fatal",
    "Filed",
    "Finished",
    "Found",
    "Gone",
    "Left",
    "Outbox",
    "Outcome",
    "Recorded",
    "Refused",
    "Rejected",
    "Reread",
    "Stored",
    "Unchanged",
    "UnchangedPhoto",
    "Unsent",
]

StoreTicket = DownloadTicket | CopyTicket


@dataclass(frozen=True, slots=True)
class Filed:
    """One result written under several output bases: where each went, and what was written."""

    bases: tuple[str, ...]
    paths: tuple[Path | str, ...]  # one per base, in order (a URL as text)
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """A result the output location's record holds for a photo and style (any journal's)."""

    base: str  # its output path, without extension
    output: str  # its file (a URL as text)
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Found:
    source: Source
    image: Prepared
    styles: tuple[int, ...]
    present: Mapping[int, frozenset[str]]  # style -> output bases whose files exist (done items)
    # style -> a result the output's record holds for an item the journal does not know
    recorded: Mapping[int, Recorded] = field(default_factory=dict)
    # style -> the output base claimed in the output's record for this target; None: another
    # journal has claimed this photo in this style. A style not here: the machine names it
    # (the plan, which claims nothing).
    names: Mapping[int, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    where: str  # the file, or the manifest line, for messages
    styles: tuple[int, ...]
    reason: str
    path: str = ""  # the file's own path (a file reached twice is taken once); "" for a line


UnchangedPhoto = tuple[str, tuple[int, ...]]  # its path, `key_of` each style's item


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Photos whose every style an earlier run finished, with the same fingerprint (size and
    times) as now, and whose output files are there: (path, `key_of` each style's item)."""

    photos: tuple[UnchangedPhoto, ...]


@dataclass(frozen=True, slots=True)
class Reread:
    ticket: RereadTicket
    image: Prepared | None  # None: no source holds the item's bytes any more


@dataclass(frozen=True, slots=True)
class Accepted:
    ticket: UploadTicket
    task_id: str
    unanswered: int = 0
    sent: int = 0  # bytes uploaded
    saved: int = 0  # bytes preparation kept off the wire (the original's size less `sent`)
    began: float = 0.0  # when the accepted attempt began (the run's clock)


@dataclass(frozen=True, slots=True)
class Refused:
    ticket: UploadTicket | StoreTicket
    error: ApiError | InputError
    unanswered: int = 0
    about: str = ""  # the result URL, when a download was refused


@dataclass(frozen=True, slots=True)
class Fatal:
    ticket: UploadTicket | PollTicket
    error: RunFatal
    about: str = ""  # the task id, when a query met it


@dataclass(frozen=True, slots=True)
class Unsent:
    ticket: UploadTicket


@dataclass(frozen=True, slots=True)
class Finished:
    ticket: PollTicket
    about: str  # the task asked about
    state: TaskState


@dataclass(frozen=True, slots=True)
class Gone:
    ticket: PollTicket | StoreTicket
    reason: str
    about: str  # the task, or the result URL, that is gone


@dataclass(frozen=True, slots=True)
class Stored:
    ticket: StoreTicket
    filed: Filed
    about: str = ""  # the result URL ("" for a copy)


@dataclass(frozen=True, slots=True)
class Left:
    ticket: PollTicket
    reason: str
    about: str = ""  # the task that cannot be followed


@dataclass(frozen=True, slots=True)
class Blocked:
    ticket: StoreTicket
    problem: Unwritable
    about: str = ""


# An answer to a ticket (it carries the ticket it answers); an outcome: an answer, or a photo.
Answer = Reread | Accepted | Refused | Fatal | Unsent | Finished | Gone | Stored | Left | Blocked
Outcome = Found | Rejected | Unchanged | Answer


class Outbox(Protocol):
    """Where stages send outcomes. `deliver` returns once the outcome's journal record, if it
    has one that matters, is on disk: a stage awaits it before taking its next piece of work."""

    async def deliver(self, outcome: Outcome) -> None: ...
