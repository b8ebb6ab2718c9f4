"""Admission: what to do with one (photo, style), given what the journal knows of its item.

`decide` is the one rule, used by the run (`Router`) and by the plan (`planner`), so that what
a plan promises about money is what a run does. It is pure: the caller gathers the facts (the
item's `Entry`, whether this run already has the item in hand, the time, which of the item's
output files exist) and acts on the verdict.

    verdict    when                                                   cost
    submit     never sent, or failed before and --retry-failed        one submission
    resubmit   sent before, but its task, its result URL or its files  one submission (extra:
               are gone                                               paid for before)
    poll       submitted, and the task can still be asked about       none
    download   finished, and its result URL is still valid            none
    done       downloaded, and every output file is there             none
    copy       downloaded, some output files are missing: copy one    none
    duplicate  this run already has the same content in this style    none
    failed     failed before (and no --retry-failed)                  none
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from batchtoon.records.ledger import Entry

__all__ = ["BILLABLE", "OPENS", "Verdict", "decide"]

Verdict = Literal["submit", "resubmit", "poll", "download", "done", "copy", "duplicate", "failed"]
BILLABLE: frozenset[Verdict] = frozenset({"submit", "resubmit"})
OPENS: frozenset[Verdict] = frozenset({"submit", "resubmit", "poll", "download", "copy"})


def decide(
    entry: Entry | None,
    *,
    in_hand: bool,
    retry_failed: bool,
    now: float,
    task_ttl: float,
    present: Collection[str] = (),
) -> Verdict:
    """The verdict for one target. `in_hand`: this run already has the item open (an earlier
    target with the same content and style); `now`: unix time; `present`: the output bases of a
    downloaded entry whose files exist (read for that state only)."""
    if in_hand:
        return "duplicate"
    if entry is None or entry.state == "queued":
        return "submit"
    if entry.state == "failed":
        return "submit" if retry_failed else "failed"
    if entry.state == "submitted":
        return "poll" if now - entry.submitted_at <= task_ttl else "resubmit"
    if entry.state == "succeeded":
        return "download" if now <= entry.expires_at else "resubmit"
    if not present:
        return "resubmit"
    return "done" if len(present) >= len(entry.targets) else "copy"
