"""A screenshot of a run's gallery in headless Chromium, as a person's window shows it.

Usage: ``PYTHONPATH=. python scripts/gallery_shot.py OUT_FOLDER OUTPUT.png [WIDTH [HEIGHT]]``
(defaults 1400 x 1000). Needs playwright (``make dev``) and Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def shoot(page_file: Path, image: Path, width: int, height: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(page_file.resolve().as_uri())
            page.wait_for_selector("body[data-drawn]")
            page.evaluate(  # the thumbnails on the first screen (the others load lazily)
                "Promise.all([...document.images]"
                ".filter(i => !i.complete && i.getBoundingClientRect().top < innerHeight)"
                ".map(i => new Promise(done => {"
                " i.addEventListener('load', done); i.addEventListener('error', done); })))"
            )
            page.screenshot(path=str(image))
        finally:
            browser.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    width = int(argv[2]) if len(argv) > 2 else 1400
    height = int(argv[3]) if len(argv) > 3 else 1000
    shoot(Path(argv[0]) / "index.html", Path(argv[1]), width, height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
