"""batchtoon: thousands of photos into cartoons, through the AILabTools AI Cartoon Generator API.

The public API, for running batches from Python (see `Batch`); everything else is internal:

    Batch, Snapshot, Summary   run a batch; progress as it goes; what it did
    Settings, load_settings    the settings (`batchtoon config` prints every key, in force)
    ExitCode                   what a run's outcome means, as the command's exit code
    BatchtoonError, UsageError, InputError, ApiError   the errors it raises on purpose

The names load when first used: `batchtoon --version`, or `--help`, need not load the engine
and its HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchtoon.version import __version__

if TYPE_CHECKING:
    from batchtoon.batch import Batch, Summary
    from batchtoon.errors import ApiError, BatchtoonError, InputError, UsageError
    from batchtoon.exitcodes import ExitCode
    from batchtoon.settings.config import Settings, load_settings
    from batchtoon.snapshot import Snapshot

__all__ = [
    "ApiError",
    "Batch",
    "BatchtoonError",
    "ExitCode",
    "InputError",
    "Settings",
    "Snapshot",
    "Summary",
    "UsageError",
    "__version__",
    "load_settings",
]

_HOMES = {
    "Batch": "batchtoon.batch",
    "Snapshot": "batchtoon.snapshot",
    "Summary": "batchtoon.batch",
    "ApiError": "batchtoon.errors",
    "BatchtoonError": "batchtoon.errors",
    "InputError": "batchtoon.errors",
    "UsageError": "batchtoon.errors",
    "ExitCode": "batchtoon.exitcodes",
    "Settings": "batchtoon.settings.config",
    "load_settings": "batchtoon.settings.config",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use, shown as `batchtoon.<name>`."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'batchtoon' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    value.__module__ = __name__
    globals()[name] = value
    return value
