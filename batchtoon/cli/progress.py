"""What a person watching sees: a bar on a terminal, a status line now and then elsewhere (cron,
`nohup`, a pipe), and the summary at the end. All three read the run's `Snapshot`s or its
`Summary`: the stages never call into the display.

Guarantees: the bar counts results (one per photo and style) up to a total known from the start
(a quick count of the sources), never past it; what the run does once its items are over
(writing the gallery) is said as it begins, on the bar or in a line of its own; nothing but
plain text is written when not on a terminal or when `NO_COLOR` is set (one bar, redrawn with a
carriage return, and no colour).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from batchtoon.cli.reasons import kind_of
from batchtoon.pipeline.stats import TERMS
from batchtoon.snapshot import Snapshot
from batchtoon.words import counted

if TYPE_CHECKING:  # `status` shows a running run's `line` without loading the engine
    from batchtoon.batch import Summary

__all__ = ["Bars", "StatusLines", "line", "summary"]

MB = 1e6


class Bars:
    """A tqdm bar of results settled, with the run's state after it. It is first drawn once
    the quick count of the sources is in, so its total is right from its first frame. Its
    rate and ETA are the run's own (`line`'s), not tqdm's guess from the bar's speed, which a
    resume (results already done settle at once) sends wild."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: Any = None

    def __call__(self, snapshot: Snapshot) -> None:
        if self._bar is None:
            if snapshot.expected is None:
                return
            from tqdm import tqdm  # loaded by a run that shows bars, not by `status`

            self._bar = tqdm(
                desc="batchtoon", file=self._stream, total=snapshot.total,
                bar_format=self.FORMAT, dynamic_ncols=True,
            )  # fmt: skip
        bar = self._bar
        bar.total = snapshot.total
        bar.n = snapshot.settled
        state = [f"{snapshot.doing}…"] if snapshot.doing else [*_pace(snapshot), _state(snapshot)]
        bar.set_postfix_str(", ".join(state), refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class StatusLines:
    """One line every `interval` seconds, for a log file or a pipe (a run shorter than that
    prints none: its summary says it all)."""

    def __init__(self, interval: float, stream: IO[str] | None = None) -> None:
        self._interval = interval
        self._stream = stream or sys.stderr
        self._due = interval

    def __call__(self, snapshot: Snapshot) -> None:
        if snapshot.doing:  # the items are over: say what comes now, whenever it comes
            print(f"batchtoon: {snapshot.doing}…", file=self._stream, flush=True)
            return
        if snapshot.elapsed < self._due:
            return
        self._due = snapshot.elapsed + self._interval
        print(f"batchtoon: {line(snapshot)}", file=self._stream, flush=True)


def line(now: Snapshot) -> str:
    """A run's state in one line, in the summary's words: the status lines' and `status`'s
    while it runs (`12/40 results (30%), 10 done, 28 pending, 24 results/min, ETA 35s, ...`)."""
    total = now.total
    share = f" ({now.settled / total:.0%})" if total else ""
    parts = [f"{now.settled}/{total} results{share}", f"{now.done} done"]
    parts.append(f"{now.pending} pending")
    return ", ".join([*parts, *_pace(now), _state(now)]).rstrip(", ")


def _pace(now: Snapshot) -> list[str]:
    """The run's rate (the summary's: results written a minute) and its ETA, once known."""
    parts = [_per_minute(now.per_minute)] if now.done_now else []
    eta = now.eta
    if eta is not None and now.pending:
        parts.append(f"ETA {_duration(eta)}")
    return parts


def _per_minute(rate: float) -> str:
    return f"{rate:.1f} results/min"


def _state(snapshot: Snapshot) -> str:
    parts = [f"{snapshot.submitted} submitted"]
    if snapshot.news:
        parts.append(f"{snapshot.news} failed or refused")
    if snapshot.upload_rate:
        parts.append(f"up {snapshot.upload_rate / MB:.2g} MB/s")
    if snapshot.slowed:
        parts.append(
            f"slowed by the API to {snapshot.submit_rate:.2g}/{snapshot.max_submit_rate:.2g} per s"
        )
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def summary(done: Summary) -> str:
    """The end of a run, in words: what became of every result and photo, what it cost."""
    lines = [
        f"results: {_sum(done.results)}" + _aside(done),
        f"photos:  {_sum(done.photos)}",
        f"cost:    {_cost(done)}",
    ]
    if done.submitted:
        lines.append(f"uploads: {_uploads(done)}")
    if done.cropped:
        lines.append(
            f"cropped: {counted(done.cropped, 'photo')} beyond 3:2: the provider keeps the "
            "centre 3:2 (the log names them; --fit pad keeps all)"
        )
    lines.append(f"time:    {_time(done)}")
    if done.hooks_ran or done.hooks_not_run:
        lines.append(f"hooks:   {_hooks(done)}")
    if done.left_tasks:
        lines.append(
            f"left:    {counted(done.left_tasks, 'paid task')} could not be followed to the "
            "end now; the next run asks about them again"
        )
    if done.unreadable_lines:
        lines.append(
            f"journal: {counted(done.unreadable_lines, 'line')} could not be read, "
            f"{done.unreadable_tasks} of them about a paid task: those photos may be paid for "
            "again"
        )
    if done.failures:
        lines.append("failed or refused in this run:")
        lines += [f"  {n:>5} x {reason}" for reason, n in _kinds(done.failures)]
    return "\n".join(lines)


def _hooks(done: Summary) -> str:
    text = f"{counted(done.hooks_ran, 'hook')} run, {done.hooks_failed} failed"
    if done.hooks_failed:
        text += " (the log says why)"
    if done.hooks_not_run:
        text += f"; {done.hooks_not_run} not run (stopped)"
    return text


def _cost(done: Summary) -> str:
    text = f"{counted(done.submitted, 'submission')} accepted"
    if done.extra:
        text += f", {done.extra} of them again (the provider lost the first: extra cost)"
    if done.unanswered:
        text += f"; {counted(done.unanswered, 'upload')} went unanswered (each possibly paid for)"
    return text


def _time(done: Summary) -> str:
    text = f"{done.wall:.1f} s"
    if done.results["done now"] and done.wall:
        text += f", {_per_minute(done.results['done now'] / done.wall * 60)}"
    return text + f", {counted(done.retries, 'retry')}, {counted(done.slowdowns, 'slowdown')}"


def _sum(terms: Mapping[str, int]) -> str:
    found = sum(terms.values())
    shown = [f"{terms[term]} {term}" for term in TERMS if terms[term]]
    return f"{found} found" + (f" = {' + '.join(shown)}" if shown else "")


def _aside(done: Summary) -> str:
    notes = []
    if done.duplicates:
        notes.append(f"{counted(done.duplicates, 'duplicate')} sent once")
    if done.also_finished:
        notes.append(f"{done.also_finished} more finished for an earlier run")
    return f" ({', '.join(notes)})" if notes else ""


def _uploads(done: Summary) -> str:
    text = f"{done.uploaded_bytes / MB:.1f} MB sent"
    if done.upload_rate:
        text += f" at {done.upload_rate / MB:.2g} MB/s"
    if done.converted_photos:
        why = ", ".join(f"{n} {reason}" for reason, n in Counter(done.converted).most_common())
        text += (
            f"; {counted(done.converted_photos, 'photo')} converted ({why}), "
            f"saving {done.saved_bytes / MB:.1f} MB"
        )
    return text


def _kinds(failures: Mapping[str, int]) -> list[tuple[str, int]]:
    """Reasons that differ only in numbers or ids as one row: its count and one example."""
    rows: dict[str, tuple[str, int]] = {}
    for reason, count in failures.items():
        example, total = rows.get(kind_of(reason), (reason, 0))
        rows[kind_of(reason)] = (example, total + count)
    return sorted(rows.values(), key=lambda row: -row[1])
