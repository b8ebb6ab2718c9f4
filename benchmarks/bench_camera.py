"""Camera photos through pre-flight: `preflight.check` with its default settings (fix on,
max_short_side 2048, quality 90) on what cameras and phones write, with one thread per core
(the engine's default `prepare.workers`), against the recipe it replaces.

(a) 24 MP JPEGs (6000x4000, a gradient with grain: ~6.4 MB at quality 90, like a camera's);
(b) 12 MP HEICs (4032x3024, the same kind of picture, 512 px tiles like a phone's, ~2.2 MB).
Every file has its own bytes (a JPEG comment, a trailing HEIF `free` box) and no cache is used:
every photo is prepared. Each measurement is run `REPEAT` times; the median run is reported,
with wall photos/s, CPU per photo (this process, all threads: libheif decodes with its own)
and MB read vs uploaded per photo. The old recipe, side by side: full decode,
`ImageOps.exif_transpose` (a copy even without rotation), LANCZOS into 5760x3240, quality 92.
Last, the resampling filter: CPU time and pixel difference against LANCZOS.
"""

from __future__ import annotations

import io
import os
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from batchtoon.images import shrink
from batchtoon.images.preflight import check
from batchtoon.settings.config import PrepareSettings

from .common import Options, Row, base_jpeg, bench_tempdir, write_images

NAME = "camera"
THREADS = os.cpu_count() or 1
TARGETS = {"jpeg": 8.0, "heic": 3.0}  # photos/s
HEIC_QUALITY = 60  # x265 at 60 gives ~2.2 MB for this picture: what a 12 MP phone HEIC weighs
FILTERS = ("LANCZOS", "BICUBIC", "BILINEAR", "BOX")

OLD_NOTE = {"heic": "; the old pre-flight refused HEIC: this is its fix recipe, had it read them"}

# One photo prepared: its bytes read, its upload's bytes, the upload's size.
Prepare = Callable[[Path], tuple[int, int, tuple[int, int]]]


@dataclass(frozen=True)
class Rate:
    photos_per_s: float
    cpu_per_photo: float  # seconds
    mb_in: float  # per photo
    mb_out: float
    size: tuple[int, int]  # of the last upload

    def describe(self) -> str:
        width, height = self.size
        return (
            f"{self.cpu_per_photo * 1000:.0f} ms CPU/photo; {self.mb_in:.2f} MB read -> "
            f"{self.mb_out:.2f} MB uploaded per photo ({width}x{height})"
        )


def run(options: Options) -> list[Row]:
    n_jpeg, n_heic, repeat = (6, 4, 1) if options.quick else (40, 24, 3)
    rows: list[Row] = []
    with bench_tempdir(NAME) as tmp:
        jpegs = write_images(tmp / "jpeg", n_jpeg, base_jpeg(6000, 4000, noise=6.0, quality=90))
        heics = _write_heics(tmp / "heic", n_heic)
        for kind, paths in (("jpeg", jpegs), ("heic", heics)):
            new = _median(repeat, paths, _new)
            old = _median(repeat, paths[: max(2, len(paths) // 4)], _old)  # ~1 s a photo
            rows += _rows(kind, len(paths), new, old)
    rows.append(_filter_row())
    return rows


def _rows(kind: str, n: int, new: Rate, old: Rate) -> list[Row]:
    what = {"jpeg": "24 MP JPEGs (6000x4000)", "heic": "12 MP HEICs (4032x3024)"}[kind]
    target = TARGETS[kind]
    return [
        Row(
            NAME,
            f"check(), {n} {what}, {THREADS} threads",
            f"{new.photos_per_s:.1f} photos/s",
            f">= {target:g} photos/s",
            new.photos_per_s >= target,
            new.describe() + f"; {new.photos_per_s / old.photos_per_s:.1f}x the old recipe",
            why="" if new.photos_per_s >= target else WHY_SLOW[kind],
        ),
        Row(
            NAME,
            f"old recipe, the same {what}, {THREADS} threads",
            f"{old.photos_per_s:.1f} photos/s",
            note=old.describe() + OLD_NOTE.get(kind, ""),
        ),
    ]


WHY_SLOW = {
    "jpeg": "A 24 MP JPEG costs ~0.1 s of CPU: the decode at 1/2 scale (~75 ms), the encode of "
    "3000x2000 at quality 90 (~35 ms), reading and hashing (~5 ms); two cores give ~18/s. "
    "Under that, other work had the CPU: see the load lines above.",
    "heic": "A HEIC has no reduced decode (a JPEG's DCT scaling): libde265 decodes every pixel, "
    "0.4-0.5 s of CPU for 12 MP at ~2 MB, 80% of a photo's cost; the rest is the resize to "
    "1536 (BILINEAR, ~70 ms) and the JPEG encode (~10 ms): two idle cores give ~4/s. Only a "
    "faster HEVC decoder helps; a busy machine (see the load lines above) shows up here.",
}


def _new(path: Path) -> tuple[int, int, tuple[int, int]]:
    prepared = check(path, PrepareSettings(), None)
    if not prepared.converted:
        raise ValueError(f"{path} was not converted")
    return prepared.original_bytes, len(prepared.data), prepared.size


def _old(path: Path) -> tuple[int, int, tuple[int, int]]:
    """The recipe before this pre-flight, as it was (less its second open of the original)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as original:
        image = ImageOps.exif_transpose(original)
    scale = min(1.0, shrink.MAX_LONG / max(image.size), shrink.MAX_SHORT / min(image.size))
    if scale < 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=92)
    return len(data), out.tell(), image.size


def _rate(paths: Sequence[Path], one: Prepare) -> Rate:
    cpu, start = _cpu(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, paths))
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    n = len(paths)
    return Rate(
        photos_per_s=n / seconds,
        cpu_per_photo=cpu / n,
        mb_in=sum(r[0] for r in results) / n / 1e6,
        mb_out=sum(r[1] for r in results) / n / 1e6,
        size=results[-1][2],
    )


def _median(repeat: int, paths: Sequence[Path], one: Prepare) -> Rate:
    rates = sorted((_rate(paths, one) for _ in range(repeat)), key=lambda r: r.photos_per_s)
    return rates[len(rates) // 2]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_heics(folder: Path, count: int) -> list[Path]:
    """`count` HEICs of one picture, each with its own bytes (a trailing `free` box)."""
    folder.mkdir(parents=True)
    picture = Image.open(io.BytesIO(base_jpeg(4032, 3024, noise=3.0, quality=95)))
    tile, pillow_heif.options.GRID_TILE_SIZE = pillow_heif.options.GRID_TILE_SIZE, 512
    try:
        out = io.BytesIO()
        pillow_heif.from_pillow(picture).save(
            out, quality=HEIC_QUALITY, enc_params={"preset": "ultrafast"}
        )
    finally:
        pillow_heif.options.GRID_TILE_SIZE = tile
    paths = []
    for index in range(count):
        mark = b"batchtoon benchmark photo %d" % index
        path = folder / f"photo{index:04d}.heic"
        path.write_bytes(out.getvalue() + (len(mark) + 8).to_bytes(4, "big") + b"free" + mark)
        paths.append(path)
    return paths


def _filter_row() -> Row:
    """Each filter's CPU time resizing 4032x3024 to 2048x1536, and its difference from LANCZOS."""
    source = Image.open(io.BytesIO(base_jpeg(4032, 3024, noise=3.0, quality=95)))
    source.load()
    size, results = (2048, 1536), {}
    for name in FILTERS:
        times = []
        for _ in range(3):
            start = time.thread_time()
            resized = source.resize(size, Image.Resampling[name])
            times.append(time.thread_time() - start)
        results[name] = (min(times), np.asarray(resized, dtype=np.float64))
    reference = results["LANCZOS"][1]
    parts = []
    for name, (seconds, pixels) in results.items():
        diff = np.abs(pixels - reference)
        psnr = 10 * np.log10(255**2 / max(float((diff**2).mean()), 1e-12))
        same = "" if name == "LANCZOS" else f" (mean |diff| {diff.mean():.2f}, {psnr:.1f} dB)"
        parts.append(f"{name} {seconds * 1000:.0f} ms{same}")
    chosen = shrink.FILTER.name
    return Row(
        NAME,
        "resampling 4032x3024 -> 2048x1536, one thread: CPU, and difference from LANCZOS",
        f"{chosen} (chosen) {results[chosen][0] * 1000:.0f} ms, "
        f"LANCZOS {results['LANCZOS'][0] * 1000:.0f} ms",
        note="; ".join(parts) + ". For scale, a quality-90 JPEG encode alone differs from its "
        f"source by {_jpeg_error(reference):.1f} dB PSNR: any filter over that is invisible",
    )


def _jpeg_error(pixels: np.ndarray) -> float:
    """PSNR of a quality-90 JPEG of `pixels` against them: the noise floor of any upload."""
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
    decoded = np.asarray(Image.open(out), dtype=np.float64)
    return float(10 * np.log10(255**2 / float(((decoded - pixels) ** 2).mean())))
