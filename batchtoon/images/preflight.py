"""Pre-flight: what is uploaded for a photo, decided before any upload, so that a request that
cannot succeed is never paid for. Blocking: the engine runs it in worker threads.

`check(path, settings, cache)` returns the `Prepared` upload or raises `InputError` with one line
that says what is wrong and what to do.

Guarantees:
- `Prepared.sha256` is the sha256 of the original file as read, whatever is uploaded: the
  item's identity (deduplication and the journal are keyed by it).
- What is hashed and sent is one consistent read: the file's inode, size, mtime and ctime are
  the same before and after it (an object's in a store: its size and ETag, or what else its
  backend gives to tell versions apart); a file rewritten meanwhile is read again (up to
  `READ_ATTEMPTS` times in all), then refused rather than sent torn.
- No metadata leaves unless `keep_metadata`: a photo sent as it is goes without its EXIF, XMP
  and text chunks, stripped losslessly (`scrub`: its coded pixels, JFIF and ICC kept); one
  holding none is sent byte for byte. A converted one is encoded with none.
- `fix` off: the file is sent as it is (see above), or refused with the reason the API would
  give.
- `fix` on (the default): a file the API takes, upright, whose short side is at most
  `max_short_side`, is sent as it is; any other is converted by `shrink.prepare` (the
  shrink rule is in its docstring) and `Prepared.reasons` says why, in the words of `REASONS`.
- A conversion is cached in `cache` by the original's sha256 and the settings that shape its
  bytes, written atomically (a unique temporary file, then `os.replace`); a resume reads it
  back, headers only, instead of preparing again. A damaged cache file is prepared anew.
  `forget(cache, sha256)` removes a photo's conversions once its results are stored (a style
  sent later is prepared again); it removes only files of the cache's own names, and nothing
  through a cache folder that is a symbolic link.
- `Prepared.crop` says, for a photo wider or taller than 3:2 that is sent so, what the
  provider will keep of it (its centre 3:2, `shrink.provider_crop`; a crop of less than
  `UNSEEN_CROP` of the long side is not worth a word); with `fit: pad` (and `fix`) such a
  photo is padded to 3:2 instead (reason `padded`) and nothing is cropped.
- Hostile input never crashes it: decompression bombs, absurd sizes, truncation, files that
  are not images (or are not photo formats: EPS would run Ghostscript) end as `InputError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import io
import os
import re
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError, features

from batchtoon.errors import InputError, StoreFailure
from batchtoon.images import shrink
from batchtoon.images.intact import TooManyPixels, refuse_pixel_bomb, verify_intact
from batchtoon.images.scrub import scrub
from batchtoon.images.shrink import MAX_UPLOAD_BYTES
from batchtoon.locations import storage
from batchtoon.locations.files import read_all, write_whole
from batchtoon.locations.storage import Location
from batchtoon.settings.config import PrepareSettings

__all__ = [
    "MAX_UPLOAD_BYTES", "REASONS", "Crop", "Prepared", "check", "fingerprint", "forget", "opened",
]  # fmt: skip

REASONS = {
    "heic": "HEIC/HEIF, which the API does not take (so for any other such format: its name)",
    "16-bit": "more than 8 bits a channel (16-bit or float)",
    "cmyk": "CMYK colours",
    "colour-mode": "another colour mode the API's decoders may not read (YCbCr, LAB, ...)",
    "first-frame": "several frames or images: the first (primary) one is sent",
    "rotated": "an EXIF orientation, applied to the pixels",
    "over-limit": "over the API's 5760x3240 or 10 MB",
    "shrunk": "its short side is over max_short_side",
    "padded": "wider or taller than 3:2: padded to 3:2, so the provider crops none of it",
}
ACCEPTED = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
OPENED = ("JPEG", "PNG", "WEBP", "BMP", "MPO", "HEIF", "AVIF", "GIF", "TIFF")  # and no others
# Pillow's plugins of OPENED's formats but HEIF (the modules `PIL.<name>ImagePlugin`).
PLUGINS = ("Jpeg", "Png", "WebP", "Bmp", "Mpo", "Avif", "Gif", "Tiff")
FORMAT_REASONS = {"HEIF": "heic"}  # else the format's name in lower case: "gif", "mpo", ...
SAFE_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})  # 8-bit: every decoder reads them
MAX_FIX_BYTES = 256 * 1024 * 1024  # beyond this even the fix will not read a file
READ_ATTEMPTS = 3
READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
RECIPE = 2  # bump when shrink's bytes change for the same input and settings: new cache names
ORIENTATION = 0x0112
TOO_MANY_PIXELS = "too many pixels to open safely: downscale it first"
UNSEEN_CROP = 0.02  # a crop of less than this share of the long side is not said, nor padded
DEFAULTS = PrepareSettings()


@dataclass(frozen=True, slots=True)
class Crop:
    """What the provider keeps of a photo wider or taller than 3:2: its centre `kept`."""

    size: tuple[int, int]  # the photo, as it is seen (upright)
    kept: tuple[int, int]  # its centre that the result shows

    def __str__(self) -> str:
        (width, height), (kept_w, kept_h) = self.size, self.kept
        return f"{width}x{height}: the provider keeps its centre {kept_w}x{kept_h} (3:2)"


@dataclass(frozen=True, slots=True)
class Prepared:
    sha256: str  # of the original file as read: the item's identity, converted or not
    data: bytes  # what is uploaded
    format: str  # Pillow's name for the format of `data`
    size: tuple[int, int]  # of `data`
    reasons: tuple[str, ...] = ()  # why `data` is not the original (REASONS); () if it is
    original_bytes: int = 0
    cached: bool = False  # the conversion was read back from the cache, not made now
    crop: Crop | None = None  # what the provider will crop it to, if it will
    seen: int = 0  # the file's `fingerprint` as read (0: not known)

    @property
    def converted(self) -> bool:
        return bool(self.reasons)

    @property
    def upload_bytes(self) -> int:
        return len(self.data)


def check(
    path: Location, settings: PrepareSettings | None = None, cache: Path | None = None
) -> Prepared:
    """The upload for `path`, or `InputError`; see the module docstring for guarantees."""
    settings = settings or DEFAULTS
    data, look = _read_stable(path, MAX_FIX_BYTES if settings.fix else MAX_UPLOAD_BYTES)
    sha, seen = hashlib.sha256(data).hexdigest(), _fingerprint(look)
    with _one_line_errors(), opened(data) as image:
        _refuse_unsafe(image)
        orientation = _orientation(image) if settings.fix else 1
        crop = _crop(image.size, orientation)
        as_is = Prepared(
            sha, data, image.format or "", image.size, (), len(data), crop=crop, seen=seen
        )
        if not settings.fix:
            _refuse_strict(image, data)
            return _scrubbed(as_is, settings)
        pad = settings.fit == "pad" and crop is not None
        reasons = _reasons(image, len(data), orientation, settings.max_short_side, pad)
        if not reasons:
            verify_intact(image, data)
            return _scrubbed(as_is, settings)
        crop = None if pad else crop
        name = _cache_name(sha, settings, pad)
        hit = _from_cache(cache / name) if cache is not None else None
        if hit is not None:
            return dataclasses.replace(
                hit, sha256=sha, reasons=reasons, original_bytes=len(data), crop=crop, seen=seen
            )
        upload = shrink.prepare(
            image,
            max_short=settings.max_short_side,
            quality=settings.quality,
            orientation=orientation,
            pad=pad,
        )
    if cache is not None:
        _store(cache, name, upload.data)
    return Prepared(
        sha, upload.data, upload.format, upload.size, reasons, len(data), crop=crop, seen=seen
    )


def _crop(size: tuple[int, int], orientation: int) -> Crop | None:
    """What the provider will keep of a photo of `size` (stored), seen upright; None if it
    keeps all of it, or all but under `UNSEEN_CROP` of its long side (451x300: a pixel)."""
    upright = size[::-1] if orientation in shrink.SIDEWAYS else size
    kept = shrink.provider_crop(upright)
    if kept is None or max(kept) >= (1 - UNSEEN_CROP) * max(upright):
        return None
    return Crop(upright, kept)


def _scrubbed(as_is: Prepared, settings: PrepareSettings) -> Prepared:
    """The photo as it is, without its metadata unless the settings keep it."""
    if settings.keep_metadata:
        return as_is
    return dataclasses.replace(as_is, data=scrub(as_is.data, as_is.format))


# Reading: one consistent copy of the file.


Look = tuple[int, tuple[object, ...]]  # a file's size, and what tells its versions apart


def fingerprint(path: Location) -> int:
    """What tells this version of the file from others without reading it, as a number: its
    size, modification and change times, device and inode (for an object, its size and
    version), as rsync compares; `InputError` as `check` says it."""
    return _fingerprint(_look_at(path, MAX_FIX_BYTES))


def file_fingerprint(path: str) -> int:
    """A local file's `fingerprint`, its path given as text (one `stat`: a resume asks it of
    every photo); 0 where `fingerprint` would raise."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return 0
    if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= MAX_FIX_BYTES:
        return 0
    return _fingerprint(_look_of(info))


_NUMBERS = struct.Struct("<5Q")  # a local file's look: its size and four numbers


def _fingerprint(look: Look) -> int:
    size, version = look
    try:  # (packed, not `repr`ed: a quarter of the time, and a resume asks it of every photo)
        data = _NUMBERS.pack(size, *version)
    except struct.error:  # an object's version (text), or a time before 1970
        data = repr(look).encode()
    digest = hashlib.blake2b(data, digest_size=6).digest()
    return int.from_bytes(digest, "big") or 1  # 48 bits: one change in 2**48 goes unseen


def _read_stable(path: Location, limit: int) -> tuple[bytes, Look]:
    """The file's bytes, read while it did not change (see the module docstring)."""
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * attempt)  # a writer mid-way: give it a moment to finish
        before = _look_at(path, limit)
        size = before[0]
        data = _read_bytes(path, size) if isinstance(path, Path) else _read_url(path, size)
        if len(data) == size and _look_at(path, limit) == before:
            return data, before
    raise InputError(
        f"it changed while being read, {READ_ATTEMPTS} times: run again once it is written"
    )


def _look_at(path: Location, limit: int) -> Look:
    return _look(path, limit) if isinstance(path, Path) else _look_url(path, limit)


def _look(path: Path, limit: int) -> Look:
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError("broken symbolic link: its target is gone") from None
        raise InputError("file not found: it was moved or deleted") from None
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file")
    _fits(info.st_size, limit)
    return _look_of(info)


def _look_of(info: os.stat_result) -> Look:
    # ctime too: a writer can set mtime back (cp -p, rsync), never ctime.
    return info.st_size, (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)


def _look_url(url: str, limit: int) -> Look:
    try:
        found = storage.stat(url)
    except StoreFailure as failure:
        if failure.missing:
            raise InputError("object not found: it was moved or deleted") from None
        raise InputError(f"cannot read it: {failure}") from None
    _fits(found.size, limit)
    return found.size, found.version


def _fits(size: int, limit: int) -> None:
    if size == 0:
        raise InputError("empty file (0 bytes): re-export or remove it")
    if size > limit:
        advice = "drop --no-fix to re-encode it" if limit < MAX_FIX_BYTES else "shrink it first"
        raise InputError(f"{size / 1e6:.1f} MB is over the {limit // 2**20} MB limit: {advice}")


def _read_bytes(path: Path, size: int) -> bytes:
    """The file's bytes: `size` and one more at most (a file that grew is told by its length),
    read from its descriptor (a file object's own calls to the OS would each let go of the GIL)."""
    try:
        fd = os.open(path, READ)
        try:
            return read_all(fd, size + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror or exc}") from None


def _read_url(url: str, size: int) -> bytes:
    try:
        return storage.read(url, size)
    except StoreFailure as failure:
        raise InputError(f"cannot read it: {failure}") from None


# Opening: the formats intake reads, every failure one line.


@contextlib.contextmanager
def opened(data: bytes) -> Iterator[Image.Image]:
    """`data` opened (not decoded) as one of the formats pre-flight reads, HEIC included."""
    with Image.open(io.BytesIO(data), formats=_formats(data)) as image:
        yield image


_REGISTERING = threading.Lock()


def _formats(data: bytes = b"") -> tuple[str, ...]:
    """The formats `data` may be opened as. pillow-heif (and numpy with it, some 20 MB) is
    loaded only for an ISO media file (`ftyp` at byte 4: HEIC, HEIF, AVIF), or with no `data`."""
    if data and data[4:8] != b"ftyp":
        return _standard_formats()
    with _REGISTERING:  # worker threads arrive at once; the openers are registered once
        return _register_openers()


@functools.cache
def _standard_formats() -> tuple[str, ...]:
    """The formats of `OPENED` this Pillow reads, their plugins loaded: those alone, where
    `Image.init` would load all forty (some 3 MB more of the run's memory)."""
    for plugin in PLUGINS:
        with contextlib.suppress(ImportError):  # (AVIF: in Pillow from 11.2 only)
            importlib.import_module(f"PIL.{plugin}ImagePlugin")
    return tuple(name for name in OPENED if name in Image.OPEN)


@functools.cache
def _register_openers() -> tuple[str, ...]:
    """HEIF (pillow-heif) and, when this Pillow lacks it, AVIF: registered on first use, so
    importing batchtoon loads neither. The formats of `OPENED` that can be read here."""
    import pillow_heif

    # No thumbnails: `draft` could then pick one; depth and auxiliary images are not sent.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    register_avif = getattr(pillow_heif, "register_avif_opener", None)  # pillow-heif < 1.0
    if not features.check("avif") and register_avif is not None:
        register_avif()
    _standard_formats()
    return tuple(name for name in OPENED if name in Image.OPEN)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Whatever a hostile or broken file makes Pillow (or a plugin) raise, as `InputError`."""
    try:
        yield
    except UnidentifiedImageError:
        raise InputError("not an image (or one no decoder here reads): remove it") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
        # The warning arrives as an exception only where warnings are errors (pytest here).
        raise InputError(TOO_MANY_PIXELS) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error):
        raise InputError("truncated or corrupt image: re-export or replace it") from None


# Deciding: refuse, send as it is, or convert (and why).


def _refuse_unsafe(image: Image.Image) -> None:
    """Refuse what no setting makes sendable: too small, or too many pixels to decode."""
    width, height = image.size
    try:
        refuse_pixel_bomb(image)  # from the header: Pillow warned (only), we refuse
    except TooManyPixels:
        raise InputError(TOO_MANY_PIXELS) from None
    if min(width, height) < shrink.MIN_SIDE:
        raise InputError(f"{width}x{height} is under the API's 256 px minimum: use a larger photo")


def _refuse_strict(image: Image.Image, data: bytes) -> None:
    """With the fix off: refuse what the API would refuse, as it is."""
    width, height = image.size
    short, long = sorted(image.size)
    if image.format not in ACCEPTED:
        raise InputError(
            f"{image.format} is not a format the API takes (JPEG, PNG, BMP, WEBP): "
            "drop --no-fix to convert it"
        )
    verify_intact(image, data)
    if short > shrink.MAX_SHORT or long > shrink.MAX_LONG:
        raise InputError(
            f"{width}x{height} is over the API's 5760x3240 limit: drop --no-fix to downscale it"
        )
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError("over the API's 10 MB limit: drop --no-fix to re-encode it")


def _reasons(
    image: Image.Image, size_bytes: int, orientation: int, max_short: int | None, pad: bool
) -> tuple[str, ...]:
    """Why `image` cannot be sent as it is (REASONS), or () when it can."""
    reasons = []
    if image.format not in ACCEPTED:
        reasons.append(FORMAT_REASONS.get(image.format or "", (image.format or "").lower()))
    if image.mode not in SAFE_MODES:
        reasons.append(_mode_reason(image.mode))
    # MPO: a camera JPEG with previews appended, not a sequence.
    if reasons and image.format != "MPO" and getattr(image, "is_animated", False):
        reasons.append("first-frame")
    if orientation in shrink.TRANSPOSE:
        reasons.append("rotated")
    short, long = sorted(image.size)
    if short > shrink.MAX_SHORT or long > shrink.MAX_LONG or size_bytes > MAX_UPLOAD_BYTES:
        reasons.append("over-limit")
    if max_short is not None and short > max_short:
        reasons.append("shrunk")
    if pad:
        reasons.append("padded")
    if reasons and min(shrink.target_size(image.size, max_short)) < shrink.MIN_SIDE:
        raise InputError(
            f"{image.width}x{image.height} cannot fit 5760x3240 and keep 256 px: crop it"
        )
    return tuple(reasons)


def _mode_reason(mode: str) -> str:
    if mode in shrink.DEEP_MODES:
        return "16-bit"
    return "cmyk" if mode == "CMYK" else "colour-mode"


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1, upright, when absent or not a valid one)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # PNG's getexif() decodes every pixel to look for an eXIf chunk after them
    value = image.getexif().get(ORIENTATION, 1)
    return value if isinstance(value, int) and value in shrink.TRANSPOSE else 1


# The cache of conversions.


def _cache_name(sha: str, settings: PrepareSettings, pad: bool) -> str:
    """Keyed by the original and every setting that changes the converted bytes."""
    name = f"{sha}.r{RECIPE}-s{settings.max_short_side or 0}-q{settings.quality}"
    return name + "-pad" if pad else name


def forget(cache: Path, sha: str) -> None:
    """Remove the photo `sha`'s conversions from `cache` (whatever settings made them): its
    results are stored, and a converted copy of every photo would otherwise stay on disk."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or not _is_folder_not_link(cache):
        return
    for made in cache.glob(f"{sha}.r*"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove: no matter
            made.unlink()


def _is_folder_not_link(path: Path) -> bool:
    """A folder at `path`, not a link to one (one call: a run asks it for every result)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _from_cache(file: Path) -> Prepared | None:
    """The cached conversion, its format and size from its header (no decode); None if
    there is none or it is not a whole upload the API takes (it is then made again)."""
    try:
        data = file.read_bytes()
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
            verify_intact(image, data)  # JPEG: its end marker; PNG: every chunk's CRC
            fmt, size = image.format or "", image.size
    except (OSError, SyntaxError, ValueError):  # absent, or damaged (no fsync: a power cut)
        return None
    short, long = sorted(size)
    within = shrink.MIN_SIDE <= short <= shrink.MAX_SHORT and long <= shrink.MAX_LONG
    if not within or len(data) > MAX_UPLOAD_BYTES:
        return None
    return Prepared("", data, fmt, size, cached=True)


def _store(cache: Path, name: str, data: bytes) -> None:
    """Atomically: readers see the whole file or none. Not being able to cache is no error."""
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        write_whole(cache / name, data, durable=False)  # damaged after a power cut: made again
