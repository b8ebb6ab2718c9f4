"""Where each result goes: the output template, kept inside the output folder whatever a
manifest or a file name holds.

The template's fields: `{dir}` (the source's folder below its SOURCE, empty at the top),
`{stem}` and `{name}` (the source's file name without and with its extension), `{style}` (the
index), `{style_name}` (its slug, e.g. `2d`), `{sha8}` (the first 8 hex digits of the content's
sha256) and `{ext}` (from the result's bytes, known only once downloaded: it must come last).
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .errors import UsageError
from .sources import Source
from .styles import style_slug

__all__ = ["EXTENSIONS", "PART_SUFFIX", "Layout"]

PART_SUFFIX = ".batchtoon-part"  # a result being written: `.<name>.batchtoon-part`, beside it

FIELDS = frozenset({"dir", "stem", "name", "style", "style_name", "sha8", "ext"})
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}


class Layout:
    def __init__(self, out: Path, template: str) -> None:
        self.out = out
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if unknown := used - FIELDS:
            raise UsageError(
                f"output template {template!r}: unknown field {{{sorted(unknown)[0]}}} "
                f"(known: {', '.join('{' + f + '}' for f in sorted(FIELDS))})"
            )
        if not template.endswith(".{ext}") or "{ext}" in template[: -len("{ext}")]:
            raise UsageError(f"output template {template!r} must end with .{{ext}}")
        self._template = template[: -len(".{ext}")]

    def base(self, source: Source, style: int, sha256: str) -> str:
        """The output path below `out`, without its extension, as posix text."""
        rel = source.rel
        folder = "" if str(rel.parent) == "." else str(rel.parent)
        text = self._template.format(
            dir=folder,
            stem=rel.stem,
            name=rel.name,
            style=style,
            style_name=style_slug(style),
            sha8=sha256[:8],
        )
        parts = [p for p in PurePosixPath(text).parts if p not in ("/", ".", "..")]
        return str(PurePosixPath(*parts)) if parts else f"{sha256[:8]}.{style}"

    def path(self, base: str, fmt: str) -> Path:
        """The file for a result of Pillow format `fmt` (JPEG -> .jpg)."""
        return self.file(base, EXTENSIONS.get(fmt, fmt.lower()))

    def file(self, base: str, ext: str) -> Path:
        return self.out / f"{base}.{ext}"

    def part(self, base: str) -> Path:
        """The part file a result for `base` is written through, in the result's own folder."""
        path = self.out / base
        return path.with_name(f".{path.name}{PART_SUFFIX}")

    def existing(self, bases: Iterable[str], ext: str) -> set[str]:
        """The bases whose file with extension `ext` exists (blocking: run it in a thread)."""
        return {base for base in bases if self.file(base, ext).is_file()}
