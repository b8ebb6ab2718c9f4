"""The run's gallery page: every photo and style on it, links that work from anywhere, names
that stay text, thumbnails made once; and, in a real headless Chromium, what a person sees."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import anyio
import pytest
from harness import photo
from PIL import Image

from batchtoon.records.ledger import Ledger
from batchtoon.report import Card, Cell, Gallery, from_ledger, model, thumbs, write_gallery
from batchtoon.report.arriving import ArrivingThumbnails
from batchtoon.report.pack import shown
from batchtoon.report.thumbs import (
    Stopped,
    Thumbnails,
    flat_rgb,
    make_thumbnails,
    thumbnail,
    thumbs_dir,
    upright,
)

STYLES = (0, 2, 7)
HOSTILE = "<img src=x onerror=window.__pwned=1>.jpg"
# A path, not a name (a name cannot hold "/"): folders "evil<" and "script><script>...<".
BREAKOUT = "evil</script><script>window.__pwned=2</script>.jpg"
ODD = "a b#1?x=%41&é.jpg"  # a space, #, ?, %, & and non-ASCII: all must survive in a link
NOT_UTF8 = os.fsdecode(b"caf\xe9.jpg")


@dataclass
class Run:
    out: Path
    photos: Path
    ledger: Ledger

    def source(self, name: str) -> str:
        return str(self.photos / name)


def _record(ledger: Ledger, event: str, **fields: Any) -> None:
    ledger.apply({"v": 1, "t": 0.0, "event": event, **fields})


def _done(run: Run, name: str, seed: int, styles: tuple[int, ...] = STYLES) -> None:
    """A photo journaled as downloaded in `styles`, its results on disk."""
    path = run.photos / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(photo((320, 256), seed=seed))
    stem = Path(name).stem
    for style in styles:
        key = f"{seed:064x}:{style}"
        base = f"{stem}.{style}"
        _record(run.ledger, "queued", key=key, source=str(path), output=base)
        _record(run.ledger, "submitted", key=key, sources=[str(path)], task_id="t")
        (run.out / f"{base}.jpg").write_bytes(photo((300, 300), seed=seed * 10 + style))
        _record(run.ledger, "downloaded", key=key, source=str(path), output=f"{base}.jpg")


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """An output folder as a run leaves it: five photos done in three styles (hostile and odd
    names among them), two refused for their size, one failed in one style and pending in
    another, and a HEIC file no decoder here reads."""
    out, photos = tmp_path / "out dir", tmp_path / "photos"
    out.mkdir()
    result = Run(out, photos, Ledger())
    for seed, name in enumerate(["plain.jpg", HOSTILE, BREAKOUT, ODD, NOT_UTF8], start=1):
        _done(result, name, seed)
    _done(result, "mixed.jpg", 9, styles=(0,))
    mixed = result.source("mixed.jpg")
    _record(result.ledger, "queued", key=f"{9:064x}:2", source=mixed, output="mixed.2")
    _record(
        result.ledger,
        "failed",
        key=f"{9:064x}:2",
        sources=[mixed],
        reason="422 ERROR_NO_FACE_IN_FILE: no face in the image",
        **{"class": "ItemRejected"},
    )
    _record(result.ledger, "queued", key=f"{9:064x}:7", source=mixed, output="mixed.7")
    for name, size in [("small.jpg", (300, 225)), ("smaller.jpg", (300, 168))]:
        (photos / name).write_bytes(photo(size))
        reason = f"{size[0]}x{size[1]} is under the API's 256 px minimum: use a larger photo"
        for style in STYLES:
            _record(
                result.ledger, "rejected", source=result.source(name), style=style, reason=reason
            )
    (photos / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    for style in STYLES:
        _record(
            result.ledger,
            "rejected",
            source=result.source("phone.heic"),
            style=style,
            reason="not an image (or one no decoder here reads): remove it",
        )
    return result


def _write(run: Run) -> Path:
    return write_gallery(run.out, from_ledger(run.ledger, run.out), workers=2)


def _index(page: Path) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="gallery-data">(.*?)</script>',
        page.read_text(encoding="utf-8"),
        re.S,
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


def _file(page: Path, index: dict[str, Any], n: int) -> dict[str, Any]:
    """Data file `n` of a page, as page.js is handed it."""
    text = (page.parent / unquote(index["files"]["dir"]) / f"{n}.js").read_text(encoding="utf-8")
    found = re.fullmatch(r"batchtoonData\((\d+),(.*)\);\n", text, re.S)
    assert found is not None and int(found[1]) == n
    data: dict[str, Any] = json.loads(found[2])
    return data


def _data(page: Path) -> dict[str, Any]:
    """The page's index with every data file's cards in it, as if they were one: their
    folders and reasons in one table each (a card's indexes moved along)."""
    data = _index(page)
    data.update(dirs=[], reasons=[], cards=[])
    for n in range(len(data["files"]["sizes"])):
        file = _file(page, data, n)
        dirs, reasons = len(data["dirs"]), len(data["reasons"])
        for name, sdir, original, thumb, outdir, outprefix, cells, view in file["cards"]:
            data["cards"].append([
                name, sdir + dirs, original and [original[0] + dirs, original[1]], thumb,
                outdir + dirs, outprefix,
                [c if c == 0 or isinstance(c[0], str) else [c[0], c[1] + reasons] for c in cells],
                view and [view[0] + dirs, view[1]],
            ])  # fmt: skip
        data["dirs"] += file["dirs"]
        data["reasons"] += file["reasons"]
    return data


def _links(data: dict[str, Any], card: list[Any]) -> tuple[str, list[str]]:
    """A card's original link (its viewable copy's, if it has one) and its result links ("" for
    none), as page.js builds them."""
    dirs = data["dirs"]
    name, _, original, _, outdir, outprefix, cells, view = card
    file = "" if original == 0 else (name if original[1] == 0 else original[1])
    prefix = dirs[outdir] + (file[: file.rfind(".") + 1] if outprefix == 0 else outprefix)
    results = [prefix + cell[0] if cell != 0 and isinstance(cell[0], str) else "" for cell in cells]
    if view:
        return dirs[view[0]] + view[1], results
    return ("" if original == 0 else dirs[original[0]] + file), results


def _cards(data: dict[str, Any]) -> dict[str, list[Any]]:
    """The cards by the source's file name as shown."""
    return {card[0]: card for card in data["cards"]}


def _states(card: list[Any]) -> list[str]:
    names = {1: "failed", 2: "refused", 3: "pending"}
    return ["none" if c == 0 else "done" if isinstance(c[0], str) else names[c[0]] for c in card[6]]


def test_every_photo_and_style_is_on_the_page(run: Run) -> None:
    data = _data(_write(run))
    cards = _cards(data)
    assert [style for style, _ in data["styles"]] == list(STYLES)
    done = ["plain.jpg", HOSTILE, "script>.jpg", ODD, shown(NOT_UTF8)]
    assert sorted(cards) == sorted([*done, "mixed.jpg", "small.jpg", "smaller.jpg", "phone.heic"])
    for name in done:
        assert _states(cards[name]) == ["done"] * 3
        assert all(len(cell) == 2 for cell in cards[name][6])  # each with its thumbnail
    assert _states(cards["mixed.jpg"]) == ["done", "failed", "pending"]
    assert _states(cards["small.jpg"]) == ["refused"] * 3
    counts = dict(data["counts"])
    # the header counts what the filters count, in their words: results by state
    assert counts == {
        "photos": 9, "results": 27, "done": 16, "failed": 1, "refused": 9, "pending": 1,
    }  # fmt: skip


def test_reasons_are_shown_and_grouped_by_kind(run: Run) -> None:
    data = _data(_write(run))
    kinds = {label: (state, cells) for state, label, cells, _ in data["kinds"]}
    assert kinds == {
        "300x… is under the API's 256 px minimum: use a larger photo": ("refused", 6),
        "not an image (or one no decoder here reads): remove it": ("refused", 3),
        "422 ERROR_NO_FACE_IN_FILE: no face in the image": ("failed", 1),
    }
    small = _cards(data)["small.jpg"][6][0]
    assert data["reasons"][small[1]][0].startswith("300x225 is under the API's 256 px minimum")
    pending = _cards(data)["mixed.jpg"][6][2]
    assert data["reasons"][pending[1]] == ["queued: not submitted yet", -1]
    groups = {group: label for _, label, _, group in data["kinds"]}
    assert groups[data["reasons"][small[1]][1]].startswith("300x… is under")


def test_links_are_relative_and_point_at_existing_files(run: Run, tmp_path: Path) -> None:
    data = _data(_write(run))
    moved = tmp_path / "moved"  # the whole folder moved: links inside it still work
    shutil.move(run.out, moved / "out dir")
    out = moved / "out dir"
    shutil.move(run.photos, moved / "photos")
    checked = 0
    for card in data["cards"]:
        original, results = _links(data, card)
        done = [cell for cell in card[6] if cell != 0 and isinstance(cell[0], str)]
        thumbs = [card[3]] + [cell[1] for cell in done if len(cell) == 2]
        links = [original, *results, *(data["thumbs"] + t + ".jpg" for t in thumbs if t)]
        for href in filter(None, links):
            assert re.fullmatch(r"[A-Za-z0-9_.~/%-]+", href), href  # no scheme, #, ? or space
            assert not href.startswith("/")
            assert (out / os.fsdecode(unquote_to_bytes(href))).is_file(), href
            checked += 1
    assert checked == 9 + 16 + 8 + 16  # originals, results, their thumbnails (none for the HEIC)


def test_odd_and_non_utf8_names_are_encoded_in_links_and_escaped_in_text(run: Run) -> None:
    data = _data(_write(run))
    cards = _cards(data)
    assert _links(data, cards[ODD])[0].endswith("/a%20b%231%3Fx%3D%2541%26%C3%A9.jpg")
    shown_name = "caf\\xe9.jpg"
    assert shown_name in cards
    original, results = _links(data, cards[shown_name])
    assert original.endswith("/caf%E9.jpg")
    assert results[0] == "caf%E9.0.jpg"


def test_hostile_names_stay_text(run: Run) -> None:
    gallery = from_ledger(run.ledger, run.out, title="</script><script>window.__pwned=3</script>")
    html = write_gallery(run.out, gallery, workers=2).read_text(encoding="utf-8")
    assert len(re.findall("<script", html, re.I)) == 2  # the data and the page's own script
    assert "<img src=x" not in html and "window.__pwned" in html  # escaped, but there
    assert "<title>&lt;/script&gt;&lt;script&gt;" in html
    data = _data(run.out / "index.html")
    assert HOSTILE in _cards(data) and data["title"].startswith("</script>")
    assert "evil</script><script>window.__pwned=2</script>.jpg" in [
        data["dirs"][card[1]].rsplit("/photos/", 1)[-1] + card[0] for card in data["cards"]
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain é 名前.jpg", "plain é 名前.jpg"),
        (os.fsdecode(b"caf\xe9"), "caf\\xe9"),
        ("bell\x07 esc\x1b[31m nl\n", "bell\\x07 esc\\x1b[31m nl\\x0a"),
        ("abc\u202egpj.exe", "abc\\u202egpj.exe"),  # reordering would show "abcexe.jpg"
        ("c1\x9b", "c1\\x9b"),
    ],
)
def test_names_are_shown_with_bytes_and_controls_escaped(text: str, expected: str) -> None:
    assert shown(text) == expected


def test_thumbnails_are_made_once_and_the_page_is_replaced_whole(run: Run) -> None:
    page = _write(run)
    thumbs = thumbs_dir(run.out)
    first = {path.name: path.stat().st_mtime_ns for path in thumbs.glob("*.jpg")}
    assert len(first) == 8 + 16  # originals (not the HEIC), results: all distinct pictures
    for name in first:
        assert (thumbs / name).stat().st_size < 60_000
        with Image.open(thumbs / name) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 256
    inode = page.stat().st_ino
    _write(run)
    assert {path.name: path.stat().st_mtime_ns for path in thumbs.glob("*.jpg")} == first
    assert page.stat().st_ino != inode  # a new file renamed over the old one
    assert not [p.name for p in [*run.out.iterdir(), *thumbs.iterdir()] if p.suffix == ".tmp"]


def test_a_changed_file_gets_a_new_thumbnail_and_copies_share_one(run: Run) -> None:
    _write(run)
    plain = run.photos / "plain.jpg"
    plain.write_bytes(photo((320, 256), seed=42))
    shutil.copy(plain, run.photos / "copy.jpg")
    gallery = from_ledger(run.ledger, run.out)
    extra = Card(str(run.photos / "copy.jpg"), run.photos / "copy.jpg", {})
    gallery = Gallery("t", {}, STYLES, [*gallery.cards, extra])
    cards = _cards(_data(write_gallery(run.out, gallery, workers=2)))
    assert cards["copy.jpg"][3] == cards["plain.jpg"][3]
    assert (thumbs_dir(run.out) / f"{cards['plain.jpg'][3]}.jpg").is_file()


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_any_format_pillow_opens_gets_an_upright_thumbnail(tmp_path: Path) -> None:
    rotated = Image.new("RGB", (640, 400), (200, 30, 30)).getexif()
    rotated[0x0112] = 6  # EXIF: turn 90 degrees to view
    files = {
        "turned.jpg": _encoded(Image.new("RGB", (640, 400)), "JPEG", exif=rotated),
        "clear.png": _encoded(Image.new("RGBA", (300, 600), (0, 0, 0, 0)), "PNG"),
        "clear.gif": _encoded(Image.new("P", (512, 512)), "GIF", transparency=0),
        "scan.tiff": _encoded(Image.new("CMYK", (1000, 500)), "TIFF"),
        "deep.png": _encoded(Image.new("I;16", (400, 400)), "PNG"),
        "phone.heic": b"\x00\x00\x00\x18ftypheic" + bytes(64),
        "cut.jpg": _encoded(Image.new("RGB", (640, 400)), "JPEG")[:300],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    names = make_thumbnails([tmp_path / name for name in files], tmp_path / "t", workers=2)
    sizes = {}
    for path, made in names.items():
        if made is not None:
            with Image.open(tmp_path / "t" / f"{made}.jpg") as thumb:
                sizes[path.name] = thumb.size
    assert sizes == {
        "turned.jpg": (160, 256),
        "clear.png": (128, 256),
        "clear.gif": (256, 256),
        "scan.tiff": (256, 128),
        "deep.png": (256, 256),
    }
    with Image.open(tmp_path / "t" / f"{names[tmp_path / 'clear.png']}.jpg") as thumb:
        assert thumb.getpixel((64, 128)) == (255, 255, 255)  # transparency shows white


def test_a_done_cell_needs_its_file() -> None:
    with pytest.raises(ValueError, match="only a done cell"):
        Cell("done")
    with pytest.raises(ValueError, match="only a done cell"):
        Cell("failed", output=Path("x.jpg"))


def test_a_result_gone_from_disk_is_pending(run: Run) -> None:
    (run.out / "plain.2.jpg").unlink()
    card = _cards(_data(_write(run)))["plain.jpg"]
    assert _states(card) == ["done", "pending", "done"]


# The page in a real browser.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> None:
    """Debian's chromium, if this is root on a machine with apt; nothing otherwise."""
    if CHROMIUM.exists() or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"]) * 2:
        if CHROMIUM.exists():
            return
        subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium context with a 1200x900 window."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev)")
    _install_chromium()
    if not CHROMIUM.exists():
        pytest.skip(f"no headless Chromium at {CHROMIUM}: apt-get install chromium (as root)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_context(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


ON_SCREEN = "i => i.getBoundingClientRect().top < window.innerHeight"


def _until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait for `expression` to be true in the page. (Playwright's `wait_for_function` evals
    its predicate inside the page, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.02)


def _visible_cards(page: Any) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        "#cards .name", "els => els.map(e => e.textContent)"
    )
    return names


@pytest.mark.slow
def test_the_page_in_headless_chromium(run: Run, browser: Any) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(_write(run).as_uri())
    page.wait_for_selector("body[data-drawn]")
    _until(page, f"[...document.images].filter({ON_SCREEN}).every(i => i.complete)")
    first = page.evaluate(f"[...document.images].filter({ON_SCREEN}).map(i => i.naturalWidth)")
    assert len(first) >= 4 and all(width > 0 for width in first)  # the first screen
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    _until(page, "[...document.images].every(img => img.complete)")
    widths = page.eval_on_selector_all("#cards img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 8 + 16 and all(width > 0 for width in widths)  # every thumbnail
    assert page.evaluate("window.__pwned") is None
    assert problems == []  # no script error, no CSP violation
    assert HOSTILE in _visible_cards(page)

    viewer = browser.new_page()
    for href in page.eval_on_selector_all("a.thumb:has(img)", "links => links.map(a => a.href)"):
        viewer.goto(href)  # every full image opens: odd names are encoded right
        assert viewer.evaluate("document.images[0].naturalWidth") > 0, href
    viewer.close()

    page.select_option("#style", "1")  # the second style only
    figures = page.eval_on_selector_all(
        ".card", "cs => cs.map(c => c.querySelectorAll('figure').length)"
    )
    assert set(figures) == {2}
    page.click('#states button[data-state="1"]')  # failed, in that style
    assert _visible_cards(page) == ["mixed.jpg"]
    page.select_option("#style", "-1")
    page.click('#states button[data-state="2"]')  # refused
    assert sorted(_visible_cards(page)) == ["phone.heic", "small.jpg", "smaller.jpg"]
    page.click('#states button[data-state="-1"]')
    page.fill("#search", "SMALLER")
    _until(page, "document.querySelectorAll('#cards .card').length === 1")
    assert _visible_cards(page) == ["smaller.jpg"]
    page.fill("#search", "")
    page.click("#kinds details:first-child summary")
    _until(page, "document.querySelectorAll('#kinds details[open] li .path').length === 6")
    assert page.evaluate("window.__pwned") is None


def test_a_heic_or_tiff_original_is_linked_through_a_jpeg_a_browser_shows(
    run: Run, tmp_path: Path
) -> None:
    from batchtoon.images import preflight
    from batchtoon.report.viewable import viewable_copies

    preflight._formats()  # pillow-heif's opener and saver registered
    heic, tiff = run.photos / "phone.heic", run.photos / "scan.tif"
    Image.new("RGB", (640, 480), "teal").save(heic, "HEIF", quality=30)
    Image.new("RGB", (300, 400), "navy").save(tiff, "TIFF")
    for path in (heic, tiff):
        _record(run.ledger, "rejected", source=str(path), style=0, reason="refused here")
    data = _data(_write(run))
    cards = _cards(data)
    for name, size in [("phone.heic", (640, 480)), ("scan.tif", (300, 400))]:
        link = _links(data, cards[name])[0]
        copy = run.out / os.fsdecode(unquote_to_bytes(link))
        assert copy.parent == run.out / ".batchtoon" / "originals" and copy.suffix == ".jpg"
        with Image.open(copy) as shown_image:
            assert (shown_image.format, shown_image.size) == ("JPEG", size)
        assert cards[name][3]  # its thumbnail, made from the copy
    assert _links(data, cards["plain.jpg"])[0].endswith("/photos/plain.jpg")  # shown as it is
    stamps = sorted(p.stat().st_mtime_ns for p in (run.out / ".batchtoon" / "originals").iterdir())
    _write(run)  # made once
    assert sorted(
        p.stat().st_mtime_ns for p in (run.out / ".batchtoon" / "originals").iterdir()
    ) == (stamps)
    planted = tmp_path / "planted"
    planted.mkdir()
    elsewhere = run.out / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".batchtoon").symlink_to(planted)
    assert viewable_copies([heic], elsewhere, workers=1) == {}  # never through a planted link
    assert list(planted.iterdir()) == []


# Each text in a path or a detail that a line break cuts between two letters or digits (in a
# word), unless the piece between spaces and "/" is wider than its box (then it must break).
MID_WORD = """
[...document.querySelectorAll('.path, .detail')].flatMap((box) =>
  [...box.childNodes].filter((node) => node.nodeType === 3).flatMap((node) => {
    const text = node.textContent, range = document.createRange();
    let top = null;
    for (let i = 0; i < text.length; i++) {
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      if (top !== null && rect.top > top + 1 && /\\w\\w/.test(text.slice(i - 1, i + 1))) {
        const word = text.slice(0, i).split(/[\\s/]/).pop() + text.slice(i).split(/[\\s/]/)[0];
        const probe = document.createElement("span");
        probe.style.whiteSpace = "nowrap";
        probe.textContent = word;
        box.append(probe);
        const wider = probe.getBoundingClientRect().width > box.clientWidth;
        probe.remove();
        if (!wider) return [text];
      }
      top = rect.top;
    }
    return [];
  }))
"""


@pytest.mark.slow
def test_at_1400_px_the_grid_fills_the_window_and_nothing_breaks_mid_word(
    run: Run, browser: Any
) -> None:
    page = browser.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(_write(run).as_uri())
    page.wait_for_selector("body[data-drawn]")
    cards = page.eval_on_selector_all(
        "#cards .card",
        "cs => cs.map(c => [c.getBoundingClientRect().left, c.getBoundingClientRect().right])",
    )
    assert page.evaluate("document.body.clientWidth") >= 1400 - 20  # the page takes the window
    assert max(right for _, right in cards) >= 1400 - 24 - 2  # a card reaches its right edge
    gaps = page.eval_on_selector_all(
        "#cards .row",
        "rows => rows.map(r => r.getBoundingClientRect().right"
        " - r.lastElementChild.getBoundingClientRect().right)",
    )
    assert max(gaps) < 2  # no empty column at the end of a card's pictures
    badges = page.eval_on_selector_all(
        "figcaption:has(.badge)",
        "fs => fs.map(f => f.querySelector('.badge').getBoundingClientRect().top"
        " - f.querySelector('.label').getBoundingClientRect().top)",
    )
    assert badges and max(abs(d) for d in badges) < 4  # the badge on its label's first line
    broken = page.evaluate(MID_WORD)
    assert broken == [], "\n".join(broken)  # a path breaks after a "/", never inside a name


def test_thumbnails_made_one_by_one_are_remembered_and_a_stop_ends_a_page(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(3)]
    for seed, path in enumerate(files):
        path.write_bytes(photo((320, 256), seed=seed))
    folder = tmp_path / "t"
    make_thumbnails(files[:1], folder, workers=1)  # an earlier page's memo: the first file
    later = Thumbnails(folder)
    assert later.name(files[1]) is not None  # as a result arrives
    later.save()  # a stopped run
    assert all(Thumbnails(folder).known(path) for path in files[:2])
    later.stop()
    assert later.name(files[2]) is None  # stopped: nothing more is made
    with pytest.raises(Stopped):
        later.names(files, workers=2)
    assert len(list(folder.glob("*.jpg"))) == 2
    assert Thumbnails(folder).known(files[2]) is None
    make_thumbnails(files[1:], folder, workers=1)  # a whole page: the memo keeps its files
    assert all(Thumbnails(folder).known(path) for path in files)  # (and forgets none)


class _Held(Thumbnails):
    """Names every file it is asked for, holding the `hold`-th until `go` is set."""

    def __init__(self, folder: Path, hold: int) -> None:
        super().__init__(folder)
        self.asked: list[Path] = []
        self.hold, self.holding, self.go = hold, threading.Event(), threading.Event()

    def name_each(
        self, paths: list[Path], *, before_each: Callable[[], object] = lambda: None
    ) -> list[str | None]:
        for path in paths:
            before_each()
            self.asked.append(path)
            if len(self.asked) == self.hold:
                self.holding.set()
                self.go.wait()
        return ["x"] * len(paths)


async def test_arriving_thumbnails_are_all_made_and_a_cancel_waits_for_one_only(
    tmp_path: Path,
) -> None:
    offered = [(f"{i}.jpg", tmp_path / f"out{i}.jpg") for i in range(6)]
    every = [path for source, output in offered for path in (tmp_path / source, output)]
    for hold, cancel in ((len(every), False), (1, True)):
        thumbnails = _Held(tmp_path / "t", hold)
        arriving = ArrivingThumbnails(thumbnails, cwd=tmp_path)
        for source, output in offered:  # all waiting before the worker starts: one batch
            arriving.offer(source, output)
        async with anyio.create_task_group() as group:
            group.start_soon(arriving.run)
            await anyio.to_thread.run_sync(thumbnails.holding.wait)
            if cancel:
                group.cancel_scope.cancel()  # the run ends, a thumbnail under way
            thumbnails.go.set()
            group.cancel_scope.cancel()
        assert thumbnails.asked == (every[:1] if cancel else every)


def _traced(thumbnails: Thumbnails) -> list[str]:
    """The statements the memo runs from now on, each with the thumbnails there as it ran."""
    statements: list[str] = []
    thumbnails.known(Path("/"))  # the memo opened
    assert thumbnails._memo is not None
    thumbnails._memo.set_trace_callback(
        lambda sql: statements.append(
            f"{sql.split()[0]} {len(list(thumbnails.folder.glob('*.jpg')))}"
        )
    )
    return statements


def test_a_batch_is_remembered_in_one_transaction_once_its_thumbnails_are_there(
    tmp_path: Path,
) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(4)]
    for seed, path in enumerate(files):
        path.write_bytes(photo(seed=seed))
    thumbnails = Thumbnails(tmp_path / "t")
    statements = _traced(thumbnails)
    names = thumbnails.name_each(files[:3])
    assert all(names) and thumbnails.made == 3
    writes = [s for s in statements if not s.startswith("SELECT")]
    assert writes == ["BEGIN 3", "INSERT 3", "INSERT 3", "INSERT 3", "COMMIT 3"]

    asked: list[None] = []

    def cancelled_at_the_second() -> None:
        asked.append(None)
        if len(asked) == 2:
            raise _Cancelled

    statements.clear()
    with pytest.raises(_Cancelled):
        thumbnails.name_each([files[3], files[0]], before_each=cancelled_at_the_second)
    assert [s for s in statements if not s.startswith("SELECT")] == [
        "BEGIN 4",
        "INSERT 4",
        "COMMIT 4",
    ]
    assert Thumbnails(tmp_path / "t").known(files[3])  # the one made is remembered


def test_a_thumbnail_not_writable_now_is_left_for_later_and_a_lost_folder_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(3)]
    for seed, path in enumerate(files):
        path.write_bytes(photo(seed=seed))
    folder = tmp_path / "t"
    thumbnails = Thumbnails(folder)
    assert thumbnails.name(files[0])
    shutil.rmtree(folder)  # deleted to reclaim its space: made again at the next thumbnail
    assert thumbnails.name(files[1]) and len(list(folder.glob("*.jpg"))) == 1
    monkeypatch.setattr(thumbs, "write_whole", _full_disk)
    assert thumbnails.name_each([files[2]]) == [None]
    assert thumbnails.known(files[2]) is None  # not "none can be made": asked again later
    with pytest.raises(OSError, match="full"):
        thumbnails.names([files[2]], workers=1)  # a page says why


class _Cancelled(Exception):
    """A run cancelled while a batch of thumbnails is made."""


def _full_disk(*args: object, **kwargs: object) -> None:
    raise OSError(28, "full")


def test_a_thumbnail_holds_the_picture_only_turned_only_as_its_exif_says(tmp_path: Path) -> None:
    halves = Image.new("RGB", (640, 400), (255, 0, 0))
    halves.paste((0, 0, 255), (320, 0, 640, 400))  # red left, blue right
    exif = halves.getexif()
    exif[0x010F] = "SecretCam"  # the camera's make
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPS latitude
    marked = {
        "exif": exif,
        "icc_profile": b"SecretProfile" * 8,
        "comment": b"SecretComment",
        "xmp": b"<x:xmpmeta>SecretXmp</x:xmpmeta>",
    }
    for orientation, size, left in ((None, (256, 160), "red"), (1, (256, 160), "red"),
                                    (3, (256, 160), "blue"), (6, (160, 256), "red")):  # fmt: skip
        if orientation is not None:
            exif[0x0112] = orientation
        made = thumbnail(_encoded(halves, "JPEG", quality=95, **marked))
        assert b"Secret" not in made and b"Exif" not in made and b"ICC_PROFILE" not in made
        with Image.open(io.BytesIO(made)) as thumb:
            assert thumb.size == size and not {"exif", "icc_profile", "comment", "xmp"} & set(
                thumb.info
            )
            pixel = thumb.getpixel((4, 4))
            assert isinstance(pixel, tuple)
            red, _, blue = pixel
            assert (red > blue) == (left == "red"), orientation
    with Image.open(io.BytesIO(_encoded(halves, "JPEG"))) as plain:
        assert upright(plain) is plain and flat_rgb(plain) is plain  # no copy when none is needed


KILLED = """
import os, signal, sys
from pathlib import Path
from batchtoon.report.thumbs import Thumbnails
thumbnails = Thumbnails(Path(sys.argv[1]))
for name in sys.argv[2:]:
    thumbnails.name(Path(name))  # as results arrive in a run
os.kill(os.getpid(), signal.SIGKILL)  # and the run is killed: no save, no page
"""


def test_a_run_killed_then_resumed_makes_no_thumbnail_twice(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.png" for i in range(300)]
    for i, path in enumerate(files):
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(path)
    folder = tmp_path / "t"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, str(folder), *map(str, files)], check=False
    )
    assert killed.returncode == -signal.SIGKILL
    made = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.jpg")}
    assert len(made) == len(files)
    resumed = Thumbnails(folder)
    assert all(resumed.known(path) for path in files)  # remembered as each was made
    names = resumed.names(files, workers=2)
    assert resumed.made == 0 and all(names.values())
    assert {path.name: path.stat().st_mtime_ns for path in folder.glob("*.jpg")} == made
    files[0].write_bytes(files[1].read_bytes())  # changed: its new picture's thumbnail, there
    again = Thumbnails(folder)
    assert again.names(files[:2], workers=1)[files[0]] == names[files[1]] and again.made == 0


def test_the_data_is_in_files_of_a_bounded_size_that_hold_every_card_once(run: Run) -> None:
    page = write_gallery(run.out, from_ledger(run.ledger, run.out), workers=2, per_file=4)
    index = _index(page)
    assert "cards" not in index  # the page itself holds no card
    assert index["files"]["sizes"] == [4, 4, 1]
    files = [_file(page, index, n) for n in range(3)]
    paths = [file["dirs"][card[1]] + card[0] for file in files for card in file["cards"]]
    assert paths == sorted(paths) and len(set(paths)) == 9  # in source-path order, each once
    passes = index["files"]["passes"]  # refused (state 2) in any column, file by file
    assert [p[2] for p in passes] == [
        sum(2 in [c[0] for c in card[6] if c != 0 and not isinstance(c[0], str)] for card in
            _file(page, index, n)["cards"]) for n in range(3)
    ]  # fmt: skip
    folder = page.parent / unquote(index["files"]["dir"])
    again = _index(write_gallery(run.out, from_ledger(run.ledger, run.out), workers=2))
    assert not folder.exists()  # the data of the page before it: removed
    assert again["files"]["sizes"] == [9]


def test_a_rewritten_page_removes_only_the_data_it_made(run: Run) -> None:
    first = write_gallery(run.out, from_ledger(run.ledger, run.out), workers=2, per_file=4)
    folder = first.parent / unquote(_index(first)["files"]["dir"])
    (folder / "notes.txt").write_text("mine")  # a person's file among our data files
    mine = folder.parent / "holiday"  # a person's folder beside ours, named as no page's is
    mine.mkdir()
    (mine / "0.js").write_text("mine")
    elsewhere = run.out / "kept"
    elsewhere.mkdir()
    (elsewhere / "0.js").write_text("mine")
    linked = folder.parent / ("ab" * 6)  # named as ours, but a link: left, and what it reaches
    linked.symlink_to(elsewhere, target_is_directory=True)
    write_gallery(run.out, from_ledger(run.ledger, run.out), workers=2)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # our files gone, not it
    assert (mine / "0.js").read_text() == (elsewhere / "0.js").read_text() == "mine"
    assert linked.is_symlink()


def test_cards_are_sorted_beyond_one_run_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "RUN", 7)  # runs of 7 targets: spilled and merged
    ledger = Ledger()
    names = [f"p{i:03d}.jpg" for i in range(40)]
    for i, name in enumerate(reversed(names)):
        for style in (0, 2):
            key = f"{i:064x}:{style}"
            _record(ledger, "queued", key=key, source=name, output=f"{name}.{style}")
    _record(ledger, "queued", key=f"{99:064x}:2", source=names[5], output="again")
    _record(ledger, "failed", key=f"{99:064x}:2", sources=[names[5]], reason="no", **{"class": "X"})
    _record(ledger, "rejected", source="p000.jpg", style=7, reason="refused")
    cards = list(from_ledger(ledger, tmp_path, cwd=tmp_path).cards)
    assert [card.source for card in cards] == names
    assert cards[5].results[2].state == "failed"  # the later item's word stands
    assert cards[0].results[7].state == "refused" and cards[1].results.keys() == {0, 2}


@pytest.mark.slow
def test_a_page_whose_cards_are_in_many_data_files_reaches_every_photo(
    tmp_path: Path, browser: Any
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = [f"card-{i:03d}.jpg" for i in range(100)]
    cards = [
        Card(
            f"photos/{name}",
            None,
            {0: Cell("failed", reason="no face") if i % 5 == 0 else Cell("pending", reason="q")},
        )
        for i, name in enumerate(names)
    ]
    page_path = write_gallery(out, Gallery("t", {}, [0], cards), workers=1, per_file=7)
    assert len(_index(page_path)["files"]["sizes"]) == 15
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(page_path.as_uri())
    page.wait_for_selector("body[data-drawn]")
    seen = _visible_cards(page)
    for number in (2, 3):  # 40 a screen: three screens, from fifteen data files
        page.click("#next")
        _until(page, f"document.getElementById('page').textContent.startsWith('Page {number}')")
        seen += _visible_cards(page)
    assert seen == names
    page.click('#states button[data-state="1"]')  # failed: one card in five, in every file
    _until(page, "document.getElementById('showing').textContent.includes('of 20 photos')")
    assert _visible_cards(page) == names[::5]
    page.click('#states button[data-state="-1"]')
    page.fill("#search", "CARD-09")
    _until(page, "document.getElementById('showing').textContent.includes('of 10 photos')")
    assert _visible_cards(page) == names[90:]
    page.fill("#search", "")
    page.click("#kinds details:first-child summary")
    _until(page, "document.querySelectorAll('#kinds details[open] li .path').length === 20")
    assert problems == []
