"""Start-up: the CPU a person's first commands cost, `batchtoon --version`, `batchtoon run
--help`, `batchtoon status` (of a small journal) and `batchtoon config`, each in a fresh
process (the console script of this environment), the median of `REPEATS` runs. The command
line loads no engine, HTTP client or Pillow for them (the public names and the commands'
modules load when first used), so the target holds on a busy machine.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .common import Options, Row, batchtoon_command, bench_tempdir, run_child

NAME = "startup"
TARGET = 0.15  # CPU seconds, `--version`
REPEATS = 7
JOURNAL_ITEMS = 100  # the journal `status` reads: refused photos, one record each


def run(options: Options) -> list[Row]:
    rows = []
    with bench_tempdir(NAME) as tmp:
        out = tmp / "out"
        _journal(out)
        commands = (
            (["--version"], TARGET),
            (["run", "--help"], None),
            (["status", "--out", str(out)], None),
            (["config", "--no-config"], None),
        )
        for args, target in commands:
            cpus = []
            for _ in range(3 if options.quick else REPEATS):
                child = run_child(batchtoon_command(*args), timeout=60, cwd=tmp)
                if child.returncode != 0:
                    raise RuntimeError(f"batchtoon {' '.join(args)} exited {child.returncode}")
                cpus.append(child.cpu)
            cpu = statistics.median(cpus)
            shown = " ".join(args[:2] if args[0] == "run" else args[:1])
            rows.append(
                Row(
                    NAME,
                    f"CPU of `batchtoon {shown}` (median of {len(cpus)})",
                    f"{cpu:.3f} s",
                    f"<= {target} s" if target else "",
                    None if target is None else cpu <= target,
                    "a fresh process each time, start-up included"
                    + (f"; a journal of {JOURNAL_ITEMS} items" if args[0] == "status" else ""),
                )
            )
    return rows


def _journal(out: Path) -> None:
    folder = out / ".batchtoon"
    folder.mkdir(parents=True)
    records = (
        {"v": 1, "t": i, "event": "rejected", "source": f"{i}.jpg", "style": 0, "reason": "tiny"}
        for i in range(JOURNAL_ITEMS)
    )
    (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
