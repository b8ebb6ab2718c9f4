"""Is an image whole? The cheapest check each format allows, shared by pre-flight (before an
upload) and the downloader (before a result is kept).

A full decode would be surest, but it costs ~20 ms of CPU for a 2304x1536 result, ten times the
client's whole budget per image; the structural check below catches what actually happens to
files: a transfer or a write cut short. An image declaring more pixels than Pillow will decode
safely (a "pixel bomb") is never opened further: `TooManyPixels`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

__all__ = ["TooManyPixels", "intact_format", "refuse_pixel_bomb", "verify_intact"]


class TooManyPixels(ValueError):
    """The image declares more pixels than it is safe to decode."""


def verify_intact(image: Image.Image, data: bytes | Path) -> None:
    """Raise OSError if `data` (the bytes or file `image` was opened from) is cut short or
    corrupt."""
    refuse_pixel_bomb(image)
    if image.format == "JPEG":
        if b"\xff\xd9" not in _tail(data, 1024):  # no end-of-image marker near the end
            raise OSError("truncated JPEG")
    elif image.format == "PNG":
        with _open(data) as again:
            again.verify()  # walks every chunk and its CRC up to IEND
    else:
        image.load()


def refuse_pixel_bomb(image: Image.Image) -> None:
    """`TooManyPixels` if the size in `image`'s header is more than Pillow decodes safely:
    decided from the header (opened, not loaded), so a refusal costs no pixel memory."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise TooManyPixels(f"{image.width}x{image.height}")


def intact_format(data: bytes | Path) -> str:
    """Pillow's name for the format of a whole image; OSError (or Pillow's) if it is not one,
    `TooManyPixels` (Pillow's `DecompressionBombError` too) for a pixel bomb."""
    with _open(data) as image:
        verify_intact(image, data)
        return image.format or ""


def _open(data: bytes | Path) -> Image.Image:
    return Image.open(data if isinstance(data, Path) else io.BytesIO(data))


def _tail(data: bytes | Path, size: int) -> bytes:
    if not isinstance(data, Path):
        return data[-size:]
    with open(data, "rb") as file:
        file.seek(max(0, os.fstat(file.fileno()).st_size - size))
        return file.read()
