"""A run's before/after gallery: a static page, `<out>/index.html`, that opens from disk.

    gallery = from_ledger(Journal.replay(path).ledger, out, counts=..., started=..., ...)
    write_gallery(out, gallery, workers=2)  # -> out / "index.html"

A run can fill `Gallery` itself instead (`Card` per photo, `Cell` per style). Nothing here
imports the engine or the CLI: both may call it, at the end of a run or from `batchtoon report`.
What the page guarantees is in `page.py`; the thumbnails', in `thumbs.py`; a run makes them as
its results arrive with `arriving.py`, so that its page at the end costs little.
"""

from __future__ import annotations

from batchtoon.report.model import STATES, Card, Cell, Gallery, State, from_ledger
from batchtoon.report.page import standing, write_gallery

__all__ = [
    "STATES", "Card", "Cell", "Gallery", "State", "from_ledger", "standing", "write_gallery",
]  # fmt: skip
