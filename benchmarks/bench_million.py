"""A million photos on one machine (issue 22): what a batch costs the `batchtoon` process as it
grows, at default settings (the gallery on, `--concurrency` at its default), and what a
finished batch costs to resume and to show.

Real runs, at N = 10,000 and 100,000 (`--quick`: 1,000 and 5,000): a `.jsonl` manifest of tiny
distinct photos (256x256, the smallest side the tool takes, each its own bytes) run against the
sandbox in its own process (`--render echo`, processing time 0, a short tick, rates far above
what the machine does: `bench_client_cost.FLAT_OUT`), from the photos' folder (`cd` there,
`batchtoon run photos.jsonl --out out`, as a person would). For each:

- the run: client CPU per photo, peak RSS (VmHWM) and RSS per photo above start-up, where
  start-up is the peak RSS of the same command over N = 10 photos;
- the journal as the run left it (bytes and lines per photo), and the largest it was while the
  run went on (its size read every 0.1 s: the journal before an end-of-run compaction);
- the resume of the finished batch (the same command again, a fresh sandbox whose counters must
  show no submission, query or download): wall, CPU, peak RSS;
- `batchtoon status --json` and `batchtoon status` of the finished journal: CPU, peak RSS.

Synthetic finished batches, at N = 1,000,000 (not with `--quick`) and, to validate the
generator, at the larger real size: `write_finished` lays out on disk what a real run of this
setting leaves (see its docstring) without paying a run: the same distinct photos and manifest,
a version-1 journal with each photo's `queued`, `submitted`, `succeeded` and `downloaded`
records in the shapes a run writes them, the results, the output location's record (claims and
results, `locations/provenance.py`) and the gallery's thumbnails and their memo. Then the resume
(fresh sandbox, nothing may be paid), `status --json` and `status` are measured on it. The
resume is run twice and the second measured (the first given in the notes): a tool that
compacts, converts or indexes a version-1 journal once does it in the first, as a real run of
it would have at its end (batchtoon reads every photo once then, to record its fingerprint:
minutes at a million). The synthetic resume at the larger real size is compared with the
real one's: they must agree.

Before and after all of it, a fixed piece of work (`YARDSTICK`) is timed in a fresh
interpreter: this machine's speed at that hour, which each figure is read against.

Only the console script is run: nothing of batchtoon is imported (the generator writes the
journal format, version 1, which the tool keeps reading).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .bench_client_cost import FLAT_OUT, POLL_RATE
from .common import (
    API_KEY,
    BenchError,
    ChildRun,
    Options,
    Row,
    SandboxProcess,
    base_jpeg,
    batchtoon_command,
    bench_tempdir,
    run_child,
    unique_variant,
    write_images,
    write_manifest,
)

NAME = "million"
SIZES = (10_000, 100_000)
QUICK_SIZES = (1_000, 5_000)
SYNTHETIC = 1_000_000  # the synthetic finished batch (not with --quick)
STARTUP_N = 10  # photos of the run whose peak RSS is taken as start-up
# A fixed piece of work whose CPU tells this machine's speed at the hour of a measurement (this
# VM's changed by a quarter within an hour): 200,000 `stat`s, then pure Python. Each figure is
# read against it; its system part moves with a run's, its user part with the interpreter's.
YARDSTICK = "import os\nfor _ in range(200_000): os.stat('.')\nsum(i * i for i in range(3_000_000))"
STYLE, STYLE_NAME = 0, "vintage-comic"  # the default style: its number and its name in outputs
PER_FOLDER = 1000  # photos per subfolder (common.write_images)
MiB = 1 << 20

# The acceptance (CPU seconds and VmHWM of the batchtoon process).
RSS_PER_PHOTO = 150  # bytes a photo above start-up, at 100k and 1M
RSS_100K = 70  # MiB
RSS_1M = 220  # MiB
RESUME_100K = 2.0  # CPU seconds
RESUME_1M = 15.0  # CPU seconds
STATUS_1M = 3.0  # CPU seconds
STATUS_1M_RSS = 300  # MiB
CPU_PER_PHOTO = 1.5  # ms, at 100k
JOURNAL_PER_PHOTO = 250  # bytes, after compaction
AGREE = 1.5  # the synthetic and the real resume's CPU within this factor of each other

# A synthetic batch's resume is run twice, the second measured, unless the first took over
# this many CPU seconds: that far above the targets, a one-time conversion explains nothing.
RUN_TIMEOUT = 3 * 3600.0  # seconds, one real run (100k on old code: about 10 minutes)
RESUME_TIMEOUT = 1200.0  # seconds, one resume: past that it is killed, a lower bound reported


def run(options: Options) -> list[Row]:
    sizes = QUICK_SIZES if options.quick else SIZES
    targets = not options.quick  # the figures are for the full sizes
    rows: list[Row] = []
    speed = [_yardstick()]
    with bench_tempdir(NAME) as tmp:
        start_rss = _startup_rss(tmp / "startup")
    rows.append(
        Row(
            NAME,
            f"start-up: peak RSS of the same `batchtoon run` over N = {STARTUP_N} photos",
            f"{start_rss / MiB:.0f} MiB",
            note="the baseline for 'RSS per photo above start-up' below",
        )
    )
    real_resume: dict[int, ChildRun] = {}
    # The real runs' folders are removed only once the last has run: on a file system with no
    # journal (this VM's ext4), creating a file scans past every inode freed in the last
    # minutes: a 2,000-photo run just after 30,000 files were removed took 3.8-5.6 s of system
    # time, against 1.4-1.6 s (`results-million.md`, stop 30).
    with contextlib.ExitStack() as folders:
        for n in sizes:
            figures = _real(folders.enter_context(bench_tempdir(NAME)), n)
            real_resume[n] = figures.resume
            rows += _real_rows(figures, n, start_rss, targets=targets and n == 100_000)
    check = sizes[-1]
    with bench_tempdir(NAME) as tmp:
        synthetic = _synthetic(tmp, check)
    rows += _synthetic_rows(synthetic, check, start_rss, real_resume[check], targets=False)
    if not options.quick:
        with bench_tempdir(NAME) as tmp:
            start = time.perf_counter()
            write_compacted(tmp, SYNTHETIC)
            synthetic = _finished(tmp, SYNTHETIC, None, time.perf_counter() - start)
        rows += _synthetic_rows(synthetic, SYNTHETIC, start_rss, None, targets=True)
    speed.append(_yardstick())
    rows.append(
        Row(
            NAME,
            "this machine's speed: CPU of a fixed piece of work (`YARDSTICK`) before and after",
            " / ".join(
                f"{child.cpu:.2f} s ({child.user:.2f} user + {child.system:.2f} system)"
                for child in speed
            ),
            note="the figures above are read against it: a slower hour takes more of both",
        )
    )
    return rows


def _yardstick() -> ChildRun:
    """`YARDSTICK` run in a fresh interpreter: what it cost."""
    return run_child([sys.executable, "-c", YARDSTICK], timeout=120).check("the yardstick")


# Measurements.


@dataclass
class Figures:
    run: ChildRun | None  # the real run (None: a synthetic batch)
    journal_bytes: int  # as the run (or the generator) left it
    journal_lines: int
    journal_peak: int  # the largest the journal was seen during the run
    resume: ChildRun
    resume_counters: dict[str, Any]
    resume_killed: bool
    after_resume_bytes: int  # the journal after the resume (it may compact it)
    after_resume_lines: int
    status_json: ChildRun
    status_plain: ChildRun
    done: int | None  # `status --json`'s count of results done, if it says
    made_in: float = 0.0  # seconds the generator took
    first_resume: ChildRun | None = None  # synthetic: the first resume (the one measured is
    # the second: a tool that rewrites or indexes an old journal once does so in the first)


def _run_argv(base_url: str) -> list[str]:
    """`batchtoon run photos.jsonl --out out` at default settings but for the rates and the
    tick (the gallery on, `--concurrency` not given), run from the photos' folder."""
    return batchtoon_command(
        "run",
        "photos.jsonl",
        "--out",
        "out",
        "--quiet",
        "--api-base",
        base_url,
        "--rate",
        f"{FLAT_OUT.real_rate:g}",
        "--poll-interval",
        f"{FLAT_OUT.real_tick:g}",
        "--poll-rate",
        f"{POLL_RATE:g}",
    )


def _env() -> dict[str, str]:
    return {**os.environ, "AILAB_API_KEY": API_KEY}


def _run(folder: Path, *, timeout: float, journal: Path | None = None) -> _Batchtoon:
    """The command once, against a fresh sandbox; with `journal`, its largest size meanwhile."""
    peak = [0]

    with SandboxProcess(folder, processing=0.0, scale=1.0) as sandbox:

        def watch() -> bool:
            if journal is not None:
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], journal.stat().st_size)
            return sandbox.alive()

        argv = _run_argv(sandbox.base_url)
        killed = False
        try:
            child = run_child(argv, timeout=timeout, env=_env(), cwd=folder, watch=watch)
        except BenchError as error:
            if "was killed" not in str(error):
                raise
            killed = True
            child = ChildRun(-9, timeout, 0.0, 0.0, 0, "", str(error))
        if not killed:
            child.check("batchtoon run")
        counters = sandbox.counters()
    return _Batchtoon(child, counters, peak[0], killed)


@dataclass
class _Batchtoon:
    child: ChildRun
    counters: dict[str, Any]
    journal_peak: int
    killed: bool


def _startup_rss(folder: Path) -> int:
    folder.mkdir()
    write_manifest(folder / "photos.jsonl", write_images(folder / "photos", STARTUP_N, base_jpeg()))
    return _run(folder, timeout=300).child.max_rss_kib * 1024


def _journal(folder: Path) -> Path:
    return folder / "out" / ".batchtoon" / "journal.jsonl"


def _lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
            count += chunk.count(b"\n")
    return count


def _status(folder: Path, *flags: str) -> ChildRun:
    argv = batchtoon_command("status", "--out", "out", *flags)
    return run_child(argv, timeout=RESUME_TIMEOUT, env=_env(), cwd=folder).check("status")


def _finished(folder: Path, n: int, first: _Batchtoon | None, made_in: float) -> Figures:
    """The resume and the status of the finished batch in `folder`."""
    journal = _journal(folder)
    size, lines = journal.stat().st_size, _lines(journal)
    resume = _run(folder, timeout=RESUME_TIMEOUT)
    first_resume = None
    if first is None and not resume.killed:
        if _paid(resume.counters):
            raise BenchError(f"the first resume of the synthetic batch paid: {resume.counters}")
        first_resume, resume = resume.child, _run(folder, timeout=RESUME_TIMEOUT)
    status_json = _status(folder, "--json")
    status_plain = _status(folder)
    done = None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        done = int(json.loads(status_json.stdout)["results"]["done"])
    return Figures(
        run=first.child if first else None,
        journal_bytes=size,
        journal_lines=lines,
        journal_peak=max(first.journal_peak if first else 0, size),
        resume=resume.child,
        resume_counters=resume.counters,
        resume_killed=resume.killed,
        after_resume_bytes=journal.stat().st_size,
        after_resume_lines=_lines(journal),
        status_json=status_json,
        status_plain=status_plain,
        done=done,
        made_in=made_in,
        first_resume=first_resume,
    )


def _real(folder: Path, n: int) -> Figures:
    write_manifest(folder / "photos.jsonl", write_images(folder / "photos", n, base_jpeg()))
    first = _run(folder, timeout=RUN_TIMEOUT, journal=_journal(folder))
    paid = first.counters
    if paid["accepted"] != n or paid["downloads"] != n:
        raise BenchError(f"batchtoon ran, but the sandbox counted {paid} for {n} photos")
    return _finished(folder, n, first, 0.0)


def _synthetic(folder: Path, n: int) -> Figures:
    start = time.perf_counter()
    write_finished(folder, n)
    return _finished(folder, n, None, time.perf_counter() - start)


# Rows.


def _paid(counters: dict[str, Any]) -> int:
    return int(counters["submit_requests"] + counters["query_requests"] + counters["downloads"])


def _cpu(child: ChildRun) -> str:
    return f"{child.cpu:.2f} s CPU ({child.user:.2f} user + {child.system:.2f} system)"


def _mib(child: ChildRun) -> float:
    return child.max_rss_kib / 1024


def _resume_row(f: Figures, what: str, n: int, target: float | None) -> Row:
    paid = _paid(f.resume_counters)
    if f.resume_killed:
        value = f"> {f.resume.wall:.0f} s wall: killed (a lower bound)"
        met: bool | None = False if target is not None else None
    else:
        value = f"{f.resume.wall:.2f} s wall, {_cpu(f.resume)}, peak RSS {_mib(f.resume):.0f} MiB"
        met = (f.resume.cpu < target and paid == 0) if target is not None else None
    counters = f.resume_counters
    first = ""
    if f.first_resume is not None:
        value = "second " + value
        first = (
            f"; the first resume (of the generated version-1 journal): "
            f"{f.first_resume.wall:.2f} s wall, {_cpu(f.first_resume)}, peak RSS "
            f"{_mib(f.first_resume):.0f} MiB"
        )
    return Row(
        NAME,
        f"{what}: resume of the finished batch (the same command again, nothing to do)",
        value,
        f"< {target:g} s CPU, nothing paid" if target is not None else "",
        met,
        f"sandbox: {counters['submit_requests']} submissions, {counters['query_requests']} "
        f"queries, {counters['downloads']} downloads; "
        f"{f.resume.cpu / n * 1e6:.0f} µs CPU a photo; journal after it: "
        f"{f.after_resume_bytes / n:.0f} B/photo ({f.after_resume_lines / n:.2f} lines/photo)"
        + first,
    )


def _status_rows(f: Figures, what: str, n: int, targets: bool) -> list[Row]:
    status = f.status_json
    met = None
    if targets:
        met = status.cpu < STATUS_1M and _mib(status) < STATUS_1M_RSS
    done = "" if f.done is None else f"; it says {f.done:,} results done"
    return [
        Row(
            NAME,
            f"{what}: `batchtoon status --json` of the finished journal",
            f"{_cpu(status)}, peak RSS {_mib(status):.0f} MiB",
            f"< {STATUS_1M:g} s CPU, < {STATUS_1M_RSS} MiB" if targets else "",
            met,
            f"{status.wall:.2f} s wall{done}",
        ),
        Row(
            NAME,
            f"{what}: `batchtoon status` (plain) of the finished journal",
            f"{_cpu(f.status_plain)}, peak RSS {_mib(f.status_plain):.0f} MiB",
            note=f"{f.status_plain.wall:.2f} s wall",
        ),
    ]


def _journal_row(f: Figures, what: str, n: int, during: bool) -> Row:
    per = f.journal_bytes / n
    note = f"{f.journal_bytes / 1e6:.1f} MB, {f.journal_lines:,} lines"
    if during:
        note += (
            f"; the largest it was during the run: {f.journal_peak / n:.0f} B/photo "
            f"({f.journal_peak / 1e6:.1f} MB; larger than at the end only if the run compacted it)"
        )
    return Row(
        NAME,
        f"{what}: journal on disk as the run left it"
        if during
        else f"{what}: journal as generated (version 1; at 1M compacted)",
        f"{per:.0f} B/photo ({f.journal_lines / n:.2f} lines/photo)",
        f"≤ {JOURNAL_PER_PHOTO} B/photo" if during else "",
        per <= JOURNAL_PER_PHOTO if during else None,
        note,
    )


def _real_rows(f: Figures, n: int, start_rss: int, *, targets: bool) -> list[Row]:
    assert f.run is not None
    what = f"N = {n:,}, real run"
    ms = f.run.cpu / n * 1000
    above = (f.run.max_rss_kib * 1024 - start_rss) / n
    mib = _mib(f.run)
    rows = [
        Row(
            NAME,
            f"{what}: client CPU a photo, whole run (default settings, gallery on)",
            f"{ms:.2f} ms ({_cpu(f.run)})",
            f"≤ {CPU_PER_PHOTO:g} ms" if targets else "",
            ms <= CPU_PER_PHOTO if targets else None,
            f"{f.run.wall:.0f} s wall, {n / f.run.wall:.0f} photos/s; sandbox: processing 0, "
            f"--rate {FLAT_OUT.real_rate:g} --poll-interval {FLAT_OUT.real_tick:g} "
            f"--poll-rate {POLL_RATE:g}",
        ),
        Row(
            NAME,
            f"{what}: peak RSS of the run",
            f"{mib:.0f} MiB, {above:.0f} B/photo above start-up",
            f"≤ {RSS_PER_PHOTO} B/photo above start-up, < {RSS_100K} MiB" if targets else "",
            (above <= RSS_PER_PHOTO and mib < RSS_100K) if targets else None,
            "VmHWM of the batchtoon process alone; its thumbnails' child process (whose CPU "
            f"the run's includes) peaked at {f.run.children_rss_kib / 1024:.0f} MiB",
        ),
        _journal_row(f, what, n, during=True),
        _resume_row(f, what, n, RESUME_100K if targets else None),
        *_status_rows(f, what, n, targets=False),
    ]
    return rows


def _synthetic_rows(
    f: Figures, n: int, start_rss: int, real: ChildRun | None, *, targets: bool
) -> list[Row]:
    what = f"N = {n:,}, synthetic finished batch"
    rows = [_journal_row(f, what, n, during=False)]
    resume = _resume_row(f, what, n, RESUME_1M if targets else None)
    if targets and not f.resume_killed:
        mib = _mib(f.resume)
        above = (f.resume.max_rss_kib * 1024 - start_rss) / n
        rows.append(resume)
        rows.append(
            Row(
                NAME,
                f"{what}: peak RSS of the resume",
                f"{mib:.0f} MiB, {above:.0f} B/photo above start-up",
                f"≤ {RSS_PER_PHOTO} B/photo above start-up, < {RSS_1M} MiB",
                above <= RSS_PER_PHOTO and mib < RSS_1M,
                "the acceptance's figure is for a run of a million; this is the one measured",
            )
        )
    elif real is not None:
        ratio = f.resume.cpu / real.cpu if real.cpu else float("inf")
        agree = 1 / AGREE <= ratio <= AGREE and not f.resume_killed
        rows.append(
            Row(
                NAME,
                resume.measure,
                resume.value,
                f"within {AGREE:g}x of the real resume's CPU",
                agree,
                f"{ratio:.2f}x the real resume ({_cpu(real)}, {real.max_rss_kib / 1024:.0f} MiB); "
                + resume.note,
            )
        )
    else:
        rows.append(resume)
    if f.done is not None and f.done != n:
        raise BenchError(f"status says {f.done} of the {n} synthetic photos are done")
    rows += _status_rows(f, what, n, targets=targets)
    rows[0] = Row(
        rows[0].bench,
        rows[0].measure,
        rows[0].value,
        note=rows[0].note + f"; the whole batch generated in {f.made_in:.0f} s",
    )
    return rows


# The synthetic finished batch.


def write_compacted(folder: Path, n: int) -> None:
    """Lay out in `folder` what a run of batchtoon as it is now leaves once all `n` photos are
    done and its journal compacted, the form a million-photo resume meets after the first:
    `photos.jsonl` and `photos/batchNNNN/photoNNNNNNN.jpg` (each folder's photos hard links
    of one JPEG: a resume compares a photo's fingerprint, not its bytes; `PER_FOLDER` a
    folder), their results `out/photos/batchNNNN/photoNNNNNNN.vintage-comic.jpg` (hard links
    too), the page `out/index.html` (written after the journal, as a run writes it), and
    `out/.batchtoon/journal.jsonl` compacted: `journal`, `totals`, `folders`, then one `item`
    record a photo, each target with its photo's fingerprint, which only batchtoon's own
    `fingerprint` makes (the one thing of batchtoon this imports)."""
    from batchtoon.images.preflight import fingerprint

    out, picture = folder / "out", base_jpeg()
    (out / ".batchtoon").mkdir(parents=True)
    folders = [f"photos/batch{b:04d}/" for b in range((n + PER_FOLDER - 1) // PER_FOLDER)]
    seen = []
    with open(folder / "photos.jsonl", "w", encoding="utf-8") as manifest:
        for number, name in enumerate(folders):
            (folder / name).mkdir(parents=True)
            (out / name).mkdir(parents=True)
            photo, result = folder / f"photo{number}.jpg", folder / f"result{number}.jpg"
            photo.write_bytes(picture)
            result.write_bytes(picture)
            for i in range(number * PER_FOLDER, min(n, (number + 1) * PER_FOLDER)):
                os.link(photo, folder / name / f"photo{i:07d}.jpg")
                os.link(result, out / name / f"photo{i:07d}.{STYLE_NAME}.jpg")
                manifest.write(json.dumps({"path": f"{name}photo{i:07d}.jpg"}) + "\n")
            seen.append(fingerprint(photo))  # (after its last link: the links change its ctime)
    head = [
        {"v": 1, "t": time.time(), "event": "journal", "id": uuid.uuid4().hex},
        {"v": 2, "event": "totals", "sent": n * len(picture), "saved": 0, "out": "out"},
        {"v": 2, "event": "folders", "folders": folders},
    ]
    with open(out / ".batchtoon" / "journal.jsonl", "w", encoding="utf-8") as journal:
        journal.writelines(json.dumps(record, separators=(",", ":")) + "\n" for record in head)
        for i in range(n):
            number = i // PER_FOLDER
            target = [f"{folders[number]}photo{i:07d}.{STYLE_NAME}", [number, f"photo{i:07d}.jpg"]]
            key = f"{hashlib.sha256(str(i).encode()).hexdigest()}:{STYLE}"
            item = {
                "v": 2, "event": "item", "key": key, "state": "downloaded",
                "targets": [[*target, seen[number]]], "ext": "jpg", "subs": 1,
            }  # fmt: skip
            journal.write(json.dumps(item, separators=(",", ":")) + "\n")
    (out / "index.html").write_text(
        '<!doctype html><meta name="generator" content="batchtoon"><title>batchtoon</title>\n'
    )


def write_finished(folder: Path, n: int, *, seed: int = 22) -> None:
    """Lay out in `folder` what `batchtoon run photos.jsonl --out out` (run there, default
    style, the gallery on, against the echo sandbox) leaves once all `n` photos are done:

    - `photos/batchNNNN/photoNNNNNNN.jpg`, distinct 256x256 JPEGs (`common.write_images`), and
      `photos.jsonl` listing them: the same sources as a real run's, with their own sha256;
    - the results `out/photos/batchNNNN/photoNNNNNNN.vintage-comic.jpg`: the echo sandbox
      returns the upload, which the tool sends without the photo's comment segment, so every
      result is the base picture's bytes; each folder's results are hard links of one file
      (a result is checked by its size; ext4 allows 65,000 links to a file);
    - `out/.batchtoon/journal.jsonl`: a `journal` record with the journal's id, then for each
      photo `queued`, `submitted`, `succeeded` and `downloaded` in the fields and key order a
      run writes them (version 1), interleaved as a run with a few dozen photos in flight;
    - the output location's record: `names/<base>.json` (the claim: photo, style, journal id,
      host, the journal's absolute path) and `made/<sha256>.0.json` (name, size, sha256,
      source), in `json.dumps`'s default spacing as the tool writes them;
    - the gallery's thumbnails `thumbs/<name>.jpg` (named by the first 12 base32 digits of the
      shown file's sha256; one thumbnail per distinct photo, one for the shared result; hard
      links of one file, the picture being the same) and their memo `thumbs/hashes.json`
      (absolute path -> [size, mtime_ns, name]), so the resume makes none again.
    """
    rng = random.Random(seed)
    base = base_jpeg()
    result_sha = hashlib.sha256(base).hexdigest()
    photos = write_images(folder / "photos", n, base, per_folder=PER_FOLDER)
    write_manifest(folder / "photos.jsonl", photos)
    out = folder / "out"
    record = out / ".batchtoon"
    journal = record / "journal.jsonl"
    thumbs = record / "thumbs"
    for sub in (record / "made", thumbs):
        sub.mkdir(parents=True, exist_ok=True)
    journal_id = uuid.uuid4().hex
    claim_tail = {"journal": journal_id, "host": socket.gethostname(), "path": str(journal)}
    thumb = _thumbnail(base)
    result_thumb = _content_name(base)
    (thumbs / f"{result_thumb}.jpg").write_bytes(thumb)
    memo: list[tuple[str, list[Any]]] = []
    shas: list[str] = []
    sizes: list[int] = []
    first_output = first_thumb = out
    for index, photo in enumerate(photos):
        source = photo.relative_to(folder).as_posix()
        stem = source.rpartition(".")[0]
        name = f"{stem}.{STYLE_NAME}.jpg"
        output = out / name
        data = unique_variant(base, index)
        sha = hashlib.sha256(data).hexdigest()
        shas.append(sha)
        sizes.append(len(data))
        if index % PER_FOLDER == 0:  # one file a folder for the results and the thumbnails
            output.parent.mkdir(parents=True, exist_ok=True)
            (record / "names" / stem).parent.mkdir(parents=True, exist_ok=True)
            first_output, first_thumb = output, thumbs / f".seed-{index}"
            output.write_bytes(base)
            first_thumb.write_bytes(thumb)
        else:
            os.link(first_output, output)
        photo_thumb = _content_name(data)
        os.link(first_thumb, thumbs / f"{photo_thumb}.jpg")
        claim = {"photo": sha, "style": STYLE, **claim_tail}
        _write_json(record / "names" / f"{stem}.{STYLE_NAME}.json", claim)
        made = {"name": name, "size": len(base), "sha256": result_sha, "source": source}
        _write_json(record / "made" / f"{sha}.{STYLE}.json", made)
        for path, thumb_name in ((photo, photo_thumb), (output, result_thumb)):
            stat = path.stat()
            memo.append((str(path.absolute()), [stat.st_size, stat.st_mtime_ns, thumb_name]))
    for seed_file in thumbs.glob(".seed-*"):
        seed_file.unlink()
    with open(thumbs / "hashes.json", "w", encoding="utf-8") as file:
        file.write("{")
        compact = (",", ":")
        file.write(
            ",".join(f"{json.dumps(k)}:{json.dumps(v, separators=compact)}" for k, v in memo)
        )
        file.write("}")
    with open(journal, "w", encoding="utf-8") as file:
        for line in _journal_records(
            photos, shas, sizes, folder, journal_id, len(base), result_sha, rng
        ):
            file.write(line)


def _write_json(path: Path, content: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(json.dumps(content))


def _content_name(data: bytes) -> str:
    """A thumbnail's name: the first 12 base32 digits of the shown file's sha256, lower case."""
    return base64.b32encode(hashlib.sha256(data).digest()).decode("ascii")[:12].lower()


def _thumbnail(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB")
    small.thumbnail((256, 256))
    encoded = io.BytesIO()
    small.save(encoded, "JPEG", quality=80)
    return encoded.getvalue()


IN_FLIGHT = 64  # photos between their `queued` and their `downloaded` record


def _journal_records(
    photos: list[Path],
    shas: list[str],
    sizes: list[int],
    folder: Path,
    journal_id: str,
    size: int,
    result_sha: str,
    rng: random.Random,
) -> Iterator[str]:
    """The journal's lines: the photos in groups of `IN_FLIGHT`, each group queued, then
    submitted, then succeeded, then downloaded (a run's records, in time order)."""
    clock = time.time() - len(photos) / 200.0

    def line(event: str, **fields: Any) -> str:
        nonlocal clock
        clock += 0.00125
        stamped = {"v": 1, "t": round(clock, 3), "event": event, **fields}
        return json.dumps(stamped, separators=(",", ":")) + "\n"

    yield line("journal", id=journal_id)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    for start in range(0, len(photos), IN_FLIGHT):
        group = range(start, min(start + IN_FLIGHT, len(photos)))
        sources = {i: photos[i].relative_to(folder).as_posix() for i in group}
        bases = {i: f"{sources[i].rpartition('.')[0]}.{STYLE_NAME}" for i in group}
        for i in group:
            yield line("queued", key=f"{shas[i]}:{STYLE}", source=sources[i], output=bases[i])
        for i in group:
            yield line(
                "submitted",
                key=f"{shas[i]}:{STYLE}",
                task_id=f"{rng.getrandbits(128):032x}",
                sent=size,
                saved=sizes[i] - size,
                sources=[sources[i]],
            )
        for i in group:
            token = "".join(rng.choice(alphabet) for _ in range(24))
            yield line(
                "succeeded",
                key=f"{shas[i]}:{STYLE}",
                result_url=f"http://127.0.0.1:9/results/{token}",
                expires_at=clock + 86400.0 + rng.random() / 1000,
                sources=[sources[i]],
            )
        for i in group:
            yield line(
                "downloaded",
                key=f"{shas[i]}:{STYLE}",
                source=sources[i],
                output=f"out/{bases[i]}.jpg",
                size=size,
                sha256=result_sha,
            )
