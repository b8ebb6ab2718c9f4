"""The contact sheet and the small gallery of `batchtoon try`: one photo beside each style.

`write_contact(photo, results, folder, stem)` writes `<folder>/<stem>.contact.jpg`, a grid of
labelled tiles (the photo first, then each style: its number and name; a grey tile for a style
without a result), and `<folder>/<stem>.try.html`, a page of the same images
linked by relative paths. Both are written whole through a part file renamed into place
(`locations.files.write_whole`), so a planted symlink at either name is replaced, never
written through.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from batchtoon.locations.files import write_whole
from batchtoon.settings.styles import STYLE_NAMES

__all__ = ["Tile", "contact_sheet", "write_contact"]

TILE = 360  # pixels: a tile's width and its image's height at most
COLUMNS = 5
LABEL = 30  # pixels of caption under each tile
FONT_SIZE = 16

Tile = tuple[str, Path | None]  # (caption, image), None: no image


def contact_sheet(tiles: Sequence[Tile]) -> Image.Image:
    """The grid: each tile's image fitted into its cell (as wide as TILE, as tall as the
    first image's shape asks, at most TILE), its caption under it."""
    font = ImageFont.load_default(size=FONT_SIZE)  # Pillow's own scalable font (FreeType)
    pictures = [_picture(image) for _, image in tiles]
    first = pictures[0]
    size = (TILE, min(TILE, round(TILE * first.height / first.width))) if first else (TILE, TILE)
    rows, columns = -(-len(tiles) // COLUMNS), min(COLUMNS, len(tiles))
    sheet = Image.new("RGB", (columns * size[0], rows * (size[1] + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for position, ((caption, _), picture) in enumerate(zip(tiles, pictures, strict=True)):
        row, column = divmod(position, COLUMNS)
        left, top = column * size[0], row * (size[1] + LABEL)
        sheet.paste(_fitted(picture, size), (left, top))
        draw.text((left + 6, top + size[1] + 6), caption, fill="black", font=font)
    return sheet


def _picture(image: Path | None) -> Image.Image | None:
    if image is None:
        return None
    with Image.open(image) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    picture.thumbnail((TILE * 2, TILE * 2))  # enough for the cell, whatever its shape
    return picture


def _fitted(picture: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    """The picture fitted into a cell of `size`, centred; grey for a style not done."""
    cell = Image.new("RGB", size, "white" if picture else (200, 200, 200))
    if picture is not None:
        fitted = picture.copy()
        fitted.thumbnail(size)
        cell.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return cell


def write_contact(
    photo: Path, results: dict[int, Path | None], folder: Path, stem: str
) -> tuple[Path, Path]:
    """Write the contact sheet and the page; their paths."""
    tiles: list[Tile] = [("the photo", photo)]
    tiles += [(f"{style} {STYLE_NAMES[style]}", path) for style, path in sorted(results.items())]
    folder.mkdir(parents=True, exist_ok=True)
    sheet, page = folder / f"{stem}.contact.jpg", folder / f"{stem}.try.html"
    write_whole(sheet, lambda file: contact_sheet(tiles).save(file, "JPEG", quality=88))
    write_whole(page, _page(tiles, folder, sheet).encode())
    return sheet, page


def _page(tiles: Sequence[Tile], folder: Path, sheet: Path) -> str:
    figures = []
    for caption, image in tiles:
        inner = (
            f'<img src="{html.escape(_link(image, folder))}" alt="">'
            if image
            else "<p>not done</p>"
        )
        figures.append(f"<figure>{inner}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return (
        '<!doctype html><meta charset="utf-8"><title>batchtoon try</title>'
        "<style>body{font-family:sans-serif}figure{display:inline-block;margin:8px}"
        "img{max-width:360px;max-height:360px}</style>"
        f'<p><a href="{html.escape(sheet.name)}">contact sheet</a></p>' + "".join(figures) + "\n"
    )


def _link(image: Path, folder: Path) -> str:
    return Path(os.path.relpath(image.resolve(), folder.resolve())).as_posix()
