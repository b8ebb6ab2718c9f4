"""A folder straight off a phone and a camera, run with no flags: every photo done, and every
upload the smallest the result allows, in a form the API takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness import outputs, textured
from PIL import Image
from test_cli import batchtoon

from batchtoon.exitcodes import ExitCode
from batchtoon.images import preflight
from batchtoon.sandbox import Sandbox

ORIENTATION = 0x0112
MB = 2**20


@pytest.fixture(scope="module")
def camera_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 24 MP camera JPEGs, two 12 MP iPhone HEICs, a photo stored sideways with its EXIF
    rotation, and a PNG export over 10 MB."""
    folder = tmp_path_factory.mktemp("camera")
    for n in range(2):
        textured(6000, 4000, seed=n).save(folder / f"DSC_00{n}.JPG", "JPEG", quality=90)
    preflight._formats()  # pillow-heif's saver, for making the HEICs
    for n in range(2):
        textured(4032, 3024, seed=10 + n).save(
            folder / f"IMG_10{n}.HEIC", "HEIF", quality=30, enc_params={"preset": "ultrafast"}
        )
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored landscape, shown portrait
    textured(4032, 3024, seed=20).save(folder / "sideways.jpg", "JPEG", exif=exif.tobytes())
    noise = np.random.default_rng(1).integers(0, 256, (1800, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(folder / "scan.png", compress_level=1)
    assert (folder / "scan.png").stat().st_size > 10 * MB
    return folder


async def test_a_phone_and_camera_folder_with_no_flags(tmp_path: Path, camera_folder: Path) -> None:
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", str(camera_folder), "--out", str(tmp_path / "out"), "--api-base",
            sandbox.base_url, "--poll-interval", "0.02", "--rate", "100", "-q", "--no-report",
            key=sandbox.api_key,
        )  # fmt: skip
        uploads = list(sandbox.counters.uploads)
    assert done.returncode == ExitCode.OK, done.stderr.decode()
    assert len(outputs(tmp_path / "out")) == 6 and len(uploads) == 6
    for upload in uploads:  # what the API took: its formats, under 10 MB, within 5760x3240
        short, long = sorted((upload.width, upload.height))
        assert upload.format in ("JPEG", "PNG", "BMP", "WEBP") and upload.size < 10 * MB
        assert 1536 <= short <= 3240 and long <= 5760  # and never under the result's 1536 px
    assert sum(u.size for u in uploads) / len(uploads) <= 1.5 * MB
    [sideways] = [u for u in uploads if (u.width, u.height) == (2048, 2731)]
    assert sideways  # upright: the portrait it shows, not the landscape it stores
    assert b"6 photos converted" in done.stdout
