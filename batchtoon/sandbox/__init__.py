"""A local stand-in for the AILabTools AI Cartoon Generator API (see `server.Sandbox`).

The engine never imports this package; the CLI does, for `batchtoon sandbox` and `--sandbox`.
"""

from .config import Faults, RenderMode, SandboxConfig
from .counters import Upload, Visit
from .server import Counters, Sandbox
from .state import run_key

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
