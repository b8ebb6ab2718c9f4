"""What the sandbox makes of an image: result sizes, distinct styles, renders off the loop."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from helpers import (
    client_for,
    fetch,
    image_bytes,
    mean_abs_diff,
    pixels,
    submit_and_fetch,
    wait_done,
)
from PIL import Image, ImageOps

from batchtoon.provider.api import TaskState
from batchtoon.sandbox import Sandbox
from batchtoon.sandbox.imaging import output_size

# Marked here, at collection, so that anyio keeps the parametrize ids: the conftest's
# late marking makes anyio rebuild each async test and drop its parameters.

# Contract section 1: short side 1536; the ratio kept up to 1.5:1, cropped to 1.5:1 beyond.
SIZES: list[tuple[tuple[int, int], tuple[int, int]]] = [
    ((600, 400), (2304, 1536)),  # exactly 1.5: kept
    ((1000, 400), (2304, 1536)),  # 2.5: cropped to 1.5
    ((400, 1000), (1536, 2304)),  # portrait, cropped
    ((512, 512), (1536, 1536)),
    ((700, 500), (2150, 1536)),  # 1.4: kept, 1536 * 1.4 = 2150.4
]

# Mean absolute difference, in 0..255 levels per channel, that counts as "clearly different".
# Measured on samples/astronaut.png at 1536x1536: re-encoding the input as JPEG q90 (which the
# sandbox does to every result) moves it by about 1.3; a 3-bit posterisation, the "quick"
# render that is no cartoon at all, by about 13. The nine styles move it by 19.6 (style 2)
# to 86.5, and differ from one another by at least 23. 16 sits above posterisation and below
# every style; the test checks the posterisation side itself rather than trusting the comment.
CLEARLY_DIFFERENT = 16.0


@pytest.mark.parametrize(("size", "expected"), SIZES)
def test_output_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert output_size(*size) == expected


@pytest.mark.parametrize(("size", "expected"), SIZES)
async def test_downloaded_results_measure(
    sandbox: Sandbox, tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    async with client_for(sandbox) as client:
        path = await submit_and_fetch(client, image_bytes(*size), 0, tmp_path / "result")
    with Image.open(path) as result:
        assert result.size == expected
        result.load()


async def test_nine_styles_give_nine_different_cartoons(samples: Path, tmp_path: Path) -> None:
    photo = (samples / "astronaut.png").read_bytes()
    async with (
        Sandbox(time_scale=0.001, processing_time=(2.0, 6.0), render="cartoon") as sandbox,
        client_for(sandbox) as client,
    ):
        # All nine renders queue at once; then one poller at a time, so that polling does not
        # take the CPU from the render threads.
        task_ids = [(await client.submit(photo, style, "PNG")).task_id for style in range(9)]
        paths: dict[int, Path] = {}
        for style, task_id in enumerate(task_ids):
            state = await wait_done(client, task_id, deadline=30)
            assert state.succeeded, (style, state)
            paths[style] = tmp_path / f"style{style}"
            (paths[style]).write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    results = {style: pixels(path) for style, path in paths.items()}
    assert len({path.read_bytes() for path in paths.values()}) == 9

    with Image.open(samples / "astronaut.png") as source:
        size = output_size(*source.size)
        resized = ImageOps.fit(source.convert("RGB"), size, Image.Resampling.LANCZOS)
    reference = pixels(resized)
    # The threshold is above what a mere posterisation of the input scores.
    assert mean_abs_diff(pixels(ImageOps.posterize(resized, 3)), reference) < CLEARLY_DIFFERENT

    for style, result in results.items():
        assert mean_abs_diff(result, reference) > CLEARLY_DIFFERENT, f"style {style}"
    for (a, ra), (b, rb) in itertools.combinations(results.items(), 2):
        assert mean_abs_diff(ra, rb) > CLEARLY_DIFFERENT, f"styles {a} and {b}"


async def test_queries_are_answered_while_200_renders_queue() -> None:
    """Renders run in worker threads: a query is not stuck behind 200 of them.

    The query is sent once half the submissions have been answered, so at least 100 cartoon
    renders (about half a second each, two at a time) are queued. If rendering ran on the
    event loop, or a submit waited for its render, each answered submission would already be
    rendered and the count below would be at least 100.
    """
    total, trigger = 200, 100
    photo = image_bytes(1024, 768, "JPEG")
    async with (
        Sandbox(time_scale=0.001, processing_time=(2.0, 6.0), render="cartoon") as sandbox,
        client_for(sandbox, limit=0, request_timeout=60) as submitter,  # all 200 in flight
        client_for(sandbox) as querier,  # its own connections: not queued behind the submits
    ):
        existing = (await submitter.submit(photo, 0, "JPEG")).task_id
        answered = 0
        half_answered = anyio.Event()

        async def submit(style: int) -> None:
            nonlocal answered
            await submitter.submit(photo, style, "JPEG")
            answered += 1
            if answered == trigger:
                half_answered.set()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(total):
                    tg.start_soon(submit, i % 9)
                await half_answered.wait()
                state: TaskState = await querier.query(existing)
                # Decided at the moment the query came back, by the sandbox's own records.
                new = [t for t in sandbox.tasks.values() if t.id != existing]
                rendered = sum(t.result_token is not None for t in new)
        assert state.status in ("QUEUING", "PROCESSING", "PROCESS_SUCCESS")
        assert answered == total and len(sandbox.tasks) == total + 1
    assert len(new) >= trigger
    assert rendered < total // 4, f"{rendered} of {len(new)} accepted were already rendered"
    assert total - rendered > total // 2  # most of the 200 are unanswered or not rendered
