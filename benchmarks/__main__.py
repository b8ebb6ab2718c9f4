"""`python -m benchmarks [--quick] [--busy] [--only NAME[,NAME]] [--profile] [--output FILE]`

Runs the benchmarks, prints one markdown table, and writes it (with the machine it ran on and,
for every missed target, what limits it) to benchmarks/results.md, or results-quick.md for a
`--quick` smoke run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import (
    bench_camera,
    bench_client_cost,
    bench_defaults,
    bench_end,
    bench_gallery,
    bench_hotfolder,
    bench_memory,
    bench_million,
    bench_pipeline,
    bench_preflight,
    bench_replay,
    bench_side_by_side,
    bench_startup,
    bench_storage,
    bench_throughput,
    bench_wire,
)
from .common import (
    BENCH_DIR,
    BenchError,
    CpuSample,
    Options,
    Row,
    byte_compile_source,
    machine,
    machine_load,
    source_fingerprint,
)

# Benchmarks that run batchtoon's code in this process (the others start a fresh process).
IN_PROCESS = {bench_preflight.NAME, bench_gallery.NAME, bench_camera.NAME}  # measured here

BENCHMARKS: dict[str, Callable[[Options], list[Row]]] = {
    bench_throughput.NAME: bench_throughput.run,
    bench_defaults.NAME: bench_defaults.run,
    bench_side_by_side.NAME: bench_side_by_side.run,
    bench_client_cost.NAME: bench_client_cost.run,
    bench_replay.NAME: bench_replay.run,
    bench_preflight.NAME: bench_preflight.run,
    bench_gallery.NAME: bench_gallery.run,
    bench_camera.NAME: bench_camera.run,
    bench_pipeline.NAME: bench_pipeline.run,
    bench_memory.NAME: bench_memory.run,
    bench_storage.NAME: bench_storage.run,
    bench_startup.NAME: bench_startup.run,
    bench_end.NAME: bench_end.run,
    bench_wire.NAME: bench_wire.run,
    bench_hotfolder.NAME: bench_hotfolder.run,
    bench_million.NAME: bench_million.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the sandbox, the clients and the temporary folders go too.
    signal.signal(signal.SIGTERM, _terminate)
    names = _selected(args.only)
    options = Options(
        quick=args.quick,
        busy=args.busy,
        profile_dir=BENCH_DIR / "profiles" if args.profile else None,
    )
    output = args.output or BENCH_DIR / ("results-quick.md" if args.quick else "results.md")
    started = time.monotonic()
    rows: list[Row] = []
    sources: dict[str, str] = {}
    byte_compile_source()
    at_start = source_fingerprint()  # what this process imported, for in-process benchmarks
    loads: dict[str, tuple[CpuSample, CpuSample]] = {}
    failed = False
    for name in names:
        print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
        sources[name] = at_start if name in IN_PROCESS else source_fingerprint()
        _wait_for_quiet(name)
        begun = machine_load()
        try:
            rows += BENCHMARKS[name](options)
        except (BenchError, OSError, KeyError, ValueError, RuntimeError) as error:
            failed = True
            traceback.print_exc()
            rows.append(Row(name, "did not run to the end", f"error: {error}"))
        loads[name] = (begun, machine_load())
        print(f"benchmarks: {name} took {loads[name][1].at - begun.at:.0f} s", file=sys.stderr)
    report = render(rows, names, options, time.monotonic() - started, sources, loads)
    print(report)
    output.write_text(report, encoding="utf-8")
    print(f"benchmarks: written to {output}", file=sys.stderr)
    return 1 if failed else 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


QUIET_SHARE = 0.10  # of the machine's CPU used by others: below this, a benchmark may start
QUIET_WAIT = 180.0  # seconds to wait for that at most; then it starts anyway (and says so)


def _others_share(seconds: float) -> float:
    """The share of the machine's CPU that other processes used over the next `seconds`."""
    before = machine_load()
    time.sleep(seconds)
    after = machine_load()
    other = (after.busy - before.busy) - (after.ours - before.ours)
    return max(0.0, other) / ((after.at - before.at) * (os.cpu_count() or 1))


def _wait_for_quiet(name: str) -> None:
    """Other sessions may share this machine: let their bursts pass before measuring."""
    deadline = time.monotonic() + QUIET_WAIT
    while (share := _others_share(2.0)) > QUIET_SHARE:
        if time.monotonic() > deadline:
            print(f"benchmarks: {name}: the machine is still {share:.0%} busy", file=sys.stderr)
            return
        print(f"benchmarks: {name}: waiting, the machine is {share:.0%} busy", file=sys.stderr)
        time.sleep(3.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="batchtoon's benchmarks (see README.md here)"
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes: a smoke run")
    parser.add_argument(
        "--busy",
        action="store_true",
        help="two CPU-bound processes beside the client, started and ended by the benchmarks "
        "that measure a busy machine (wire)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the clients under pyinstrument; text reports in benchmarks/profiles/ "
        "(the profiler slows them down: the timings are then not comparable)",
    )
    parser.add_argument("--output", type=Path, help="where to write the table")
    return parser


def _selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    names = [name.strip() for group in only for name in group.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        known = ", ".join(BENCHMARKS)
        raise SystemExit(f"benchmarks: unknown benchmark {unknown[0]!r} (known: {known})")
    return [name for name in BENCHMARKS if name in names]


def render(
    rows: Sequence[Row],
    names: Sequence[str],
    options: Options,
    seconds: float,
    sources: dict[str, str],
    loads: dict[str, tuple[CpuSample, CpuSample]],
) -> str:
    host = machine()
    mode = "quick (scaled-down sizes: a smoke run)" if options.quick else "full"
    if options.busy:
        mode += ", two CPU-bound processes beside the client (where a benchmark says so)"
    if options.profile_dir is not None:
        mode += ", profiled (the timings are not comparable)"
    lines = [
        "# batchtoon benchmarks",
        "",
        f"- machine: `{host['platform']}`, {host['cpus']} CPUs, Python {host['python']}",
        f"- date: {host['date']}",
        f"- mode: {mode}; benchmarks: {', '.join(names)}; took {seconds:.0f} s",
        "- command: `python -m benchmarks"
        + (" --quick" if options.quick else "")
        + (" --busy" if options.busy else "")
        + ("" if list(names) == list(BENCHMARKS) else f" --only {','.join(names)}")
        + "` (benchmarks/README.md says what each one measures)",
        *_source_lines(sources),
        *_load_lines(loads),
        "",
        "| benchmark | measurement | value | target | met | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        cells = (row.bench, row.measure, row.value, row.target, met, row.note)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if options.quick:
        lines += [
            "",
            "The targets are set for the full sizes: at quick sizes the fixed costs (start-up, "
            "T + P) weigh far more, so a miss here is not a finding.",
        ]
    missed = [row for row in rows if row.met is False]
    if missed:
        lines += ["", "## Missed targets: what limits them, and what would fix it"]
        seen: set[str] = set()
        for row in missed:
            why = row.why or "(not analysed)"
            text = "The same as above." if why in seen else why
            seen.add(why)
            lines += ["", f"### {row.bench}: {row.measure}", "", text]
    findings = [row for row in rows if row.met is None and row.why]
    if findings:
        lines += ["", "## Other findings"]
        for row in findings:
            lines += ["", f"### {row.bench}: {row.measure}", "", row.why]
    return "\n".join(lines) + "\n"


def _source_lines(sources: dict[str, str]) -> list[str]:
    """Which batchtoon source each benchmark measured (others may edit it meanwhile)."""
    if len(set(sources.values())) == 1:
        return [f"- batchtoon source measured: {next(iter(sources.values()))}"]
    lines = ["- batchtoon source measured (it changed during the run), at the start of each:"]
    return lines + [f"  - {name}: {source}" for name, source in sources.items()]


def _load_lines(loads: dict[str, tuple[CpuSample, CpuSample]]) -> list[str]:
    """CPU the machine spent on things other than the benchmarks while each one ran: anything
    much above zero (other sessions' tests, say) can slow the clients down."""
    lines = ["- CPU used outside these benchmarks while each ran (other processes; VM steal):"]
    for name, (before, after) in loads.items():
        other = (after.busy - before.busy) - (after.ours - before.ours)
        wall = after.at - before.at
        cores = os.cpu_count() or 1
        share = max(0.0, other) / (wall * cores) if wall > 0 else 0.0
        flag = " (enough to disturb it)" if share > 0.05 else ""
        lines.append(
            f"  - {name}: {max(0.0, other):.1f} CPU-s over {wall:.0f} s "
            f"({share:.0%} of the machine){flag}; steal {after.steal - before.steal:.1f} CPU-s"
        )
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
