"""A local stand-in for the AILabTools AI Cartoon Generator API (see `server.Sandbox`).

The engine never imports this package; the CLI does, for `batchtoon sandbox` and `--sandbox`.
The server (aiohttp's web side, the renderers, numpy) loads on first use of a name that needs
it, so that reading the knobs (`batchtoon.sandbox.config`, for `--help`) costs nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from batchtoon.sandbox.config import Faults, RenderMode, SandboxConfig

if TYPE_CHECKING:
    from batchtoon.sandbox.counters import Upload, Visit
    from batchtoon.sandbox.server import Counters, Sandbox
    from batchtoon.sandbox.state import run_key

__all__ = [
    "Counters",
    "Faults",
    "RenderMode",
    "Sandbox",
    "SandboxConfig",
    "Upload",
    "Visit",
    "run_key",
]

_LAZY = {
    "Counters": ".server",
    "Sandbox": ".server",
    "Upload": ".counters",
    "Visit": ".counters",
    "run_key": ".state",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name], __name__), name)
