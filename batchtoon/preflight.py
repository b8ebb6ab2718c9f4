"""Pre-flight: is a file something the API will take? Decided before any upload, so that a
request that cannot succeed is never paid for. Blocking: the engine runs it in worker threads.

`check(path)` returns the `Prepared` upload or raises `InputError` with a one-line reason that
says what is wrong and what to do. An image that meets the API's rules is sent byte for byte as
read. With `fix=True`, one that fails only the size or format rules, or that carries an EXIF
rotation, is prepared instead (rotation applied, downscaled into 5760x3240, re-encoded as JPEG
(PNG when it has transparency) under 10 MB, never below 256 px) and cached by content hash.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError
from .intact import verify_intact

__all__ = ["MAX_UPLOAD_BYTES", "Prepared", "check"]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FIX_BYTES = 256 * 1024 * 1024  # beyond this even --fix will not read a file
ACCEPTED = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
MIN_SIDE, MAX_SHORT, MAX_LONG = 256, 3240, 5760
ORIENTATION = 0x0112


@dataclass(frozen=True, slots=True)
class Prepared:
    sha256: str  # of the file as read: the item's identity, with or without a fix
    data: bytes  # what is uploaded
    format: str  # Pillow's name for the format of `data`
    size: tuple[int, int]
    fixed: bool = False


def check(path: Path, *, fix: bool = False, cache: Path | None = None) -> Prepared:
    data = _read(path, fix)
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            problem = _problem(image, data)
            if problem is None and not (fix and _rotated(image)):
                return Prepared(sha, data, image.format or "", image.size)
            if problem is not None and not (fix and problem.fixable):
                raise InputError(problem.reason)
    except UnidentifiedImageError:
        raise InputError("not an image (or one no decoder here reads): remove it") from None
    except Image.DecompressionBombError:
        raise InputError("too many pixels to open safely: downscale it first") from None
    except (OSError, SyntaxError, ValueError):
        raise InputError("truncated or corrupt image: re-export or replace it") from None
    return _fixed(sha, data, cache)


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: str
    fixable: bool = True


def _read(path: Path, fix: bool) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError("broken symbolic link: its target is gone") from None
        raise InputError("file not found: it was moved or deleted") from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}") from None
    if not path.is_file():
        raise InputError("not a regular file")
    if size == 0:
        raise InputError("empty file (0 bytes): re-export or remove it")
    limit = MAX_FIX_BYTES if fix else MAX_UPLOAD_BYTES
    if size > limit:
        advice = "pass --fix to re-encode it" if not fix else "shrink it first"
        raise InputError(f"{size / 1e6:.1f} MB is over the {limit // 2**20} MB limit: {advice}")
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror or exc}") from None


def _problem(image: Image.Image, data: bytes) -> _Problem | None:
    """Why the API would refuse this image as it is, or None."""
    width, height = image.size
    short, long = sorted(image.size)
    if short < MIN_SIDE:
        return _Problem(
            f"{width}x{height} is under the API's 256 px minimum: use a larger photo", False
        )
    if image.format not in ACCEPTED:
        return _Problem(
            f"{image.format} is not a format the API takes (JPEG, PNG, BMP, WEBP): pass --fix"
        )
    verify_intact(image, data)
    if short > MAX_SHORT or long > MAX_LONG:
        return _Problem(
            f"{width}x{height} is over the API's 5760x3240 limit: pass --fix to downscale"
        )
    if len(data) > MAX_UPLOAD_BYTES:
        return _Problem("over the API's 10 MB limit: pass --fix to re-encode it")
    return None


def _rotated(image: Image.Image) -> bool:
    return bool(image.getexif().get(ORIENTATION, 1) != 1)


def _fixed(sha: str, data: bytes, cache: Path | None) -> Prepared:
    cached = cache / f"{sha}.prepared" if cache else None
    if cached is not None and cached.exists():
        encoded = cached.read_bytes()
    else:
        encoded = _prepare(data)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(encoded)
            os.replace(tmp, cached)
    with Image.open(io.BytesIO(encoded)) as image:
        return Prepared(sha, encoded, image.format or "", image.size, fixed=True)


def _prepare(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as original:
        image = ImageOps.exif_transpose(original)
    scale = min(1.0, MAX_LONG / max(image.size), MAX_SHORT / min(image.size))
    if scale < 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        if min(size) < MIN_SIDE:
            raise InputError(
                f"{image.width}x{image.height} cannot fit 5760x3240 and keep 256 px: crop it"
            )
        image = image.resize(size, Image.Resampling.LANCZOS)
    transparent = image.mode in ("RGBA", "LA") or "transparency" in image.info
    for quality in (92, 85, 75, 60):
        out = io.BytesIO()
        if transparent:
            image.save(out, "PNG", optimize=False)
        else:
            image.convert("RGB").save(out, "JPEG", quality=quality)
        if out.tell() <= MAX_UPLOAD_BYTES or transparent:
            break
    if out.tell() > MAX_UPLOAD_BYTES:
        raise InputError("still over 10 MB after re-encoding: shrink it first")
    return out.getvalue()
