"""Before money is spent, and after: a plan writes nothing and says what the provider will crop;
a finished batch leaves no converted copies behind; filters work on folders as a person
expects, and one that matches nothing is said."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from harness import make_photos, textured
from PIL import Image
from test_cli import batchtoon

from batchtoon.images.preflight import Crop, check, forget
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


def jpeg(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    textured(width, height, seed).save(path, "JPEG", quality=90)
    return path


def test_preflight_says_what_the_provider_keeps_of_a_photo_beyond_3_2(tmp_path: Path) -> None:
    wide = check(jpeg(tmp_path / "wide.jpg", 900, 300), PrepareSettings())
    tall = check(jpeg(tmp_path / "tall.jpg", 300, 800), PrepareSettings(fix=False))
    just = check(jpeg(tmp_path / "just.jpg", 600, 400), PrepareSettings())
    a_pixel = check(jpeg(tmp_path / "pixel.jpg", 451, 300), PrepareSettings(fit="pad"))
    assert wide.crop == Crop((900, 300), (450, 300)) and not wide.converted
    assert str(wide.crop) == "900x300: the provider keeps its centre 450x300 (3:2)"
    assert tall.crop == Crop((300, 800), (300, 450))
    assert just.crop is None
    assert a_pixel.crop is None and not a_pixel.converted  # a pixel's crop: not worth a word


def test_fit_pad_pads_to_3_2_with_the_whole_picture_in_the_middle(tmp_path: Path) -> None:
    padded = check(jpeg(tmp_path / "wide.jpg", 900, 300), PrepareSettings(fit="pad"))
    assert padded.crop is None and padded.reasons == ("padded",)
    with Image.open(io.BytesIO(padded.data)) as upload:
        assert upload.size == (900, 600)
        rgb = upload.convert("RGB")
        assert rgb.getpixel((450, 20)) == rgb.getpixel((450, 580)) == (255, 255, 255)
        assert rgb.getpixel((450, 300)) != (255, 255, 255)  # the photo, whole, in the middle


def test_fit_pad_keeps_the_padded_picture_within_the_apis_limits(tmp_path: Path) -> None:
    panorama = jpeg(tmp_path / "pano.jpg", 5000, 600)
    padded = check(panorama, PrepareSettings(fit="pad", max_short_side=None))
    assert padded.reasons == ("padded",)
    width, height = padded.size
    assert height == 3240 and width <= 5760  # the short side at the API's most
    assert 1.49 < width / height <= 1.5  # 3:2, to a pixel: the provider crops none of it
    shrunk = check(panorama, PrepareSettings(fit="pad", max_short_side=2048))
    assert shrunk.size[1] == 2048 and 1.49 < shrunk.size[0] / 2048 <= 1.5


async def test_the_plan_names_the_photos_the_provider_will_crop_and_pad_avoids_it(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "in"
    jpeg(photos / "panorama.jpg", 900, 300)
    jpeg(photos / "screenshot.jpg", 300, 800, seed=1)
    jpeg(photos / "plain.jpg", 600, 400, seed=2)
    out = ["--out", str(tmp_path / "out")]
    planned = await batchtoon("plan", str(photos), *out, cwd=tmp_path)
    text = planned.stdout.decode()
    assert "cropped by the provider to 3:2: 2 photos (--fit pad keeps the whole picture)" in text
    assert f"{photos / 'panorama.jpg'}: 900x300: the provider keeps its centre 450x300" in text
    assert f"{photos / 'screenshot.jpg'}: 300x800: the provider keeps its centre 300x450" in text
    assert "plain.jpg" not in text
    as_json = json.loads((await batchtoon("plan", str(photos), *out, "--json")).stdout)
    assert sorted(row["kept"] for row in as_json["cropped"]) == [[300, 450], [450, 300]]
    padded = await batchtoon("plan", str(photos), *out, "--fit", "pad", cwd=tmp_path)
    assert b"cropped by the provider" not in padded.stdout
    assert b"converted before upload: 2 photos (2 padded)" in padded.stdout


async def test_a_run_says_how_many_photos_the_provider_crops(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    jpeg(photos / "panorama.jpg", 900, 300)
    jpeg(photos / "plain.jpg", 600, 400, seed=2)
    done = await batchtoon(
        "run", str(photos), "--sandbox", "-q", "--out", str(tmp_path / "out"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert b"cropped: 1 photo beyond 3:2: the provider keeps the centre 3:2" in done.stdout
    log = (tmp_path / "out" / ".batchtoon" / "batchtoon.log").read_text()
    assert "the provider will crop" in log and "panorama.jpg: 900x300" in log
