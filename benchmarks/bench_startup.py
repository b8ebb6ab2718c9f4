"""Start-up: the CPU a person's first commands cost, `batchtoon --version` and `batchtoon run
--help`, each in a fresh process (the console script of this environment), the median of
`REPEATS` runs. The command line loads no engine, HTTP client or Pillow for them (the public
names and the commands' modules load when first used), so the target holds on a busy machine.
"""

from __future__ import annotations

import statistics

from .common import Options, Row, batchtoon_command, run_child

NAME = "startup"
TARGET = 0.15  # CPU seconds, `--version`
REPEATS = 7


def run(options: Options) -> list[Row]:
    rows = []
    for args, target in ((["--version"], TARGET), (["run", "--help"], None)):
        cpus = []
        for _ in range(3 if options.quick else REPEATS):
            child = run_child(batchtoon_command(*args), timeout=60)
            if child.returncode != 0:
                raise RuntimeError(f"batchtoon {' '.join(args)} exited {child.returncode}")
            cpus.append(child.cpu)
        cpu = statistics.median(cpus)
        rows.append(
            Row(
                NAME,
                f"CPU of `batchtoon {' '.join(args)}` (median of {len(cpus)})",
                f"{cpu:.3f} s",
                f"<= {target} s" if target else "",
                None if target is None else cpu <= target,
                "a fresh process each time, start-up included",
            )
        )
    return rows
