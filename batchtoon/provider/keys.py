"""The API key's shape: what can go in the request header that carries it. A module of its own
(no HTTP client) so that `config` can say whether the key is usable without loading one."""

from __future__ import annotations

__all__ = ["KEY_TRIMMED", "key_problem", "trimmed_key"]

KEY_TRIMMED = "has spaces or a line break around it (a paste?): it is used without them"


def trimmed_key(key: str) -> tuple[str, str]:
    """`key` without the whitespace around it (a pasted key often ends in a line break), and
    `KEY_TRIMMED` to say so if there was any ("" if not); never showing the key."""
    stripped = key.strip()
    return stripped, KEY_TRIMMED if stripped != key and stripped else ""


def key_problem(key: str) -> str:
    """Why `key` cannot be an API key, never showing it ("" if it can): it goes in a request
    header, so a space, a control character (a pasted line break) or non-ASCII cannot be."""
    for place, char in enumerate(key, 1):
        if char.isascii() and char.isprintable() and char != " ":
            continue
        what = (
            "a space"
            if char == " "
            else "a control character"
            if not char.isprintable()
            else "a character that is not ASCII"
        )
        return f"holds {what} (character {place} of {len(key)})"
    return ""
