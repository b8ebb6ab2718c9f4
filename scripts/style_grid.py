"""Render all nine sandbox cartoon styles of one photo into a labelled grid.

Usage: ``PYTHONPATH=. python scripts/style_grid.py INPUT OUTPUT.png``

The input is prepared the way the server prepares uploads (centre-crop to at
most 1.5:1, short side 1536), every style is rendered at that full size, and
the results are shown as a 2 x 5 grid: the original followed by styles 0..8.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from batchtoon.sandbox.styles import STYLE_NAMES, render

MAX_ASPECT = 1.5
SHORT_SIDE = 1536
TILE_WIDTH = 360
COLUMNS = 5
LABEL_HEIGHT = 28
FONT_SIZE = 15


def prepare(image: Image.Image) -> Image.Image:
    """Centre-crop to an aspect ratio of at most 1.5:1 and scale the short side to 1536."""
    image = image.convert("RGB")
    width, height = image.size
    if width > height * MAX_ASPECT:
        new_width = round(height * MAX_ASPECT)
        left = (width - new_width) // 2
        image = image.crop((left, 0, left + new_width, height))
    elif height > width * MAX_ASPECT:
        new_height = round(width * MAX_ASPECT)
        top = (height - new_height) // 2
        image = image.crop((0, top, width, top + new_height))
    width, height = image.size
    scale = SHORT_SIDE / min(width, height)
    size = (round(width * scale), round(height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def labelled_tile(
    image: Image.Image, label: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> Image.Image:
    """Downscale to the tile width and add a caption strip underneath."""
    height = round(image.height * TILE_WIDTH / image.width)
    thumb = image.resize((TILE_WIDTH, height), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (TILE_WIDTH, height + LABEL_HEIGHT), "white")
    tile.paste(thumb, (0, 0))
    ImageDraw.Draw(tile).text((6, height + 6), label, fill="black", font=font)
    return tile


def build_grid(tiles: list[Image.Image]) -> Image.Image:
    rows = -(-len(tiles) // COLUMNS)
    tile_height = max(tile.height for tile in tiles)
    grid = Image.new("RGB", (COLUMNS * TILE_WIDTH, rows * tile_height), "white")
    for position, tile in enumerate(tiles):
        row, column = divmod(position, COLUMNS)
        grid.paste(tile, (column * TILE_WIDTH, row * tile_height))
    return grid


def timed_render(image: Image.Image, index: int) -> tuple[Image.Image, float]:
    start = time.perf_counter()
    result = render(image, index)
    return result, time.perf_counter() - start


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} INPUT OUTPUT.png", file=sys.stderr)
        return 2
    with Image.open(argv[1]) as photo:
        source = prepare(photo)
    # One worker per core: more would only queue for the CPUs.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = list(pool.map(lambda index: timed_render(source, index), range(len(STYLE_NAMES))))
    font = ImageFont.load_default(size=FONT_SIZE)
    tiles = [labelled_tile(source, "original", font)]
    for index, (name, (rendered, seconds)) in enumerate(zip(STYLE_NAMES, results, strict=True)):
        tiles.append(labelled_tile(rendered, f"{index} {name}", font))
        print(f"{index} {name}: {seconds * 1000:.0f} ms (in pool)")
    build_grid(tiles).save(Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
