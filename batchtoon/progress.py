"""What a person watching sees: tqdm bars fed with the run's `Snapshot`s, and the summary.

The bars are a `Batch` progress callback: the stages never call into the display.
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from .batch import Snapshot, Summary

__all__ = ["Bars", "summary"]


class Bars:
    def __init__(self) -> None:
        options: dict[str, Any] = {"unit": "img", "dynamic_ncols": True, "leave": True}
        self._bars = {
            name: tqdm(desc=f"{name:>10}", position=i, **options)
            for i, name in enumerate(("submitted", "finished", "downloaded"))
        }

    def __call__(self, snapshot: Snapshot) -> None:
        total = max(0, snapshot.found - snapshot.skipped - snapshot.failed)
        for name, bar in self._bars.items():
            bar.total = total
            bar.n = getattr(snapshot, name)
            bar.refresh()
        slowed = snapshot.submit_rate < snapshot.max_submit_rate * 0.999
        self._bars["submitted"].set_postfix_str(
            f"slowed by the API: {snapshot.submit_rate:.2g}/{snapshot.max_submit_rate:.2g} per s"
            if slowed
            else ""
        )

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def summary(done: Summary) -> str:
    per_minute = done.downloaded / done.wall * 60 if done.wall > 0 else 0.0
    lines = [
        f"found {done.found}, already done {done.skipped}, submitted {done.submitted}"
        f" (extra cost: {done.extra} resubmitted), downloaded {done.downloaded},"
        f" failed {done.failed}",
        f"wall time {done.wall:.1f} s, {per_minute:.1f} images/min, {done.retries} retries,"
        f" {done.slowdowns} slowdowns",
    ]
    if done.left:
        lines.append(f"left for the next run: {done.left} paid tasks that could not be followed")
    if done.failures:
        lines.append("failures:")
        for reason, count in sorted(done.failures.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:>5} x {reason}")
    return "\n".join(lines)
