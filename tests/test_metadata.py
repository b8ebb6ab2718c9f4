"""No metadata leaves unless asked: what the sandbox received holds no EXIF, XMP, GPS or text,
the pixels are the original's (a lossless strip), JFIF and ICC are kept, and a photo with no
metadata (or any photo, with `keep_metadata`) is sent byte for byte."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from harness import textured
from PIL import Image, ImageCms, PngImagePlugin

import batchtoon
from batchtoon.errors import InputError
from batchtoon.images.scrub import scrub
from batchtoon.sandbox import Sandbox

LEAKS = (b"Exif", b"GPS", b"xmpmeta", b"ns.adobe.com/xap", b"SERIAL-1234", b"Alice", b"tEXt")
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><GPSLatitude>52,30N</GPSLatitude></x:xmpmeta>'


def exif(orientation: int = 1) -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F], tags[0xA431], tags[0x0112] = "Canon", "SERIAL-1234", orientation
    gps = tags.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 30.0, 0.0)
    return tags


def jpeg(size: tuple[int, int], *, metadata: bool, orientation: int = 1) -> bytes:
    out = io.BytesIO()
    extra = {"exif": exif(orientation), "xmp": XMP, "comment": b"Alice"} if metadata else {}
    textured(*size).save(out, "JPEG", quality=90, icc_profile=SRGB, **extra)
    return out.getvalue()


def png_with_text(size: tuple[int, int]) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Alice")
    info.add_text("Comment", "Alice " * 50, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    textured(*size).save(out, "PNG", pnginfo=info, exif=exif())
    return out.getvalue()


def webp_with_exif(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    textured(*size).save(out, "WEBP", lossless=True, exif=exif(), xmp=XMP)
    return out.getvalue()


PHOTOS = {
    "meta.jpg": jpeg((400, 300), metadata=True),
    "text.png": png_with_text((420, 300)),
    "meta.webp": webp_with_exif((430, 300)),
    "plain.jpg": jpeg((440, 300), metadata=False),
    "rotated.jpg": jpeg((460, 300), metadata=True, orientation=6),  # converted: turned upright
    "large.jpg": jpeg((3000, 2400), metadata=True),  # converted: fewer pixels
}
AS_IS = ("meta.jpg", "text.png", "meta.webp", "plain.jpg")  # sent as they are, with the fix on
SENT_SIZE = {"rotated.jpg": (300, 460), "large.jpg": (2560, 2048)}  # with the fix on


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def received(state: Path) -> dict[tuple[int, int], bytes]:
    """What the sandbox received, by image size: `render="echo"` keeps each upload, as it came
    off the wire, as that task's result in the sandbox's own state folder."""
    return {size_of(data): data for data in map(Path.read_bytes, (state / "results").glob("*"))}


async def send(tmp_path: Path, **prepare: object) -> dict[str, bytes]:
    """Each photo of PHOTOS run through a `Batch` to a sandbox: what the sandbox got for it."""
    source = tmp_path / "in"
    source.mkdir()
    for name, data in PHOTOS.items():
        (source / name).write_bytes(data)
    state = tmp_path / "sandbox"
    async with Sandbox(time_scale=0.001, render="echo", state_dir=state) as sandbox:
        settings = batchtoon.Settings().override(
            api__base_url=sandbox.base_url, output__dir=str(tmp_path / "out"),
            poll__interval=0.01, submit__rate=500.0, report__enabled=False,
            **{f"prepare__{key}": value for key, value in prepare.items()},
        )  # fmt: skip
        async with batchtoon.Batch(settings, api_key=sandbox.api_key) as batch:
            done = await batch.run([source])
        assert sandbox.counters.accepted_total == len(PHOTOS)
    assert done.exit_code is batchtoon.ExitCode.OK
    uploads = received(state)
    fixed = prepare.get("fix", True)
    return {
        name: uploads[SENT_SIZE.get(name, size_of(data)) if fixed else size_of(data)]
        for name, data in PHOTOS.items()
    }


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


@pytest.mark.parametrize("fix", [True, False])
async def test_no_exif_xmp_gps_or_text_reaches_the_api(fix: bool, tmp_path: Path) -> None:
    uploads = await send(tmp_path, fix=fix)
    for name, sent in uploads.items():
        assert [leak for leak in LEAKS if leak in sent] == [], name
        if name in AS_IS or not fix:
            assert pixels(sent) == pixels(PHOTOS[name]), name  # lossless: the same pixels
    assert uploads["plain.jpg"] == PHOTOS["plain.jpg"]  # nothing to strip: byte for byte
    for name in ("meta.jpg", "plain.jpg"):
        assert b"JFIF" in uploads[name] and b"ICC_PROFILE" in uploads[name], name


async def test_keep_metadata_sends_a_photo_as_it_is_byte_for_byte(tmp_path: Path) -> None:
    uploads = await send(tmp_path, keep_metadata=True)
    for name in AS_IS:
        assert uploads[name] == PHOTOS[name], name
    assert b"GPS" in uploads["meta.jpg"]


# The strip itself, format by format.


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_keeps_every_chunk_but_text_exif_and_time_and_nothing_after_iend() -> None:
    plain = io.BytesIO()
    textured(300, 300).save(plain, "PNG")
    data = plain.getvalue()
    iend = data.rindex(b"IEND") - 4
    text = chunk(b"tEXt", b"GPS\0here") + chunk(b"tIME", b"\x07\xe9\x01\x01\0\0\0")
    dirty = data[:33] + text + data[33:iend] + chunk(b"eXIf", b"MM\0*") + data[iend:] + b"tail"
    assert scrub(dirty, "PNG") == data
    assert scrub(data, "PNG") is data


def test_a_jpeg_drops_every_app_segment_but_jfif_icc_and_adobe_and_what_follows_its_end() -> None:
    clean = jpeg((300, 300), metadata=False)
    app13 = b"\xff\xed" + struct.pack(">H", 12) + b"Photoshop\0"
    dirty = clean[:2] + app13 + clean[2:] + b"appended video"
    assert scrub(dirty, "JPEG") == clean
    assert scrub(clean, "JPEG") is clean


@pytest.mark.parametrize(
    "damaged",
    [
        b"\xff\xd8\xff\xe1\xff\xff" + b"\0" * 20,  # a segment longer than the file
        b"\xff\xd8\xff\xe1\x00\x10Exif",  # cut inside a segment
        b"\xff\xd8\x00\x00",  # no marker where one must be
    ],
)
def test_a_jpeg_whose_segments_cannot_be_walked_is_refused_not_sent(damaged: bytes) -> None:
    with pytest.raises(InputError, match="metadata cannot be removed"):
        scrub(damaged, "JPEG")
