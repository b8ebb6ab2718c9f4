"""How a count and its noun are written, everywhere a person reads one: `1 photo`, `2 photos`,
`1 retry`, `0 retries`."""

from __future__ import annotations

__all__ = ["counted"]

_PLURALS = {"retry": "retries"}


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, the noun in the plural unless `n` is 1."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {_PLURALS.get(noun, noun + 's')}"
