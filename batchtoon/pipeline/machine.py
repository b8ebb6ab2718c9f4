"""The state machine of every item (one photo content in one style): the one place that turns
(item state, outcome) into journal records and routes.

`Machine.step(outcome, now)` is pure: no journal writes, no sockets, no threads, no clock (the
time comes in as `now`, unix time). It folds the records it makes into the ledger it holds
(the journal's own, so what a run decides and what a replay of its journal would decide are
the same function) and returns them in a `Step` with the routes (tickets for the stages' queues,
files to discard), the items it opened and closed, and what to tell the user. The `Driver`
applies a step: it appends the records to the journal and puts the tickets on the queues.

Admission (`decide`): what to do with one (photo, style) found, given what the journal knows of
its item; `resume` judges what an earlier run left with the provider, before anything is found.

    verdict    when                                                   cost
    submit     never sent, or failed before and --retry-failed        one submission
    resubmit   sent before, but its task, its result URL or its files  one submission (extra:
               are gone                                               paid for before)
    poll       submitted, and the task can still be asked about       none
    download   finished, and its result URL is still valid            none
    done       downloaded, and this target's file is there (the item's  none
               other files, if missing, are copied from it)
    copy       downloaded, this target's file is missing but another  none
               one is there: copied from it
    duplicate  this run already has the same content in this style    none
    failed     failed before (and no --retry-failed)                  none
    refused    pre-flight refused the photo                           none

Guarantees:
- a file is taken once, however often it is reached (a folder and an image in it), and again
  only with new content (a photo replaced in a watched folder); the same
  content in the same style is one item, submitted once, written to each of its targets;
- the output location is the truth (`locations.provenance`): a result its record holds for an
  item the journal does not know is already done (journaled as downloaded, at that file:
  nothing paid, nothing downloaded); a target takes the output name intake claimed in that
  record, and one whose photo and style another journal has claimed is left to that run
  (said, counted as left); a failed item lets go of its claims (`Release`);
- every (source file, style) gets an output path of its own, whatever the template: a path
  already claimed by another source or another style gets the content's first 8 hex digits
  (and the style) appended (intake's claimed names follow the same rule);
- staleness: an item in hand waits on one ticket at a time, the last one routed; an answer
  about any other task id or result URL (the item was lost and submitted again meanwhile),
  to any other ticket, or one that came twice, is dropped, decided here alone;
- expiry, one rule (`deadline`): a task older than the provider keeps tasks, or a result URL
  past its expiry, is gone, and the item is submitted again; the tickets carry the deadline to
  the poller and the downloaders, which answer `Gone` once it has passed, without asking;
- money is bounded on every path: an item is submitted again only when the provider lost its
  task, its result URL expired or its output files were deleted, and at most
  `max_resubmissions` times over all runs, then it fails with the reason; a task id the API
  gives to two items is trusted for neither (both are submitted again, within the same bound;
  the files of one already done are discarded);
- a lost item is submitted again only from its own unchanged bytes: it is routed to intake to
  read its source again (`RereadTicket`), and fails if no source still holds them (found
  lost on admission, it goes with the photo just read);
- every item found ends in exactly one of done, failed, refused or left (`stats.Tally`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from batchtoon.errors import RunFatal, Unwritable
from batchtoon.images.preflight import Prepared
from batchtoon.locations.sources import Source, display
from batchtoon.pipeline.outcomes import (
    Accepted,
    Answer,
    Blocked,
    Fatal,
    Finished,
    Found,
    Gone,
    Left,
    Outcome,
    Recorded,
    Refused,
    Rejected,
    Reread,
    Stored,
    Unchanged,
    Unsent,
)
from batchtoon.pipeline.stats import Stats, Term
from batchtoon.pipeline.tickets import (
    TASK_EXPIRED,
    URL_EXPIRED,
    CopyTicket,
    DownloadTicket,
    PollTicket,
    RereadTicket,
    Ticket,
    UploadTicket,
)
from batchtoon.provider.api import SUCCESS
from batchtoon.records.compact import MISSING, HashIndex, HashSet, key_of
from batchtoon.records.ledger import Entry, Event, Ledger, make_record
from batchtoon.settings.styles import style_slug

__all__ = ["Discard", "Machine", "Naming", "Release", "Route", "Step", "Verdict", "decide"]

Verdict = Literal[
    "submit", "resubmit", "poll", "download", "done", "copy", "duplicate", "failed", "refused"
]
LAZY: frozenset[str] = frozenset({"queued", "seen", "rejected"})  # a resume redoes them if lost
Naming = Callable[[Source, int, str], str]  # (source, style, sha256) -> output base


@dataclass(frozen=True, slots=True)
class Discard:
    """Output files of an item whose result cannot be trusted: removed, if they are there."""

    bases: tuple[str, ...]
    ext: str


@dataclass(frozen=True, slots=True)
class Release:
    """The output names a failed item claimed in the output's record, let go of."""

    key: str
    bases: tuple[str, ...]


Route = Ticket | Discard | Release


@dataclass(slots=True)
class Step:
    """What one outcome did: records to journal (folded into the ledger already), in order;
    routes; items opened and closed; lines for the user and for the log."""

    now: float
    records: list[dict[str, Any]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    logged: list[tuple[int, str]] = field(default_factory=list)  # (logging level, line)
    verdicts: list[Verdict] = field(default_factory=list)  # one per (photo, style) admitted
    halt: RunFatal | None = None  # the account cannot go on
    blocked: Unwritable | None = None  # a result cannot be written: stop the run

    @property
    def durable(self) -> bool:
        """Must the records be on disk before the item moves on?"""
        return any(record["event"] not in LAZY for record in self.records)


def deadline(entry: Entry, task_ttl: float) -> float:
    """Unix time from which the provider no longer has the item's task (submitted) or result
    (succeeded)."""
    if entry.state == "submitted":
        return entry.submitted_at + task_ttl
    return entry.expires_at if entry.state == "succeeded" else math.inf


def expiry(entry: Entry, now: float, task_ttl: float) -> str:
    """Why the provider no longer has what the item waits on ("" if it still does)."""
    if now <= deadline(entry, task_ttl):
        return ""
    return TASK_EXPIRED if entry.state == "submitted" else URL_EXPIRED


def decide(
    entry: Entry | None,
    base: str,
    *,
    in_hand: bool,
    retry_failed: bool,
    now: float,
    task_ttl: float,
    present: Collection[str] = (),
) -> Verdict:
    """The verdict for target `base`. `in_hand`: this run already has the item open (an
    earlier target with the same content and style); `present`: the output bases of a
    downloaded entry whose files exist. A done item's targets are judged by their files alone,
    whether a copy is under way or not, so the verdicts do not hang on the order found."""
    if entry is not None and entry.state == "downloaded" and present:
        return "done" if base in present else "copy"
    if in_hand:
        return "duplicate"
    if entry is None or entry.state == "queued":
        return "submit"
    if entry.state == "failed":
        return "submit" if retry_failed else "failed"
    if entry.state == "submitted":
        return "resubmit" if expiry(entry, now, task_ttl) else "poll"
    if entry.state == "succeeded":
        return "resubmit" if expiry(entry, now, task_ttl) else "download"
    return "resubmit"  # done, and none of its files is there


class Machine:
    def __init__(
        self,
        ledger: Ledger,
        stats: Stats,
        *,
        naming: Naming,
        task_ttl: float,
        result_ttl: float,
        max_resubmissions: int,
        retry_failed: bool = False,
    ) -> None:
        self.ledger, self.stats, self._naming = ledger, stats, naming
        self._task_ttl, self._result_ttl = task_ttl, result_ttl
        self._max_resubmissions, self._retry_failed = max_resubmissions, retry_failed
        self.verdicts: Counter[Verdict] = Counter()  # what admission judged, for plan and run
        # The items this run has in hand -> the ticket each waits on: the one it routed last.
        self._open: dict[str, Ticket] = {}
        # Every task id this run met -> its item's key (both hashed, `key_of`): a reused id is
        # caught even once the first task is done, for some 24 bytes a task.
        self._tasks = HashIndex(values="Q")
        self._taken = HashSet()  # the source files taken (hashes of path and content)
        self._completed = HashSet()  # items this run wrote every target of (key hashes)
        # Items resume took on that no target found yet points to -> what resume judged them:
        # the verdict counted for the first target found (as the plan counts it).
        self._resumed: dict[str, Verdict] = {}

    def __repr__(self) -> str:
        return f"<Machine open={len(self._open)} tasks={len(self._tasks)} {self.verdicts}>"

    def is_open(self, key: str) -> bool:
        return key in self._open

    # What an earlier run left.

    def resume(self, now: float) -> Step:
        """Open every item an earlier run left with the provider: to the poller or the
        downloaders, or, gone meanwhile, to be submitted again."""
        step = Step(now)
        for entry in list(self.ledger.live.values()):  # (a done item is never in hand)
            if entry.state not in ("submitted", "succeeded"):
                continue
            gone = expiry(entry, now, self._task_ttl)
            if gone:
                verdict: Verdict = "resubmit" if self._lose(step, entry, gone) else "failed"
            else:
                verdict = self._follow_provider(step, entry)
            self._resumed[entry.key] = verdict
        return step

    # What a stage found.

    def step(self, outcome: Outcome, now: float) -> Step:
        step = Step(now)
        if isinstance(outcome, Found):
            self._found(step, outcome)
            return step
        if isinstance(outcome, Rejected):
            self._rejected(step, outcome)
            return step
        if isinstance(outcome, Unchanged):
            self._unchanged(step, outcome)
            return step
        if isinstance(outcome, Fatal):
            step.halt = outcome.error  # whichever item met it: the account cannot go on
        entry = self.ledger.entries[outcome.ticket.key]
        if not self._current(outcome):
            step.logged.append((logging.INFO, f"ignored a late answer about {_named(entry)}"))
            return step
        self._answer(step, entry, outcome)
        return step

    def _current(self, outcome: Answer) -> bool:
        """Is this the answer the item waits on? It must answer that very ticket (the item's
        last one: an answer to an earlier ticket, or one delivered twice, is stale), and if it
        says what it is `about` (a task id, a result URL), be about what that ticket is about."""
        waits_on = self._open.get(outcome.ticket.key)
        if waits_on is None or outcome.ticket is not waits_on:
            return False
        about = getattr(outcome, "about", "")
        return not about or about == _about(waits_on)

    def _answer(self, step: Step, entry: Entry, outcome: Answer) -> None:
        if isinstance(outcome, Accepted):
            self._accepted(step, entry, outcome)
        elif isinstance(outcome, Finished):
            self._finished(step, entry, outcome)
        elif isinstance(outcome, Stored):
            self._stored(step, entry, outcome)
        elif isinstance(outcome, Gone):
            self._lose(step, entry, outcome.reason)
        elif isinstance(outcome, Reread):
            self._reread(step, entry, outcome)
        elif isinstance(outcome, Refused):
            self.stats.unanswered += outcome.unanswered
            self._fail(step, entry, type(outcome.error).__name__, outcome.error.reason)
        elif isinstance(outcome, Left):
            self.stats.left += 1
            why = f"left for a later run: {_named(entry)}: {outcome.reason}"
            step.logged.append((logging.WARNING, why))
            self._end(step, entry.key, "left")
        elif isinstance(outcome, Blocked):
            step.blocked = outcome.problem  # it stays as it is, for the same command to finish
            self._end(step, entry.key, "left")
        else:
            assert isinstance(outcome, Fatal | Unsent)
            self._end(step, entry.key, "left")

    def _accepted(self, step: Step, entry: Entry, outcome: Accepted) -> None:
        stats, task_id = self.stats, outcome.task_id
        stats.submitted += 1
        stats.extra += entry.submissions > 0
        stats.unanswered += outcome.unanswered
        extra = {"unanswered": outcome.unanswered} if outcome.unanswered else {}
        self._record(
            step, "submitted", entry,
            task_id=task_id, sent=outcome.sent, saved=outcome.saved, **extra,
        )  # fmt: skip
        other = self._task(task_id, entry)
        if other == key_of(entry.key):
            self._route(step, self._poll_ticket(entry))
            return
        # One id for two items: it answers for at most one of them, and maybe already did.
        reason = "the API gave the same task id to two photos: neither result can be trusted"
        earlier = self.ledger.find(other)
        if earlier is not None and _had_task(
            earlier, task_id
        ):  # (reopened if it was done: its files are discarded)
            if earlier.state == "downloaded":
                step.routes.append(Discard(tuple(earlier.targets), earlier.ext))
            self._lose(step, earlier, reason)
        self._lose(step, entry, reason)

    def _finished(self, step: Step, entry: Entry, outcome: Finished) -> None:
        state = outcome.state
        if state.succeeded:
            expires = step.now + self._result_ttl
            self._record(step, "succeeded", entry, result_url=state.result_url, expires_at=expires)
            self._route(step, _download_ticket(entry))
        elif state.status == SUCCESS:
            reason = "the provider reported success but sent no result URL"
            self._fail(step, entry, "task", reason)
        else:
            reason = f"the provider failed the task: {state.status or 'task_status 2'}"
            self._fail(step, entry, "task", reason)

    def _stored(self, step: Step, entry: Entry, outcome: Stored) -> None:
        """Journal the files a result was written to; copy it to any target still without it
        (one added while it downloaded); then the item is done."""
        filed, ticket = outcome.filed, outcome.ticket
        for base, path in zip(filed.bases, filed.paths, strict=True):
            self._record(
                step, "downloaded", entry, source=entry.targets[base], output=str(path),
                size=filed.size, sha256=filed.sha256,
            )  # fmt: skip
        have = (*ticket.have, *filed.bases) if isinstance(ticket, CopyTicket) else filed.bases
        written = (ticket.written if isinstance(ticket, CopyTicket) else 0) + len(filed.bases)
        missing = tuple(base for base in entry.targets if base not in have)
        if not missing:
            self._completed.add(key_of(entry.key))
            self._write(step, "item", **entry.fields())
            self._end(step, entry.key, "done now", files=written)
            return
        ext = str(filed.paths[0]).rpartition(".")[2]
        self._route(
            step,
            CopyTicket(
                entry.key, filed.bases[0], ext, missing, have, written, _named(entry),
                known=(filed.size, filed.sha256),
            ),
        )  # fmt: skip

    def _reread(self, step: Step, entry: Entry, outcome: Reread) -> None:
        if outcome.image is None:
            self._fail(step, entry, "InputError", "its source files changed or are gone")
        else:
            self._route(step, _upload_ticket(entry, outcome.image))

    # Admission.

    def _found(self, step: Step, found: Found) -> None:
        source, image = found.source, found.image
        if not self._first_time(f"{source.path}\0{image.sha256}"):  # replaced: a new photo
            return
        self.stats.tally.photo(str(source.path), len(found.styles))
        if image.converted:
            self.stats.converted_photos += 1
            self.stats.converted.update(image.reasons)
        if image.crop is not None:  # wider or taller than 3:2, and `prepare.fit: crop`
            self.stats.cropped += 1
            where = display(source.path)
            step.logged.append((logging.INFO, f"the provider will crop {where}: {image.crop}"))
        for style in found.styles:
            recorded = found.recorded.get(style)
            if recorded is not None:
                self._adopt(step, str(source.path), f"{image.sha256}:{style}", recorded)
            elif style in found.names and found.names[style] is None:
                self._leave(step, str(source.path), style)
            else:
                base = found.names.get(style)
                present = found.present.get(style, frozenset())
                self._admit(step, source, style, image, present, base)

    def _adopt(self, step: Step, path: str, key: str, recorded: Recorded) -> None:
        """A result the output's record holds, made by another journal: done, as it is."""
        self._write(step, "queued", key=key, source=path, output=recorded.base)
        self._write(
            step, "downloaded", key=key, source=path, output=recorded.output,
            size=recorded.size, sha256=recorded.sha256,
        )  # fmt: skip
        self._write(step, "item", **self.ledger.entries[key].fields())
        self._judged(step, "done")
        self.stats.tally.result(path, "already done")

    def _unchanged(self, step: Step, unchanged: Unchanged) -> None:
        """Photos an earlier run finished, unchanged since: done, as they are (nothing read).
        A path given twice is taken once (unchanged, it is one content)."""
        fresh = [(path, keys) for path, keys in unchanged.photos if self._first_time(path)]
        results = self.stats.tally.unchanged(fresh)
        step.verdicts += ["done"] * results
        self.verdicts["done"] += results

    def _leave(self, step: Step, path: str, style: int) -> None:
        """Another journal has claimed this photo in this style: it is left to that run."""
        step.said.append(
            f"left {display(path)} ({style_slug(style)}): another batchtoon run (another "
            "journal) has it in hand for this output; that run finishes it"
        )
        self.stats.left += 1
        self.stats.tally.result(path, "left")

    def _rejected(self, step: Step, rejected: Rejected) -> None:
        """Refused by pre-flight: news, unless an earlier run said the same of it already."""
        if rejected.path and not self._first_time(rejected.path):
            return
        where, styles, reason = rejected.where, rejected.styles, rejected.reason
        self.stats.tally.photo(where, len(styles))
        earlier = self.ledger.rejected
        new = [style for style in styles if earlier.get((where, style)) != reason]
        for style in styles:
            self.stats.tally.result(where, "refused" if style in new else "refused earlier")
            self._judged(step, "refused")
        if not new:
            return
        step.said.append(f"refused {where}: {reason}")
        self.stats.news(reason, len(new))
        for style in new:
            self._write(step, "rejected", source=where, style=style, reason=reason)

    def _first_time(self, path: str) -> bool:
        return self._taken.add(key_of(path))  # some 16 bytes a photo, where the path is tens

    def _admit(
        self,
        step: Step,
        source: Source,
        style: int,
        image: Prepared,
        present: frozenset[str],
        base: str | None,
    ) -> None:
        """Take one (source file, style) on, as `decide` says; `base`: the name intake claimed
        for it (None: the machine names it, as for the plan)."""
        key, path = f"{image.sha256}:{style}", str(source.path)
        entry = self.ledger.entries.get(key)
        if entry is not None and key_of(key) in self._completed:
            present = frozenset(entry.targets)  # written by this run, since intake looked
        base = base or self._claim(source, style, key, entry)
        retry = self._retry_failed and entry is not None and entry.state == "failed"
        if entry is None or base not in entry.targets or retry:
            extra = {"retry": True} if retry else {}
            self._write(step, "queued", key=key, source=path, output=base, seen=image.seen, **extra)
            entry = self.ledger.entries[key]
        elif image.seen and entry.seen.get(base) != image.seen:  # touched, or from before seen
            self._write(step, "seen", key=key, source=path, output=base, seen=image.seen)
            entry = self.ledger.entries[key]
            if entry.done:  # its record takes the new fingerprint: the next resume skips it
                self._write(step, "item", **entry.fields())
        resumed = self._resumed.pop(key, None)
        if resumed is not None and key in self._open:  # under way since resume: it joins it
            self._judged(step, resumed)
            self.stats.tally.hold(key, path)
            return
        in_hand = key in self._open
        verdict = decide(
            entry, base, in_hand=in_hand, retry_failed=self._retry_failed, now=step.now,
            task_ttl=self._task_ttl, present=present,
        )  # fmt: skip
        self._judged(step, resumed or verdict)
        if verdict == "failed":
            self.stats.tally.result(path, "failed earlier")
        elif verdict == "done":
            self.stats.tally.found_done(key_of(key), path)
        else:
            self.stats.tally.hold(key, path)
        if not in_hand:
            self._follow(step, verdict, entry, image, present)

    def _follow(
        self, step: Step, verdict: Verdict, entry: Entry, image: Prepared, present: frozenset[str]
    ) -> None:
        """Route an item this run takes on now (none is in hand yet)."""
        missing = tuple(base for base in entry.targets if base not in present)
        if verdict == "failed" or (verdict == "done" and not missing):
            return
        if verdict in ("done", "copy"):
            have = tuple(sorted(present))
            copy = CopyTicket(entry.key, have[0], entry.ext, missing, have, 0, _named(entry))
            self._route(step, copy)
        elif verdict == "resubmit":
            reason = expiry(entry, step.now, self._task_ttl) or "its output files were deleted"
            self._lose(step, entry, reason, image)
        elif verdict == "submit":
            self._route(step, _upload_ticket(entry, image))
        else:
            self._follow_provider(step, entry)

    def _follow_provider(self, step: Step, entry: Entry) -> Verdict:
        """Route an item the provider has: to the poller, or to the downloaders."""
        if entry.state == "submitted":
            self._task(entry.task_id, entry)
            self._route(step, self._poll_ticket(entry))
            return "poll"
        self._route(step, _download_ticket(entry))
        return "download"

    def _claim(self, source: Source, style: int, key: str, entry: Entry | None) -> str:
        """This target's output path: the one the journal knows, or a new one no other takes."""
        source_text = str(source.path)
        if entry is not None:
            for base, owner in entry.targets.items():
                if owner == source_text:
                    return base
        base, sha8 = self._naming(source, style, key[:64]), key[:8]
        for candidate in (base, f"{base}-{sha8}", f"{base}-{sha8}-{style}"):
            if not self.ledger.taken_by_other(candidate, source_text, style):  # free, or ours
                return candidate
        return f"{base}-{sha8}-{style}-{self.ledger.claimed()}"  # never claimed: counts up

    def _task(self, task_id: str, entry: Entry) -> int:
        """The item (`key_of` its key) that task id `task_id` was first met for: `entry`'s,
        unless another item had it first."""
        task, mine = key_of(task_id), key_of(entry.key)
        other = self._tasks.get(task)
        if other == MISSING:
            self._tasks.put(task, mine)
            return mine
        return other

    # The transitions that end or restart an item.

    def _lose(self, step: Step, entry: Entry, reason: str, image: Prepared | None = None) -> bool:
        """The item's task, result or files are gone: submit it again (from `image`, else from
        its source read again), if the bound on resubmissions allows; else it fails. True if
        it goes again."""
        if entry.submissions > self._max_resubmissions:
            self._fail(
                step, entry, "TaskGone",
                f"{reason}; submitted {entry.submissions} times already, which is the limit "
                "(submit.max_resubmissions): retry it later (--retry-failed)",
            )  # fmt: skip
            return False
        step.logged.append((logging.WARNING, f"submitting again {_named(entry)}: {reason}"))
        self._record(step, "lost", entry, reason=reason)
        if image is not None:
            self._route(step, _upload_ticket(entry, image))
        else:
            sources = tuple(entry.targets.values())
            self._route(
                step, RereadTicket(entry.key, sources, entry.sha256, entry.style, _named(entry))
            )
        return True

    def _fail(self, step: Step, entry: Entry, kind: str, reason: str) -> None:
        self._record(step, "failed", entry, **{"class": kind}, reason=reason)
        step.routes.append(Release(entry.key, tuple(entry.targets)))
        for source in entry.targets.values():
            step.said.append(f"failed {display(source)} ({style_slug(entry.style)}): {reason}")
        self.stats.news(reason, max(1, self.stats.tally.held(entry.key)))
        self._end(step, entry.key, "failed")

    def _poll_ticket(self, entry: Entry) -> PollTicket:
        gone_at = deadline(entry, self._task_ttl)
        return PollTicket(entry.key, entry.task_id, entry.submitted_at, _named(entry), gone_at)

    def _route(self, step: Step, ticket: Ticket) -> None:
        """Send the item on with `ticket`, which becomes what it waits on (in hand from now)."""
        if ticket.key not in self._open:
            step.opened.append(ticket.key)
        self._open[ticket.key] = ticket
        step.routes.append(ticket)

    def _end(self, step: Step, key: str, term: Term, *, files: int = 0) -> None:
        """The item leaves this run's hands: done, failed, or left for a later run (whose
        targets the tally counts as left when the run ends)."""
        if term != "left":
            self.stats.tally.end(key, term, files=files)
        self._open.pop(key, None)
        step.closed.append(key)

    # Records.

    def _judged(self, step: Step, verdict: Verdict) -> None:
        step.verdicts.append(verdict)
        self.verdicts[verdict] += 1

    def _record(self, step: Step, event: Event, entry: Entry, **fields: Any) -> None:
        """A state change of `entry`, with its key and its source path(s)."""
        if "source" not in fields:
            fields["sources"] = list(entry.targets.values())
        self._write(step, event, key=entry.key, **fields)

    def _write(self, step: Step, event: Event, **fields: Any) -> None:
        record = make_record(event, step.now, **fields)
        self.ledger.apply(record)
        step.records.append(record)


def _about(ticket: Ticket) -> str:
    """What an answer to `ticket` says it is about: its task id, or its result URL."""
    if isinstance(ticket, PollTicket):
        return ticket.task_id
    return ticket.result_url if isinstance(ticket, DownloadTicket) else ""


def _had_task(entry: Entry, task_id: str) -> bool:
    """Might this item's task, result or files come from `task_id`?"""
    if entry.state in ("submitted", "succeeded"):
        return entry.task_id == task_id
    return entry.state == "downloaded"


def _named(entry: Entry) -> str:
    return display(entry.name)


def _upload_ticket(entry: Entry, image: Prepared) -> UploadTicket:
    return UploadTicket(entry.key, image, entry.style, _named(entry))


def _download_ticket(entry: Entry) -> DownloadTicket:
    bases = tuple(entry.targets)
    return DownloadTicket(entry.key, entry.result_url, entry.expires_at, bases, _named(entry))
