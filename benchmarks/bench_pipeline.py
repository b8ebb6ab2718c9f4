"""The pipeline at its physical limit: what limits a run when it is not the API's rate.

(a) The poll rate, sized from the work: R = 20/s, T = 1 s, P = 0.25 s, N = 400 with the
    *default* poll settings (no --poll-rate), against the bound N/R + T + P; side by side, the
    same with --poll-rate 10, the old fixed default, which capped completions at 10 tasks/s.
(b) The submit stage never starved: everyday photos (0.3-0.8 MP JPEG, PNG and WEBP, made from
    one textured picture) at R = 40/s against a sandbox with no account limit, so only the
    client can fall short: submissions/s over the submitting span, against R.
(c) A camera folder over a home uplink: 24 MP JPEGs through a sandbox whose uplink is a home
    connection's 10 Mbit/s (scaled with the timings by k = 0.1: 12.5 MB/s, R = 20/s, T = 1.5
    s, P = 0.5 s), with and without the shrink step (--max-short-side null): MB uploaded per
    photo, and wall time against max(N/R, bytes/uplink) + T + P.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .common import (
    Measured,
    Options,
    Row,
    Timing,
    base_jpeg,
    batchtoon_against,
    bench_tempdir,
    unique_variant,
    write_images,
)

NAME = "pipeline"
TARGET = 0.95
POLLING = Timing("quick polling", processing=1.0, tick=0.25, rate=20.0, scale=1.0)
EVERYDAY = Timing("a fast API", processing=0.2, tick=0.1, rate=40.0, scale=1.0)
CAMERA = Timing("the provider's timings", processing=15.0, tick=5.0, rate=2.0, scale=0.1)
HOME_UPLINK = 10e6 / 8  # bytes per second: a 10 Mbit/s home connection
MB = 1e6


def run(options: Options) -> list[Row]:
    quick = options.quick
    with bench_tempdir(NAME) as tmp:
        return [
            *_poll_rows(tmp, 120 if quick else 400),
            _everyday_row(tmp, 120 if quick else 400),
            *_camera_rows(tmp, 6 if quick else 24),
        ]


def _poll_rows(tmp: Path, n: int) -> list[Row]:
    photos = tmp / "poll"
    write_images(photos, n, base_jpeg())
    rows = []
    for poll_rate, label in ((None, "default poll settings"), (10.0, "--poll-rate 10 (old)")):
        measured = _against(POLLING, photos, tmp, n, poll_rate=poll_rate)
        ratio = POLLING.bound(n) / measured.run.wall
        target = f"≥ {TARGET}" if poll_rate is None else ""
        rows.append(
            Row(
                NAME,
                f"bound / wall, N = {n}, {POLLING.describe()}, {label}",
                f"{ratio:.3f} (bound {POLLING.bound(n):.2f} s, wall {measured.run.wall:.2f} s)",
                target,
                ratio >= TARGET if poll_rate is None else None,
                f"{measured.counters['query_requests']:,} queries for {n} tasks; journal: "
                + measured.timeline.describe(n, POLLING.real_rate),
            )
        )
    return rows


def _everyday_row(tmp: Path, n: int) -> Row:
    photos = _everyday(tmp / "everyday", n)
    measured = _against(EVERYDAY, photos, tmp, n, account_limit=False)
    span = measured.timeline.submitting
    per_s = (n - 1) / span if span else 0.0
    return Row(
        NAME,
        f"submissions/s, N = {n} everyday photos (0.3-0.8 MP JPEG/PNG/WEBP), "
        f"{EVERYDAY.describe()}, no account limit",
        f"{per_s:.1f}/s = {per_s / EVERYDAY.real_rate:.2f} of R",
        f"≥ {TARGET} of R",
        per_s / EVERYDAY.real_rate >= TARGET,
        f"mean upload {measured.counters['upload_size_mean'] / 1e3:.0f} KB; journal: "
        + measured.timeline.describe(n, EVERYDAY.real_rate),
    )


def _camera_rows(tmp: Path, n: int) -> list[Row]:
    photos = write_images(tmp / "camera", n, base_jpeg(6000, 4000, noise=6.0, quality=90))
    uplink = HOME_UPLINK / CAMERA.scale
    rows = []
    for shrink, flags in (
        ("with the shrink step", ()),
        ("without it", ("--max-short-side", "null")),
    ):
        measured = _against(
            CAMERA, photos[0].parent, tmp, n, uplink=uplink, extra=flags, account_limit=False
        )
        sent = measured.counters["upload_bytes"]
        bound = max(n / CAMERA.real_rate, sent / uplink) + CAMERA.real_processing + CAMERA.real_tick
        rows.append(
            Row(
                NAME,
                f"camera folder, N = {n} 24 MP JPEGs (6.4 MB), uplink 10 Mbit/s, "
                f"{CAMERA.describe()}, {shrink}",
                f"{sent / n / MB:.2f} MB uploaded per photo; wall {measured.run.wall:.1f} s, "
                f"bound {bound:.1f} s: {bound / measured.run.wall:.2f}",
                note=f"bytes/uplink {sent / uplink:.1f} s, N/R {n / CAMERA.real_rate:.1f} s; "
                f"client CPU {measured.run.cpu:.1f} s (preparation included)",
            )
        )
    return rows


def _against(
    timing: Timing,
    photos: Path,
    tmp: Path,
    n: int,
    *,
    poll_rate: float | None = None,
    account_limit: bool = True,
    uplink: float | None = None,
    extra: tuple[str, ...] = (),
) -> Measured:
    return batchtoon_against(
        timing, [photos], tmp, n=n, concurrency=8, poll_rate=poll_rate,
        timeout=120 + 10 * timing.bound(n), account_limit=account_limit, uplink=uplink,
        extra=extra,
    )  # fmt: skip


def _everyday(folder: Path, n: int) -> Path:
    """`n` photos of 0.3-0.8 MP, a third each JPEG, PNG and WEBP, each with its own bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    picture = Image.open(io.BytesIO(base_jpeg(1000, 800, noise=4.0, quality=95)))
    for index in range(n):
        width = int(rng.integers(640, 1000))
        height = int(width * rng.uniform(0.5, 0.8))
        image = picture.resize((width, height))
        image.putpixel((index % width, 0), (index % 256, index // 256 % 256, 7))  # its own bytes
        kind = ("JPEG", "PNG", "WEBP")[index % 3]
        out = io.BytesIO()
        image.save(out, kind, **({"quality": 88} if kind != "PNG" else {}))
        data = out.getvalue()
        if kind == "JPEG":
            data = unique_variant(data, index)
        (folder / f"photo{index:05d}.{kind.lower()}").write_bytes(data)
    return folder
