"""What every command starts from: its settings, each with where it came from. A module of its
own, light to load, so that `status` and `config` do not load the engine with `run`'s code."""

from __future__ import annotations

import argparse
import sys

from batchtoon.cli.parser import flag_variables, setting_flags
from batchtoon.errors import UsageError
from batchtoon.locations.sources import display
from batchtoon.settings.config import Resolved, resolve

__all__ = ["resolved", "say_first"]


def resolved(args: argparse.Namespace) -> Resolved:
    """The settings: defaults < config file < environment < this command line's flags."""
    flags = setting_flags(args)
    if getattr(args, "sandbox", False) and "api.base_url" in flags:
        raise UsageError("--sandbox and --api-base cannot go together: pick one API")
    return resolve(
        args.config, flags=flags, env_aliases=flag_variables(), discover=not args.no_config
    )


def say_first(found: Resolved) -> None:
    """The config file read and an API that is not the default, before anything else."""
    if found.notice:
        print(f"batchtoon: {display(found.notice)}", file=sys.stderr)
