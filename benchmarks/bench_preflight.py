"""Pre-flight rate: photos per second through `batchtoon.preflight.check` with 2 worker threads
(the engine's `prepare.workers` default: it runs `check` in that many threads at once), for
small photos, phone-size photos, and with `fix=True` for photos too large for the API.
The files are freshly written, so they are read from the page cache, not from the disk."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from batchtoon.preflight import check

from .common import BenchError, Options, Row, base_jpeg, bench_tempdir, write_images

NAME = "preflight"
WORKERS = 2  # the engine's default prepare.workers
DISTINCT_PHONE = 20  # phone-size files; the 10,000 paths are hard links to them
DEFAULT_RATE = 2.0  # the default submit rate: pre-flight must stay ahead of it


# Measured on this benchmark's 6000x4000 photo, one thread, the engine as of 2026-11-25 01:25.
WHY_FIX = (
    "With `--fix`, photos over the API's 5760x3240 limit cost about 0.75 s of CPU each (one "
    "thread: decode 143 ms, `ImageOps.exif_transpose` copying the image although it has no "
    "rotation 24 ms, the LANCZOS resize to 4860x3240 494 ms, the JPEG encode at quality 92 "
    "65 ms), and two threads on two cores get well under twice that rate (memory-bound: two "
    "72 MB images at once), so pre-flight, not the API, limits a batch of camera photos at "
    "the default R = 2/s. Fixes in batchtoon/preflight.py: resize with BICUBIC (370 ms) or "
    "BILINEAR (227 ms; no visible difference at a 0.81 scale, and the provider resizes the "
    "upload again anyway), skip `exif_transpose` when there is no orientation tag, and run "
    "fixes on `os.cpu_count()` threads rather than `prepare.workers` = 2; JPEG draft mode "
    "(decoding at 1/2 scale, 88 ms) helps only when the target is at most half the size."
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
                f"check(fix=True), {n_fix} unique 6000x4000 JPEGs ({len(big_base) / 1e6:.1f} MB) "
                "that must be downscaled (fewer photos: each takes about a second)",
                n_fix,
                seconds,
                f"{seconds * WORKERS / n_fix:.2f} s of a thread per photo: decode, resize "
                "(LANCZOS) to 4860x3240, re-encode, write to the cache",
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
        return check(path, fix=fix, cache=cache).fixed

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
