"""The nine cartoon styles of the API (`index` 0..8), their names, and parsing `--style`.

A style is named by its index (`5`), a range (`0-2`), its slug (`2d`, `vintage-comic`) or its
display name in any case (`"Vintage Comic"`); `parse_styles` turns a comma-separated list of
those into a sorted tuple of unique indexes, or raises `ValueError` with a one-line reason.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["STYLE_NAMES", "STYLE_SLUGS", "parse_styles", "style_slug"]

STYLE_NAMES: tuple[str, ...] = (
    "Vintage Comic",
    "3D Fairy Tale",
    "Two-dimensional (2D)",
    "Refreshing and Elegant",
    "Future Technology",
    "Traditional Chinese Painting Style",
    "General in a Hundred Battles",
    "Colorful Cartoon",
    "Graceful Chinese Style",
)

STYLE_SLUGS: tuple[str, ...] = (
    "vintage-comic",
    "3d-fairy-tale",
    "2d",
    "refreshing-elegant",
    "future-technology",
    "chinese-painting",
    "hundred-battles",
    "colorful-cartoon",
    "graceful-chinese",
)


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_ALIASES: dict[str, int] = {
    **{slug: i for i, slug in enumerate(STYLE_SLUGS)},
    **{_slugify(name): i for i, name in enumerate(STYLE_NAMES)},
}


def style_slug(index: int) -> str:
    return STYLE_SLUGS[index]


def _one(word: str) -> list[int]:
    word = word.strip()
    if re.fullmatch(r"\d+", word):
        indexes = [int(word)]
    elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", word):
        low, high = int(m[1]), int(m[2])
        indexes = list(range(low, high + 1)) if low <= high else []
    else:
        slug = _slugify(word)
        if slug not in _ALIASES:
            raise ValueError(f"unknown style {word!r}{_suggestion(slug)}")
        return [_ALIASES[slug]]
    if not indexes or any(not 0 <= i <= 8 for i in indexes):
        raise ValueError(f"style {word!r} is out of range: styles are 0 to 8")
    return indexes


def _suggestion(slug: str) -> str:
    """`: did you mean 3d-fairy-tale (1)?` for a name a style's begins with, holds, or is close
    to; else every name."""
    close = [s for s in STYLE_SLUGS if len(slug) > 1 and slug in s]
    close = close or difflib.get_close_matches(slug, STYLE_SLUGS, n=2, cutoff=0.6)
    if close:
        return ": did you mean " + " or ".join(f"{s} ({STYLE_SLUGS.index(s)})" for s in close) + "?"
    return ": use 0-8 or one of " + ", ".join(STYLE_SLUGS)


def parse_styles(text: str | int | list[str | int]) -> tuple[int, ...]:
    """`"0,2d,5-6"` -> `(0, 2, 5, 6)`; also takes an int or a list (from YAML)."""
    words = [str(w) for w in text] if isinstance(text, list) else str(text).split(",")
    found = sorted({i for word in words if word.strip() for i in _one(word)})
    if not found:
        raise ValueError("no style given: use 0-8 or a style name")
    return tuple(found)
