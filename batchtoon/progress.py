"""What a person watching sees: tqdm bars fed from the engine's counters, and the summary.

The bars read the counters on their own tick, so the stages never call into the display.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from .poller import ticks

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Progress", "summary"]


class Progress:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        options: dict[str, Any] = {"unit": "img", "dynamic_ncols": True, "leave": True}
        self._bars = {
            name: tqdm(desc=f"{name:>10}", position=i, **options)
            for i, name in enumerate(("submitted", "finished", "downloaded"))
        }

    async def run(self) -> None:
        async for _ in ticks(0.25):
            self.refresh()

    def refresh(self) -> None:
        stats, rate = self._engine.stats, self._engine.submit_rate
        total = max(0, stats.found - stats.skipped - stats.failed)
        for name, bar in self._bars.items():
            bar.total = total
            bar.n = getattr(stats, name)
            bar.refresh()
        if rate.slowed:
            self._bars["submitted"].set_postfix_str(
                f"slowed by the API: {rate.rate:.2g}/{rate.max_rate:.2g} per s"
            )
        else:
            self._bars["submitted"].set_postfix_str("")

    def close(self) -> None:
        self.refresh()
        for bar in self._bars.values():
            bar.close()


def summary(engine: Engine) -> str:
    stats = engine.stats
    wall = time.monotonic() - stats.started
    per_minute = stats.downloaded / wall * 60 if wall > 0 else 0.0
    lines = [
        f"found {stats.found}, already done {stats.skipped}, submitted {stats.submitted}"
        f" (extra cost: {stats.extra} resubmitted), downloaded {stats.downloaded},"
        f" failed {stats.failed}",
        f"wall time {wall:.1f} s, {per_minute:.1f} images/min, {stats.retries} retries,"
        f" {engine.submit_rate.slowdowns + engine.poll_rate.slowdowns} slowdowns",
    ]
    if stats.failures:
        lines.append("failures:")
        for reason, count in sorted(stats.failures.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:>5} x {reason}")
    return "\n".join(lines)
