"""Tasks and their lifecycle on the sandbox's virtual clock.

A task is QUEUING until it starts (a quarter of its processing time), PROCESSING until its time
is up and its rendering is done, then finished with its outcome. It is answered for `task_ttl`
after it finished and then reclaimed (410); its result URL works for `result_ttl` after that.

Guarantees:
- a task's owner is a salted SHA-256 of the key that submitted it, never the key itself;
- every change goes through `TaskStore` and, when a `Recorder` is attached, is handed to it
  before the call returns (so before any answer that reveals the change).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["Clock", "Recorder", "Result", "Task", "TaskStore"]

SUCCESS = "PROCESS_SUCCESS"


class Clock:
    """Virtual seconds: real elapsed time divided by `time_scale`, plus whatever `advance` added."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._start = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._start) / self.time_scale + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward, e.g. past a 24 h expiry, without waiting."""
        self._offset += seconds

    def real(self, seconds: float) -> float:
        """Real seconds for a virtual duration."""
        return seconds * self.time_scale


@dataclass
class Result:
    path: Path
    content_type: str
    expires_at: float


@dataclass
class Task:
    id: str
    owner: str  # salted hash of the submitting key
    sha256: str
    style: int
    submitted_at: float
    started_at: float  # QUEUING before, PROCESSING after
    ready_at: float
    outcome: str  # PROCESS_SUCCESS or the failure status it will end with
    result_token: str | None = None  # set once rendered
    revoked: bool = False
    # The name of its upload and result files: unique, unlike an id that may be reused.
    file_stem: str = field(default_factory=lambda: secrets.token_hex(8))
    queries: list[float] = field(default_factory=list)  # each query's arrival, real seconds

    def state(self, now: float) -> tuple[int, str]:
        """(task_status, data.status) at virtual time `now`."""
        if now < self.started_at:
            return 0, "QUEUING"
        if now < self.ready_at or self.rendering:
            return 1, "PROCESSING"
        return 2, self.outcome

    @property
    def rendering(self) -> bool:
        return self.outcome == SUCCESS and self.result_token is None


class Recorder(Protocol):
    """Where the store's changes go to outlive the process (see `state.StateDir`)."""

    def task(self, task: Task) -> None: ...

    def result(self, token: str, result: Result) -> None: ...


class TaskStore:
    def __init__(self, clock: Clock, task_ttl: float, result_ttl: float) -> None:
        self._clock = clock
        self._task_ttl = task_ttl
        self._result_ttl = result_ttl
        self.salt = secrets.token_hex(16)
        self.tasks: dict[str, Task] = {}
        self.results: dict[str, Result] = {}
        self.recorder: Recorder | None = None
        self._last_id: dict[str, str] = {}  # owner -> the id it was given last

    def owner(self, key: str) -> str:
        return hashlib.sha256(f"{self.salt}:{key}".encode()).hexdigest()

    def create(
        self,
        key: str,
        sha256: str,
        style: int,
        timing: tuple[float, float],
        outcome: str,
        *,
        task_id: str | None = None,
    ) -> Task:
        """A task that starts `timing[0]` and is ready `timing[1]` virtual seconds from now.

        Given a `task_id` already in use, the new task takes it over (see `last_id`)."""
        now, owner = self._clock.now(), self.owner(key)
        task_id = task_id or secrets.token_hex(16)
        task = Task(task_id, owner, sha256, style, now, now + timing[0], now + timing[1], outcome)
        self.tasks[task_id] = task
        self._last_id[owner] = task_id
        self._changed(task)
        return task

    def last_id(self, key: str) -> str | None:
        """The id the key's latest task got in this process, if any."""
        return self._last_id.get(self.owner(key))

    def lookup(self, key: str, task_id: str) -> Task | str:
        """The task, or the error code its id gets: unknown, revoked or reclaimed."""
        task = self.tasks.get(task_id)
        if task is None or task.owner != self.owner(key):
            return "ERROR_RESOURCE_NOT_FOUND"
        if task.revoked:
            return "ERROR_TASK_REVOKED"
        if self._reclaimed(task):
            return "ERROR_RESOURCE_RECLAIMED"
        return task

    def revoke(self, task_id: str) -> None:
        self.tasks[task_id].revoked = True
        self._changed(self.tasks[task_id])

    def fail(self, task: Task) -> None:
        task.outcome = "PROCESS_FAILED"
        self._changed(task)

    def add_result(self, task: Task, path: Path, content_type: str) -> None:
        token = secrets.token_urlsafe(18)
        expires = max(task.ready_at, self._clock.now()) + self._result_ttl
        self.results[token] = result = Result(path, content_type, expires)
        if self.recorder is not None:
            self.recorder.result(token, result)
        task.result_token = token
        self._changed(task)

    def result(self, token: str) -> Result | None:
        result = self.results.get(token)
        if result is None or self._clock.now() > result.expires_at:
            return None
        return result

    def prune(self) -> None:
        """Forget expired results, and reclaimed tasks whose result is gone too."""
        now = self._clock.now()
        self.results = {t: r for t, r in self.results.items() if now <= r.expires_at}
        self.tasks = {
            i: t
            for i, t in self.tasks.items()
            if not self._reclaimed(t) or t.result_token in self.results
        }

    def _reclaimed(self, task: Task) -> bool:
        return self._clock.now() > max(task.ready_at, task.submitted_at) + self._task_ttl

    def _changed(self, task: Task) -> None:
        if self.recorder is not None:
            self.recorder.task(task)
