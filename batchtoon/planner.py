"""The plan (`batchtoon plan`, `batchtoon run --dry-run`): what a run would cost, without
submitting anything.

It runs the run's own pre-flight fan-out (`producer.preflight_sources`, the same checks in the
same number of threads, filling the same prepared-image cache) over a read-only replay of the
journal, and judges every (photo, style) by the run's own admission rule
(`admission.decide`): the plan's "billable" count is the run's number of submissions, not a
second implementation's guess. With a key it also asks the account's balance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .admission import OPENS, Verdict, decide
from .clock import SYSTEM_CLOCK, Clock
from .config import Settings
from .layout import Layout
from .ledger import Entry, Ledger
from .preflight import Prepared
from .producer import checker, preflight_sources, source_filter
from .sources import BadLine, Source, display

__all__ = ["ROWS", "Plan", "make_plan"]

# The plan's rows, by the admission verdicts they gather.
ROWS: dict[Verdict, str] = {
    "submit": "billable",
    "resubmit": "billable",
    "poll": "in progress",
    "download": "in progress",
    "done": "done",
    "copy": "done",
    "duplicate": "duplicate",
    "failed": "failed before",
}


@dataclass
class Plan:
    photos: int = 0  # source files found (and manifest lines)
    styles: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # row -> (photo, style)s
    verdicts: Counter[Verdict] = field(default_factory=Counter)
    invalid: dict[str, str] = field(default_factory=dict)  # where -> reason
    to_fix: int = 0  # photos --fix prepares
    balance: float | None = None  # credits, when asked; negative: unlimited

    @property
    def billable(self) -> int:
        return self.counts["billable"]

    def as_json(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "already_done": self.counts["done"],
            "duplicates": self.counts["duplicate"],
            "in_progress": self.counts["in progress"],
            "failed_before": self.counts["failed before"],
            "to_fix": self.to_fix,
            "invalid": [{"source": k, "reason": v} for k, v in self.invalid.items()],
            "billable_submissions": self.billable,
            "balance": self.balance,
        }

    def __str__(self) -> str:
        rows = [
            ("photos found", self.photos),
            ("already done", self.counts["done"]),
            ("duplicates (same content, sent once)", self.counts["duplicate"]),
            ("in progress (no new cost)", self.counts["in progress"]),
            ("failed before (--retry-failed)", self.counts["failed before"]),
            ("to be fixed (--fix)", self.to_fix),
            ("invalid", len(self.invalid)),
        ]
        lines = [f"plan: {self.photos} photos x {self.styles} style(s)"]
        lines += [f"  {name:<38}{count:>8}" for name, count in rows]
        lines += [f"    {where}: {reason}" for where, reason in self.invalid.items()]
        lines.append(f"  {'billable submissions':<38}{self.billable:>8}")
        if self.balance is not None:
            enough = "unlimited" if self.balance < 0 else f"{self.balance:g}"
            verdict = (
                "enough" if self.balance < 0 or self.balance >= self.billable else "NOT enough"
            )
            lines.append(f"  credits: balance {enough}, need {self.billable}: {verdict}")
        return "\n".join(lines)


async def make_plan(
    settings: Settings,
    sources: list[Path],
    ledger: Ledger,
    *,
    retry_failed: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> Plan:
    plan = Plan(styles=len(settings.styles))
    layout = Layout(
        Path(settings.output.dir),
        settings.output.template,
        portable=settings.output.portable_names,
    )
    in_hand: set[str] = set()  # what a run would have open by now: its duplicates cost nothing

    async def judge(entry: Entry | None, key: str) -> Verdict:
        present = set[str]()
        if entry is not None and entry.state == "downloaded":
            present = await anyio.to_thread.run_sync(layout.existing, entry.targets, entry.ext)
        return decide(
            entry, in_hand=key in in_hand, retry_failed=retry_failed, now=clock.wall(),
            task_ttl=settings.result_ttl, present=present,
        )  # fmt: skip

    async def take(item: Source | BadLine, outcome: Prepared | str) -> None:
        plan.photos += 1
        if isinstance(outcome, str):
            where = item.where if isinstance(item, BadLine) else display(item.path)
            plan.invalid[where] = outcome
            return
        assert isinstance(item, Source)
        plan.to_fix += outcome.converted
        for style in item.styles or settings.styles:
            key = f"{outcome.sha256}:{style}"
            verdict = await judge(ledger.entries.get(key), key)
            if verdict in OPENS:
                in_hand.add(key)
            plan.verdicts[verdict] += 1
            plan.counts[ROWS[verdict]] += 1

    await preflight_sources(
        sources, checker(settings), settings.prepare.threads, take, only=source_filter(settings)
    )
    return plan
