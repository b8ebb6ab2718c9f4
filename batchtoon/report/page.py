"""`write_gallery`: a run's static before/after page, `<out>/index.html`.

A page the user wrote is never replaced: a page is ours when it carries our mark (`<meta
name="generator" content="batchtoon">` in its head); if `<out>/index.html` is there and not
ours, the gallery is `<out>/batchtoon-gallery.html`; if that name too holds a page that is not
ours, no page is written and the `Unwritable` error says why.

Guarantees:
- the page is one self-contained file: its style, its script and its data are inline, and its
  Content-Security-Policy lets it fetch nothing but images (no network, no other script), so
  it works offline from disk, and a name in the data can never run as code: the data is JSON
  in a `<script type="application/json">` with `<`, `>` and `&` escaped (no `</script>` can
  end it), and the script puts names into the page as text only;
- every link is relative to `out` and percent-encoded, so the folder can be moved or zipped
  (originals outside `out` are linked with `../`: they must move along to stay reachable);
- the page is replaced whole (a temporary file beside it, renamed over it): a browser never
  reads half of it, and a page that was there stays until the new one is complete;
- thumbnails are made once (see `thumbs.py`); a later call reuses them, so rewriting the page
  of a run that grew costs the new photos only, and a run that made them as its results came
  (`arriving.py`) only looks them up. Nothing is ever deleted;
- an original a browser cannot show (HEIC, TIFF...) is linked, and thumbnailed, through its
  browser-viewable JPEG copy (`viewable.py`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from batchtoon.errors import Unwritable
from batchtoon.locations.files import write_whole
from batchtoon.report.model import Gallery
from batchtoon.report.pack import pack, shown
from batchtoon.report.thumbs import Thumbnails, thumbs_dir
from batchtoon.report.viewable import viewable_copies

__all__ = ["render", "write_gallery"]

PAGES = ("index.html", "batchtoon-gallery.html")  # the page's name, else its own
MARK = b'<meta name="generator" content="batchtoon">'
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# The JSON text is inlined in HTML: these must not appear raw (`</script>`, `<!--`, entities).
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def write_gallery(
    out: Path, gallery: Gallery, *, workers: int, thumbnails: Thumbnails | None = None
) -> Path:
    """Write `<out>/index.html` for `gallery` (making the thumbnails it needs in `workers`
    threads; those `thumbnails` made already are looked up) and return its path. `Stopped`
    if `thumbnails.stop()` came first."""
    originals = [card.original for card in gallery.cards if card.original is not None]
    views = viewable_copies(originals, out, workers=workers)
    files = [views.get(original, original) for original in originals]
    files += [
        cell.output for card in gallery.cards for cell in card.results.values() if cell.output
    ]
    thumbnails = thumbnails or Thumbnails(thumbs_dir(out))
    thumbs = thumbnails.names(files, workers=workers)
    thumbnails.save(complete=True)
    page = page_path(out)
    write_whole(page, render(gallery, out, thumbs, views).encode("utf-8"), durable=True)
    return page


def page_path(out: Path) -> Path:
    """Where the gallery goes: the first of `PAGES` that is free or ours (see the docstring)."""
    for name in PAGES:
        if not _theirs(out / name):
            return out / name
    raise Unwritable(
        f"no gallery written: {out / PAGES[0]} and {out / PAGES[1]} are pages batchtoon did not "
        "write (they lack its mark), and it never replaces them: move one, or --no-report"
    )


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


def render(
    gallery: Gallery,
    out: Path,
    thumbs: Mapping[Path, str | None],
    views: Mapping[Path, Path] | None = None,
) -> str:
    """The page's HTML for a page in `out`, with these thumbnail names and viewable copies."""
    packed = pack(gallery, out, thumbs, views or {})
    data = json.dumps(packed, ensure_ascii=False, separators=(",", ":"))
    style, script = _asset("page.css"), _asset("page.js")
    fields = {
        "title": html.escape(shown(gallery.title)),
        "csp": f"default-src 'none'; img-src 'self' file: data:; style-src {_digest(style)}; "
        f"script-src {_digest(script)}; base-uri 'none'; form-action 'none'",
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
