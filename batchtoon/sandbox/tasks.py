"""Tasks and their lifecycle on the sandbox's virtual clock.

A task is QUEUING for the first quarter of its processing time, PROCESSING until its time is up
and its rendering is done, then finished with its outcome. It is answered for `task_ttl` after
it finished and then reclaimed (410); its result URL works for `result_ttl` after that.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Clock", "Result", "Task", "TaskStore"]

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
    owner: str
    sha256: str
    style: int
    submitted_at: float
    ready_at: float
    outcome: str  # PROCESS_SUCCESS or the failure status it will end with
    result_token: str | None = None  # set once rendered
    revoked: bool = False
    queries: list[float] = field(default_factory=list)  # real monotonic times of each query

    def state(self, now: float) -> tuple[int, str]:
        """(task_status, data.status) at virtual time `now`."""
        if now < self.submitted_at + (self.ready_at - self.submitted_at) / 4:
            return 0, "QUEUING"
        if now < self.ready_at or (self.outcome == SUCCESS and self.result_token is None):
            return 1, "PROCESSING"
        return 2, self.outcome


class TaskStore:
    def __init__(self, clock: Clock, task_ttl: float, result_ttl: float) -> None:
        self._clock = clock
        self._task_ttl = task_ttl
        self._result_ttl = result_ttl
        self.tasks: dict[str, Task] = {}
        self.results: dict[str, Result] = {}

    def create(self, owner: str, sha256: str, style: int, processing: float, outcome: str) -> Task:
        now = self._clock.now()
        task = Task(secrets.token_hex(16), owner, sha256, style, now, now + processing, outcome)
        self.tasks[task.id] = task
        return task

    def lookup(self, owner: str, task_id: str) -> Task | str:
        """The task, or the error code its id gets: unknown, revoked or reclaimed."""
        task = self.tasks.get(task_id)
        if task is None or task.owner != owner:
            return "ERROR_RESOURCE_NOT_FOUND"
        if task.revoked:
            return "ERROR_TASK_REVOKED"
        if self._clock.now() > max(task.ready_at, task.submitted_at) + self._task_ttl:
            return "ERROR_RESOURCE_RECLAIMED"
        return task

    def add_result(self, task: Task, path: Path, content_type: str) -> None:
        token = secrets.token_urlsafe(18)
        expires = max(task.ready_at, self._clock.now()) + self._result_ttl
        self.results[token] = Result(path, content_type, expires)
        task.result_token = token

    def result(self, token: str) -> Result | None:
        result = self.results.get(token)
        if result is None or self._clock.now() > result.expires_at:
            return None
        return result
