"""What the sandbox does with an uploaded image: check it as the provider does, size the result
as the provider documents, and render it. Everything here is blocking; the server calls it in
worker threads so that the event loop keeps answering."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from batchtoon.sandbox.config import RenderMode
from batchtoon.sandbox.styles import render as render_style

__all__ = [
    "MAX_UPLOAD_BYTES",
    "ImageInfo",
    "Rejection",
    "check_upload",
    "output_size",
    "render_result",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
MIN_SIDE, MAX_SHORT, MAX_LONG = 256, 3240, 5760
OUT_SHORT, MAX_RATIO = 1536, 1.5


@dataclass(frozen=True)
class Rejection(Exception):
    status: int
    code: str
    message: str


class ImageInfo(NamedTuple):
    format: str  # Pillow's name: JPEG, PNG, BMP or WEBP
    width: int
    height: int


def check_upload(data: bytes) -> ImageInfo:
    """The upload's format and size, or `Rejection` with the provider's status and code."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format or "", image.size
            if fmt not in ACCEPTED_FORMATS:
                raise Rejection(415, "UNSUPPORTED_FILE_TYPES", f"{fmt} images are not supported.")
            short, long = sorted((width, height))
            if short < MIN_SIDE:
                raise Rejection(422, "ERROR_LOW_RESOLUTION", f"{width}x{height} is under 256 px.")
            if short > MAX_SHORT or long > MAX_LONG:
                raise Rejection(
                    413, "ERROR_HIGH_RESOLUTION", f"{width}x{height} is over 5760x3240."
                )
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow only warns from 89 Mpx, but where warnings are errors (pytest's filterwarnings)
        # the warning escapes `open` before the size check: either way the image is too big.
        raise Rejection(413, "ERROR_HIGH_RESOLUTION", "The image has too many pixels.") from None
    except (OSError, SyntaxError, ValueError):
        raise Rejection(422, "FILE_DECODING_FAILURE", "The file could not be decoded.") from None
    return ImageInfo(fmt, width, height)


def output_size(width: int, height: int) -> tuple[int, int]:
    """Short side 1536; the aspect ratio kept up to 1.5:1, cropped to exactly 1.5:1 beyond."""
    short, long = sorted((width, height))
    out_long = round(OUT_SHORT * min(long / short, MAX_RATIO))
    return (out_long, OUT_SHORT) if width >= height else (OUT_SHORT, out_long)


def _fit(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    size = output_size(*image.size)
    # ImageOps.fit crops centred to the target's aspect ratio, then resizes.
    return ImageOps.fit(image.convert("RGB"), size, method=resample, centering=(0.5, 0.5))


def render_result(data: bytes, style: int, mode: RenderMode, dest: Path) -> tuple[Path, str]:
    """Write the task's result next to `dest` (suffix by content); return it and its MIME type."""
    if mode == "echo":
        path = dest.with_suffix(".img")
        path.write_bytes(data)
        with Image.open(path) as image:
            return path, Image.MIME.get(image.format or "", "application/octet-stream")
    with Image.open(io.BytesIO(data)) as image:
        if mode == "quick":
            result = ImageOps.posterize(_fit(image, Image.Resampling.BILINEAR), 3)
        else:
            result = render_style(_fit(image, Image.Resampling.LANCZOS), style)
    path = dest.with_suffix(".jpg")
    result.save(path, "JPEG", quality=90)
    return path, "image/jpeg"
