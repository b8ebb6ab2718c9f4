"""Failure reasons grouped by kind: reasons that differ only in their numbers or ids are one.

`300x225 is under the API's 256 px minimum` and `300x168 is under the API's 256 px minimum`
are both of the kind `<n>x<n> is under the API's <n> px minimum`.
"""

from __future__ import annotations

import re

__all__ = ["kind_of"]

_ID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"  # a UUID
    r"|\b(?=[0-9a-z]*\d)(?=[0-9a-z]*[a-z])[0-9a-z]{12,}\b",  # a task id, a hash: letters + digits
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def kind_of(reason: str) -> str:
    """The reason with its ids as `<id>` and its numbers as `<n>`."""
    return _NUMBER.sub("<n>", _ID.sub("<id>", reason))
