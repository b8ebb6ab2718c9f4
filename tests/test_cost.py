"""Cost control: --fix, one submission per content and style, fan-out, the plan, the budget."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from harness import make_photos, outputs, photo, run_engine
from PIL import Image
from test_cli import batchtoon

from batchtoon.exitcodes import ExitCode
from batchtoon.sandbox import Sandbox

ORIENTATION = 0x0112


def phone_photo(path: Path) -> None:
    """8000x6000, over 10 MB: too large for the API on both counts."""
    rng = np.random.default_rng(8)
    small = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((8000, 6000), Image.Resampling.BILINEAR)
    noise = rng.integers(-40, 40, (6000, 8000, 3), dtype=np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=92)
    assert path.stat().st_size > 10 * 1024 * 1024


def rotated_photo(path: Path) -> None:
    """Stored sideways (left red, right blue) with EXIF orientation 6: upright, red is on top."""
    image = Image.new("RGB", (600, 400), "blue")
    image.paste((255, 0, 0), (0, 0, 300, 400))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    image.save(path, "JPEG", exif=exif.tobytes())


async def test_fix_prepares_phone_sized_and_rotated_photos_and_results_are_upright(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    phone_photo(folder / "phone.jpg")
    rotated_photo(folder / "sideways.jpg")
    (folder / "plain.jpg").write_bytes(photo(seed=9))
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="quick") as sandbox:
        engine = await run_engine(sandbox, [folder], out, prepare__fix=True)
        assert engine.exit_code == ExitCode.OK
        accepted = set(sandbox.counters.accepted)
    plain_sha = hashlib.sha256((folder / "plain.jpg").read_bytes()).hexdigest()
    assert (plain_sha, 0) in accepted  # a photo within the limits is sent byte for byte
    with Image.open(out / "sideways.vintage-comic.jpg") as result:
        assert result.height > result.width  # portrait, as the photo is meant to be seen
        top, bottom = (
            result.getpixel((result.width // 2, 10)),
            result.getpixel((result.width // 2, result.height - 10)),
        )
        assert isinstance(top, tuple) and isinstance(bottom, tuple)
        assert top[0] > top[2] and bottom[2] > bottom[0]  # red on top, blue below
    with Image.open(out / "phone.vintage-comic.jpg") as result:
        assert result.size == (2048, 1536)  # 4:3 kept, short side 1536
    # phone and sideways were prepared (and cached until their results were stored): nothing
    # of them is left once they are
    assert list((out / ".batchtoon" / "prepared").iterdir()) == []
    async with Sandbox(time_scale=0.001, render="quick") as sandbox:
        await run_engine(sandbox, [folder], out, prepare__fix=True)
        assert sandbox.counters.submit_requests == 0


async def test_without_fix_the_same_photos_are_refused_before_any_upload(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    phone_photo(folder / "phone.jpg")
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(sandbox, [folder], tmp_path / "out", prepare__fix=False)
        assert sandbox.counters.submit_requests == 0
    assert [*engine.stats.failures] == [
        f"{(folder / 'phone.jpg').stat().st_size / 1e6:.1f} MB is over the 10 MB limit: "
        "drop --no-fix to re-encode it"
    ]


async def test_a_copied_photo_is_submitted_once_and_stored_under_both_names(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    (folder / "trip").mkdir(parents=True)
    data = photo(seed=5)
    (folder / "original.jpg").write_bytes(data)
    (folder / "trip" / "copy of original.jpg").write_bytes(data)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        await run_engine(sandbox, [folder], out, styles=(0, 4))
        assert sorted(sandbox.counters.accepted.values()) == [1, 1]  # once per style
    names = sorted(str(p.relative_to(out)) for p in outputs(out))
    assert names == [
        "original.future-technology.jpg", "original.vintage-comic.jpg",
        "trip/copy of original.future-technology.jpg", "trip/copy of original.vintage-comic.jpg",
    ]  # fmt: skip
    assert len({p.read_bytes() for p in outputs(out)}) == 1


async def test_12_photos_in_3_styles_give_36_outputs_and_36_submissions(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 12)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--style", "0,2d,graceful-chinese", "--out",
            str(tmp_path / "out"), "--api-base", sandbox.base_url, "--quiet",
            "--poll-interval", "0.02", "--rate", "500", key=sandbox.api_key,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert sandbox.counters.accepted_total == 36
        assert {style for _, style in sandbox.counters.accepted} == {0, 2, 8}
    assert len(outputs(tmp_path / "out")) == 36


async def test_the_plan_submits_nothing_and_a_real_run_then_does_what_it_said(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 8)
    (tmp_path / "in" / "again.jpg").write_bytes(photo(seed=2))  # a duplicate
    (tmp_path / "in" / "broken.jpg").write_bytes(b"nope")  # invalid
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo", credits=100) as sandbox:
        common = ["--out", str(out), "--api-base", sandbox.base_url, "--style", "0,1"]
        common += ["--rate", "500"]
        planned = await batchtoon(
            "run", str(tmp_path / "in"), *common, "--dry-run", "--json", key=sandbox.api_key
        )
        plan = json.loads(planned.stdout)
        assert sandbox.counters.submit_requests == 0
        assert plan["photos"] == 10 and plan["duplicates"] == 2 and plan["balance"] == 100
        assert [row["reason"] for row in plan["invalid"]] == [
            "not an image (or one no decoder here reads): remove it"
        ]
        done = await batchtoon(
            "run",
            str(tmp_path / "in"),
            *common,
            "--quiet",
            "--poll-interval",
            "0.02",
            key=sandbox.api_key,
        )
        assert done.returncode == 1  # the broken one
        assert sandbox.counters.accepted_total == plan["billable_submissions"] == 16
        replanned = await batchtoon(
            "plan", str(tmp_path / "in"), *common, "--json", key=sandbox.api_key
        )
        assert json.loads(replanned.stdout)["already_done"] == 18
        assert json.loads(replanned.stdout)["billable_submissions"] == 0


async def test_max_submissions_stops_at_exactly_n_then_finishes_what_it_accepted(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 25)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", max_submissions=10, submit__concurrency=6
        )
        assert engine.exit_code == ExitCode.BUDGET
        assert sandbox.counters.accepted_total == 10
        assert len(outputs(tmp_path / "out")) == 10  # polled and downloaded
        engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        assert engine.exit_code == ExitCode.OK and sandbox.counters.accepted_total == 25


def test_phone_photo_helper_makes_what_it_says(tmp_path: Path) -> None:
    rotated_photo(tmp_path / "r.jpg")
    with Image.open(io.BytesIO((tmp_path / "r.jpg").read_bytes())) as image:
        assert image.getexif()[ORIENTATION] == 6 and image.size == (600, 400)


async def test_copies_of_one_photo_run_again_are_all_already_done(tmp_path: Path) -> None:
    data = photo(seed=6)
    for n in range(40):  # spread over batches, so that two workers judge copies at once
        (tmp_path / "in" / f"f{n % 4}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / f"f{n % 4}" / f"copy{n}.jpg").write_bytes(data)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        first = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        again = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        assert sandbox.counters.accepted_total == 1
    assert first.stats.tally.results == {"done now": 40}
    assert first.stats.tally.duplicates == 39
    assert again.stats.tally.results == {"already done": 40}
