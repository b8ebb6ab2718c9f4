"""Before money is spent, and after: a plan writes nothing and says what the provider will crop;
a finished batch leaves no converted copies behind; filters work on folders as a person
expects, and one that matches nothing is said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import make_photos, textured
from test_cli import batchtoon

from batchtoon.images.preflight import check, forget
from batchtoon.settings.config import PrepareSettings

pytestmark = pytest.mark.usefixtures("no_outside_settings")


def gif(path: Path, width: int = 400, height: int = 300, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    textured(width, height, seed).save(path, "GIF")
    return path


def test_forget_removes_one_photos_conversions_and_nothing_else(tmp_path: Path) -> None:
    cache = tmp_path / "prepared"
    one = check(gif(tmp_path / "a.gif", seed=1), PrepareSettings(), cache)
    check(gif(tmp_path / "a.gif", seed=1), PrepareSettings(quality=70), cache)
    two = check(gif(tmp_path / "b.gif", seed=2), PrepareSettings(), cache)
    (cache / "notes.txt").write_text("not batchtoon's")
    assert len(list(cache.glob(f"{one.sha256}.*"))) == 2
    forget(cache, one.sha256)
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted(["notes.txt", *(p.name for p in cache.glob(f"{two.sha256}.*"))])
    assert len(left) == 2


def test_forget_goes_through_no_planted_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "users-folder"
    one = check(gif(tmp_path / "a.gif"), PrepareSettings(), elsewhere)
    cache = tmp_path / "work" / "prepared"
    cache.parent.mkdir()
    cache.symlink_to(elsewhere)
    forget(cache, one.sha256)
    assert len(list(elsewhere.iterdir())) == 1
    forget(cache, "../" + one.sha256)  # not a photo's name: nothing is looked for
    assert len(list(elsewhere.iterdir())) == 1


async def test_a_plan_writes_nothing_and_a_run_leaves_no_prepared_copies(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    for n in range(3):
        gif(photos / f"{n}.gif", seed=n)  # each converted before upload
    out = tmp_path / "out"
    planned = await batchtoon("plan", str(photos), "--sandbox", "--out", str(out), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert b"converted before upload: 3 photos (3 gif)" in planned.stdout
    assert not out.exists()  # not even batchtoon's own folder
    done = await batchtoon(
        "run", str(photos), "--sandbox", "-q", "--style", "0,2", "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*.jpg"))) == 6
    assert list((out / ".batchtoon" / "prepared").iterdir()) == []


async def run_json(tmp_path: Path, *args: str) -> dict[str, object]:
    done = await batchtoon(
        "run", *args, "--sandbox", "-q", "--json", "--out", str(tmp_path / "out"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


async def test_an_include_naming_a_folder_takes_what_is_below_it_as_rclone_does(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "in"
    make_photos(photos / "Summer trip", 2)
    make_photos(photos / "Summer trip" / "day 2", 1, start=5)
    make_photos(photos / "home", 2, start=10)
    found = await run_json(tmp_path, str(photos), "--include", "Summer trip")
    assert found["found"] == 3
    found = await run_json(tmp_path, str(photos), "--include", "summer trip/day 2")
    assert found["found"] == 1  # already done: the same three are in the output now


async def test_a_filter_that_matches_nothing_is_said(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    make_photos(photos / "home", 2)
    done = await batchtoon(
        "run", str(photos), "--sandbox", "--include", "Sumer trip", "--exclude", "raw",
        "--out", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    err = done.stderr.decode()
    assert "--include 'Sumer trip' matched no file nor folder" in err
    assert "--exclude 'raw' matched no file nor folder" in err
