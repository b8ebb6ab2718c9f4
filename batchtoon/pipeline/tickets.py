"""What the state machine hands a stage: one immutable ticket per piece of work.

A stage never sees the ledger's live `Entry`: it gets a ticket holding what it needs, frozen
when the machine routed the item, and answers with an outcome that carries the very ticket it
answers (and says which task id or result URL it is `about`). Whether that answer is still
wanted (the item may have been lost and submitted again meanwhile) is the machine's call alone:
an item waits on the last ticket routed for it.

    ticket          to                 holds
    UploadTicket    the submit workers  the prepared image and its style
    PollTicket      the poller          the task id and when it was submitted (unix time)
    DownloadTicket  the downloaders     the result URL, its expiry, the output bases to fill
    CopyTicket      the downloaders     a result already written, and the bases to copy it to
    RereadTicket    intake              the sources to read again for a resubmission

A ticket with a deadline (`PollTicket.gone_at`, `DownloadTicket.expires_at`) carries the
machine's expiry rule to the stage: past it, the provider no longer has the task or the result,
and the stage answers `Gone` with the reason below, without asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchtoon.images.preflight import Prepared

__all__ = [
    "TASK_EXPIRED", "URL_EXPIRED",
    "CopyTicket", "DownloadTicket", "PollTicket", "RereadTicket", "Ticket", "UploadTicket",
]  # fmt: skip

TASK_EXPIRED = "the task is older than the provider keeps tasks"
URL_EXPIRED = "the result URL expired before it was downloaded"


@dataclass(frozen=True, slots=True)
class UploadTicket:
    key: str  # the item: "<sha256>:<style>"
    image: Prepared
    style: int
    name: str  # a source path of the item, for messages


@dataclass(frozen=True, slots=True)
class PollTicket:
    key: str
    task_id: str
    submitted_at: float  # unix time
    name: str
    gone_at: float  # unix time from which the provider no longer keeps the task


@dataclass(frozen=True, slots=True)
class DownloadTicket:
    key: str
    result_url: str
    expires_at: float  # unix time
    bases: tuple[str, ...]  # the output paths to write, without extension
    name: str


@dataclass(frozen=True, slots=True)
class CopyTicket:
    key: str
    first: str  # the base whose file holds the result already
    ext: str  # that file's extension
    bases: tuple[str, ...]  # the bases to copy it to
    have: tuple[str, ...]  # the bases holding the result already (`first` among them)
    written: int  # of those, files this run wrote
    name: str
    known: tuple[int, str] | None = None  # the result's size and sha256, when known


@dataclass(frozen=True, slots=True)
class RereadTicket:
    key: str
    sources: tuple[str, ...]  # the item's source paths, any of which may still hold it
    sha256: str  # the content they must still have
    style: int
    name: str


Ticket = UploadTicket | PollTicket | DownloadTicket | CopyTicket | RereadTicket
