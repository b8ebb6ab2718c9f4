"""A real `batchtoon run` subprocess, SIGKILLed at several moments and resumed each time."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from harness import make_photos, outputs

from batchtoon.sandbox import Sandbox

CONCURRENCY = 4


def command(sandbox: Sandbox, source: Path | str, out: Path | str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "batchtoon", "run", str(source), "--out", str(out),
        "--api-base", sandbox.base_url, "--quiet", "--poll-interval", "0.02",
        "--rate", "300", "--concurrency", str(CONCURRENCY), *extra,
    ]  # fmt: skip


async def start(
    sandbox: Sandbox,
    source: Path | str,
    out: Path | str,
    *extra: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    env = {**os.environ, **(env or {}), "AILAB_API_KEY": sandbox.api_key}
    return await anyio.open_process(
        command(sandbox, source, out, *extra),
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


async def kill_and_resume(
    sandbox: Sandbox,
    source: Path | str,
    out: Path | str,
    photos: int,
    moments: list[tuple[str, int]],
    **where: Any,
) -> None:
    """`batchtoon run` SIGKILLed at each moment (`(accepted|downloads, count)`), then run to its
    end: exit 0, and no more extra submissions than the uploads in flight at each kill."""
    counters = sandbox.counters
    for kind, count in moments:
        process = await start(sandbox, source, out, **where)
        try:
            with anyio.fail_after(60):
                await sandbox.until(partial(_reached, sandbox, kind, count))
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
    final = await start(sandbox, source, out, **where)
    with anyio.fail_after(120):
        await final.wait()
    assert final.returncode == 0, await _text(final)
    extra = counters.accepted_total - photos
    # each kill may lose the task ids of the uploads in flight at that moment, no more
    assert 0 <= extra <= CONCURRENCY * len(moments), counters.accepted


async def crash_and_resume(tmp_path: Path, photos: int, moments: list[tuple[str, int]]) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    make_photos(source, photos)
    async with Sandbox(time_scale=0.001, processing_time=(20, 80), render="echo") as sandbox:
        await kill_and_resume(sandbox, source, out, photos, moments)
    assert len(outputs(out)) == photos  # every photo, once, and no partial file left in <out>
    assert not (out / ".batchtoon" / "tmp").exists()  # nor in the work folder
    status = await anyio.run_process(
        [sys.executable, "-m", "batchtoon", "status", "--out", str(out), "--json"]
    )
    assert json.loads(status.stdout)["results"]["done"] == photos


def _reached(sandbox: Sandbox, kind: str, count: int) -> bool:
    counters = sandbox.counters
    return (counters.accepted_total if kind == "accepted" else counters.downloads) >= count


async def _text(process: Process) -> str:
    assert process.stderr is not None
    return (await process.stderr.receive(65536)).decode(errors="replace")


async def test_sigkill_at_several_moments_then_resume(tmp_path: Path) -> None:
    moments = [("accepted", 8), ("downloads", 12), ("accepted", 30), ("downloads", 35)]
    await crash_and_resume(tmp_path, 48, moments)


@pytest.mark.slow
async def test_twenty_sigkills_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20)
    photos = 200
    moments = sorted(
        (rng.choice(("accepted", "downloads")), rng.randrange(1, photos)) for _ in range(20)
    )
    await crash_and_resume(tmp_path, photos, moments)
