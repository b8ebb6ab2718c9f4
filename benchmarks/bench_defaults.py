"""Throughput at the defaults: `batchtoon run --rate 100 --poll-interval 0.5` (the API's tick P)
over N = 2,000 photos with no other pace set (no `--concurrency`, no `--poll-rate`: both sized
by batchtoon), against the bound N/R + T + P at the fast API's timing. The throughput benchmark
sets `--concurrency 32` and `--poll-rate 2000`; this one measures what a person who sets only
the rate gets."""

from __future__ import annotations

from .common import (
    FAST_API,
    Options,
    Row,
    base_jpeg,
    batchtoon_against,
    bench_tempdir,
    cpu_note,
    write_images,
)

NAME = "defaults"
TARGET = 0.95  # bound / wall


def run(options: Options) -> list[Row]:
    n = 300 if options.quick else 2000
    timing = FAST_API
    with bench_tempdir(NAME) as tmp:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        measured = batchtoon_against(
            timing, [photos], tmp, n=n, concurrency=None, poll_rate=None,
            timeout=60 + 5 * timing.bound(n),
        )  # fmt: skip
    run_, counters = measured.run, measured.counters
    bound = timing.bound(n)
    ratio = bound / run_.wall
    return [
        Row(
            NAME,
            f"bound / wall at the defaults, --rate {timing.real_rate:g} alone, N = {n:,}, "
            f"{timing.describe()}",
            f"{ratio:.3f} (bound {bound:.2f} s, wall {run_.wall:.2f} s)",
            f"≥ {TARGET}",
            ratio >= TARGET,
            f"batchtoon's own summary: {run_.engine_wall} s; concurrency and poll rate sized by "
            f"batchtoon; sandbox submit limit R, {counters['throttled']} throttled. Journal: "
            + measured.timeline.describe(n, timing.real_rate),
        ),
        Row(NAME, "client CPU and memory (same run)", cpu_note(run_, n)),
    ]
