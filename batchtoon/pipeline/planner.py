"""The plan (`batchtoon plan`, `batchtoon run --dry-run`): what a run would cost, without
submitting anything.

It runs the run's own pre-flight fan-out (`producer.preflight_sources`, the same checks in the
same number of threads; it writes nothing: no prepared-image cache) and the run's own
admission: the same `Intake` delivers what it finds to the same state machine
(`machine.Machine`), over a replay of the journal, after the same `resume` — so a file reached
twice is taken once, and an item an earlier run left is judged as the run judges it. The
machine's records go to that replay only (it is used up: nothing is written), its routes
nowhere. The plan's "billable" count is the run's number of submissions, not a second
implementation's guess. With a key it also asks the account's balance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from batchtoon.images.preflight import Crop
from batchtoon.locations.layout import Layout
from batchtoon.locations.provenance import Provenance
from batchtoon.locations.sources import display
from batchtoon.locations.storage import Location, location
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.intake import Intake
from batchtoon.pipeline.machine import Machine, Verdict
from batchtoon.pipeline.outcomes import Found, Outcome, Rejected
from batchtoon.pipeline.producer import checker, preflight_sources, preflight_workers, source_filter
from batchtoon.pipeline.stats import Stats
from batchtoon.records.ledger import Ledger
from batchtoon.settings.config import Settings
from batchtoon.words import counted

__all__ = ["ROWS", "Plan", "make_plan"]

# The plan's terms for results (one per photo and style), by the admission verdicts they gather;
# each is what a run would then count them as (`stats.TERMS`), in the future tense.
ROWS: dict[Verdict, str] = {
    "submit": "to submit",
    "resubmit": "to submit again",
    "poll": "in progress",
    "download": "in progress",
    "done": "already done",
    "copy": "already done",
    "duplicate": "duplicates",
    "failed": "failed earlier",
    "refused": "refused",
}
ORDER = (
    "already done", "to submit", "to submit again", "duplicates", "in progress",
    "failed earlier", "refused", "refused earlier",
)  # fmt: skip


@dataclass
class Plan:
    photos: int = 0  # source files found (and manifest lines)
    styles: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # term -> results
    verdicts: Counter[Verdict] = field(default_factory=Counter)
    invalid: dict[str, str] = field(default_factory=dict)  # where -> why it is refused
    converted: Counter[str] = field(default_factory=Counter)  # why -> photos converted
    to_convert: int = 0  # photos pre-flight converts before upload
    cropped: dict[str, Crop] = field(default_factory=dict)  # where -> what the provider keeps
    notes: list[str] = field(default_factory=list)  # what the user should know first
    balance: float | None = None  # credits, when asked; negative: unlimited

    @property
    def billable(self) -> int:
        return self.counts["to submit"] + self.counts["to submit again"]

    @property
    def results(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "results": self.results,
            "counts": {term.replace(" ", "_"): self.counts[term] for term in ORDER},
            "already_done": self.counts["already done"],
            "duplicates": self.counts["duplicates"],
            "in_progress": self.counts["in progress"],
            "failed_before": self.counts["failed earlier"],
            "to_convert": self.to_convert,
            "converted": dict(self.converted),
            "cropped": [
                {"source": where, "size": list(crop.size), "kept": list(crop.kept)}
                for where, crop in self.cropped.items()
            ],
            "invalid": [{"source": k, "reason": v} for k, v in self.invalid.items()],
            "billable_submissions": self.billable,
            "notes": self.notes,
            "balance": self.balance,
        }

    def __str__(self) -> str:
        shown = " + ".join(f"{self.counts[t]} {t}" for t in ORDER if self.counts[t])
        lines = [f"plan: {counted(self.photos, 'photo')} x {counted(self.styles, 'style')}"]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  results: {self.results} found" + (f" = {shown}" if shown else ""))
        if self.to_convert:
            why = ", ".join(f"{n} {reason}" for reason, n in self.converted.most_common())
            lines.append(f"  converted before upload: {counted(self.to_convert, 'photo')} ({why})")
        if self.cropped:
            lines.append(
                f"  cropped by the provider to 3:2: {counted(len(self.cropped), 'photo')} "
                "(--fit pad keeps the whole picture)"
            )
            lines += [f"    {where}: {crop}" for where, crop in self.cropped.items()]
        if self.invalid:
            lines.append(f"  refused: {counted(len(self.invalid), 'photo')}")
            lines += [f"    {where}: {reason}" for where, reason in self.invalid.items()]
        lines.append(f"  billable submissions: {self.billable}")
        if self.balance is not None:
            enough = "unlimited" if self.balance < 0 else f"{self.balance:g}"
            verdict = (
                "enough" if self.balance < 0 or self.balance >= self.billable else "NOT enough"
            )
            lines.append(f"  credits: balance {enough}, need {self.billable}: {verdict}")
        return "\n".join(lines)


async def make_plan(
    settings: Settings,
    sources: list[Location],
    ledger: Ledger,
    *,
    retry_failed: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> Plan:
    """The plan for these sources; `ledger` (a replay of the journal) is used up."""
    plan = Plan(styles=len(settings.styles))
    layout = Layout(
        location(settings.output.dir),
        settings.output.template,
        portable=settings.output.portable_names,
    )
    machine = Machine(
        ledger, Stats(started=clock.monotonic()), naming=layout.base,
        task_ttl=settings.result_ttl, result_ttl=settings.result_ttl,
        max_resubmissions=settings.submit.max_resubmissions, retry_failed=retry_failed,
    )  # fmt: skip
    machine.resume(clock.wall())  # what a run takes on first, judged as the run judges it
    check = checker(settings, cache=False)  # a plan writes nothing
    intake = Intake(
        _Judged(plan, machine, clock), ledger=ledger, layout=layout,
        record=Provenance(layout.out), check=check, styles=settings.styles, claims=False,
    )  # fmt: skip
    plan.notes += _notes(settings, sources)
    workers = preflight_workers(settings, sources)
    only = source_filter(settings)
    await preflight_sources(sources, check, workers, intake.take, only=only)
    plan.notes += [f"{pattern} matched no file nor folder" for pattern in only.unmatched()]
    return plan


class _Judged:
    """The plan's outbox: each photo intake delivers, judged by the machine, and counted."""

    def __init__(self, plan: Plan, machine: Machine, clock: Clock) -> None:
        self._plan, self._machine, self._clock = plan, machine, clock

    async def deliver(self, outcome: Outcome) -> None:
        plan, earlier = self._plan, self._machine.ledger.rejected
        if isinstance(outcome, Rejected):  # as a run counts it: unchanged since, or news
            same = [earlier.get((outcome.where, s)) == outcome.reason for s in outcome.styles]
        verdicts = self._machine.step(outcome, self._clock.wall()).verdicts
        if not verdicts:
            return  # a file reached twice: taken once
        plan.photos += 1
        for verdict in verdicts:
            plan.verdicts[verdict] += 1
        if isinstance(outcome, Rejected):
            plan.invalid[outcome.where] = outcome.reason
            plan.counts["refused earlier"] += sum(same)
            plan.counts["refused"] += len(same) - sum(same)
            return
        for verdict in verdicts:
            plan.counts[ROWS[verdict]] += 1
        if isinstance(outcome, Found) and outcome.image.converted:
            plan.to_convert += 1
            plan.converted.update(outcome.image.reasons)
        if isinstance(outcome, Found) and outcome.image.crop is not None:
            plan.cropped[display(outcome.source.path)] = outcome.image.crop


def _notes(settings: Settings, sources: list[Location]) -> list[str]:
    """What the user should know before a run: an output folder inside a source is skipped."""
    out = location(settings.output.dir)
    return [
        f"the output folder {display(str(settings.output.dir))} is inside SOURCE "
        f"{display(str(source))}: it is never walked (batchtoon skips its own output)"
        for source in sources
        if _inside(out, source)
    ]


def _inside(out: Location, source: Location) -> bool:
    if isinstance(out, str) or isinstance(source, str):
        urls = isinstance(out, str) and isinstance(source, str)
        return urls and f"{str(out).rstrip('/')}/".startswith(f"{str(source).rstrip('/')}/")
    return source.is_dir() and out.resolve().is_relative_to(source.resolve())
