"""Metadata off a photo sent as it is, losslessly: the container is rewritten without the
parts that describe the photo's circumstances, the coded pixels are copied untouched.

`scrub(data, fmt)` returns the bytes to upload:
- JPEG: every segment before and between the scans is kept or dropped by its marker. Kept:
  the ones that decode the picture (tables, frame, scans, restart interval), APP0 (JFIF,
  JFXX), APP2 `ICC_PROFILE` (its colours) and APP14 `Adobe` (its colour transform). Dropped:
  APP1 (EXIF with its GPS position, camera serial numbers and thumbnail; XMP), every other
  APPn (IPTC in APP13, maker data...), comments, and whatever follows the end of the image
  (a phone's appended video, say).
- PNG: the chunks `tEXt`, `zTXt`, `iTXt` (text, XMP), `eXIf` and `tIME` are dropped, every
  other chunk is copied with its CRC; nothing after `IEND` is kept.
- WEBP: the RIFF chunks `EXIF` and `XMP ` are dropped, their flags cleared in `VP8X`.
- BMP holds none: as it is.
A photo holding none of these comes back byte for byte (the same object). A structure that
cannot be walked to its end raises `InputError`: the photo is refused rather than sent with
what it may hold.
"""

from __future__ import annotations

import struct

from batchtoon.errors import InputError

__all__ = ["scrub"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DROPPED = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
WEBP_DROPPED = {b"EXIF": 0x08, b"XMP ": 0x04}  # chunk -> its flag in VP8X
# JPEG markers: SOI, EOI, the restart markers (no length); SOS begins entropy-coded data.
SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
RESTARTS = range(0xD0, 0xD8)
APP0, APP2, APP14, APP15 = 0xE0, 0xE2, 0xEE, 0xEF
JPEG_KEPT_APPS = {APP0: (b"JFIF\0", b"JFXX\0"), APP2: (b"ICC_PROFILE\0",), APP14: (b"Adobe",)}
DAMAGED = "its structure is damaged, so its metadata cannot be removed: re-export it"


def scrub(data: bytes, fmt: str) -> bytes:
    """`data` (a photo in Pillow's format `fmt`) without its metadata; see the module."""
    strip = {"JPEG": _jpeg, "PNG": _png, "WEBP": _webp}.get(fmt)
    if strip is None:
        return data
    try:
        kept = strip(data)
    except (IndexError, struct.error, ValueError):
        raise InputError(DAMAGED) from None
    return data if kept == data else kept


# JPEG


def _jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise ValueError("no SOI")
    parts, at = [data[:2]], 2
    while True:
        marker, start = _next_marker(data, at)
        if marker == EOI:
            parts.append(b"\xff\xd9")
            return b"".join(parts)
        (length,) = struct.unpack_from(">H", data, start + 2)
        end = start + 2 + length
        if length < 2 or end > len(data):
            raise ValueError("segment past the end")
        if _keeps(marker, data[start + 4 : end]):
            parts.append(data[start:end])
        at = end
        if marker == SOS:  # the coded data runs to the next marker that is not a restart
            scan_end = _scan_end(data, at)
            parts.append(data[at:scan_end])
            at = scan_end


def _next_marker(data: bytes, at: int) -> tuple[int, int]:
    """The marker at `at` (fill bytes 0xFF before it skipped) and where its 0xFF is."""
    if data[at] != 0xFF:
        raise ValueError("no marker")
    while data[at + 1] == 0xFF:
        at += 1
    return data[at + 1], at


def _scan_end(data: bytes, at: int) -> int:
    """Where the entropy-coded data that begins at `at` ends: its first real marker."""
    while True:
        at = data.index(b"\xff", at)
        follower = data[at + 1]
        if follower == 0 or follower in RESTARTS or follower == 0xFF:
            at += 1 if follower == 0xFF else 2  # a stuffed byte, a restart, fill
            continue
        return at


def _keeps(marker: int, payload: bytes) -> bool:
    if marker == COM:
        return False
    if APP0 <= marker <= APP15:
        return payload.startswith(JPEG_KEPT_APPS.get(marker, ()))
    return True


# PNG


def _png(data: bytes) -> bytes:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("no signature")
    parts, at = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while True:
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 12 + length
        if end > len(data):
            raise ValueError("chunk past the end")
        if kind not in PNG_DROPPED:
            parts.append(data[at:end])
        if kind == b"IEND":
            return b"".join(parts)
        at = end


# WEBP


def _webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not RIFF WEBP")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    chunks, at, dropped = [], 12, 0
    while at < min(len(data), 8 + riff_size):
        kind, size = struct.unpack_from("<4sI", data, at)
        end = at + 8 + size + (size & 1)
        if end > len(data):
            raise ValueError("chunk past the end")
        if kind in WEBP_DROPPED:
            dropped |= WEBP_DROPPED[kind]
        else:
            chunks.append(bytearray(data[at:end]))
        at = end
    if not dropped:
        return data
    for chunk in chunks:
        if chunk[:4] == b"VP8X":
            chunk[8] &= ~dropped & 0xFF
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
