"""`status`, `config` and `completion`: the commands that only read and tell."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import yaml

from batchtoon.cli.found import resolved
from batchtoon.cli.live import read_live
from batchtoon.cli.progress import line
from batchtoon.cli.reasons import kind_of
from batchtoon.errors import UsageError
from batchtoon.locations.sources import display
from batchtoon.locations.storage import Location, join, location
from batchtoon.provider.keys import key_problem, trimmed_key
from batchtoon.records.compact import key_of
from batchtoon.records.journal import Journal
from batchtoon.records.ledger import DoneItems, Ledger, Uploads
from batchtoon.settings.config import (
    CONFIG_ENV,
    LOCAL_CONFIG,
    SETTINGS,
    Resolved,
    Settings,
    sized,
    value_at,
)
from batchtoon.settings.styles import style_slug

if TYPE_CHECKING:
    from batchtoon.snapshot import Snapshot

__all__ = [
    "Item", "Kinds", "completion", "config", "items", "journals", "kinds", "report", "status",
    "tally",
]  # fmt: skip


# status


@dataclass(frozen=True)
class Item:
    """One target (a source file in one style) as the journal knows it."""

    source: str
    style: int
    state: str  # done, pending, failed (by the API or the task), refused (before any upload)
    output: str | None  # the file written, once done
    reason: str  # why it failed or was refused


TERMS = {"downloaded": "done", "failed": "failed"}  # a ledger's states in status's words


def items(
    ledger: Ledger, out: Location | None = None, state: str | None = None, *, done: bool = True
) -> Iterator[Item]:
    """Every target of the journal (each source file, in each style), in the journal's order:
    the refused first. Made one at a time; with `state`, only those in that state; a done
    one's output path only with `out` (a count needs none: making them is most of the cost);
    without `done`, none of the done items the ledger keeps as rows (`DoneItems`)."""
    if state in (None, "refused"):
        for (source, style), reason in ledger.rejected.items():
            yield Item(source, style, "refused", None, reason)
    if state == "refused":
        return
    for entry in ledger.entries.values() if done else list(ledger.live.values()):
        term = TERMS.get(entry.state, "pending")
        if state not in (None, term):
            continue
        for base, source in entry.targets.items():
            output = None
            if term == "done" and out is not None:
                output = str(join(out, f"{base}.{entry.ext}"))
            yield Item(source, entry.style, term, output, entry.reason if term == "failed" else "")


def kinds(failures: Iterable[Item]) -> list[dict[str, Any]]:
    """Failures grouped by the kind of their reason (`reasons.kind_of`), most first, each with
    its count and one example."""
    grouped = Kinds()
    for item in failures:
        grouped.seen(item)
    return grouped.rows()


class Kinds:
    """The failed and refused items among those `seen`, counted by kind as they pass."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, Any]] = {}

    def seen(self, item: Item) -> Item:
        if item.state in ("failed", "refused"):
            group = self._groups.setdefault(
                kind_of(item.reason),
                {"count": 0, "example": {"source": item.source, "style": item.style,
                                         "reason": item.reason}},
            )  # fmt: skip
            group["count"] += 1
        return item

    def rows(self) -> list[dict[str, Any]]:
        """The kinds, most first (`kinds`)."""
        ordered = sorted(self._groups.items(), key=lambda kv: -kv[1]["count"])
        return [{"kind": kind, **group} for kind, group in ordered]


def status(args: argparse.Namespace) -> int:
    found = resolved(args)
    settings = found.settings
    paths = journals(args.journals, settings)
    ledgers = [Journal.replay(path).ledger for path in paths]
    given = found.origins["output.dir"] != "default"
    if args.list or args.state:  # each row printed as it is made: none is kept
        for ledger in ledgers:
            for item in items(ledger, _out(ledger, settings, given), args.state):
                print(json.dumps(asdict(item), ensure_ascii=False) if args.json else _row(item))
        return 0
    failures = Kinds()
    in_hand = (failures.seen(item) for ledger in ledgers for item in items(ledger, done=False))
    results, photos = tally(in_hand, [ledger.done for ledger in ledgers])
    grouped = failures.rows()
    running = [(path, live) for path in paths if (live := read_live(path)) is not None]
    if args.json:
        failed = [row for ledger in ledgers for row in ledger.failures()]
        uploads = [ledger.uploads for ledger in ledgers]
        report = {
            "results": results, "photos": photos, "uploads": Uploads.joint(uploads).as_json(),
            "failed": failed, "kinds": grouped,
            "running": [_live_json(path, live) for path, live in running],
        }  # fmt: skip
        print(json.dumps(report, ensure_ascii=False))
        return 0
    for path, live in running:  # the run's own numbers, as its display shows them
        print(f"running: {line(live)}" + (f" ({display(str(path))})" if len(paths) > 1 else ""))
    print(f"results: {_sum(results)}")
    print(f"photos:  {_sum(photos)}")
    sent = Uploads.joint([ledger.uploads for ledger in ledgers]).as_json()
    if sent["uploaded_mb"]:  # its rate is the run's (above, while one runs): the journal's
        # span holds the pauses between runs
        print(
            f"uploads: {sent['uploaded_mb']:.1f} MB sent; "
            f"preparation saved {sent['saved_mb']:.1f} MB"
        )
    if grouped:
        print(f"failures, by kind ({len(grouped)}; status --state failed|refused lists them):")
    for group in grouped:
        example = group["example"]
        print(f"  {group['count']:>5} x {display(example['reason'])}")
        print(f"          e.g. {display(example['source'])} ({style_slug(example['style'])})")
    return 0


def _live_json(journal: Path, live: Snapshot) -> dict[str, Any]:
    """A running run's numbers, in `run --json`'s words where they are the same."""
    return {
        "journal": str(journal), "found": live.total, "settled": live.settled,
        "done": live.done, "pending": live.pending, "submitted": live.submitted,
        "results_per_min": round(live.per_minute, 1), "eta_s": live.eta,
        "upload_rate": live.upload_rate,
    }  # fmt: skip


def _out(ledger: Ledger, settings: Settings, given: bool) -> Location:
    """Where a journal's results are: `--out` (or its setting) if given, else where the
    journal's own records say they were written."""
    return location(settings.output.dir if given or not ledger.out else ledger.out)


def journals(given: list[str] | None, settings: Settings) -> list[Path]:
    """The journals to read: each `--journal` (a glob is expanded, for shells that did not), or
    the one the settings name; `UsageError` for one that is not there."""
    if not given:
        found = [settings.journal_path]
    else:
        found = [Path(p) for text in given for p in (_glob(text) or [text])]
    for path in found:
        if not path.exists():
            raise UsageError(f"no journal at {display(str(path))}: pass --journal or --out")
    return list(dict.fromkeys(found))  # named twice (a glob and a name): read once


def _glob(text: str) -> list[str]:
    return sorted(glob.glob(text)) if any(c in text for c in "*?[") else []


STATUS_TERMS = ("done", "pending", "failed", "refused")  # the last is the worst, for a photo


def tally(
    every: Iterable[Item], done: Iterable[DoneItems] = ()
) -> tuple[dict[str, int], dict[str, int]]:
    """Results (a photo in a style) by state, and photos by the worst state of their styles:
    of `every`, and of the `done` items (counted from their rows: none is read)."""
    results = dict.fromkeys(STATUS_TERMS, 0)
    worst: dict[int, int] = {}  # key_of(a photo's path) -> its worst state's rank
    for item in every:
        results[item.state] += 1
        rank, source = STATUS_TERMS.index(item.state), key_of(item.source)
        worst[source] = max(worst.get(source, 0), rank)
    rows = list(done)
    results["done"] += sum(each.files_written() for each in rows)
    photos = dict.fromkeys(STATUS_TERMS, 0)
    for rank in worst.values():
        photos[STATUS_TERMS[rank]] += 1
    # The photos of done items not met above: done (the best rank), each counted once.
    photos["done"] += len(DoneItems.distinct_sources(rows).difference(worst))
    return results, photos


def _sum(terms: dict[str, int]) -> str:
    shown = " + ".join(f"{n} {term}" for term, n in terms.items() if n)
    return f"{sum(terms.values())}" + (f" = {shown}" if shown else "")


def report(args: argparse.Namespace) -> int:
    """Write the gallery of what the journals know (`<out>/index.html`, see `report.page`)
    and say where."""
    from batchtoon.batch import write_report  # the gallery's code: `status` need not load it

    settings = resolved(args).settings
    paths = journals(args.journals, settings)
    ledgers = [Journal.replay(path).ledger for path in paths]
    page = write_report(settings, ledgers)
    print(display(str(page)))
    return 0


def _row(item: Item) -> str:
    head = f"{item.state:<8} {display(item.source)} ({style_slug(item.style)})"
    if item.state in ("failed", "refused"):
        return f"{head}: {display(item.reason)}"
    return f"{head} -> {display(item.output)}" if item.output else head


# config


def config(args: argparse.Namespace) -> int:
    found = resolved(args)
    key_env = found.settings.api.key_env
    key, trimmed = trimmed_key(os.environ.get(key_env, ""))
    key_state = "unset" if not key else f"set, but unusable: it {problem}" if (
        problem := key_problem(key)
    ) else f"set; it {trimmed}" if trimmed else "set"  # fmt: skip
    if args.json:
        print(json.dumps(_as_json(found, key_env, key_state), ensure_ascii=False))
    else:
        sys.stdout.write(_as_yaml(found, key_env, key_state))
    return 0


def value_of(settings: Settings, key: str) -> Any:
    value = value_at(settings, key)
    return list(value) if isinstance(value, tuple) else value


def origin_of(found: Resolved, key: str) -> str:
    """Where the value came from; for one left unset that the run sizes (`sized`), the value
    in force and how it was sized too."""
    if (size := sized(found.settings, key)) is None:
        return found.origins[key]
    return f"{found.origins[key]}; in force: {size[0]}, {size[1]}"


def _file_line(found: Resolved) -> str:
    if found.config is not None:
        return f"{display(str(found.config))} (from {found.found_by})"
    user = Path(platformdirs.user_config_dir("batchtoon")) / "config.yaml"
    return f"none (looked for --config, ${CONFIG_ENV}, ./{LOCAL_CONFIG}, {display(str(user))})"


def _as_json(found: Resolved, key_env: str, key_state: str) -> dict[str, Any]:
    return {
        "config_file": None if found.config is None else str(found.config),
        "config_found_by": found.found_by or None,
        "api_key": {"env": key_env, "state": key_state},
        "settings": {
            key: {"value": value_of(found.settings, key), "from": origin_of(found, key)}
            for key in SETTINGS
        },
    }


def _as_yaml(found: Resolved, key_env: str, key_state: str) -> str:
    """The settings as a config file would hold them, each line saying where it came from."""
    rows: list[tuple[str, str]] = []
    section = ""
    for key in SETTINGS:
        head, _, name = key.rpartition(".")
        if head and head != section:
            rows.append((f"{head}:", ""))
        section = head
        text = yaml.safe_dump(
            value_of(found.settings, key),
            default_flow_style=True,
            allow_unicode=True,
            width=1 << 20,
        )
        scalar = text.strip().removesuffix("...").strip()
        rows.append((f"{'  ' if head else ''}{name}: {scalar}", origin_of(found, key)))
    width = max(len(text) for text, _ in rows) + 2
    lines = [
        "# batchtoon's settings in force, each with where it came from",
        "# (default < config file < environment < flag)",
        f"# config file: {_file_line(found)}",
        f"# API key (${key_env}): {key_state}",
        "",
        *(f"{text:<{width}}# {display(origin)}" if origin else text for text, origin in rows),
    ]
    return "\n".join(lines) + "\n"


# completion


def completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode  # only this command needs it

    sys.stdout.write(shellcode(["batchtoon"], shell=args.shell))
    return 0
