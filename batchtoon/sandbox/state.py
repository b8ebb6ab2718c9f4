"""The sandbox's state on disk (`SandboxConfig.state_dir`): a sandbox started again on the same
directory, in this process or another, answers the tasks of the one before.

    state_dir/          (mode 0700)
        tasks.jsonl     one JSON record a line: the salt, the account, tasks, results
        results/        rendered results, served until they expire
        uploads/        images accepted and not rendered yet: rendered on the next start
        key             only through `run_key`: a `--sandbox` run's generated key (0600)

Guarantees:
- each change is appended with one `write` before the answer that reveals it leaves: a SIGKILL
  loses nothing a client was told, since the kernel keeps what was written; a power cut may lose
  the last writes, since nothing is fsynced (that would cost every submit a disk flush);
- loading folds the records (the last record of a task wins) and skips a line torn by a kill;
  `compact` then rewrites the file through a temporary file and an atomic rename, and deletes
  the files nothing refers to any more;
- tasks.jsonl holds no API key: a task's owner is a salted SHA-256 of its key;
- the virtual clock resumes where it stopped plus the real time the sandbox was down, at the new
  time scale: the provider's clock does not stop while a client is away.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from batchtoon.sandbox.tasks import Clock, Result, Task

__all__ = ["Saved", "StateDir", "run_key"]

STATE_FILE = "tasks.jsonl"
_TASK_FIELDS = [f.name for f in fields(Task) if f.name != "queries"]  # queries: this process's


@dataclass
class Saved:
    """What a sandbox keeps: enough to answer every task id it gave out."""

    salt: str
    tasks: dict[str, Task]
    results: dict[str, Result]
    account: tuple[int | None, int | None] | None  # credits left and total; None: never saved
    now: float  # virtual time
    port: int  # where it listened last; 0 if unknown


class StateDir:
    """One state directory: `load` it, `compact` it, `open` it, record changes, `close` it."""

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root
        self.results = root / "results"
        self.uploads = root / "uploads"
        self._clock = clock
        self._fd: int | None = None
        for directory in (root, self.results, self.uploads):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"

    def load(self) -> Saved | None:
        """What the directory holds, the clock moved on by the downtime; None if nothing."""
        try:
            lines = (self.root / STATE_FILE).read_bytes().splitlines()
        except FileNotFoundError:
            return None
        saved, wall = Saved("", {}, {}, None, 0.0, 0), time.time()
        for line in lines:
            try:
                record = json.loads(line)
                self._fold(saved, record)
                wall = float(record["wall"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill mid-write
        saved.now += max(0.0, time.time() - wall) / self._clock.time_scale
        return saved

    def compact(self, saved: Saved) -> None:
        """Rewrite the file as `saved` alone; delete result and upload files it does not use."""
        self.close()
        records = [
            {"kind": "salt", "salt": saved.salt},
            _account(saved.account, saved.port),
            *({"kind": "task", "task": _task_record(t)} for t in saved.tasks.values()),
            *(_result_record(token, r) for token, r in saved.results.items()),
        ]
        temporary = self.root / f"{STATE_FILE}.tmp"
        temporary.write_bytes(b"".join(self._line(r) for r in records))
        os.replace(temporary, self.root / STATE_FILE)
        _keep_only(self.results, {r.path.name for r in saved.results.values()})
        _keep_only(self.uploads, {t.file_stem for t in saved.tasks.values() if t.rendering})

    def open(self) -> None:
        """Append every change from now on (see `Recorder`)."""
        self._fd = os.open(self.root / STATE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        """Stop appending; changes recorded after this are dropped. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    # The `Recorder` the task store writes through, and the account the server writes.

    def task(self, task: Task) -> None:
        self._append({"kind": "task", "task": _task_record(task)})

    def result(self, token: str, result: Result) -> None:
        self._append(_result_record(token, result))

    def account(self, credits: int | None, total: int | None, port: int) -> None:
        self._append(_account((credits, total), port))

    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is not None:
            os.write(self._fd, self._line(record))  # one write: a kill cannot split two records

    def _line(self, record: dict[str, Any]) -> bytes:
        stamped = {**record, "at": self._clock.now(), "wall": time.time()}
        return json.dumps(stamped, separators=(",", ":")).encode() + b"\n"

    def _fold(self, saved: Saved, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "salt":
            saved.salt = str(record["salt"])
        elif kind == "account":
            saved.account, saved.port = (record["credits"], record["total"]), int(record["port"])
        elif kind == "task":
            task = Task(**{name: record["task"][name] for name in _TASK_FIELDS})
            saved.tasks[task.id] = task
        elif kind == "result":
            path = self.results / Path(record["file"]).name  # never outside results/
            saved.results[record["token"]] = Result(
                path, str(record["content_type"]), float(record["expires_at"])
            )
        saved.now = max(saved.now, float(record["at"]))


def run_key(state_dir: Path) -> str:
    """The API key of the `--sandbox` run kept in `state_dir`, made on first use.

    A resumed run must present the key its tasks were submitted with, and the state holds only
    a hash of it: so the key itself lives in `state_dir/key`, created 0600 before a byte is
    written. It is worth nothing anywhere but this directory's sandbox."""
    path = state_dir / "key"
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_hex(16)
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key


def _task_record(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in _TASK_FIELDS}


def _result_record(token: str, result: Result) -> dict[str, Any]:
    return {
        "kind": "result",
        "token": token,
        "file": result.path.name,
        "content_type": result.content_type,
        "expires_at": result.expires_at,
    }


def _account(account: tuple[int | None, int | None] | None, port: int) -> dict[str, Any]:
    credits, total = account or (None, None)
    return {"kind": "account", "credits": credits, "total": total, "port": port}


def _keep_only(directory: Path, names: set[str]) -> None:
    for path in directory.iterdir():
        if path.name not in names:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
