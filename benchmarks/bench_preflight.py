"""Pre-flight rate: photos per second through `batchtoon.images.preflight.check` with one worker
thread per core (the engine's `prepare.workers` default: it runs `check` in that many threads
at once), for small photos and phone-size photos sent as they are (`fix` off: read, hash, read
the header), and with the default settings for photos too large for the API (bench_camera.py
measures those, and HEICs, in more detail). The files are freshly written, so they are read from
the page cache, not from the disk."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from batchtoon.images.preflight import check
from batchtoon.settings.config import PrepareSettings

from .common import BenchError, Options, Row, base_jpeg, bench_tempdir, write_images

NAME = "preflight"
WORKERS = PrepareSettings().threads  # the engine's default: one per core
DISTINCT_PHONE = 20  # phone-size files; the 10,000 paths are hard links to them
DEFAULT_RATE = 2.0  # the default submit rate: pre-flight must stay ahead of it


WHY_FIX = (
    "Photos over the API's limits are decoded at 1/2 scale by JPEG DCT scaling, straight to "
    "3000x2000 (no resize), and re-encoded at quality 90: about 0.1-0.15 s of CPU each "
    "(bench_camera.py measures it, against the old full decode + LANCZOS at ~1.1 s). A rate "
    "under the submit rate here means other work took the CPU: see the load lines above."
)


def run(options: Options) -> list[Row]:
    n_small = 1000 if options.quick else 10_000
    n_phone = 1000 if options.quick else 10_000
    n_fix = 4 if options.quick else 50
    rows: list[Row] = []
    with bench_tempdir(NAME) as tmp:
        small = write_images(tmp / "small", n_small, base_jpeg())
        seconds = _check_all(small, fix=False, cache=None)
        rows.append(_row(f"check(), {n_small:,} unique 256x256 JPEGs (4 KB)", n_small, seconds))

        phone_base = base_jpeg(4032, 3024, noise=6.0, quality=90)
        distinct = write_images(tmp / "phone-files", DISTINCT_PHONE, phone_base)
        phone = _links(tmp / "phone", distinct, n_phone)
        seconds = _check_all(phone, fix=False, cache=None)
        mb = len(phone_base) / 1e6
        rows.append(
            _row(
                f"check(), {n_phone:,} phone photos (4032x3024 JPEG, {mb:.1f} MB; hard links "
                f"to {DISTINCT_PHONE} files)",
                n_phone,
                seconds,
                f"{n_phone * mb / seconds:.0f} MB/s read and hashed",
            )
        )

        big_base = base_jpeg(6000, 4000, noise=6.0, quality=90)
        big = write_images(tmp / "big", n_fix, big_base)
        seconds = _check_all(big, fix=True, cache=tmp / "prepared")
        rows.append(
            _row(
                f"check(), {n_fix} unique 6000x4000 JPEGs ({len(big_base) / 1e6:.1f} MB) "
                "that must be downscaled",
                n_fix,
                seconds,
                f"{seconds * WORKERS / n_fix:.2f} s of a thread per photo: decode at 1/2 "
                "scale (3000x2000: no resize), re-encode, write to the cache",
                why=WHY_FIX if n_fix / seconds < DEFAULT_RATE else "",
            )
        )
    return rows


def _row(what: str, n: int, seconds: float, extra: str = "", why: str = "") -> Row:
    rate = n / seconds
    note = f"{rate / DEFAULT_RATE:.1f}x the default submit rate of {DEFAULT_RATE:g}/s"
    return Row(
        NAME,
        f"{what}, {WORKERS} threads",
        f"{rate:,.1f} photos/s ({seconds:.2f} s)",
        note=f"{note}; {extra}" if extra else note,
        why=why,
    )


def _check_all(paths: Sequence[Path], *, fix: bool, cache: Path | None) -> float:
    """Seconds to check every path with WORKERS threads; every photo must pass."""

    def one(path: Path) -> bool:
        return check(path, PrepareSettings(fix=fix), cache).converted

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        fixed = list(pool.map(one, paths))
    seconds = time.perf_counter() - start
    if fixed.count(fix) != len(paths):
        raise BenchError(f"pre-flight: {fixed.count(fix)} of {len(paths)} photos as expected")
    return seconds


def _links(folder: Path, targets: Sequence[Path], count: int) -> list[Path]:
    """`count` paths under `folder`, hard links to `targets` in turn."""
    paths = []
    for index in range(count):
        sub = folder / f"batch{index // 1000:04d}"
        if index % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"photo{index:07d}.jpg"
        os.link(targets[index % len(targets)], path)
        paths.append(path)
    return paths
