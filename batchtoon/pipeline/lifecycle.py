"""`RunControl`: what a run is doing, which items it has in hand, and when it is over.

An item (content sha256 + style) is *open* from the moment the run takes it on until it is
downloaded, failed, or left to a later run. The run is over when the sources are exhausted and
nothing is open, or when it is stopped:

- `stop(STOPPED)` (Ctrl-C, SIGTERM) and `stop(BLOCKED, problem)` (a result cannot be written):
  take no new work; the engine ends the run once the uploads already on the wire have their
  answer (or after a grace period);
- `halt(FATAL)` (bad key, no credits) and `halt(BUDGET)` (`--max-submissions`): submit nothing
  more, but poll and download everything already accepted, then end.

Guarantees: the first reason to halt is the one the run reports; halting closes the submission
budget and cancels the producer, so no new upload starts after it.
"""

from __future__ import annotations

import logging
from enum import Enum

import anyio

from batchtoon.errors import RunFatal, Unwritable
from batchtoon.pipeline.budget import SubmissionBudget

__all__ = ["RunControl", "RunOutcome"]


class RunOutcome(str, Enum):
    RUNNING = "running"
    DONE = "done"  # the sources are exhausted and every item reached its end
    STOPPED = "stopped"
    FATAL = "fatal"
    BUDGET = "budget"
    BLOCKED = "blocked"  # a file could not be written: stopped


class RunControl:
    def __init__(self, budget: SubmissionBudget, log: logging.Logger | None = None) -> None:
        self.outcome = RunOutcome.RUNNING
        self.fatal_error: RunFatal | None = None
        self.problem: Unwritable | None = None
        self.stopping = anyio.Event()
        self.finished = anyio.Event()
        self.producer_scope = anyio.CancelScope()
        self._budget = budget
        self._log = log or logging.getLogger("batchtoon")
        self._open: set[str] = set()
        self._producing = True

    def __repr__(self) -> str:
        state = f"open={len(self._open)} producing={self._producing}"
        return f"<RunControl {self.outcome.value} {state}>"

    @property
    def accepting(self) -> bool:
        return self.outcome is RunOutcome.RUNNING

    def halt(self, outcome: RunOutcome, error: RunFatal | None = None) -> None:
        """Submit nothing more (see the module docstring for what follows)."""
        if error is not None and self.fatal_error is None:
            self.fatal_error = error
            self._log.error("stopping submissions: %s", error.reason)
        if self.outcome in (RunOutcome.RUNNING, RunOutcome.DONE):
            self.outcome = outcome
        self._budget.close()
        self.producer_scope.cancel()

    def stop(
        self, outcome: RunOutcome = RunOutcome.STOPPED, problem: Unwritable | None = None
    ) -> None:
        """Take no new work, and end soon (see the module docstring)."""
        if problem is not None and self.problem is None:
            self.problem = problem
            self._log.error("stopping: %s", problem)
        self.halt(outcome)
        self.stopping.set()

    @property
    def busy(self) -> bool:
        """Has the run any item in hand?"""
        return bool(self._open)

    def is_open(self, key: str) -> bool:
        return key in self._open

    def open(self, key: str) -> None:
        self._open.add(key)

    def close(self, key: str) -> None:
        self._open.discard(key)
        self._settle()

    def producer_done(self) -> None:
        self._producing = False
        self._settle()

    def _settle(self) -> None:
        if not self._producing and not self._open:
            if self.outcome is RunOutcome.RUNNING:
                self.outcome = RunOutcome.DONE
            self.finished.set()
