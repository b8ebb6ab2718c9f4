"""`write_gallery`: a run's static before/after page, `<out>/index.html`; `standing`: the page
already there, if it shows what the journal holds.

A page the user wrote is never replaced: a page is ours when it carries our mark (`<meta
name="generator" content="batchtoon">` in its head); if `<out>/index.html` is there and not
ours, the gallery is `<out>/batchtoon-gallery.html`; if that name too holds a page that is not
ours, no page is written and the `Unwritable` error says why.

Guarantees:
- the page's style, its script and its index are inline; its cards are in data files of
  `PER_FILE` cards (`<out>/.batchtoon/gallery/<id>/<n>.js`, see `pack.py`), which it loads
  only as it shows them, so a page of a million photos opens as fast as one of a thousand,
  and writing it holds one file's cards in memory, never all of them;
- its Content-Security-Policy lets it fetch nothing but images and the scripts its own script
  adds (its data files: no network, no other script), so it works offline from disk, and a
  name in the data can never run as code: the index is JSON in a `<script
  type="application/json">` with `<`, `>` and `&` escaped (no `</script>` can end it), a data
  file is JSON handed to a function, and the script puts names into the page as text only;
- every link is relative to `out` and percent-encoded, so the folder can be moved or zipped
  (originals outside `out` are linked with `../`: they must move along to stay reachable);
- the page is replaced whole (a temporary file beside it, renamed over it): a browser never
  reads half of it, and a page that was there stays until the new one is complete: each page
  has its own folder of data files, written before it, and the folders of the pages before
  it are removed once it is in place: by name (a folder named as ours, its `<n>.js` files,
  then the folder if that emptied it), never a link, nor anything else someone put there;
- thumbnails are made once (see `thumbs.py`); a later call reuses them, so rewriting the page
  of a run that grew costs the new photos only, and a run that made them as its results came
  (`arriving.py`) only looks them up. Nothing is ever deleted;
- an original a browser cannot show (HEIC, TIFF...) is linked, and thumbnailed, through its
  browser-viewable JPEG copy (`viewable.py`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import itertools
import json
import re
import secrets
from collections.abc import Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from batchtoon.errors import Unwritable
from batchtoon.locations.files import write_whole
from batchtoon.report.model import Gallery
from batchtoon.report.pack import PER_FILE, Links, Packer, file_data, shown
from batchtoon.report.thumbs import Thumbnails, thumbs_dir
from batchtoon.report.viewable import viewable_copies

__all__ = ["render", "standing", "write_gallery"]

PAGES = ("index.html", "batchtoon-gallery.html")
DATA = PurePosixPath(".batchtoon", "gallery")  # below the output folder: a folder per page
DATA_FOLDER_BYTES = 6  # a page's data folder: this many random bytes, as hex, its name ...
DATA_FOLDER = re.compile(r"[0-9a-f]{12}")
DATA_FILE = re.compile(r"[0-9]+\.js")  # ... and its files: `<n>.js`, n counting from 0
MARK = b'<meta name="generator" content="batchtoon">'
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# The JSON text is inlined in HTML: these must not appear raw (`</script>`, `<!--`, entities).
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def write_gallery(
    out: Path,
    gallery: Gallery,
    *,
    workers: int,
    thumbnails: Thumbnails | None = None,
    per_file: int = PER_FILE,
) -> Path:
    """Write `<out>/index.html` for `gallery` (making the thumbnails it needs in `workers`
    threads; those `thumbnails` made already are looked up), its cards `per_file` to a data
    file, and return its path. `Stopped` if `thumbnails.stop()` came first."""
    page = page_path(out)
    own = out / DATA
    if any((out / below).is_symlink() for below in (DATA.parent, DATA)):
        raise Unwritable(f"no gallery written: {own} is a link (batchtoon writes through none)")
    folder = own / secrets.token_hex(DATA_FOLDER_BYTES)
    folder.mkdir(parents=True)
    thumbnails = thumbnails or Thumbnails(thumbs_dir(out))
    packer = Packer(out, gallery.styles)
    cards = iter(gallery.cards)
    try:
        while chunk := list(itertools.islice(cards, max(1, per_file))):
            originals = [card.original for card in chunk if card.original is not None]
            views = viewable_copies(originals, out, workers=workers)
            files = [views.get(original, original) for original in originals]
            files += [
                cell.output for card in chunk for cell in card.results.values() if cell.output
            ]
            thumbs = thumbnails.names(files, workers=workers)
            n = len(packer.sizes)
            data = file_data(n, packer.file(chunk, thumbs, views))
            write_whole(folder / f"{n}.js", data, durable=True)
        thumbnails.save()
        index = packer.index(gallery, Links(out)(folder) + "/")
        write_whole(page, render(gallery, index).encode("utf-8"), durable=True)
    except BaseException:
        _remove_data(folder)
        raise
    for earlier in own.iterdir():  # the data of the pages before this one: ours, unread now
        if earlier != folder and DATA_FOLDER.fullmatch(earlier.name):
            _remove_data(earlier)
    return page


def _remove_data(folder: Path) -> None:
    """Remove a page's data folder as batchtoon made it: its `<n>.js` files by name, then the
    folder if that left it empty; anything else in it (a link, a file of someone else's)
    stays, and so does the folder."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for file in folder.iterdir():
        if DATA_FILE.fullmatch(file.name) and not file.is_symlink() and file.is_file():
            file.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def page_path(out: Path) -> Path:
    """Where the gallery goes: the first of `PAGES` that is free or ours (see the docstring)."""
    for name in PAGES:
        if not _theirs(out / name):
            return out / name
    raise Unwritable(
        f"no gallery written: {out / PAGES[0]} and {out / PAGES[1]} are pages batchtoon did not "
        "write (they lack its mark), and it never replaces them: move one, or --no-report"
    )


def standing(out: Path, journal: Path) -> Path | None:
    """Our page in `out`, if it was written after `journal` last changed: it shows what the
    journal holds, as it is (a run that changed nothing leaves it; None: write it)."""
    try:
        page = page_path(out)
        return page if page.stat().st_mtime_ns >= journal.stat().st_mtime_ns else None
    except (OSError, Unwritable):
        return None


def _theirs(page: Path) -> bool:
    """Whether a file is at `page` that is not a gallery of ours (a link counts as theirs)."""
    if page.is_symlink():
        return True
    try:
        with open(page, "rb") as file:
            return MARK not in file.read(4096)
    except FileNotFoundError:
        return False
    except OSError:
        return True


def render(gallery: Gallery, index: Mapping[str, Any]) -> str:
    """The page's HTML with this index (`Packer.index`)."""
    data = json.dumps(index, ensure_ascii=False, separators=(",", ":"))
    style, script = _asset("page.css"), _asset("page.js")
    fields = {
        "title": html.escape(shown(gallery.title)),
        # 'strict-dynamic': the scripts the page's own script adds (its data files) may run,
        # and no other
        "csp": f"default-src 'none'; img-src 'self' file: data:; style-src {_digest(style)}; "
        f"script-src {_digest(script)} 'strict-dynamic'; base-uri 'none'; form-action 'none'",
        "style": style,
        "script": script,
        "data": re.sub("[<>&]", lambda m: JSON_ESCAPES[m[0]], data),
    }
    # One pass over the template: a value is never scanned again for placeholders.
    return PLACEHOLDER.sub(lambda m: fields[m[1]], _asset("page.html"))


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    """The CSP source that allows exactly this inline script or style."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"
