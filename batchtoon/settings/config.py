"""Settings, from four places, every value through one check.

    defaults (the dataclasses here) < config file < environment < command-line flags

`resolve(...)` layers them: the config file (`--config FILE`, else `$BATCHTOON_CONFIG`, else
`./batchtoon.yaml`, else `config.yaml` in the user's config folder), then every
`BATCHTOON_<SECTION>_<KEY>` variable (`BATCHTOON_SUBMIT_RATE=5`, `BATCHTOON_STYLES=0,2d`), then
the flags the CLI hands over. Every raw value, YAML-typed from the file or text from the
environment and the command line, goes through `check`: the same type and range checks (the
ranges are in the fields' metadata), the same words, and one line naming where the value came
from: `--rate: -1 is below 0.001`, `BATCHTOON_SUBMIT_RATE: nan is not a finite number`,
`config batchtoon.yaml: 'submit.rate': fast is not a number`. Defaults live here, in the
dataclasses, and nowhere else; `configs/default.yaml` documents every key.

Trust: a config file found rather than named (`./batchtoon.yaml`, the user's `config.yaml`)
may be someone else's (a cloned repository, a shared drive), so it may not set where the key
goes nor which variable holds it (`api.base_url`, `api.key_env`): that is refused in one line
naming the file and the key. `--no-config` skips discovery. `Resolved.notice` names the file
read and an API that is not the default: the run says it first, on stderr and in the log.

Bounded: a config file over `MAX_CONFIG_BYTES` is refused before it is parsed (so is
`--config /dev/zero`), YAML aliases past `MAX_ALIASES` and nesting Python cannot follow are
refused, and a message shows at most `SHOWN_CHARS` characters of any value it quotes. The API
base is checked as a URL: http or https, a host, a valid port, no space or control character.

Text is read by the setting's type: numbers as numbers (`nan` and `inf` refused), switches as
true/false/yes/no/on/off/1/0, lists comma-separated; empty or `null` means none where a setting
may be none (`poll.rate`, `journal`, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import urlsplit

import platformdirs
import yaml

from batchtoon.errors import UsageError
from batchtoon.locations import storage
from batchtoon.locations.sources import OWN_FOLDER, Shard
from batchtoon.settings.styles import parse_styles

__all__ = [
    "CONFIG_ENV",
    "SETTINGS",
    "Resolved",
    "Setting",
    "Settings",
    "check",
    "check_number",
    "check_whole",
    "find_config",
    "load_settings",
    "resolve",
    "shown",
    "sized",
    "uploads_for",
    "validate",
    "value_at",
]


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
    template: str = "{dir}/{stem}.{style_name}.{ext}"
    max_result_bytes: int = field(default=50 * 1024 * 1024, metadata=_range(1024))
    portable_names: bool = False


@dataclass(frozen=True)
class SubmitSettings:
    concurrency: int | None = field(default=None, metadata=_range(1, 256))  # None: `uploads`
    rate: float = field(default=2.0, metadata=_range(0.001))
    max_resubmissions: int = field(default=2, metadata=_range(0, 100))

    @property
    def uploads(self) -> int:
        """The uploads in flight at once: `concurrency`, or where it is not set, sized from
        the rate (`uploads_for`)."""
        return self.concurrency if self.concurrency is not None else uploads_for(self.rate)


# Uploads in flight at once, when not set: a quarter of a second of uploads at the rate. By
# Little's law a rate R with uploads of t seconds each needs R x t in flight; an upload of a
# prepared photo takes 40-50 ms to a near server, so a quarter of a second is room for uploads
# five times slower than that, and `--rate 100` alone goes out at 100/s (the old fixed 4 held
# it near 79/s). Never fewer than 4 (the default rate of 2/s keeps the 4 it always had), never
# more than 256 (the most `--concurrency` takes: each holds a connection and a photo's bytes).
UPLOAD_SECONDS = 0.25
FEWEST_UPLOADS, MOST_UPLOADS = 4, 256


def uploads_for(rate: float) -> int:
    """Uploads in flight that let `rate` submissions a second go out (`UPLOAD_SECONDS`)."""
    return max(FEWEST_UPLOADS, min(MOST_UPLOADS, math.ceil(rate * UPLOAD_SECONDS)))


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
    16-bit, CMYK) and what it would show sideways (EXIF rotation); off, every file is sent as
    it is or refused. `max_short_side`: with `fix`, a photo whose short side is over this is
    sent with fewer pixels (never under the result's 1536); None sends every size the API takes
    as it is. `quality`: JPEG quality of converted photos. `workers`: photos prepared at once;
    0 means one per core (`threads`). `fit`: a photo wider or taller than 3:2 is centre-cropped
    to 3:2 by the provider; `crop` lets it (and says so), `pad` (with `fix`) pads the photo to
    3:2 first, so the whole picture is kept.
    `keep_metadata`: a photo sent as it is keeps its EXIF (GPS...), XMP and text chunks; off
    (the default) they are stripped (`scrub`). A converted photo never has any.
    """

    workers: int = field(default=0, metadata=_range(0, 64))
    fix: bool = True
    max_short_side: int | None = field(default=2048, metadata=_range(1536, 3240))
    quality: int = field(default=90, metadata=_range(50, 100))
    fit: str = "crop"
    keep_metadata: bool = False

    @property
    def threads(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class SourcesSettings:
    include: tuple[str, ...] = ()  # globs on the path below a SOURCE folder; none: every image
    exclude: tuple[str, ...] = ()
    shard: str | None = None  # "K/N": this process's share of the items (`sources.Shard`)


@dataclass(frozen=True)
class ProgressSettings:
    interval: float = field(default=30.0, metadata=_range(1.0))


@dataclass(frozen=True)
class ReportSettings:
    enabled: bool = True


@dataclass(frozen=True)
class WatchSettings:
    enabled: bool = False  # after the backfill, keep taking new and replaced photos
    settle: float = field(default=2.0, metadata=_range(0.0, 3600.0))  # steady size and mtime
    scan_interval: float = field(default=5.0, metadata=_range(0.05, 3600.0))
    idle_exit: float | None = field(default=None, metadata=_range(0.0))


@dataclass(frozen=True)
class ExecSettings:
    command: str | None = None  # run after each stored result: {output} {photo} {style}
    concurrency: int = field(default=2, metadata=_range(1, 64))
    timeout: float = field(default=60.0, metadata=_range(0.1))


@dataclass(frozen=True)
class Settings:
    api: ApiSettings = ApiSettings()
    styles: tuple[int, ...] = (0,)
    sources: SourcesSettings = SourcesSettings()
    output: OutputSettings = OutputSettings()
    journal: str | None = None
    log_file: str | None = None  # None: beside the journal (`log_path`)
    # A run ends by rewriting its journal as one record an item (false: every record is kept,
    # a run's whole history: the benchmarks' timelines read it).
    compact_journal: bool = True
    submit: SubmitSettings = SubmitSettings()
    poll: PollSettings = PollSettings()
    download: DownloadSettings = DownloadSettings()
    retry: RetrySettings = RetrySettings()
    prepare: PrepareSettings = PrepareSettings()
    progress: ProgressSettings = ProgressSettings()
    report: ReportSettings = ReportSettings()
    watch: WatchSettings = WatchSettings()
    exec: ExecSettings = ExecSettings()
    events: str | None = None  # a JSON-lines file of state changes; "-": stdout
    result_ttl: float = field(default=86_400.0, metadata=_range(1.0))
    max_submissions: int | None = field(default=None, metadata=_range(0))

    @property
    def work_dir(self) -> Path:
        """batchtoon's own folder: the journal (by default), caches, thumbnails, the sandbox's
        state. Everything in it is batchtoon's; nothing outside it is written but results.
        `<out>/.batchtoon` for an output folder; for an output in a store (a URL), a local
        folder in the current one, `.batchtoon/<the URL as a name>`: a journal needs appends,
        fsyncs and a lock, which no object store gives."""
        if storage.is_url(self.output.dir):
            return Path(OWN_FOLDER) / storage.slug(self.output.dir)
        return Path(self.output.dir) / OWN_FOLDER

    @property
    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else self.work_dir / "journal.jsonl"

    @property
    def log_path(self) -> Path:
        """The log: `log_file`, else beside the journal: `batchtoon.log`, or for a journal
        named otherwise its own name (`journal-3.jsonl`: `journal-3.log`), so journals that
        share a folder (one per shard) never share a log."""
        if self.log_file:
            return Path(self.log_file)
        journal = self.journal_path
        own = journal.name == "journal.jsonl"
        return journal.with_name("batchtoon.log" if own else f"{journal.stem}.log")

    def override(self, **dotted: Any) -> Settings:
        """A copy with `section__key=value` (or `key=value`) changed; None values are ignored.
        A setting's value is read as its flag's would be (`styles=("2d", "vintage-comic")`,
        `sources__include="*.png"`), or `UsageError` says why not; its range is checked where
        the settings are used (`Batch` puts them all through `validate`)."""
        result = self
        for name, value in dotted.items():
            if value is None:
                continue
            key = name.replace("__", ".")
            if key in SETTINGS:
                value = check(SETTINGS[key], value, f"setting '{key}'", bounds=False)
            result = _set(result, name.split("__"), value)
        return result


def _set(obj: Any, path: list[str], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _set(getattr(obj, path[0]), path[1:], value)})


# The table of settings: one row per key, read off the dataclasses.

CONFIG_ENV = "BATCHTOON_CONFIG"  # the config file, when not --config
ENV_PREFIX = "BATCHTOON_"
LOCAL_CONFIG = "batchtoon.yaml"  # looked for in the working folder
Kind = Literal["bool", "int", "float", "str", "styles", "patterns"]
_KINDS: dict[Any, Kind] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    tuple[int, ...]: "styles",
    tuple[str, ...]: "patterns",
}
_NULLS = frozenset({"", "null", "~", "none"})
_SWITCH = {"true": True, "yes": True, "on": True, "1": True}
_SWITCH |= {"false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Setting:
    """One key of the settings, with what `check` needs to know about it."""

    key: str  # dotted: "submit.rate"
    kind: Kind
    optional: bool  # None (null) is a value
    low: float | None
    high: float | None
    default: Any

    @property
    def env(self) -> str:
        """Its environment variable: `BATCHTOON_SUBMIT_RATE`."""
        return ENV_PREFIX + self.key.replace(".", "_").upper()


def _table(cls: type[Any], prefix: str = "") -> Iterator[Setting]:
    hints = typing.get_type_hints(cls, globalns=globals())  # its module may be renamed
    defaults = cls()
    for spec in dataclasses.fields(cls):
        hint, key = hints[spec.name], f"{prefix}{spec.name}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _table(hint, f"{key}.")
            continue
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        low, high = spec.metadata.get("low"), spec.metadata.get("high")
        yield Setting(key, _KINDS[base], optional, low, high, getattr(defaults, spec.name))


SETTINGS: dict[str, Setting] = {s.key: s for s in _table(Settings)}
SECTIONS = frozenset(key.rpartition(".")[0] for key in SETTINGS) - {""}
_BY_ENV = {s.env: s for s in SETTINGS.values()}


# The one check.


class _Refused(ValueError):
    """A value that cannot be used: the message says why, without saying where it came from."""


def check(setting: Setting, raw: object, where: str, *, bounds: bool = True) -> Any:
    """`raw` (YAML-typed, or text from the environment or a flag) as the value `setting` takes,
    or `UsageError("<where>: <why>")`: one line, the same words whatever the source. Without
    `bounds`, only read (its type and words), not held to its range and rules."""
    try:
        if setting.optional and (raw is None or (isinstance(raw, str) and raw.strip() in _NULLS)):
            return None
        value = _CONVERT[setting.kind](raw)
        if bounds and setting.kind in ("int", "float"):
            _in_range(value, setting.low, setting.high)
        if bounds and (extra := _EXTRA.get(setting.key)) is not None:
            extra(value)
    except _Refused as refused:
        raise UsageError(f"{where}: {_cut(str(refused))}") from None
    return value


def _cut(reason: str) -> str:
    """A reason within a line's worth, whatever value it quotes (a template, a shard...)."""
    most = 4 * SHOWN_CHARS
    return reason if len(reason) <= most else reason[:most] + "..."


def value_at(settings: Settings, key: str) -> Any:
    """The value of a dotted key (`"submit.rate"`) in `settings`."""
    value: Any = settings
    for name in key.split("."):
        value = getattr(value, name)
    return value


def sized(settings: Settings, key: str) -> tuple[Any, str] | None:
    """For a dotted key left unset (None) whose value a run sizes from other settings before
    it starts (`submit.concurrency`): that value, and how it was sized; None for every other
    key (set, or sized as the run goes: `poll.rate`)."""
    if key == "submit.concurrency" and settings.submit.concurrency is None:
        return settings.submit.uploads, (
            f"sized from submit.rate: {UPLOAD_SECONDS:g} s of uploads at "
            f"{settings.submit.rate:g}/s, {FEWEST_UPLOADS} to {MOST_UPLOADS}"
        )
    return None


def validate(settings: Settings) -> Settings:
    """`settings`, each value put through `check` and kept as it reads it: for settings made
    in code (`Batch`, `dataclasses.replace`), the same check and the same words (style names,
    a single pattern) as for a file, a variable or a flag."""
    for key, setting in SETTINGS.items():
        value = check(setting, value_at(settings, key), f"setting '{key}'")
        settings = _set(settings, key.split("."), value)
    return settings


def check_number(
    raw: object, where: str, *, low: float | None = None, high: float | None = None
) -> float:
    """A finite number in [low, high], by the settings' own check (the sandbox's flags use it)."""
    return float(check(Setting("", "float", False, low, high, None), raw, where))


def check_whole(
    raw: object, where: str, *, low: float | None = None, high: float | None = None
) -> int:
    """A whole number in [low, high], by the settings' own check."""
    return int(check(Setting("", "int", False, low, high, None), raw, where))


def _to_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _SWITCH:
        return _SWITCH[raw.strip().lower()]
    raise _Refused(f"{shown(raw)} is not true or false")


def _to_int(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d+\s*", raw):
        return int(raw)
    raise _Refused(f"{shown(raw)} is not a whole number")


def _to_float(raw: object) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip().lower()
        if text in (".nan", ".inf", "+.inf", "-.inf"):  # YAML's spellings
            text = text.replace(".", "")
        try:
            value = float(text)
        except ValueError:
            value = None
    if value is None:
        raise _Refused(f"{shown(raw)} is not a number")
    if not math.isfinite(value):
        raise _Refused(f"{shown(value)} is not a finite number")  # nan, .nan, NaN: "nan"
    return value


def _to_str(raw: object) -> str:
    if isinstance(raw, os.PathLike):
        raw = os.fspath(raw)
    if not isinstance(raw, str):
        raise _Refused(f"{shown(raw)} is not text")
    if not raw.strip():
        raise _Refused("an empty value is not allowed here")
    return raw


def _to_styles(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, str | int | list | tuple) or isinstance(raw, bool):
        raise _Refused(f"{shown(raw)} is not a list of styles")
    try:
        return parse_styles(list(raw) if isinstance(raw, tuple) else raw)
    except ValueError as error:
        raise _Refused(str(error)) from None


def _to_patterns(raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise _Refused(f"{shown(raw)} is not a list of patterns")
    return tuple(item.strip() for item in items if item.strip())


_CONVERT: dict[Kind, Any] = {
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "styles": _to_styles,
    "patterns": _to_patterns,
}


def _in_range(value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise _Refused(f"{shown(value)} is below {shown(low)}")
    if high is not None and value > high:
        raise _Refused(f"{shown(value)} is above {shown(high)}")


def _url(value: str) -> None:
    """An http(s) URL with a host, that can go on a request line as it is."""
    if any(char.isspace() or not char.isprintable() for char in value):
        raise _Refused(f"{shown(value)} holds a space or a control character: remove it")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _Refused(f"{shown(value)} is not an http:// or https:// URL with a host")


def _env_name(value: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise _Refused(f"{shown(value)} is not an environment variable's name")


def _template(value: str) -> None:
    from batchtoon.locations.layout import Layout  # the template's rules live with the layout

    try:
        Layout(Path("."), value)
    except UsageError as error:
        raise _Refused(str(error)) from None


def _fit(value: str) -> None:
    if value not in ("crop", "pad"):
        raise _Refused(f"{shown(value)} is not crop or pad")


def _shard(value: str) -> None:
    try:
        Shard.parse(value)
    except ValueError as error:
        raise _Refused(str(error)) from None


_EXTRA = {
    "api.base_url": _url,
    "api.key_env": _env_name,
    "output.template": _template,
    "sources.shard": _shard,
    "prepare.fit": _fit,
}


SHOWN_CHARS = 80  # of a value quoted in a message; a longer one ends in "..."


def shown(value: object, depth: int = 0) -> str:
    """A value as a message shows it: as the user would write it (YAML-like), on one line, at
    most about `SHOWN_CHARS` long however large (or self-containing) the value is."""
    if isinstance(value, str):
        plain = value.strip() == value and value.isprintable() and len(value) <= SHOWN_CHARS
        cut = value[:SHOWN_CHARS] + ("..." if len(value) > SHOWN_CHARS else "")
        return value if value and plain else json.dumps(cut)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)  # nan, inf, -inf
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, list | tuple):
        return _shown_list(value, depth)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, int) and value.bit_length() > 256:
        return "a number too large to show"  # str() of it would take long, or raise
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _shown_list(items: list[Any] | tuple[Any, ...], depth: int) -> str:
    """Items until the text is long enough: never all of a list an alias bomb makes huge."""
    if depth >= 3:
        return "[...]"
    parts: list[str] = []
    for item in itertools.islice(items, SHOWN_CHARS):
        if sum(map(len, parts)) > SHOWN_CHARS:
            parts.append("...")
            break
        parts.append(shown(item, depth + 1))
    else:
        if len(parts) < len(items):
            parts.append("...")
    return "[" + ", ".join(parts) + "]"


# Where values come from, in order.


@dataclass(frozen=True)
class Resolved:
    """The settings, where each key's value came from, and which config file was read."""

    settings: Settings
    origins: Mapping[str, str]  # key -> "default", "config PATH", "env NAME", "flag --name"
    config: Path | None
    found_by: str  # how the file was found: "--config", "$BATCHTOON_CONFIG", ...; "" if none

    @property
    def notice(self) -> str:
        """What a run says first: the config file read and an API that is not the default's
        ("" when neither): `config ./batchtoon.yaml (found in the working folder); API
        https://api.example (not the default)`."""
        parts = []
        if self.config is not None:
            how = "found in" if self.found_by in DISCOVERED else "named by"
            parts.append(f"config {self.config} ({how} {self.found_by})")
        if (base := self.settings.api.base_url) != ApiSettings.base_url:
            parts.append(f"API {base} (not the default, from {self.origins['api.base_url']})")
        return "; ".join(parts)


Assignment = tuple[str, object, str, str]  # key, raw value, where (for errors), origin
DISCOVERED = ("the working folder", "the user config folder")  # found, not named
# What only a file the user named (--config, $BATCHTOON_CONFIG) may set: where the key goes.
NAMED_ONLY = ("api.base_url", "api.key_env")
MAX_CONFIG_BYTES = 1024 * 1024  # a config file is a few KB
MAX_ALIASES = 100  # YAML aliases (`*name`) in one config file


def resolve(
    config: Path | None = None,
    *,
    flags: Mapping[str, tuple[str, object]] | None = None,
    environ: Mapping[str, str] | None = None,
    env_aliases: Mapping[str, str | None] | None = None,
    discover: bool = True,
) -> Resolved:
    """Defaults < the config file (see `find_config`; with `discover` off, only a named one)
    < `BATCHTOON_*` variables < `flags` (`{"submit.rate": ("--rate", "5")}`), each value
    through `check`. `env_aliases` are more names for variables (`{"BATCHTOON_RATE":
    "submit.rate"}`: the command line's, named after its flags; None for one the command line
    reads itself, such as `BATCHTOON_SANDBOX`)."""
    environ = os.environ if environ is None else environ
    path, found_by = find_config(config, environ, discover=discover)
    origins = dict.fromkeys(SETTINGS, "default")
    values: dict[str, Any] = {}
    layers = (
        _file_layer(path, found_by) if path else iter(()),
        _env_layer(environ, env_aliases or {}),
        ((key, raw, name, f"flag {name}") for key, (name, raw) in (flags or {}).items()),
    )
    for layer in layers:
        for key, raw, where, origin in layer:
            values[key] = check(SETTINGS[key], raw, where)
            origins[key] = origin
    settings = Settings()
    for key, value in values.items():
        settings = _set(settings, key.split("."), value)
    return Resolved(settings, origins, path, found_by)


def find_config(
    explicit: Path | None, environ: Mapping[str, str], *, discover: bool = True
) -> tuple[Path | None, str]:
    """The config file to read, and how it was found: `--config`, else `$BATCHTOON_CONFIG`
    (either must exist), else (with `discover`) `./batchtoon.yaml`, else the user's
    `config.yaml` (if there)."""
    if explicit is not None:
        return explicit, "--config"
    if named := environ.get(CONFIG_ENV, "").strip():
        return Path(named), f"${CONFIG_ENV}"
    if not discover:
        return None, ""
    if (local := Path(LOCAL_CONFIG)).is_file():
        return local, DISCOVERED[0]
    user = Path(platformdirs.user_config_dir("batchtoon")) / "config.yaml"
    if user.is_file():
        return user, DISCOVERED[1]
    return None, ""


def load_settings(path: Path | str | None) -> Settings:
    """The settings of one config file over the defaults (no environment, no discovery)."""
    if path is None:
        return Settings()
    return resolve(Path(path), environ={}).settings


def _file_layer(path: Path, found_by: str) -> Iterator[Assignment]:
    data = _parse(_read_config(path, found_by), path)
    source = f"config {path}"
    for key, raw in _flatten(data, source, ""):
        if key in NAMED_ONLY and found_by in DISCOVERED:
            raise UsageError(
                f"{source} (found in {found_by}) sets '{key}', which only a config you name "
                "may set (it decides where the API key goes): name the file with --config if "
                "you trust it, or run with --no-config"
            )
        yield key, raw, f"{source}: '{key}'", source


def _read_config(path: Path, found_by: str) -> str:
    """The file's text, read no further than `MAX_CONFIG_BYTES` (`/dev/zero` has no end)."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        named = f" (named by {found_by})" if found_by.startswith(("-", "$")) else ""
        raise UsageError(f"cannot read config {path}{named}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UsageError(
            f"config {path} is over {MAX_CONFIG_BYTES // 1024} KB: it is not a config file"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"config {path} is not UTF-8 text") from None


class _BoundedLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing more than `MAX_ALIASES` aliases: an alias bomb (aliases of
    aliases, nine times over) is a small file that stands for billions of values."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise UsageError(f"more than {MAX_ALIASES} YAML aliases (*name)")
        return super().compose_node(parent, index)


def _parse(text: str, path: Path) -> object:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except UsageError as error:
        raise UsageError(f"config {path}: {error}: write the values out") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"config {path} is not valid YAML{where}: fix the syntax") from None
    except (RecursionError, ValueError):  # nested past Python's stack; an int of 5000 digits
        raise UsageError(f"config {path} nests or holds values too large to read") from None
    finally:
        loader.dispose()


def _flatten(data: object, source: str, prefix: str) -> Iterator[tuple[str, object]]:
    if data is None:  # an empty file, or a section with every key commented out
        return
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping")
    for name, raw in data.items():
        plain = isinstance(name, str) and name.isprintable() and len(name) <= SHOWN_CHARS
        key = f"{prefix}{name if plain else shown(name)}"
        if key in SECTIONS:
            yield from _flatten(raw, source, f"{key}.")
        elif key in SETTINGS:
            yield key, raw
        else:
            known = [k for k in (*SETTINGS, *SECTIONS) if k.startswith(prefix)]
            raise UsageError(
                f"{source}: unknown key '{key}'{_did_you_mean(key, known, quote=True)}"
            )


def _env_layer(
    environ: Mapping[str, str], aliases: Mapping[str, str | None]
) -> Iterator[Assignment]:
    """Every `BATCHTOON_` variable: a key's own (`BATCHTOON_SUBMIT_RATE`) or an alias named
    after its flag (`BATCHTOON_RATE`); two names of one key that disagree are refused."""
    by_name = {**{name: s.key for name, s in _BY_ENV.items()}, **aliases}
    seen: dict[str, str] = {}  # key -> the variable that set it
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name in by_name and by_name[name] is None:
            continue  # the command line's own (a switch such as --sandbox)
        key = by_name.get(name)
        if key is None:
            raise UsageError(
                f"{name}: no such setting{_did_you_mean(name, [*by_name, CONFIG_ENV])}"
            )
        if (other := seen.get(key)) is not None and environ[other] != environ[name]:
            raise UsageError(f"{other} and {name} both set {key}, to different values: unset one")
        seen[key] = name
        yield key, environ[name], name, f"env {name}"


def _did_you_mean(word: str, candidates: list[str], *, quote: bool = False) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not close:
        return f" (known: {', '.join(candidates)})" if quote else ""
    return f": did you mean '{close[0]}'?" if quote else f": did you mean {close[0]}?"
