"""A photo's way through the pipeline leaves no garbage for the cycle collector.

Garbage in reference cycles (an error kept with its traceback, a retry loop's state, a closure
bound to its owner) is freed only by the collector, whose passes grow with everything the run
holds: at a million photos they were a tenth of the client's CPU. Measured end to end, over
loopback HTTP against the sandbox, with the collector off during each run: the garbage a run
of 240 photos leaves, less that of a run of 40 (what a run leaves whatever its size: its tasks'
ends, its streams), per photo of the difference.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from harness import make_photos

import batchtoon
from batchtoon.errors import TaskGone
from batchtoon.provider.api import ApiClient
from batchtoon.sandbox import Sandbox

MOST_PER_PHOTO = 2.0  # cyclic objects; it was 84 with a retry loop built per request
FEW, MANY = 40, 240


async def cyclic_garbage(sandbox: Sandbox, folder: Path, photos: int, out: Path) -> int:
    """What the collector finds after one run over the `photos` in `folder`, with it off
    during the run."""
    settings = batchtoon.Settings().override(
        api__base_url=sandbox.base_url, output__dir=str(out), report__enabled=False,
        poll__interval=0.01, poll__rate=20_000.0, submit__rate=5_000.0,
        submit__concurrency=8,  # (a worker's end leaves garbage: as many for both runs)
    )  # fmt: skip
    async with batchtoon.Batch(settings, api_key=sandbox.api_key) as batch:
        gc.collect()
        gc.disable()
        try:
            done = await batch.run([folder])
            found = gc.collect()
        finally:
            gc.enable()
    assert done.exit_code is batchtoon.ExitCode.OK and done.results["done now"] == photos
    return found


async def test_a_photo_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    few, many = tmp_path / "few", tmp_path / "many"
    make_photos(few, FEW)
    make_photos(many, MANY, start=FEW)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        few_left = await cyclic_garbage(sandbox, few, FEW, tmp_path / "out-few")
        many_left = await cyclic_garbage(sandbox, many, MANY, tmp_path / "out-many")
    per_photo = (many_left - few_left) / (MANY - FEW)
    assert per_photo < MOST_PER_PHOTO, (few_left, many_left)


async def test_a_failed_call_leaves_no_cyclic_garbage(client: ApiClient) -> None:
    """The error the API answered (a throttle, a task gone) is raised without a cycle through
    the frame that made it: it was 28 objects a call."""
    with pytest.raises(TaskGone):
        await client.query("no-such-task")  # the connection opened, outside the count
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            with pytest.raises(TaskGone):
                await client.query("no-such-task")
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
