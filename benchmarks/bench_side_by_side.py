"""batchtoon side by side with the per-task pattern the provider's SDK suggests
(`benchmarks/baseline.py`): the same photos, sandbox settings, submit rate R (the same
`SharedRate`), processing time T, tick P, and the same concurrency c = 3 for both; each
against a fresh sandbox so that the request counts are each client's own."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .common import (
    API_KEY,
    PROVIDER,
    BenchError,
    ChildRun,
    Options,
    Row,
    SandboxProcess,
    Timing,
    base_jpeg,
    batchtoon_against,
    bench_tempdir,
    cpu_note,
    per_image,
    profiled,
    remove_tree,
    run_child,
    write_images,
)

NAME = "side-by-side"
SLOTS = 3  # c: the baseline's slots; batchtoon's --concurrency (uploads in flight)
TARGET = 5.0  # batchtoon at least this many times faster
POLL_RATE = 2000.0


def run(options: Options) -> list[Row]:
    # The baseline needs about N/c x (T + P) to finish: 200 photos take half a minute.
    n = 60 if options.quick else 200
    timing = PROVIDER
    with bench_tempdir(NAME) as tmp:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        ours = batchtoon_against(
            timing,
            [photos],
            tmp,
            n=n,
            concurrency=SLOTS,
            poll_rate=POLL_RATE,
            timeout=60 + 5 * timing.bound(n),
            profile=_profile(options, "batchtoon"),
        )
        theirs, counters = _baseline(timing, photos, tmp, n, _profile(options, "baseline"))
    ratio = theirs.wall / ours.run.wall
    setting = f"N = {n:,}, c = {SLOTS}, {timing.describe()}"
    queries = ours.counters["queries_per_task_max"]
    slot_time = theirs.wall * SLOTS / n
    return [
        Row(
            NAME,
            f"wall time, {setting}",
            f"batchtoon {ours.run.wall:.2f} s, baseline {theirs.wall:.2f} s: "
            f"batchtoon {ratio:.1f}x faster",
            f"≥ {TARGET:g}x",
            ratio >= TARGET,
            f"N = {n} rather than 2,000 so the baseline ends in about half a minute (it would "
            f"take about {slot_time * 2000 / SLOTS:.0f} s at 2,000); the bound N/R + T + P is "
            f"{timing.bound(n):.2f} s; the baseline holds each slot {slot_time:.2f} s per photo "
            f"(ceil(T/P) ticks of P plus its requests), batchtoon holds one only while uploading",
        ),
        Row(
            NAME,
            "requests per image, submit / query / download (same runs)",
            f"batchtoon {per_image(ours.counters, n)}; baseline {per_image(counters, n)}",
        ),
        Row(
            NAME,
            "queries per task, most (same runs)",
            f"batchtoon {queries}; baseline {counters['queries_per_task_max']}",
            f"batchtoon ≤ ceil(T/P) + 1 = {timing.max_queries}",
            queries <= timing.max_queries,
        ),
        Row(
            NAME,
            "client CPU and memory (same runs)",
            f"batchtoon {cpu_note(ours.run, n)}; baseline {cpu_note(theirs, n)}",
            note="both include interpreter start-up (about 0.6 s of CPU, mostly imports)",
        ),
    ]


def _profile(options: Options, client: str) -> Path | None:
    if options.profile_dir is None:
        return None
    return options.profile_dir / f"side-by-side-{client}.txt"


def _baseline(
    timing: Timing, photos: Path, tmp: Path, n: int, profile: Path | None
) -> tuple[ChildRun, dict[str, Any]]:
    out = tmp / "baseline-out"
    argv = [sys.executable, "-m", "benchmarks.baseline", str(photos)]
    argv += ["--out", str(out), "--rate", f"{timing.real_rate:g}"]
    argv += ["--poll-interval", f"{timing.real_tick:g}", "--concurrency", str(SLOTS)]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "AILAB_API_KEY": API_KEY}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    # The baseline's own floor: N/c slots of T + P each, plus a margin.
    timeout = 120 + 5 * n / SLOTS * (timing.real_processing + timing.real_tick)
    try:
        with SandboxProcess(
            tmp,
            processing=timing.processing,
            scale=timing.scale,
            submit_rate=timing.real_rate,
        ) as sandbox:
            full = [*argv, "--api-base", sandbox.base_url]
            if profile is not None:
                full = profiled(full, "benchmarks.baseline", profile)
            run = run_child(full, timeout=timeout, env=env, watch=sandbox.alive)
            run.check("the baseline")
            counters = sandbox.counters()
    finally:
        remove_tree(out)
    if counters["downloads"] != n:
        raise BenchError(f"the baseline ran, but the sandbox counted {counters} for {n} photos")
    return run, counters
