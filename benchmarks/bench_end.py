"""The end of a run and its stop: what the command still costs after its last result, and how
soon Ctrl-C gives the prompt back.

- `end`: N = 400 small photos (256x256) at the issue's default settings (R = 20/s, T = 1 s, a
  0.25 s tick, the gallery on): the time from the last `downloaded` record of the journal to
  the command's return; and the same with `--no-report`, for what the gallery still costs.
- `stop`: the same batch, SIGINT once half of it is downloaded: the time from the signal to
  the process's exit, against `STOP_GRACE` + 1 s.

The sandbox echoes each upload (so a result's thumbnail is its photo's), in its own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from batchtoon.pipeline.engine import STOP_GRACE

from .common import (
    API_KEY,
    BenchError,
    Options,
    Row,
    SandboxProcess,
    base_jpeg,
    batchtoon_command,
    bench_tempdir,
    run_child,
    write_images,
)

NAME = "end"
RATE, PROCESSING, TICK = 20.0, 1.0, 0.25
BEFORE = (
    "before thumbnails were made as results arrived (batchtoon source cf3d16d, the same busy "
    "2-core machine): 0.74 s here against 0.29 s; with 320x256 photos whose results differ "
    "(posterised), 1.8-5.0 s against 0.34-0.39 s"
)


def run(options: Options) -> list[Row]:
    photos = 100 if options.quick else 400
    with bench_tempdir(NAME) as tmp:
        folder = tmp / "photos"
        write_images(folder, photos, base_jpeg())
        return [
            _end(tmp, folder, photos, gallery=True),
            _end(tmp, folder, photos, gallery=False),
            _stop(tmp, folder, photos),
        ]


def _command(folder: Path, base_url: str, out: Path, *extra: str) -> list[str]:
    return batchtoon_command(
        "run", str(folder), "--api-base", base_url, "--out", str(out), "--quiet",
        "--rate", f"{RATE:g}", "--poll-interval", f"{TICK:g}", *extra,
    )  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "AILAB_API_KEY": API_KEY}


def _end(tmp: Path, folder: Path, photos: int, *, gallery: bool) -> Row:
    out = tmp / ("out-gallery" if gallery else "out-no-report")
    extra = () if gallery else ("--no-report",)
    with SandboxProcess(tmp, processing=PROCESSING, scale=1.0) as sandbox:
        argv = _command(folder, sandbox.base_url, out, *extra)
        child = run_child(argv, timeout=600, env=_env(), watch=sandbox.alive)
        returned = time.time()
    child.check("batchtoon run")
    after = returned - _last_download(out / ".batchtoon" / "journal.jsonl")
    what = "with the gallery" if gallery else "with --no-report"
    return Row(
        NAME,
        f"end of a run, {what}: last download -> the command's return, N = {photos}",
        f"{after:.2f} s",
        note=f"the whole run {child.wall:.1f} s" + (f"; {BEFORE}" if gallery else ""),
    )


def _stop(tmp: Path, folder: Path, photos: int) -> Row:
    out = tmp / "out-stop"
    journal = out / ".batchtoon" / "journal.jsonl"
    with SandboxProcess(tmp, processing=PROCESSING, scale=1.0) as sandbox:
        argv = _command(folder, sandbox.base_url, out)
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=_env(),
        )  # fmt: skip
        try:
            _wait_for_downloads(journal, photos // 2, process)
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 130:
        raise BenchError(f"the stopped run exited with {process.returncode}, not 130")
    bound = STOP_GRACE + 1.0
    return Row(
        NAME,
        f"Ctrl-C half-way through N = {photos}: the signal -> the process's exit",
        f"{took:.2f} s",
        f"≤ {bound:g} s",
        took <= bound,
        "gallery on (a stopped run leaves it for `batchtoon report`)",
    )


def _wait_for_downloads(journal: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    """Return once the journal holds `count` downloads (a benchmark may poll a file)."""
    deadline = time.monotonic() + 300
    while _downloads(journal) < count:
        if process.poll() is not None:
            raise BenchError("the run ended before it could be stopped")
        if time.monotonic() > deadline:
            raise BenchError(f"no {count} downloads in 300 s")
        time.sleep(0.05)


def _downloads(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"event":"downloaded"')
    except FileNotFoundError:
        return 0


def _last_download(journal: Path) -> float:
    records = (json.loads(line) for line in journal.read_text().splitlines() if line.strip())
    return max(float(record["t"]) for record in records if record["event"] == "downloaded")
