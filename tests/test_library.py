"""batchtoon as a library: a batch run from Python through the public names only."""

from __future__ import annotations

import gc
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import make_photos

import batchtoon
from batchtoon.records.journal import Journal
from batchtoon.report.thumbs import thumbs_dir
from batchtoon.sandbox import Sandbox

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
    bad = batchtoon.Settings().override(submit__rate=-1.0)
    with pytest.raises(batchtoon.UsageError, match=r"setting 'submit\.rate': -1 is below 0\.001"):
        batchtoon.Batch(bad, api_key="k")
    with pytest.raises(batchtoon.UsageError, match=r"'poll\.interval': nan is not a finite number"):
        batchtoon.Batch(batchtoon.Settings().override(poll__interval=float("nan")), api_key="k")


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
