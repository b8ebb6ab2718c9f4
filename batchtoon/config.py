"""Settings: the YAML config (`configs/default.yaml` documents every key), then CLI flags on top.

`load_settings(path)` returns a `Settings` or raises `UsageError` with one line naming the key
and the problem: an unknown key, a wrong type, a value out of range. Defaults live here, in
the dataclasses, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import UsageError
from .styles import parse_styles

__all__ = ["Settings", "load_settings"]


def _range(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = "https://www.ailabapi.com"
    key_env: str = "AILAB_API_KEY"
    timeout: float = field(default=60.0, metadata=_range(0.1))
    answer_timeout: float = field(default=300.0, metadata=_range(1.0))


@dataclass(frozen=True)
class OutputSettings:
    dir: str = "batchtoon-out"
    template: str = "{dir}/{stem}.{style}.{ext}"
    max_result_bytes: int = field(default=50 * 1024 * 1024, metadata=_range(1024))
    portable_names: bool = False


@dataclass(frozen=True)
class SubmitSettings:
    concurrency: int = field(default=4, metadata=_range(1, 256))
    rate: float = field(default=2.0, metadata=_range(0.001))
    max_resubmissions: int = field(default=2, metadata=_range(0, 100))


@dataclass(frozen=True)
class PollSettings:
    interval: float = field(default=5.0, metadata=_range(0.001))
    rate: float | None = field(default=None, metadata=_range(0.001))
    concurrency: int = field(default=16, metadata=_range(1, 1024))


@dataclass(frozen=True)
class DownloadSettings:
    workers: int = field(default=16, metadata=_range(1, 256))


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = field(default=8, metadata=_range(1, 100))
    backoff: float = field(default=1.0, metadata=_range(0.0))
    max_backoff: float = field(default=60.0, metadata=_range(0.0))
    total: float = field(default=900.0, metadata=_range(0.0))
    max_wait: float = field(default=120.0, metadata=_range(0.0, 3600.0))


@dataclass(frozen=True)
class PrepareSettings:
    """Pre-flight: what `preflight.check` does to a photo before it is uploaded.

    `fix`: convert what the API would refuse (HEIC, AVIF, GIF, TIFF, over 5760x3240 or 10 MB,
    16-bit, CMYK) and what it would show sideways (EXIF rotation); off, every file is sent byte
    for byte or refused. `max_short_side`: with `fix`, a photo whose short side is over this is
    sent with fewer pixels (never under the result's 1536); None sends every size the API takes
    as it is. `quality`: JPEG quality of converted photos. `workers`: photos prepared at once;
    0 means one per core (`threads`).
    """

    workers: int = field(default=0, metadata=_range(0, 64))
    fix: bool = True
    max_short_side: int | None = field(default=2048, metadata=_range(1536, 3240))
    quality: int = field(default=90, metadata=_range(50, 100))

    @property
    def threads(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ProgressSettings:
    interval: float = field(default=30.0, metadata=_range(1.0))


@dataclass(frozen=True)
class ReportSettings:
    enabled: bool = True


@dataclass(frozen=True)
class Settings:
    api: ApiSettings = ApiSettings()
    styles: tuple[int, ...] = (0,)
    output: OutputSettings = OutputSettings()
    journal: str | None = None
    submit: SubmitSettings = SubmitSettings()
    poll: PollSettings = PollSettings()
    download: DownloadSettings = DownloadSettings()
    retry: RetrySettings = RetrySettings()
    prepare: PrepareSettings = PrepareSettings()
    progress: ProgressSettings = ProgressSettings()
    report: ReportSettings = ReportSettings()
    result_ttl: float = field(default=86_400.0, metadata=_range(1.0))
    max_submissions: int | None = field(default=None, metadata=_range(0))

    @property
    def work_dir(self) -> Path:
        """batchtoon's own folder in the output: the journal (by default), caches, thumbnails.
        Everything in it is batchtoon's; nothing outside it is written but results."""
        return Path(self.output.dir) / ".batchtoon"

    @property
    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else self.work_dir / "journal.jsonl"

    def override(self, **dotted: Any) -> Settings:
        """A copy with `section__key=value` (or `key=value`) changed; None values are ignored."""
        result = self
        for name, value in dotted.items():
            if value is not None:
                result = _set(result, name.split("__"), value)
        return result


def _set(obj: Any, path: list[str], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _set(getattr(obj, path[0]), path[1:], value)})


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"config {path} is not valid YAML{where}: fix the syntax") from None
    if data is None:
        return Settings()
    settings: Settings = _build(Settings, data, f"config {path}", "")
    return settings


def _build(cls: type[Any], data: object, source: str, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise UsageError(f"{source}: unknown key '{prefix}{key}' (known: {', '.join(known)})")
    hints = typing.get_type_hints(cls, globalns=globals())  # its module may be renamed
    values = {
        key: _value(hints[key], data[key], source, f"{prefix}{key}", known[key].metadata)
        for key in data
    }
    return cls(**values)


def _value(hint: Any, raw: object, source: str, key: str, meta: Mapping[str, Any]) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, raw, source, f"{key}.")
    if key == "styles":
        try:
            return parse_styles(raw if isinstance(raw, list) else str(raw))
        except ValueError as exc:
            raise UsageError(f"{source}: '{key}': {exc}") from None
    optional = typing.get_origin(hint) in (Union, types.UnionType) and type(
        None
    ) in typing.get_args(hint)
    if raw is None and optional:
        return None
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    value = _typed(base, raw, source, key)
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise UsageError(f"{source}: '{key}' is {value}, it must be {bounds}")
    return value


def _typed(base: type, raw: object, source: str, key: str) -> Any:
    ok = {
        bool: isinstance(raw, bool),
        int: isinstance(raw, int) and not isinstance(raw, bool),
        float: isinstance(raw, int | float) and not isinstance(raw, bool),
        str: isinstance(raw, str),
    }[base]
    if not ok:
        name = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
        raise UsageError(f"{source}: '{key}' must be {name[base]}, not {raw!r}")
    return base(raw)
