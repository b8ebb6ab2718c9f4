"""The image transform behind pre-flight: an opened (not yet decoded) image in, the bytes of an
upload the API takes out. Pure: no files, no settings, no cache (`preflight` does those).

The shrink target. The provider's result has a short side of 1536 px, so sending much more
buys nothing. With `max_short` = M (None: no shrinking) a photo whose short side is over M is
brought down to a short side in [1536, M]:
  - a JPEG is decoded with DCT scaling (`Image.draft`) at the largest reduction (1/2, 1/4,
    1/8) that keeps 1536 on the short side; if that lands at M or under, it is used as it is
    (6000x4000 decodes straight to 3000x2000: no resampling at all);
  - otherwise (other formats, or a reduction that lands over M) it is resampled to M on the
    short side (4032x3024 -> 2731x2048).
Whatever M is, the API's limits come first: the long side at most 5760, the short at most
3240; that alone can take a panorama (over 3.75:1) under 1536.

The provider's aspect rule: a result keeps the photo's aspect ratio up to 3:2 (`PROVIDER_RATIO`);
beyond, the provider keeps the centre 3:2 of it (`provider_crop` says what it keeps). With
`pad`, `prepare` pads such a photo to 3:2 with white, centred, so that nothing is cropped; the
padded picture, not the photo, is what is brought within the limits above.

Guarantees of `prepare`: the image is decoded once, at the reduced scale when it can be; the
upload is upright (EXIF orientation applied, then no EXIF at all: nothing for the provider to
rotate again, and no GPS position sent), and holds no metadata whatever the original's was
(`scrub`: no XMP, comment or text either); it is a JPEG (`quality`), or a PNG when transparency
is actually used; it is within 5760x3240 and at most 10 MB, or `InputError` says why not.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from batchtoon.errors import InputError
from batchtoon.images.scrub import scrub

__all__ = [
    "MAX_UPLOAD_BYTES",
    "PROVIDER_SHORT",
    "Encoded",
    "fit_scale",
    "padded_size",
    "prepare",
    "provider_crop",
    "target_size",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MIN_SIDE, MAX_SHORT, MAX_LONG = 256, 3240, 5760
PROVIDER_SHORT = 1536  # the short side of the provider's result
PROVIDER_RATIO = 1.5  # beyond long/short 3:2 the provider crops its result to 3:2
PAD_COLOUR = "white"
# Pillow's BILINEAR is a triangle filter widened by the scale (antialiased), after a box
# `reduce()` for factors of 4 and more. At 4032x3024 -> 2048x1536 it differs from LANCZOS by
# 0.4 grey level on average (51.6 dB PSNR; a quality-90 JPEG encode alone loses 44.9 dB) for
# 35-40% of its CPU; BICUBIC 54.3 dB for 60% (benchmarks/bench_camera.py measures them).
FILTER = Image.Resampling.BILINEAR
REDUCING_GAP = 2.0
DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})  # over 8 bits a channel
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # EXIF orientation -> the transform that makes it upright
SIDEWAYS = frozenset({5, 6, 7, 8})  # the orientations whose upright picture swaps width and height


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes
    format: str  # "JPEG" or "PNG"
    size: tuple[int, int]  # as uploaded: upright


def fit_scale(size: tuple[int, int], max_short: int | None) -> float:
    """The scale (at most 1) that brings `size` within the API's limits and, when its short
    side is over `max_short`, to `max_short` (see the module docstring)."""
    short, long = sorted(size)
    scale = min(1.0, MAX_LONG / long, MAX_SHORT / short)
    if max_short is not None and short > max_short:
        scale = min(scale, max_short / short)
    return scale


def target_size(size: tuple[int, int], max_short: int | None) -> tuple[int, int]:
    """`size` at `fit_scale`: what a resampled upload measures (stored orientation)."""
    return _scaled(size, fit_scale(size, max_short))


def provider_crop(size: tuple[int, int]) -> tuple[int, int] | None:
    """The centre the provider keeps of a picture of `size`: 3:2 of it if it is wider or
    taller than that, else None (it keeps all)."""
    width, height = size
    if max(size) <= PROVIDER_RATIO * min(size):
        return None
    if width > height:
        return (round(height * PROVIDER_RATIO), height)
    return (width, round(width * PROVIDER_RATIO))


def padded_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` with its short side grown until the picture is 3:2 (as it is, if it is not
    wider or taller than that)."""
    width, height = size
    if provider_crop(size) is None:
        return size
    if width > height:
        return (width, math.ceil(width / PROVIDER_RATIO))
    return (math.ceil(height / PROVIDER_RATIO), height)


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def prepare(
    image: Image.Image,
    *,
    max_short: int | None,
    quality: int,
    orientation: int = 1,
    pad: bool = False,
) -> Encoded:
    """`image` (opened, not loaded) as an upload: see the module docstring for guarantees."""
    original = image.size
    target = target_size(original, max_short)
    if pad:  # the padded picture is what must fit: the photo within it is smaller
        target = _scaled(original, fit_scale(padded_size(original), max_short))
    if isinstance(image, JpegImageFile) and target != original:
        # DCT scaling: Pillow picks the largest reduction whose size is at least the one asked
        # for; asked for the provider's 1536 (when shrinking), it may land in [1536, M] and
        # need no resampling at all.
        shrinking = not pad and max_short is not None and min(original) > max_short
        image.draft(None, target_size(original, PROVIDER_SHORT) if shrinking else target)
    picture = _eight_bit_or_rgb(image)
    if (pad and picture.size != target) or not _fits(picture.size, original, max_short):
        picture = picture.resize(target, FILTER, reducing_gap=REDUCING_GAP)
    if orientation in TRANSPOSE:  # after the resize: it moves fewer pixels
        picture = picture.transpose(TRANSPOSE[orientation])
    if picture.mode in ("RGBA", "LA") and not _uses_alpha(picture):
        picture = picture.convert(picture.mode[:-1])  # opaque: a JPEG is a fraction of a PNG
    if pad:
        picture = _padded(picture)
    icc = image.info.get("icc_profile") if _same_colours(image.mode, picture.mode) else None
    return _encode_within_limit(picture, quality, icc, min(PROVIDER_SHORT, *picture.size))


def _padded(picture: Image.Image) -> Image.Image:
    """`picture` centred on a white 3:2 canvas (itself if it is not wider or taller)."""
    size = padded_size(picture.size)
    if size == picture.size:
        return picture
    canvas = Image.new(picture.mode, size, PAD_COLOUR)
    canvas.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
    return canvas


def _fits(size: tuple[int, int], original: tuple[int, int], max_short: int | None) -> bool:
    """Whether a decoded `size` (maybe DCT-scaled) can be sent without resampling."""
    short, long = sorted(size)
    cap = MAX_SHORT
    if max_short is not None and min(original) > max_short:
        cap = min(cap, max_short)
    return short <= cap and long <= MAX_LONG


def _eight_bit_or_rgb(image: Image.Image) -> Image.Image:
    """`image` decoded as L, LA, RGB or RGBA: the modes JPEG and PNG encoders take (no copy
    when it already is one). Palettes, CMYK and the rest convert; alpha is kept."""
    mode = image.mode
    if mode in DEEP_MODES:
        return _grey_from_deep(image)
    alpha = "A" in mode or "a" in mode or "transparency" in image.info
    grey = mode in ("1", "L", "LA", "La")
    wanted = ("L" if grey else "RGB") + ("A" if alpha else "")
    if mode == wanted:
        image.load()
        return image
    try:
        return image.convert(wanted)
    except ValueError:  # Pillow has no conversion from this colour space (LAB, say)
        raise InputError(
            f"its colour space ({mode}) cannot be converted here: export it as an sRGB JPEG"
        ) from None


def _grey_from_deep(image: Image.Image) -> Image.Image:
    """16-bit grey scaled to 8 (65535 -> 255); a float image taken as 0..1 when it fits in
    that, else, like a 32-bit one, as 16-bit when its values need it, else as 8-bit."""
    import numpy as np  # only such images need it: not loaded at every start

    pixels = np.asarray(image, dtype=np.float32)
    peak = float(pixels.max(initial=0.0))
    if image.mode.startswith("I;16") or peak > 255.0:
        top = 65535.0
    else:
        top = 1.0 if image.mode == "F" and peak <= 1.0 else 255.0
    scaled = np.clip(pixels * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def _uses_alpha(image: Image.Image) -> bool:
    return image.getchannel("A").getextrema()[0] != 255


def _same_colours(before: str, after: str) -> bool:
    """Whether a colour profile of a `before` image still describes the `after` one."""
    family = {"RGB": "rgb", "RGBA": "rgb", "RGBX": "rgb", "L": "grey", "LA": "grey"}
    return family.get(before, before) == family.get(after, after)


def _encode_within_limit(
    picture: Image.Image, quality: int, icc: bytes | None, floor: int
) -> Encoded:
    """Encoded; resampled smaller while over 10 MB, never under `floor` on the short side."""
    while True:
        data, fmt = _encode(picture, quality, icc)
        if len(data) <= MAX_UPLOAD_BYTES:
            return Encoded(data, fmt, picture.size)
        scale = math.sqrt(MAX_UPLOAD_BYTES / len(data)) * 0.95
        size = (round(picture.width * scale), round(picture.height * scale))
        if min(size) < floor:
            raise InputError(
                f"still over 10 MB as a {picture.width}x{picture.height} {fmt}: "
                "flatten its transparency or shrink it first"
            )
        picture = picture.resize(size, FILTER, reducing_gap=REDUCING_GAP)


def _encode(picture: Image.Image, quality: int, icc: bytes | None) -> tuple[bytes, str]:
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    fmt = "PNG" if picture.mode in ("RGBA", "LA") else "JPEG"
    picture.save(out, fmt, **extra, **({"quality": quality} if fmt == "JPEG" else {}))
    # Pillow writes on what the original's `info` holds (a JPEG comment, XMP): not sent.
    return scrub(out.getvalue(), fmt), fmt
