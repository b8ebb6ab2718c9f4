"""batchtoon: thousands of photos into cartoons, through the AILabTools AI Cartoon Generator API.

The public API, for running batches from Python (see `Batch`); everything else is internal:

    Batch, Snapshot, Summary   run a batch; progress as it goes; what it did
    Settings, load_settings    the settings (`configs/default.yaml` documents every key)
    ExitCode                   what a run's outcome means, as the command's exit code
    BatchtoonError, UsageError, InputError, ApiError   the errors it raises on purpose
"""

from batchtoon.batch import Batch, Snapshot, Summary
from batchtoon.errors import ApiError, BatchtoonError, InputError, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.settings.config import Settings, load_settings
from batchtoon.version import __version__

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

for _name in __all__:
    if not _name.startswith("__"):  # shown as batchtoon.Batch, not batchtoon.batch.Batch
        globals()[_name].__module__ = __name__
del _name
