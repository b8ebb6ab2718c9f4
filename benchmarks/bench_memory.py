"""Memory whatever the server sends: the peak RSS of `batchtoon run` while every download worker
(16, the default) fetches a hostile result at once: a chunked body of 96 MB with no
Content-Length. Each is held in memory up to `results.IN_MEMORY` (2 MiB), then streamed to its
part file; none is an image, so each ends refused after its one attempt. Side by side, the same
run with results of the usual size, for the baseline.

The sandbox runs in this process (on a thread of its own: only its Python API can inject an
endless result), batchtoon in a child process whose peak RSS `os.wait4` reports.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchtoon.sandbox import Sandbox

from .common import (
    API_KEY,
    ChildRun,
    Options,
    Row,
    base_jpeg,
    batchtoon_command,
    bench_tempdir,
    run_child,
    write_images,
)

NAME = "memory"
WORKERS = 16  # download.workers, the default
ENDLESS = 96 << 20  # bytes of each hostile result
TARGET_MIB = 150  # the README's figure for a busy run


def run(options: Options) -> list[Row]:
    n = 4 if options.quick else WORKERS
    with bench_tempdir(NAME) as tmp:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        usual = _run(photos, tmp / "usual", hostile=False)
        hostile = _run(photos, tmp / "hostile", hostile=True)
    peak = hostile.max_rss_kib / 1024
    return [
        Row(
            NAME,
            f"peak RSS, {n} downloads at once of a chunked {ENDLESS >> 20} MB result each "
            "(no Content-Length, not an image)",
            f"{peak:.0f} MiB (usual results: {usual.max_rss_kib / 1024:.0f} MiB)",
            f"≤ {TARGET_MIB} MiB",
            peak <= TARGET_MIB,
            f"{n} x {ENDLESS >> 20} MB streamed through; before results spooled to disk, 16 "
            "such downloads took the process to 598 MiB",
        )
    ]


def _run(photos: Path, out: Path, *, hostile: bool) -> ChildRun:
    with _sandbox(hostile) as base_url:
        argv = batchtoon_command(
            "run", str(photos), "--out", str(out), "--api-base", base_url, "-q", "--no-report",
            "--poll-interval", "0.05", "--rate", "100", "--retry-attempts", "1",
            "--max-result-bytes", str(ENDLESS * 2),
        )  # fmt: skip
        env = {**os.environ, "AILAB_API_KEY": API_KEY}
        return run_child(argv, timeout=600, env=env)


@contextmanager
def _sandbox(hostile: bool) -> Iterator[str]:
    """A sandbox on a thread of its own, answering every result download with an endless body
    if `hostile`; its base URL."""
    ready, stop = threading.Event(), threading.Event()
    address: list[str] = []

    async def serve() -> None:
        async with Sandbox(api_keys=(API_KEY,), time_scale=0.001, render="echo") as sandbox:
            if hostile:
                sandbox.inject("result", 200, body="endless", size=ENDLESS, times=10**6)
            address.append(sandbox.base_url)
            ready.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield address[0]
    finally:
        stop.set()
        thread.join(30)
