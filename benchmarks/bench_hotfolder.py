"""The hot folder: how soon a photo dropped into a watched folder is a cartoon on disk.

`batchtoon run FOLDER --watch` against a sandbox in its own process (the provider's timings as
they are: PROCESSING seconds a task, polled every TICK); N photos dropped one at a time, each
written in CHUNKS pieces CHUNK_GAP seconds apart (as a camera or a share writes), the next
once the last is done. Measured per photo: the last byte written -> its `done` event (the
cartoon renamed into place and journaled), from `--events`. Its floor: settle + processing (a
photo must hold still `watch.settle` seconds, then be processed); its bound: settle +
processing + tick (the query that finds it done comes at most a tick late). With PROCESSING
1.5 s and a 1 s TICK the queries come 1 s and 2 s after the submission: about settle + 2 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from .common import (
    API_KEY,
    BenchError,
    Options,
    Row,
    SandboxProcess,
    base_jpeg,
    batchtoon_command,
    bench_tempdir,
)

NAME = "hotfolder"
SETTLE, PROCESSING, TICK = 2.0, 1.5, 1.0
CHUNKS, CHUNK_GAP = 4, 0.3  # each photo written in 4 pieces over 0.9 s


def run(options: Options) -> list[Row]:
    photos = 5 if options.quick else 20
    with bench_tempdir(NAME) as tmp, SandboxProcess(tmp, processing=PROCESSING, scale=1.0) as sb:
        folder, events = tmp / "booth", tmp / "events.jsonl"
        folder.mkdir()
        argv = batchtoon_command(
            "run", str(folder), "--watch", "--settle", f"{SETTLE:g}", "--idle-exit", "5",
            "--api-base", sb.base_url, "--out", str(tmp / "out"), "--quiet",
            "--poll-interval", f"{TICK:g}", "--events", str(events),
        )  # fmt: skip
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={**os.environ, "AILAB_API_KEY": API_KEY},
        )  # fmt: skip
        try:
            latencies = [
                _one(folder / f"shot{i:03d}.jpg", i, events, process) for i in range(photos)
            ]
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        raise BenchError(f"the watching run exited with {process.returncode}")
    floor, bound = SETTLE + PROCESSING, SETTLE + PROCESSING + TICK
    p95 = statistics.quantiles(latencies, n=20)[-1]
    what = f"last byte written -> cartoon on disk, N = {photos}, one at a time"
    note = (
        f"floor {floor:g} s = settle {SETTLE:g} + processing {PROCESSING:g}; bound + tick "
        f"{TICK:g}; each photo written in {CHUNKS} chunks {CHUNK_GAP:g} s apart"
    )
    target = f"{floor:g}..{bound:g} s"
    median = statistics.median(latencies)
    return [
        Row(NAME, f"{what}: median", f"{median:.2f} s", target, median <= bound, note),
        Row(NAME, f"{what}: p95", f"{p95:.2f} s", target, p95 <= bound),
    ]


def _one(path: Path, seed: int, events: Path, process: subprocess.Popen[bytes]) -> float:
    """Drop one photo, in chunks; the seconds from its last byte to its `done` event."""
    data = base_jpeg(640, 480, noise=8.0, seed=seed)
    piece = len(data) // CHUNKS + 1
    with path.open("wb") as file:
        for start in range(0, len(data), piece):
            if start:
                time.sleep(CHUNK_GAP)
            file.write(data[start : start + piece])
            file.flush()
    last_byte = os.stat(path).st_mtime  # the file system's own time of the last write
    return _done_at(str(path), events, process) - last_byte


def _done_at(photo: str, events: Path, process: subprocess.Popen[bytes]) -> float:
    """The time of `photo`'s done event (a benchmark may poll a file)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError("the watching run ended early")
        for line in events.read_text().splitlines() if events.exists() else ():
            event = json.loads(line)
            if event["event"] == "done" and event["photo"] == photo:
                return float(event["time"])
        time.sleep(0.02)
    raise BenchError(f"no cartoon of {photo} in 120 s")
