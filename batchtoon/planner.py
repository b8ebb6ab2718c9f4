"""The plan (`batchtoon plan`, `batchtoon run --dry-run`): what a run would cost, without
submitting anything.

It reads every source and runs the same pre-flight as a run (in the same number of worker
threads, filling the same prepared-image cache), replays the journal read-only, and sorts every
(photo, style) the way the engine's admission would: already done, a duplicate of content
already counted, in progress with the provider (no new cost), failed before (and left so without
`--retry-failed`), or billable: one submission. With a key it also asks the account's balance.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .config import Settings
from .errors import InputError
from .ledger import Entry, Ledger
from .preflight import Prepared, check
from .sources import BadLine, Source, display, iter_sources, next_batch

__all__ = ["Plan", "make_plan"]


@dataclass
class Plan:
    photos: int = 0  # source files found (and manifest lines)
    styles: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # target verdict -> (photo, style)s
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
    settings: Settings, sources: list[Path], ledger: Ledger, *, retry_failed: bool = False
) -> Plan:
    plan = Plan(styles=len(settings.styles))
    checked: list[tuple[int, Source, Prepared]] = []
    limit = anyio.Semaphore(settings.prepare.workers)
    items = iter_sources(sources)
    async with anyio.create_task_group() as group:
        while batch := await anyio.to_thread.run_sync(next_batch, items):
            for item in batch:
                plan.photos += 1
                if isinstance(item, BadLine):
                    plan.invalid[item.where] = item.reason
                    continue
                await limit.acquire()
                group.start_soon(_check, plan, checked, plan.photos, item, settings, limit)
    seen: set[str] = set()
    for _, item, image in sorted(checked, key=lambda row: row[0]):  # in source order
        for style in item.styles or settings.styles:
            key = f"{image.sha256}:{style}"
            verdict = _verdict(ledger.entries.get(key), settings, retry_failed)
            if verdict == "billable" and key in seen:
                verdict = "duplicate"
            seen.add(key)
            plan.counts[verdict] += 1
    return plan


async def _check(
    plan: Plan,
    checked: list[tuple[int, Source, Prepared]],
    order: int,
    item: Source,
    settings: Settings,
    limit: anyio.Semaphore,
) -> None:
    fix, cache = settings.prepare.fix, settings.journal_path.parent / "prepared"
    try:
        image = await anyio.to_thread.run_sync(lambda: check(item.path, fix=fix, cache=cache))
    except InputError as error:
        plan.invalid[display(item.path)] = str(error)
        return
    finally:
        limit.release()
    plan.to_fix += image.fixed
    checked.append((order, item, image))


def _verdict(entry: Entry | None, settings: Settings, retry_failed: bool) -> str:
    """What the engine's admission would do with this (photo, style)."""
    if entry is None or entry.state == "queued":
        return "billable"
    if entry.state == "failed":
        return "billable" if retry_failed else "failed before"
    if entry.state == "submitted" and time.time() - entry.submitted_at < settings.result_ttl:
        return "in progress"
    if entry.state == "succeeded" and time.time() < entry.expires_at:
        return "in progress"
    out = Path(settings.output.dir)
    if entry.state == "downloaded" and any(
        (out / f"{b}.{entry.ext}").is_file() for b in entry.targets
    ):
        return "done"
    return "billable"
