"""Is an image whole? The cheapest check each format allows, shared by pre-flight (before an
upload) and the downloader (before a result is kept).

A full decode would be surest, but it costs ~20 ms of CPU for a 2304x1536 result, ten times the
client's whole budget per image; the structural check below catches what actually happens to
files: a transfer or a write cut short.
"""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["intact_format", "verify_intact"]


def verify_intact(image: Image.Image, data: bytes) -> None:
    """Raise OSError if `data` (the bytes `image` was opened from) is cut short or corrupt."""
    if image.format == "JPEG":
        if b"\xff\xd9" not in data[-1024:]:  # no end-of-image marker near the end: cut short
            raise OSError("truncated JPEG")
    elif image.format == "PNG":
        with Image.open(io.BytesIO(data)) as again:
            again.verify()  # walks every chunk and its CRC up to IEND
    else:
        image.load()


def intact_format(data: bytes) -> str:
    """Pillow's name for the format of a whole image; OSError (or Pillow's) if it is not one."""
    with Image.open(io.BytesIO(data)) as image:
        verify_intact(image, data)
        return image.format or ""
