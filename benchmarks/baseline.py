"""The baseline: the per-task pattern the provider's SDK suggests, as a small client.

    AILAB_API_KEY=KEY python -m benchmarks.baseline FOLDER --api-base URL --out DIR \\
        --rate R --poll-interval P --concurrency C

Each photo holds one of C slots from start to finish: submit it (through one request rate R
shared by all slots, batchtoon's own `SharedRate`, so both clients meet the same limit), then
every P seconds ask about its task until the task is done, then download the result. The slot
is held while the task is processed: that waiting is what batchtoon's design takes out.

It uses batchtoon's `ApiClient` for the requests (the same wire format and the same aiohttp
cost per request), with no retries: the benchmark's sandbox injects no faults. It prints one
JSON line (`done`, `failed`, `errors`) and exits 0 once every photo is downloaded, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from batchtoon.errors import ApiError
from batchtoon.provider.api import ApiClient, TaskState
from batchtoon.provider.pacing import SharedRate

__all__ = ["Tally", "TaskFailed", "main", "run_baseline"]

MAX_QUERIES = 10_000  # per task: a task that never ends does not hold its slot forever
MAX_RESULT_BYTES = 50 * 1024 * 1024


class TaskFailed(Exception):
    """A task that ended without a result, or never ended."""


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few reasons


async def run_baseline(
    photos: Sequence[Path],
    *,
    api_base: str,
    api_key: str,
    out: Path,
    rate: float,
    poll_interval: float,
    concurrency: int,
    style: int = 0,
) -> Tally:
    slots = asyncio.Semaphore(concurrency)
    submit_rate = SharedRate(rate)
    tally = Tally()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        api = ApiClient(session, api_base, api_key)

        async def one(photo: Path) -> None:
            async with slots:
                try:
                    await _process(api, submit_rate, photo, out, poll_interval, style)
                except (ApiError, TaskFailed) as error:
                    tally.failed += 1
                    if len(tally.errors) < 5:
                        tally.errors.append(f"{photo.name}: {error}")
                else:
                    tally.done += 1

        await asyncio.gather(*(one(photo) for photo in photos))
    return tally


async def _process(
    api: ApiClient,
    submit_rate: SharedRate,
    photo: Path,
    out: Path,
    poll_interval: float,
    style: int,
) -> None:
    """Submit, wait for the task by polling it every `poll_interval` s, download."""
    data = await asyncio.to_thread(photo.read_bytes)
    await submit_rate.acquire()
    task = await api.submit(data, style, "JPEG")
    state = TaskState(0, "", "")
    for _ in range(MAX_QUERIES):
        await asyncio.sleep(poll_interval)
        state = await api.query(task.task_id)
        if state.done:
            break
    else:
        raise TaskFailed(f"task {task.task_id} not done after {MAX_QUERIES} queries")
    if not state.succeeded:
        raise TaskFailed(f"task {task.task_id} ended {state.status}")
    result = Result()
    await api.download(state.result_url, result, max_bytes=MAX_RESULT_BYTES)
    await asyncio.to_thread((out / f"{photo.stem}.{style}.jpg").write_bytes, result)


class Result(bytearray):
    """A result's bytes as they arrive (a `batchtoon.provider.api.Sink`)."""

    def write(self, chunk: bytes) -> None:
        self += chunk


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__)
    parser.add_argument("folder", type=Path, help="folder of .jpg photos (walked recursively)")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True, help="submissions per second")
    parser.add_argument("--poll-interval", type=float, required=True, help="seconds")
    parser.add_argument("--concurrency", type=int, default=3, help="slots")
    args = parser.parse_args(argv)
    key = os.environ.get("AILAB_API_KEY", "")
    if not key:
        parser.error("set AILAB_API_KEY")
    photos = sorted(args.folder.rglob("*.jpg"))
    args.out.mkdir(parents=True, exist_ok=True)
    tally = asyncio.run(
        run_baseline(
            photos,
            api_base=args.api_base,
            api_key=key,
            out=args.out,
            rate=args.rate,
            poll_interval=args.poll_interval,
            concurrency=args.concurrency,
        )
    )
    print(json.dumps({"done": tally.done, "failed": tally.failed, "errors": tally.errors}))
    return 0 if tally.failed == 0 and tally.done == len(photos) else 1


if __name__ == "__main__":
    sys.exit(main())
