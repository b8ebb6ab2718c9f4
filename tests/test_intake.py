"""Pre-flight intake: what phones and cameras write becomes the smallest upload the API takes.

The large photos are made once for the module (a few seconds in all)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from harness import photo, textured
from PIL import Image
from test_cli import ROOT, clean_env

from batchtoon.errors import InputError, UsageError
from batchtoon.images import preflight, shrink
from batchtoon.images.preflight import Prepared, check
from batchtoon.images.scrub import scrub
from batchtoon.settings.config import PrepareSettings, load_settings

DEFAULT = PrepareSettings()
STRICT = PrepareSettings(fix=False)
ORIENTATION = 0x0112
RED, BLUE = (255, 0, 0), (0, 0, 255)


def saved(path: Path, image: Image.Image, fmt: str, **params: object) -> Path:
    image.save(path, fmt, **params)
    return path


def uploaded(prepared: Prepared) -> Image.Image:
    """The upload, checked against the API's rules: a format it takes, whole, within limits."""
    assert prepared.format in preflight.ACCEPTED
    assert len(prepared.data) <= shrink.MAX_UPLOAD_BYTES == 10 * 1024 * 1024
    image = Image.open(io.BytesIO(prepared.data))
    assert (image.format, image.size) == (prepared.format, prepared.size)
    short, long = sorted(image.size)
    assert 256 <= short <= 3240 and long <= 5760
    assert image.getexif().get(ORIENTATION, 1) == 1  # upright: nothing left to rotate
    image.load()
    return image


def assert_identity(prepared: Prepared, path: Path) -> None:
    original = path.read_bytes()
    assert prepared.sha256 == hashlib.sha256(original).hexdigest()
    assert prepared.original_bytes == len(original)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("intake")


@pytest.fixture(scope="module")
def camera_jpeg(folder: Path) -> Path:
    path = saved(folder / "camera.jpg", textured(6000, 4000), "JPEG", quality=90)
    assert 5e6 < path.stat().st_size < 10 * 2**20  # a camera's 24 MP JPEG
    return path


@pytest.fixture(scope="module")
def phone_heic(folder: Path) -> Path:
    preflight._formats()  # pillow-heif's opener (and saver) registered
    return saved(
        folder / "phone.heic",
        textured(4032, 3024),
        "HEIF",
        quality=30,
        enc_params={"preset": "ultrafast"},
    )


@pytest.fixture(scope="module")
def heavy_png(folder: Path) -> Path:
    noise = np.random.default_rng(1).integers(0, 256, (1800, 2000, 3), dtype=np.uint8)
    path = saved(folder / "heavy.png", Image.fromarray(noise, "RGB"), "PNG", compress_level=1)
    assert path.stat().st_size > 10 * 2**20
    return path


@pytest.fixture
def sideways_jpeg(tmp_path: Path) -> Path:
    """Stored sideways (left red, right blue) with EXIF orientation 6: upright, red is on top."""
    image = Image.new("RGB", (600, 400), BLUE)
    image.paste(RED, (0, 0, 300, 400))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return saved(tmp_path / "sideways.jpg", image, "JPEG", exif=exif.tobytes())


def test_a_24_mp_jpeg_is_decoded_at_half_scale_and_sent_at_3000x2000(camera_jpeg: Path) -> None:
    prepared = check(camera_jpeg, DEFAULT, None)
    image = uploaded(prepared)
    assert prepared.reasons == ("over-limit", "shrunk") and prepared.converted
    assert (prepared.format, image.size) == ("JPEG", (3000, 2000))  # DCT scaling alone
    assert prepared.upload_bytes < camera_jpeg.stat().st_size / 4
    assert_identity(prepared, camera_jpeg)


def test_without_shrinking_a_24_mp_jpeg_is_only_fitted_into_the_api_limits(
    camera_jpeg: Path,
) -> None:
    prepared = check(camera_jpeg, PrepareSettings(max_short_side=None), None)
    assert uploaded(prepared).size == (4860, 3240)
    assert prepared.reasons == ("over-limit",)


def test_a_12_mp_heic_becomes_a_jpeg_of_2048_px_on_its_short_side(phone_heic: Path) -> None:
    prepared = check(phone_heic, DEFAULT, None)
    image = uploaded(prepared)
    assert prepared.reasons == ("heic", "shrunk")
    assert (prepared.format, image.size) == ("JPEG", (2731, 2048))
    assert_identity(prepared, phone_heic)


def test_a_small_jpeg_the_api_takes_is_sent_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    path.write_bytes(photo(size=(1600, 1200), seed=3))
    prepared = check(path, DEFAULT, tmp_path / "cache")
    assert prepared.data == path.read_bytes() and prepared.reasons == ()
    assert not prepared.converted and prepared.size == (1600, 1200)
    assert not (tmp_path / "cache").exists()  # nothing to cache: the original is the upload


def test_an_exif_rotated_jpeg_is_sent_upright(sideways_jpeg: Path) -> None:
    prepared = check(sideways_jpeg, DEFAULT, None)
    image = uploaded(prepared).convert("RGB")
    assert prepared.reasons == ("rotated",) and image.size == (400, 600)
    top, bottom = image.getpixel((200, 10)), image.getpixel((200, 590))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # red on top, blue below


def test_a_png_over_10_mb_is_re_encoded_under_it_at_its_size(heavy_png: Path) -> None:
    prepared = check(heavy_png, DEFAULT, None)
    assert uploaded(prepared).size == (2000, 1800)
    assert prepared.reasons == ("over-limit",) and prepared.format == "JPEG"


def test_a_16_bit_png_becomes_8_bit_with_its_levels_scaled(tmp_path: Path) -> None:
    levels = np.full((600, 800), 0x8000, np.uint16)
    levels[:, 400:] = 0xFFFF
    path = saved(tmp_path / "deep.png", Image.fromarray(levels), "PNG")
    prepared = check(path, DEFAULT, None)
    image = uploaded(prepared)
    assert prepared.reasons == ("16-bit",) and image.mode == "L"
    assert abs(int(image.getpixel((100, 300))) - 128) <= 2  # type: ignore[arg-type]
    assert int(image.getpixel((700, 300))) >= 253  # type: ignore[arg-type]


def test_a_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = saved(tmp_path / "print.jpg", Image.new("CMYK", (800, 600), (0, 255, 255, 0)), "JPEG")
    prepared = check(path, DEFAULT, None)
    image = uploaded(prepared)
    assert prepared.reasons == ("cmyk",) and image.mode == "RGB"
    red, green, blue = image.getpixel((400, 300))  # type: ignore[misc]
    assert red > 240 and green < 15 and blue < 15


def test_a_large_palette_png_with_transparency_is_shrunk_and_keeps_its_alpha(
    tmp_path: Path,
) -> None:
    image = Image.new("P", (3000, 2100), 1)
    image.putpalette([*RED, *BLUE])
    image.paste(0, (0, 0, 1500, 2100))  # the left half: index 0, transparent
    path = saved(tmp_path / "logo.png", image, "PNG", transparency=0)
    prepared = check(path, DEFAULT, None)
    upload = uploaded(prepared)
    assert prepared.reasons == ("shrunk",) and prepared.format == "PNG"
    assert upload.mode == "RGBA" and upload.size == (2926, 2048)
    assert upload.getpixel((100, 100))[3] == 0  # type: ignore[index]
    assert upload.getpixel((2100, 100)) == (*BLUE, 255)


def test_an_animated_gif_sends_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (400, 300), colour) for colour in (RED, (0, 255, 0), BLUE)]
    path = saved(tmp_path / "anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    prepared = check(path, DEFAULT, None)
    image = uploaded(prepared)
    assert prepared.reasons == ("gif", "first-frame") and prepared.format == "JPEG"
    red, green, blue = image.getpixel((200, 150))  # type: ignore[misc]
    assert red > 240 and green < 15 and blue < 15


def test_an_avif_is_converted(tmp_path: Path) -> None:
    path = saved(tmp_path / "web.avif", textured(800, 600), "AVIF", quality=60)
    prepared = check(path, DEFAULT, None)
    assert uploaded(prepared).size == (800, 600)
    assert prepared.reasons == ("avif",) and prepared.format == "JPEG"


def test_a_conversion_is_cached_and_read_back_without_preparing_again(
    sideways_jpeg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = check(sideways_jpeg, DEFAULT, cache)
    [stored] = cache.iterdir()
    stamp = stored.stat().st_mtime_ns

    def unexpected(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepared again")

    monkeypatch.setattr(shrink, "prepare", unexpected)
    again = check(sideways_jpeg, DEFAULT, cache)
    assert again.cached and not first.cached
    assert (again.data, again.size, again.format) == (first.data, first.size, first.format)
    assert (again.reasons, again.sha256) == (first.reasons, first.sha256)
    assert stored.stat().st_mtime_ns == stamp and list(cache.iterdir()) == [stored]
    monkeypatch.undo()
    check(sideways_jpeg, PrepareSettings(quality=70), cache)  # other bytes: another entry
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_cache_file_is_prepared_again(sideways_jpeg: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = check(sideways_jpeg, DEFAULT, cache)
    [stored] = cache.iterdir()
    stored.write_bytes(first.data[: len(first.data) // 2])  # cut short
    again = check(sideways_jpeg, DEFAULT, cache)
    assert not again.cached and again.data == first.data == stored.read_bytes()


def test_a_conversion_decodes_the_original_once(
    camera_jpeg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = Image.open

    def counting(*args: object, **kwargs: object) -> Image.Image:
        image = real_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(image.format or "")
        return image

    monkeypatch.setattr(Image, "open", counting)
    check(camera_jpeg, DEFAULT, None)
    assert opened == ["JPEG"]


def test_without_fix_the_api_rules_refuse_with_todays_reasons(
    camera_jpeg: Path, phone_heic: Path, heavy_png: Path, sideways_jpeg: Path
) -> None:
    expected = {
        camera_jpeg: "6000x4000 is over the API's 5760x3240 limit: drop --no-fix to downscale it",
        phone_heic: "HEIF is not a format the API takes (JPEG, PNG, BMP, WEBP): "
        "drop --no-fix to convert it",
        heavy_png: f"{heavy_png.stat().st_size / 1e6:.1f} MB is over the 10 MB limit: "
        "drop --no-fix to re-encode it",
    }
    for path, reason in expected.items():
        with pytest.raises(InputError) as refused:
            check(path, STRICT, None)
        assert str(refused.value) == reason
    as_it_is = check(sideways_jpeg, STRICT)  # a rotation is no reason to refuse
    original = sideways_jpeg.read_bytes()
    assert as_it_is.data == scrub(original, "JPEG") != original  # its EXIF only is gone
    assert not as_it_is.converted
    kept = check(sideways_jpeg, PrepareSettings(fix=False, keep_metadata=True))
    assert kept.data == original


def test_a_photo_rewritten_while_it_is_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(photo(size=(400, 300), seed=1))
    real_read = preflight._read_bytes
    reads: list[bytes] = []

    def rewritten_meanwhile(file: Path, size: int) -> bytes:
        data = real_read(file, size)
        if len(reads) < 1:  # a writer replaces it during the first read
            path.write_bytes(photo(size=(500, 300), seed=2))
        reads.append(data)
        return data

    monkeypatch.setattr(preflight, "_read_bytes", rewritten_meanwhile)
    prepared = check(path, DEFAULT, None)
    assert len(reads) == 2 and prepared.data == path.read_bytes()


def test_a_photo_that_keeps_changing_is_refused_not_sent_torn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(photo(seed=1))
    real_read = preflight._read_bytes

    def always_rewritten(file: Path, size: int) -> bytes:
        data = real_read(file, size)
        path.write_bytes(data + b"\0")
        return data

    monkeypatch.setattr(preflight, "_read_bytes", always_rewritten)
    with pytest.raises(InputError, match=r"^it changed while being read, 3 times: run again"):
        check(path, DEFAULT, None)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width`x`height`: a few bytes that Pillow would size a decode by."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


@pytest.mark.parametrize("warnings_are", ["errors", "ignored"])
@pytest.mark.parametrize("size", [(20_000, 10_000), (10_000, 10_000), (200_000, 300)])
def test_decompression_bombs_are_refused_in_one_line(
    tmp_path: Path, size: tuple[int, int], warnings_are: str
) -> None:
    """200 MP: Pillow refuses; 100 MP: it only warns (an error under pytest, not in a run)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error" if warnings_are == "errors" else "ignore")
        with pytest.raises(InputError) as refused:
            check(path, DEFAULT, None)
    if size[1] == 300:
        assert str(refused.value) == "200000x300 cannot fit 5760x3240 and keep 256 px: crop it"
    else:
        assert str(refused.value) == "too many pixels to open safely: downscale it first"


def test_prepare_settings_defaults_ranges_and_one_worker_per_core(tmp_path: Path) -> None:
    assert DEFAULT.threads == (os.cpu_count() or 1)
    assert DEFAULT.fix and DEFAULT.max_short_side == 2048
    config = tmp_path / "c.yaml"
    config.write_text("prepare: {max_short_side: null, quality: 80, workers: 3}\n")
    loaded = load_settings(config).prepare
    assert (loaded.max_short_side, loaded.quality, loaded.workers) == (None, 80, 3)
    config.write_text("prepare: {max_short_side: 1024}\n")
    with pytest.raises(UsageError, match=r"'prepare\.max_short_side': 1024 is below 1536"):
        load_settings(config)


# Each photo pre-flighted in a fresh process: what it says, and Pillow's plugins it loaded.
FRESH_CHECK = """
import json, sys
from pathlib import Path
from batchtoon.errors import InputError
from batchtoon.images.preflight import check, DEFAULTS
said = {}
for path in sys.argv[1:]:
    try:
        said[Path(path).name] = check(Path(path), DEFAULTS, None).format
    except InputError as error:
        said[Path(path).name] = str(error)
plugins = sorted(name[4:-11] for name in sys.modules if name.endswith("ImagePlugin"))
print(json.dumps({"said": said, "plugins": plugins}))
"""


def test_pre_flight_opens_every_format_it_reads_and_loads_no_other_plugin(
    phone_heic: Path, tmp_path: Path
) -> None:
    picture = textured(400, 300)
    paths = [phone_heic, saved(tmp_path / "icon.ico", picture, "ICO")]  # ICO: not one it reads
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"):
        paths.append(saved(tmp_path / f"photo.{fmt.lower()}", picture, fmt))
    done = subprocess.run(
        [sys.executable, "-c", FRESH_CHECK, *map(str, paths)],
        capture_output=True, text=True, env=clean_env(PYTHONPATH=str(ROOT)), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["said"] == {
        "phone.heic": "JPEG",
        "icon.ico": "not an image (or one no decoder here reads): remove it",
        "photo.jpeg": "JPEG",
        "photo.png": "PNG",
        "photo.webp": "WEBP",
        "photo.bmp": "BMP",
        "photo.gif": "JPEG",
        "photo.tiff": "JPEG",
    }
    read = {"Jpeg", "Png", "WebP", "Bmp", "Mpo", "Avif", "Gif", "Tiff", "Ppm"}  # Ppm: Pillow's
    assert set(report["plugins"]) <= read  # own first five; not the forty `Image.init` loads
