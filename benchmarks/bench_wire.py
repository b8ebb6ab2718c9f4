"""The timing promises at the wire, as a strict server counts them, at default settings.

`batchtoon run` over N = 400 small photos at R = 20/s against a sandbox in its own process
(T = 1 s, P = 0.25 s, unscaled) that allows 1.1 x R submissions in any one second of arrival
(`--submit-window 22`, a strict sliding window: one more is 429), measured until the command
returns, gallery on (the default), and again with `--no-report` so the gallery's share shows:

- bound / wall, the bound being N/R + T + P;
- the throttles the server answered (each halves batchtoon's rate for a while);
- the smallest gap between two queries of one task, by the server's clock, over P;
- the client's CPU seconds and peak RSS.

With `--busy`, two CPU-bound processes (`python -c 'while 1: pass'`) run beside it, started
before the sandbox and ended after it: on two cores the client then gets a core at best.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    API_KEY,
    BenchError,
    ChildRun,
    Options,
    Row,
    SandboxProcess,
    Timeline,
    Timing,
    base_jpeg,
    batchtoon_command,
    bench_tempdir,
    cpu_note,
    remove_tree,
    run_child,
    write_images,
)

NAME = "wire"
TIMING = Timing("quick polling", processing=1.0, tick=0.25, rate=20.0, scale=1.0)
WINDOW = math.floor(1.1 * TIMING.real_rate)  # submissions the server allows in any one second
BUSY = 2  # CPU-bound processes beside the client with --busy
TARGETS = {False: 0.95, True: 0.85}  # bound / wall, idle and busy
MOST_THROTTLES = 2
LEAST_GAP = 0.8  # of the poll interval


@dataclass(frozen=True)
class Wire:
    run: ChildRun
    counters: dict[str, Any]
    timeline: Timeline


def run(options: Options) -> list[Row]:
    n = 120 if options.quick else 400
    with bench_tempdir(NAME) as tmp:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        with beside(BUSY if options.busy else 0):
            gallery = _measure(photos, tmp, n, ())
            bare = _measure(photos, tmp, n, ("--no-report",))
    return _rows(gallery, bare, n, options.busy)


@contextmanager
def beside(count: int) -> Iterator[None]:
    """`count` CPU-bound processes running until the block ends."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while 1: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _measure(photos: Path, tmp: Path, n: int, flags: tuple[str, ...]) -> Wire:
    out = tmp / "out"
    remove_tree(out)
    window = ("--submit-window", str(WINDOW))
    with SandboxProcess(
        tmp, processing=TIMING.processing, scale=TIMING.scale, extra=window
    ) as sandbox:
        argv = batchtoon_command(
            "run", str(photos), "--api-base", sandbox.base_url, "--out", str(out),
            "--rate", f"{TIMING.real_rate:g}", "--poll-interval", f"{TIMING.real_tick:g}",
            *flags,
        )  # fmt: skip
        env = {**os.environ, "AILAB_API_KEY": API_KEY, "BATCHTOON_COMPACT_JOURNAL": "0"}
        timeout = 120 + 10 * TIMING.bound(n)
        child = run_child(argv, timeout=timeout, env=env, watch=sandbox.alive)
        counters = sandbox.counters()
    child.check("batchtoon run")
    if counters["accepted"] != n or counters["downloads"] != n:
        raise BenchError(f"batchtoon ran, but the sandbox counted {counters} for {n} photos")
    timeline = Timeline.from_journal(out / ".batchtoon" / "journal.jsonl")
    remove_tree(out)
    return Wire(child, counters, timeline)


def _rows(gallery: Wire, bare: Wire, n: int, busy: bool) -> list[Row]:
    where = f"{BUSY} busy processes beside" if busy else "idle machine"
    setting = f"N = {n}, {TIMING.describe()}, default settings, {where}"
    bound, target = TIMING.bound(n), TARGETS[busy]
    ratio = bound / gallery.run.wall
    throttles = gallery.counters["throttled"]
    gap = _gap(gallery)
    bare_ratio = bound / bare.run.wall
    return [
        Row(
            NAME,
            f"bound / wall to the command's return, gallery on, {setting}",
            f"{ratio:.3f} (bound {bound:.2f} s, wall {gallery.run.wall:.2f} s)",
            f"≥ {target}",
            ratio >= target,
            f"client CPU {gallery.run.cpu:.1f} s, {cpu_note(gallery.run, n)}; journal: "
            + gallery.timeline.describe(n, TIMING.real_rate),
        ),
        Row(
            NAME,
            f"throttles from a server allowing {WINDOW} submissions in any 1 s, {setting}",
            f"{throttles} (with --no-report: {bare.counters['throttled']})",
            f"≤ {MOST_THROTTLES}",
            max(throttles, bare.counters["throttled"]) <= MOST_THROTTLES,
            f"{gallery.counters['submit_requests']} submissions for {n} photos",
        ),
        Row(
            NAME,
            f"smallest gap between two queries of one task / P (server's clock), {setting}",
            f"{gap:.3f} (with --no-report: {_gap(bare):.3f})",
            f"≥ {LEAST_GAP}",
            min(gap, _gap(bare)) >= LEAST_GAP,
            f"{gallery.counters['query_requests']:,} queries, at most "
            f"{gallery.counters['queries_per_task_max']} for one task",
        ),
        Row(
            NAME,
            f"bound / wall with --no-report (the gallery's share), {setting}",
            f"{bare_ratio:.3f} (wall {bare.run.wall:.2f} s: the gallery took "
            f"{gallery.run.wall - bare.run.wall:.2f} s)",
            note=f"client CPU {bare.run.cpu:.1f} s, {cpu_note(bare.run, n)}",
        ),
    ]


def _gap(wire: Wire) -> float:
    smallest = wire.counters["query_gap_min"]
    return math.inf if smallest is None else float(smallest) / TIMING.real_tick
