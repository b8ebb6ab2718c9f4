"""The engine end to end, in-process, against the sandbox over loopback."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from harness import (
    engine_for,
    journal_records,
    make_photos,
    outputs,
    photo,
    run_engine,
    run_until,
    when,
)
from PIL import Image

from batchtoon.exitcodes import ExitCode
from batchtoon.pipeline.engine import STOP_GRACE, Engine
from batchtoon.provider.api import Api, ApiClient, Sink, Submitted, TaskState
from batchtoon.records.journal import Journal
from batchtoon.sandbox import Sandbox
from batchtoon.sandbox.counters import query_gaps
from batchtoon.settings.config import Settings


async def test_500_images_one_submission_each_and_traceable(tmp_path: Path) -> None:
    sources = make_photos(tmp_path / "in", 500)
    async with Sandbox(time_scale=0.001, render="echo", seed=1) as sandbox:
        engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        assert engine.exit_code == ExitCode.OK
        assert sandbox.counters.accepted_total == 500
        assert set(sandbox.counters.accepted.values()) == {1}
        assert sandbox.counters.downloads == 500
    files = outputs(tmp_path / "out")
    assert len(files) == 500
    for source in sources:  # in/sub1/photo0001.jpg -> out/sub1/photo0001.vintage-comic.jpg
        rel = source.relative_to(tmp_path / "in")
        result = tmp_path / "out" / rel.parent / f"{rel.stem}.vintage-comic.jpg"
        assert result.read_bytes() == source.read_bytes()  # echo: the bytes as served


async def test_running_again_submits_and_downloads_nothing(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 20)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out", styles=(0, 3))
        before = (sandbox.counters.submit_requests, sandbox.counters.downloads)
        again = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out", styles=(0, 3))
        assert (sandbox.counters.submit_requests, sandbox.counters.downloads) == before
        assert sandbox.counters.query_requests > 0
        assert again.stats.tally.results == {"already done": 40}
        assert again.exit_code == ExitCode.OK


async def test_rates_and_poll_spacing_hold_as_a_strict_server_counts_them(tmp_path: Path) -> None:
    # A server that allows 1.1 x each rate in any one second of arrival sees no throttle, and
    # never two queries of one task closer than the interval, by its own clock. No slack is
    # needed: the server stamps a query's arrival before it answers, the poller counts the
    # interval from when the answer came back, and both read the machine's monotonic clock;
    # 1e-9 s is for the rounding of sums of floats.
    rate, poll_rate, interval = 20.0, 40.0, 0.2
    make_photos(tmp_path / "in", 30)
    async with Sandbox(
        time_scale=0.01, processing_time=(45, 60), render="echo",
        submit_window=math.floor(1.1 * rate), query_window=math.floor(1.1 * poll_rate),
    ) as sandbox:  # fmt: skip
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", submit__rate=rate,
            poll__rate=poll_rate, poll__interval=interval,
        )  # fmt: skip
    assert engine.exit_code == ExitCode.OK
    assert sandbox.counters.throttled == 0
    assert sandbox.counters.accepted_total == 30
    assert all(len(task.queries) >= 2 for task in sandbox.tasks.values())  # 0.45-0.6 s each
    assert min(query_gaps(sandbox.tasks)) >= interval - 1e-9


async def test_a_result_whose_url_expired_while_down_is_produced_again(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 3)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.results_open.clear()  # downloads hang: the run can only get to "succeeded"
        async with engine_for(sandbox, [tmp_path / "in"], out) as engine:
            succeeded = when(engine.journal, "succeeded", 3)
            with anyio.CancelScope() as scope:  # the engine goes down, nothing downloaded
                await run_until(engine, succeeded, scope.cancel)
        sandbox.clock.advance(25 * 3600)  # ... and stays down past the 24 h expiry
        sandbox.results_open.set()
        engine = await run_engine(sandbox, [tmp_path / "in"], out)
        assert engine.exit_code == ExitCode.OK
        assert engine.stats.extra == 3  # each was paid for twice, and says so
        assert sorted(sandbox.counters.accepted.values()) == [2, 2, 2]
    assert len(outputs(out)) == 3


async def test_stop_leaves_a_journal_that_resumes(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 40)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        async with engine_for(sandbox, [tmp_path / "in"], out, submit__rate=200.0) as engine:
            await run_until(engine, when(engine.journal, "submitted", 10), engine.stop)
        assert engine.exit_code == ExitCode.STOPPED
        assert sandbox.counters.accepted_total < 40
        again = await run_engine(sandbox, [tmp_path / "in"], out)
        assert again.exit_code == ExitCode.OK
        assert sandbox.counters.accepted_total == 40  # nothing paid twice
    assert len(outputs(out)) == 40


async def test_outputs_are_checked_images_named_by_content(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (300, 300), "red").save(folder / "a.png")
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        await run_engine(sandbox, [folder], tmp_path / "out", compact_journal=False)
    [result] = outputs(tmp_path / "out")
    assert result.name == "a.vintage-comic.png"  # echo serves the PNG: the extension follows it
    done = [r for r in journal_records(tmp_path / "out") if r["event"] == "downloaded"]
    assert done[0]["sha256"] == hashlib.sha256(result.read_bytes()).hexdigest()


async def test_deleted_outputs_of_a_duplicated_photo_are_all_produced_again(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo(seed=1))
    (folder / "b.jpg").write_bytes(photo(seed=1))  # same content: one item, two targets
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        await run_engine(sandbox, [folder], out)
        for path in outputs(out):
            path.unlink()
        engine = await run_engine(sandbox, [folder], out)
        assert engine.exit_code == ExitCode.OK and engine.stats.extra == 1
    assert [p.name for p in outputs(out)] == ["a.vintage-comic.jpg", "b.vintage-comic.jpg"]


class HeldUploads:
    """The sandbox's API, each upload held until `wanted` have begun: all of them in flight at
    once."""

    def __init__(self, api: Api, wanted: int) -> None:
        self.api, self.wanted = api, wanted
        self.begun, self.reached = 0, anyio.Event()

    async def submit(self, image: bytes, style: int, image_format: str = "JPEG") -> Submitted:
        self.begun += 1
        if self.begun >= self.wanted:
            self.reached.set()
        await self.reached.wait()
        return await self.api.submit(image, style, image_format)

    async def query(self, task_id: str) -> TaskState:
        return await self.api.query(task_id)

    async def download(self, url: str, sink: Sink, *, max_bytes: int) -> None:
        await self.api.download(url, sink, max_bytes=max_bytes)


async def test_with_no_concurrency_set_a_quarter_second_of_the_rate_is_uploading(
    tmp_path: Path,
) -> None:
    """At --rate 100 and nothing else set, 25 uploads go out at once (the old fixed 4 would
    hold the rate near 79/s): the run waits here until 25 are in flight."""
    make_photos(tmp_path / "in", 40)
    async with Sandbox(time_scale=0.001, render="echo", seed=1) as sandbox:
        settings = Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(tmp_path / "out"), submit__rate=100.0
        )
        journal = Journal(settings.journal_path)
        journal.open()
        async with aiohttp.ClientSession() as session:
            held = HeldUploads(ApiClient.from_settings(session, settings, sandbox.api_key), 25)
            engine = Engine(settings, held, journal, [tmp_path / "in"])
            async with anyio.create_task_group() as group:
                group.start_soon(engine.run)
                with anyio.fail_after(20):
                    await held.reached.wait()
                group.cancel_scope.cancel()
        journal.close()


async def test_submissions_wait_while_the_poller_is_behind_and_every_photo_is_done(
    tmp_path: Path,
) -> None:
    # A poll rate of 50 queries a second cannot ask about what 1,000 uploads a second submit:
    # without a hold, all 120 are submitted in 0.12 s and wait for the poller, in hand. With
    # it, about an interval's worth go (10, before the first is due and the poller is late).
    make_photos(tmp_path / "in", 120)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", submit__rate=1000.0, poll__rate=50.0,
            compact_journal=False,
        )  # fmt: skip
    assert engine.exit_code == ExitCode.OK
    assert sandbox.counters.accepted_total == 120
    in_hand, most = 0, 0
    for record in journal_records(tmp_path / "out"):
        in_hand += {"submitted": 1, "downloaded": -1}.get(record["event"], 0)
        most = max(most, in_hand)
    assert most <= 40, most
    assert engine.backlog.statistics().holds >= 1


async def test_a_stop_while_submissions_are_held_ends_and_a_resume_pays_each_photo_once(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 120)
    out = tmp_path / "out"
    slow_poller: dict[str, Any] = {"submit__rate": 1000.0, "poll__rate": 50.0}
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        async with engine_for(sandbox, [tmp_path / "in"], out, **slow_poller) as engine:
            with anyio.fail_after(2 * STOP_GRACE):  # held workers hold no upload to wait for
                await run_until(engine, when(engine.journal, "submitted", 25), engine.stop)
        assert engine.exit_code == ExitCode.STOPPED
        assert engine.backlog.statistics().holds >= 1  # it was held when stopped, or before
        again = await run_engine(sandbox, [tmp_path / "in"], out, **slow_poller)
        assert again.exit_code == ExitCode.OK
        assert sandbox.counters.accepted_total == 120
        assert sorted(set(sandbox.counters.accepted.values())) == [1]
