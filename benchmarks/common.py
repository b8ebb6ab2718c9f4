"""What every benchmark shares: the sandbox as a separate process, a measured child process,
generated photos, the provider's timings scaled down, and the rows of the results table.

Measuring a child: `run_child` waits for exactly that child with `os.wait4`, which returns the
child's own resource usage (user and system CPU, peak RSS), its CPU including that of the
processes it started and reaped (a run's thumbnails' child). That is the per-child form of a
`getrusage(RUSAGE_CHILDREN)` delta around the wait, with two advantages: the sandbox (another
child, reaped only when it is stopped) can never be mixed in, and `ru_maxrss` is this child's
peak rather than the largest of every child ever reaped.
"""

from __future__ import annotations

import compileall
import datetime
import hashlib
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "API_KEY",
    "BENCH_DIR",
    "FAST_API",
    "PROVIDER",
    "BenchError",
    "ChildRun",
    "CpuSample",
    "Measured",
    "Options",
    "Row",
    "SandboxProcess",
    "Timeline",
    "Timing",
    "base_jpeg",
    "batchtoon_against",
    "batchtoon_command",
    "bench_tempdir",
    "cpu_note",
    "machine",
    "machine_load",
    "per_image",
    "profiled",
    "remove_tree",
    "run_batchtoon",
    "run_child",
    "source_fingerprint",
    "unique_variant",
    "write_images",
    "write_manifest",
]

API_KEY = "bench-key"
BENCH_DIR = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 30.0  # seconds for the sandbox to print its address
STOP_TIMEOUT = 15.0  # seconds for a process to end after SIGTERM before it is killed
ENGINE_WALL = re.compile(r"^time: +([0-9.]+) s", re.MULTILINE)


class BenchError(RuntimeError):
    """A benchmark could not run as set up (a crash or a timeout, not a slow result)."""


@dataclass(frozen=True)
class Options:
    quick: bool = False  # scaled-down sizes: a smoke run
    busy: bool = False  # two CPU-bound processes beside, where a benchmark measures that
    profile_dir: Path | None = None  # run the clients under pyinstrument, reports here


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    bench: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target
    note: str = ""
    why: str = ""  # for a missed target: what limits it, the evidence, what would fix it


def machine() -> dict[str, str]:
    return {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


@dataclass(frozen=True)
class CpuSample:
    busy: float  # CPU seconds the whole machine spent busy (all CPUs, steal excluded)
    steal: float  # CPU seconds the hypervisor gave to other machines
    ours: float  # CPU seconds of this process and its reaped children
    at: float  # monotonic seconds


def machine_load() -> CpuSample:
    """A sample to diff: how busy the machine was, and how much of that was this benchmark."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    busy = (user + nice + system + irq + softirq) / tick
    return CpuSample(busy, steal / tick, ours, time.monotonic())


def source_fingerprint() -> str:
    """Which batchtoon source a benchmark measured: the sha256 of every `batchtoon/**/*.py`
    (first 12 hex digits) and when the newest of them was modified. Others edit batchtoon/
    while benchmarks run; a client subprocess uses the source as it was when it started."""
    import batchtoon

    root = Path(batchtoon.__file__).resolve().parent
    digest = hashlib.sha256()
    newest = 0.0
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    when = datetime.datetime.fromtimestamp(newest).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{digest.hexdigest()[:12]} (newest file {when})"


def byte_compile_source() -> None:
    """Byte-compile batchtoon's modules, as `pip install` does for a wheel it installs. Where
    PYTHONDONTWRITEBYTECODE is set (this VM sets it), an editable checkout would otherwise
    compile every module it imports at each start, which no installed copy does: some 0.07 s
    of a 100,000-photo resume's CPU."""
    import batchtoon

    compileall.compile_dir(Path(batchtoon.__file__).resolve().parent, quiet=1)


@contextmanager
def bench_tempdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(
        prefix=f"batchtoon-bench-{name}-", ignore_cleanup_errors=True
    ) as folder:
        yield Path(folder)


# The provider's timings, scaled.


@dataclass(frozen=True)
class Timing:
    """Processing time T, poll tick P and submit rate R in the provider's (virtual) units, run
    `scale` times faster: real seconds = virtual x scale, real rates = virtual / scale."""

    label: str
    processing: float  # T, virtual seconds
    tick: float  # P, virtual seconds
    rate: float  # R, virtual submissions per second
    scale: float  # k, real seconds per virtual second

    @property
    def real_processing(self) -> float:
        return self.processing * self.scale

    @property
    def real_tick(self) -> float:
        return self.tick * self.scale

    @property
    def real_rate(self) -> float:
        return self.rate / self.scale

    def bound(self, n: int) -> float:
        """The fastest any client can go: N/R + T + P (real seconds)."""
        return n / self.real_rate + self.real_processing + self.real_tick

    @property
    def max_queries(self) -> int:
        """What a tick-based poller should need per task at most: ceil(T/P) + 1."""
        return math.ceil(self.processing / self.tick) + 1

    def describe(self) -> str:
        real = f"T = {self.real_processing:g} s, P = {self.real_tick:g} s, R = {self.real_rate:g}/s"
        if self.scale == 1:
            return f"{self.label}: {real} (unscaled)"
        return (
            f"{self.label}: T = {self.processing:g} s, P = {self.tick:g} s, R = {self.rate:g}/s "
            f"scaled by k = {self.scale:g} ({real})"
        )


# Processes.


def batchtoon_command(*args: str) -> list[str]:
    """The `batchtoon` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("batchtoon")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "batchtoon", *args]


def profiled(argv: list[str], module: str, report: Path) -> list[str]:
    """`argv` (which runs `module`) run under pyinstrument instead, its text report to `report`."""
    report.parent.mkdir(parents=True, exist_ok=True)
    profiler = [sys.executable, "-m", "pyinstrument", "-i", "0.002", "-r", "text"]
    rest = argv[1:] if argv[:3] != [sys.executable, "-m", module] else argv[3:]
    return [*profiler, "--no-color", "-o", str(report), "-m", module, *rest]


def _high_water(pid: int) -> int:
    """A live process's peak resident memory in KiB (Linux's VmHWM), or 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    """A live process's own children (Linux), none if unreadable."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(child) for child in children.read().split()]
    except (OSError, ValueError):
        return []


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: how long it took and what it cost."""

    returncode: int
    wall: float  # seconds, from spawn to exit
    user: float  # CPU seconds
    system: float
    max_rss_kib: int
    stdout: str
    stderr: str
    children_rss_kib: int = 0  # the largest VmHWM of a process it started (a thumbnails' child)

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def engine_wall(self) -> float | None:
        """The wall time batchtoon's own summary reports (from the engine's start to its end)."""
        found = ENGINE_WALL.search(self.stdout)
        return float(found.group(1)) if found else None

    def check(self, what: str) -> ChildRun:
        if self.returncode != 0:
            tail = (self.stderr.strip() or self.stdout.strip())[-800:]
            raise BenchError(f"{what} exited with {self.returncode}: {tail}")
        return self


def run_child(
    argv: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    watch: Callable[[], bool] | None = None,
) -> ChildRun:
    """Run `argv` to its end (killed after `timeout` s, or as soon as `watch()` turns false:
    the sandbox it talks to is gone), with its own CPU time and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        done, gone = threading.Event(), threading.Event()
        peak = [0, 0]  # KiB: the child's own high-water mark, and its children's, as last read

        def watchdog() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _high_water(proc.pid))
                for grandchild in _children(proc.pid):
                    peak[1] = max(peak[1], _high_water(grandchild))
                if watch is not None and not watch():
                    gone.set()
                    proc.kill()
                    return

        guard = threading.Thread(target=watchdog, daemon=True)
        guard.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            done.set()
            guard.join()
            if proc.returncode is None:  # interrupted while waiting: do not leave it running
                proc.kill()
                proc.wait()
        if gone.is_set():
            raise BenchError(f"the sandbox stopped while {Path(argv[0]).name} ran: not by us")
        if proc.returncode == -signal.SIGKILL and wall >= timeout:
            raise BenchError(f"{Path(argv[0]).name} took over {timeout:.0f} s and was killed")
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=proc.returncode,
            wall=wall,
            user=usage.ru_utime,
            system=usage.ru_stime,
            # ru_maxrss keeps the parent's peak from before exec: this process's size counts
            # against a child it spawns. The child's own VmHWM (its address space's high-water
            # mark, new at exec), read every 0.1 s, does not; it may miss the last 0.1 s.
            max_rss_kib=peak[0] or usage.ru_maxrss,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            children_rss_kib=peak[1],
        )


def run_batchtoon(
    sources: Sequence[Path | str],
    *,
    base_url: str,
    out: Path | str,
    rate: float,
    poll_interval: float,
    poll_rate: float | None,
    concurrency: int | None,
    timeout: float,
    config: Path | None = None,
    profile: Path | None = None,
    watch: Callable[[], bool] | None = None,
    extra: Sequence[str] = (),
    journal: Path | None = None,
    env: dict[str, str] | None = None,
) -> ChildRun:
    """`batchtoon run SOURCE... --quiet --no-report` against `base_url` (the gallery is
    measured on its own); it must exit 0 (all downloaded). `poll_rate` None: the default,
    sized from the work; `concurrency` None: the default, sized from the rate; `env`: more
    environment (an object store's endpoint and credentials)."""
    argv = batchtoon_command(
        "run",
        *(str(s) for s in sources),
        "--api-base",
        base_url,
        "--out",
        str(out),
        "--quiet",
        "--no-report",
        "--rate",
        f"{rate:g}",
        "--poll-interval",
        f"{poll_interval:g}",
        *extra,
    )
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if poll_rate is not None:
        argv += ["--poll-rate", f"{poll_rate:g}"]
    if config is not None:
        argv += ["--config", str(config)]
    if journal is not None:
        argv += ["--journal", str(journal)]
    if profile is not None:
        argv = profiled(argv, "batchtoon", profile)
    # The journal kept whole: its records' times are the run's timeline (`Timeline`).
    env = {**os.environ, **(env or {}), "AILAB_API_KEY": API_KEY, "BATCHTOON_COMPACT_JOURNAL": "0"}
    cwd = journal.parent if journal is not None else None
    return run_child(argv, timeout=timeout, env=env, cwd=cwd, watch=watch).check("batchtoon run")


class SandboxProcess:
    """`batchtoon sandbox` in its own process (echo renderer, loopback, a port the OS picks).

    Use it as a context manager; `counters()` reads `GET /sandbox/counters`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        processing: float,
        scale: float,
        submit_rate: float | None = None,
        seed: int = 1,
        uplink: float | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.argv = batchtoon_command(
            "sandbox",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--processing-time",
            f"{processing:g}",
            "--time-scale",
            f"{scale:g}",
            "--render",
            "echo",
            "--seed",
            str(seed),
        )
        if submit_rate is not None:
            self.argv += ["--submit-rate", f"{submit_rate:g}"]
        if uplink is not None:
            self.argv += ["--uplink", f"{uplink:g}"]
        self.argv += extra
        self.log = workdir / f"sandbox-{os.getpid()}-{id(self)}.log"
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            text = self.log.read_text(errors="replace")
            found = re.search(r"batchtoon sandbox at (http://\S+)", text)
            if found:
                self.base_url = found.group(1)
                return
            if self._proc.poll() is not None:
                raise BenchError(f"the sandbox exited with {self._proc.returncode}: {text[-800:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"the sandbox printed no address in {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def counters(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/sandbox/counters", timeout=30) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.unlink(missing_ok=True)


@dataclass(frozen=True)
class Timeline:
    """When things happened in a batchtoon run, from its journal's timestamps (the `t` field):
    the evidence for where a run lost time against its bound."""

    items: int
    submitting: float  # first to last `submitted` record, seconds
    to_success: tuple[float, float]  # submitted -> succeeded, p50 and p90
    to_download: tuple[float, float]  # succeeded -> downloaded, p50 and p90
    waiting: tuple[float, float]  # queued -> submitted (time in the upload queue), p50 and p90
    tail: float  # last `submitted` to last `downloaded`

    @classmethod
    def from_journal(cls, path: Path) -> Timeline:
        times: dict[str, dict[str, float]] = {}
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                if "key" in record and "t" in record:  # an `item` record has no time
                    times.setdefault(record["key"], {}).setdefault(record["event"], record["t"])
        done = [t for t in times.values() if {"queued", "submitted", "succeeded"} <= t.keys()]
        done = [t for t in done if "downloaded" in t]
        if not done:
            raise BenchError(f"no downloaded item in {path}")
        submitted = [t["submitted"] for t in done]

        def spread(start: str, end: str) -> tuple[float, float]:
            gaps = sorted(t[end] - t[start] for t in done)
            return gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.9)]

        return cls(
            items=len(done),
            submitting=max(submitted) - min(submitted),
            to_success=spread("submitted", "succeeded"),
            to_download=spread("succeeded", "downloaded"),
            waiting=spread("queued", "submitted"),
            tail=max(t["downloaded"] for t in done) - max(submitted),
        )

    def describe(self, n: int, rate: float) -> str:
        def pair(values: tuple[float, float]) -> str:
            return f"p50 {values[0]:.2f} s, p90 {values[1]:.2f} s"

        return (
            f"submitting took {self.submitting:.2f} s (N/R = {n / rate:.2f} s); "
            f"submitted -> succeeded {pair(self.to_success)}; "
            f"succeeded -> downloaded {pair(self.to_download)}; "
            f"queued -> submitted {pair(self.waiting)}; "
            f"last download {self.tail:.2f} s after the last submission"
        )


def per_image(counters: dict[str, Any], n: int) -> str:
    """Requests per image by kind: submit / query / download."""
    kinds = (counters["submit_requests"], counters["query_requests"], counters["downloads"])
    return " / ".join(f"{k / n:.2f}" for k in kinds)


# Photos.


def base_jpeg(
    width: int = 256, height: int = 256, *, noise: float = 0.0, quality: int = 85, seed: int = 0
) -> bytes:
    """A JPEG of a colour gradient; `noise` (grey levels) makes it compress like a photo."""
    xs = np.linspace(0, 255, width, dtype=np.float32)
    ys = np.linspace(0, 255, height, dtype=np.float32)
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[..., 0] = xs[None, :]
    pixels[..., 1] = ys[:, None]
    pixels[..., 2] = 96.0
    if noise:
        rng = np.random.default_rng(seed)
        pixels += rng.normal(0.0, noise, size=(height, width, 1)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def unique_variant(base: bytes, index: int) -> bytes:
    """`base` with a JPEG comment segment naming `index` after its start marker: the same
    picture, different bytes (a new sha256, so a new item for batchtoon and the API)."""
    if base[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    comment = b"batchtoon benchmark photo %d" % index
    return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


def write_images(folder: Path, count: int, base: bytes, *, per_folder: int = 1000) -> list[Path]:
    """`count` unique JPEGs made from `base`, `per_folder` to a subfolder (big folders are slow)."""
    paths = []
    for index in range(count):
        sub = folder / f"batch{index // per_folder:04d}"
        if index % per_folder == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"photo{index:07d}.jpg"
        path.write_bytes(unique_variant(base, index))
        paths.append(path)
    return paths


def write_manifest(manifest: Path, paths: Sequence[Path]) -> None:
    """A `.jsonl` manifest listing `paths` relative to its own folder."""
    with open(manifest, "w", encoding="utf-8") as out:
        for path in paths:
            out.write(json.dumps({"path": os.path.relpath(path, manifest.parent)}) + "\n")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# One batchtoon run against a fresh sandbox.

FAST_API = Timing("fast API", processing=2.0, tick=0.5, rate=100.0, scale=1.0)
PROVIDER = Timing("the provider's timings", processing=15.0, tick=5.0, rate=2.0, scale=0.02)


@dataclass(frozen=True)
class Measured:
    run: ChildRun
    counters: dict[str, Any]  # the sandbox's, for this run alone (a fresh sandbox)
    timeline: Timeline


def batchtoon_against(
    timing: Timing,
    sources: Sequence[Path | str],
    workdir: Path,
    *,
    n: int,
    concurrency: int | None,
    poll_rate: float | None,
    timeout: float,
    account_limit: bool = True,
    config: Path | None = None,
    profile: Path | None = None,
    uplink: float | None = None,
    extra: Sequence[str] = (),
    out: Path | str | None = None,
    env: dict[str, str] | None = None,
) -> Measured:
    """Start a sandbox with `timing` (its submit limit at R unless `account_limit` is False;
    its uplink, bytes/s, if given), run batchtoon at rate R and tick P over `sources` (n
    photos, with `extra` flags), and read what it did. `out` (default: a folder in `workdir`)
    may be a URL; the journal is then `workdir`'s."""
    out = workdir / "batchtoon-out" if out is None else out
    if isinstance(out, Path):
        journal = out / ".batchtoon" / "journal.jsonl"
        remove_tree(out)
    else:  # a URL: the journal, and batchtoon's own folder (in the working one), stay local
        journal = workdir / "journal.jsonl"
        journal.unlink(missing_ok=True)
    try:
        with SandboxProcess(
            workdir,
            processing=timing.processing,
            scale=timing.scale,
            submit_rate=timing.real_rate if account_limit else None,
            uplink=uplink,
        ) as sandbox:
            run = run_batchtoon(
                sources,
                base_url=sandbox.base_url,
                out=out,
                rate=timing.real_rate,
                poll_interval=timing.real_tick,
                poll_rate=poll_rate,
                concurrency=concurrency,
                timeout=timeout,
                config=config,
                profile=profile,
                watch=sandbox.alive,
                extra=extra,
                journal=None if isinstance(out, Path) else journal,
                env=env,
            )
            counters = sandbox.counters()
        if counters["accepted"] != n or counters["downloads"] != n:
            raise BenchError(f"batchtoon ran, but the sandbox counted {counters} for {n} photos")
        timeline = Timeline.from_journal(journal)
    finally:
        if isinstance(out, Path):
            remove_tree(out)
    return Measured(run, counters, timeline)


def cpu_note(run: ChildRun, n: int) -> str:
    return (
        f"{run.cpu / n * 1000:.2f} ms/image ({run.user:.1f} s user + {run.system:.1f} s system), "
        f"peak RSS {run.max_rss_kib / 1024:.0f} MiB"
    )
