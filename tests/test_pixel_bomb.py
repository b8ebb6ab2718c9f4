"""A photo with too many pixels is refused from its header: the whole run, gallery included,
stays small in memory (measured in a process of its own)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from helpers import peak_run

PEAK_LIMIT = 100 * 2**20  # bytes; decoding 12000x12000 RGB alone would take 412 MiB


def flat_png(path: Path, width: int, height: int) -> None:
    """A whole, valid RGB PNG of one colour, written row by row: no 400 MB image here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    squeeze, row = zlib.compressobj(9), b"\0" + b"\x80" * (3 * width)
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_12000_square_png_is_refused_with_the_gallery_under_100_mib(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    flat_png(tmp_path / "in" / "huge.png", 12000, 12000)
    code, err, peak = peak_run(
        ["run", "in", "--sandbox", "--out", "out", "--quiet", "--prepare-workers", "2"], tmp_path
    )
    assert code == 1 and "huge.png: too many pixels to open safely" in err, err
    assert (tmp_path / "out" / "index.html").is_file()  # the gallery was made, without it
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.0f} MiB"
