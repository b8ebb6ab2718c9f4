"""Result files: a downloaded result checked whole, then written under each of its outputs.

Guarantees:
- nothing is written unless the bytes are a whole image (`intact_format`): a cut-short or
  broken body raises `Transient`, so the caller fetches it again;
- each output is written to a temporary file *in its own folder* (`.<name>.batchtoon-part`),
  fsync'd, then renamed over its final name: `<out>` never holds a partial result, and any
  journal location and any file system work (the rename never crosses devices);
- the temporary name is fixed per output, so a part left by a killed run is overwritten by
  the resume's write of the same output rather than piling up;
- the bytes are kept as served; the extension follows the content, not the URL.

Blocking: call these in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import Transient
from .intact import intact_format
from .layout import Layout
from .outcomes import Filed

__all__ = ["PART_SUFFIX", "copy_result", "file_result"]

PART_SUFFIX = ".batchtoon-part"


def file_result(data: bytes, bases: Sequence[str], layout: Layout) -> Filed:
    """Check `data` whole, then write it under every base (one thread hop for all of it)."""
    try:
        fmt = intact_format(data)
    except (OSError, SyntaxError, ValueError):
        raise Transient("the result does not decode as an image") from None
    if not fmt:
        raise Transient("the result is an image of no known format")
    dests = tuple(layout.path(base, fmt) for base in bases)
    for dest in dests:
        _write(data, dest)
    return Filed(tuple(bases), dests, len(data), hashlib.sha256(data).hexdigest())


def copy_result(first: Path, bases: Sequence[str], layout: Layout) -> Filed:
    """The result already written at `first`, written again under `bases`."""
    return file_result(first.read_bytes(), bases, layout)


def _write(data: bytes, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.stem}{PART_SUFFIX}")
    with open(part, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(part, dest)  # same folder, so the same file system: atomic
