"""batchtoon as a library: a batch run from Python through the public names only."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import make_photos

import batchtoon
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
    with pytest.raises(batchtoon.UsageError, match=r"setting 'submit\.rate': -1 is below 0\.001"):
        batchtoon.Settings().override(submit__rate=-1.0)
    bad = dataclasses.replace(batchtoon.Settings(), poll=PollSettings(interval=float("nan")))
    with pytest.raises(batchtoon.UsageError, match=r"'poll\.interval': nan is not a finite number"):
        batchtoon.Batch(bad, api_key="k")
