"""batchtoon as a library: a batch run from Python through the public names only."""

from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import make_photos

import batchtoon
from batchtoon.records.journal import Journal
from batchtoon.report.thumbs import thumbs_dir
from batchtoon.sandbox import Sandbox
from batchtoon.settings.config import PollSettings

ROOT = Path(__file__).resolve().parent.parent


def test_the_public_names_are_exported_and_shown_as_batchtoon() -> None:
    for name in batchtoon.__all__:
        value = getattr(batchtoon, name)
        if not name.startswith("__"):
            assert value.__module__ == "batchtoon", name
    assert (ROOT / "batchtoon" / "py.typed").is_file()


async def test_a_batch_runs_resumes_and_reports_progress(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 12)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        settings = batchtoon.Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(tmp_path / "out"), styles=(0, 2),
            poll__interval=0.01, submit__rate=500.0,
        )  # fmt: skip
        seen: list[batchtoon.Snapshot] = []
        async with batchtoon.Batch(
            settings, api_key=sandbox.api_key, on_progress=seen.append, progress_interval=0.01
        ) as batch:
            first = await batch.run([tmp_path / "in"])
            again = await batch.run([str(tmp_path / "in")])
        assert sandbox.counters.accepted_total == 24
    assert first.exit_code is batchtoon.ExitCode.OK
    assert (first.found, first.results["done now"], first.photos["done now"]) == (24, 24, 12)
    assert (again.exit_code, again.submitted, again.results["already done"]) == (
        batchtoon.ExitCode.OK, 0, 24,
    )  # fmt: skip
    assert seen[-1].settled == seen[-1].total == 24 and seen[-1].done == 24
    assert all(s.settled <= s.total for s in seen)  # a bar never overflows


async def test_a_second_batch_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    settings = batchtoon.Settings().override(output__dir=str(tmp_path))
    async with batchtoon.Batch(settings, api_key="k"):
        with pytest.raises(batchtoon.UsageError, match="in use by another batchtoon run"):
            async with batchtoon.Batch(settings, api_key="k"):
                pass


def test_no_key_is_a_usage_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AILAB_API_KEY", raising=False)
    with pytest.raises(batchtoon.UsageError, match="AILAB_API_KEY"):
        batchtoon.Batch(batchtoon.Settings())


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using it from Python", 1)[1]
    [example] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK 10 files")
    assert len(list((tmp_path / "cartoons").glob("*.jpg"))) == 10


def test_settings_made_in_code_get_the_same_check_as_a_file() -> None:
    bad_rate = batchtoon.Settings().override(submit__rate=-1.0)
    with pytest.raises(batchtoon.UsageError, match=r"setting 'submit\.rate': -1 is below 0\.001"):
        batchtoon.Batch(bad_rate, api_key="k")
    bad = dataclasses.replace(batchtoon.Settings(), poll=PollSettings(interval=float("nan")))
    with pytest.raises(batchtoon.UsageError, match=r"'poll\.interval': nan is not a finite number"):
        batchtoon.Batch(bad, api_key="k")


def process_wide() -> tuple[object, ...]:
    """What a library must leave as it found it: the garbage collector's state, and every
    signal's handler (and the wakeup fd that asyncio's handlers need)."""
    handlers = {each: signal.getsignal(each) for each in signal.valid_signals()}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    return gc.isenabled(), gc.get_freeze_count(), gc.get_threshold(), handlers, wakeup


async def test_a_batch_changes_nothing_process_wide(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 6)
    before = process_wide()
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        settings = batchtoon.Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(tmp_path / "out"),
            poll__interval=0.01, submit__rate=500.0,
        )  # fmt: skip
        async with batchtoon.Batch(settings, api_key=sandbox.api_key) as batch:
            done = await batch.run([tmp_path / "in"])
            assert process_wide() == before
        assert done.exit_code is batchtoon.ExitCode.OK
        async with batchtoon.Batch(settings, api_key=sandbox.api_key):  # replays 24 records
            assert process_wide() == before
    Journal.replay(Path(settings.journal_path))
    assert process_wide() == before


async def test_the_gallerys_thumbnails_are_made_as_results_arrive(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 20)
    out = tmp_path / "out"
    when_items_ended: list[int] = []  # thumbnails there as the page begins

    def progress(snapshot: batchtoon.Snapshot) -> None:
        if snapshot.doing == "writing the gallery":
            when_items_ended.append(len(list(thumbs_dir(out).glob("*.jpg"))))

    async with Sandbox(time_scale=0.01, processing_time=(1.0, 100.0), render="quick") as sandbox:
        settings = batchtoon.Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(out), poll__interval=0.01,
            submit__rate=500.0,
        )  # fmt: skip
        async with batchtoon.Batch(
            settings, api_key=sandbox.api_key, on_progress=progress, progress_interval=0.05
        ) as batch:
            done = await batch.run([tmp_path / "in"])
    made = list(thumbs_dir(out).glob("*.jpg"))
    assert done.gallery == str(out / "index.html") and len(made) == 40  # 20 photos, 20 results
    assert when_items_ended[0] >= len(made) // 2  # most before the run's end, not all after


async def test_a_stop_while_the_gallery_is_written_ends_it(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 6)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        settings = batchtoon.Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(out), poll__interval=0.01,
            submit__rate=500.0,
        )  # fmt: skip

        def stop_at_the_gallery(snapshot: batchtoon.Snapshot) -> None:
            if snapshot.doing:
                batch.stop()

        batch = batchtoon.Batch(settings, api_key=sandbox.api_key, on_progress=stop_at_the_gallery)
        async with batch:
            done = await batch.run([tmp_path / "in"])
    assert done.exit_code is batchtoon.ExitCode.OK and done.results["done now"] == 6
    assert done.gallery is None and not (out / "index.html").exists()


# The library's contract, guarded.


def test_settings_in_code_take_the_command_lines_words() -> None:
    settings = batchtoon.Settings().override(
        styles=("2d", "vintage-comic"), sources__include="*.png", sources__exclude="raw,tmp"
    )
    assert settings.styles == (0, 2)
    assert settings.sources.include == ("*.png",) and settings.sources.exclude == ("raw", "tmp")
    assert batchtoon.Settings().override(styles="0-2").styles == (0, 1, 2)
    with pytest.raises(batchtoon.UsageError, match=r"setting 'styles': unknown style 'nope'"):
        batchtoon.Settings().override(styles=("2d", "nope"))
    names: Any = ("3d-fairy-tale",)  # as a caller without a type checker would pass them
    made = dataclasses.replace(batchtoon.Settings(), styles=names)
    assert batchtoon.Batch(made, api_key="k").settings.styles == (1,)


def fast(sandbox: Sandbox, out: Path) -> batchtoon.Settings:
    return batchtoon.Settings().override(
        api__base_url=sandbox.base_url, output__dir=str(out), poll__interval=0.01,
        submit__rate=500.0,
    )  # fmt: skip


def journal_lines(out: Path) -> list[str]:
    """The journal's records about photos (not the id record a journal opens with)."""
    journal = out / ".batchtoon" / "journal.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [line for line in lines if json.loads(line)["event"] != "journal"]


@pytest.mark.parametrize("missing", ["nope", "notes.txt"])
async def test_a_bad_source_raises_before_anything_is_written(missing: str, tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 2)
    (tmp_path / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        async with batchtoon.Batch(fast(sandbox, out), api_key=sandbox.api_key) as batch:
            with pytest.raises(batchtoon.UsageError, match=f"SOURCE .*{missing}"):
                await batch.run([tmp_path / "in", tmp_path / missing])
        assert sandbox.counters.submit_requests == 0
    assert journal_lines(out) == [] and not (out / "index.html").exists()


async def test_a_second_run_at_once_raises_and_nothing_is_paid_twice(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 6)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        running = anyio.Event()
        settings = fast(sandbox, tmp_path / "out")
        batch = batchtoon.Batch(
            settings, api_key=sandbox.api_key, on_progress=lambda _: running.set()
        )
        async with batch, anyio.create_task_group() as group:
            first: list[batchtoon.Summary] = []

            async def run_first() -> None:
                first.append(await batch.run([tmp_path / "in"]))

            group.start_soon(run_first)
            with anyio.fail_after(10):
                await running.wait()
            with pytest.raises(batchtoon.UsageError, match="running already"):
                await batch.run([tmp_path / "in"])
        assert sandbox.counters.accepted_total == 6
        assert max(sandbox.counters.accepted.values()) == 1
    assert first[0].exit_code is batchtoon.ExitCode.OK and first[0].submitted == 6


async def test_a_callback_that_raises_is_logged_and_no_record_is_lost(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 6)
    (tmp_path / "in" / "notes.jpg").write_text("not a photo")  # on_problem hears of it
    out = tmp_path / "out"

    def broken(_: object) -> None:
        raise RuntimeError("the caller's own bug")

    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        settings = fast(sandbox, out)
        batch = batchtoon.Batch(
            settings, api_key=sandbox.api_key, on_progress=broken, on_problem=broken,
            progress_interval=0.001,
        )  # fmt: skip
        async with batch:
            done = await batch.run([tmp_path / "in"])
        async with batchtoon.Batch(settings, api_key=sandbox.api_key) as again:
            resumed = await again.run([tmp_path / "in"])
        assert sandbox.counters.accepted_total == 6  # nothing paid twice on resume
    assert done.exit_code is batchtoon.ExitCode.FAILED  # the one refused photo
    assert (done.results["done now"], done.results["refused"]) == (6, 1)
    assert (resumed.submitted, resumed.results["already done"]) == (0, 6)
    log = (out / ".batchtoon" / "batchtoon.log").read_text()
    assert "on_problem raised (the run goes on)" in log and "on_progress raised" in log
    assert "RuntimeError: the caller's own bug" in log


async def test_a_batch_outside_or_after_async_with_raises_the_librarys_error(
    tmp_path: Path,
) -> None:
    batch = batchtoon.Batch(batchtoon.Settings().override(output__dir=str(tmp_path)), api_key="k")
    with pytest.raises(batchtoon.UsageError, match="async with"):
        await batch.run([tmp_path])
    async with batch:
        pass
    with pytest.raises(batchtoon.UsageError, match="closed"):
        await batch.run([tmp_path])
    with pytest.raises(batchtoon.UsageError, match="closed"):
        async with batch:
            pass


async def test_every_public_name_does_what_it_says(tmp_path: Path) -> None:
    assert batchtoon.__version__ == importlib.metadata.version("batchtoon")
    for error in (batchtoon.UsageError, batchtoon.InputError, batchtoon.ApiError):
        assert issubclass(error, batchtoon.BatchtoonError)
    (tmp_path / "c.yaml").write_text("styles: 2d\nsubmit:\n  rate: 500\n")
    loaded = batchtoon.load_settings(tmp_path / "c.yaml")
    assert isinstance(loaded, batchtoon.Settings) and loaded.styles == (2,)
    make_photos(tmp_path / "in", 2)
    seen: list[batchtoon.Snapshot] = []
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        settings = loaded.override(
            api__base_url=sandbox.base_url, output__dir=str(tmp_path / "out"),
            poll__interval=0.01,
        )  # fmt: skip
        async with batchtoon.Batch(settings, api_key=sandbox.api_key, on_progress=seen.append) as b:
            done: batchtoon.Summary = await b.run([tmp_path / "in"])
    assert done.exit_code is batchtoon.ExitCode.OK and int(batchtoon.ExitCode.OK) == 0
    assert isinstance(seen[-1], batchtoon.Snapshot) and seen[-1].done == 2
    with pytest.raises(batchtoon.BatchtoonError):  # the base catches every error of ours
        batchtoon.Batch(batchtoon.Settings(), api_key="")
    assert sorted(batchtoon.__all__) == sorted(
        ["ApiError", "Batch", "BatchtoonError", "ExitCode", "InputError", "Settings",
         "Snapshot", "Summary", "UsageError", "__version__", "load_settings"]
    )  # fmt: skip
