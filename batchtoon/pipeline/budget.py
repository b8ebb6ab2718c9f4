"""`SubmissionBudget`: how many uploads may still go out in this run, and which are in flight.

Guarantees:
- at most `limit` submissions are accepted in one run (`--max-submissions`): a slot is granted
  only while accepted + in flight < limit, so a refused or failed upload gives its slot back to
  the next one instead of ending the run short;
- a slot is given back on every path out of `async with budget.slot()`: a return, an error, a
  cancellation; only `spend()` keeps it (the upload was accepted);
- after `close()` (the run stopped submitting) no slot is granted and waiters get `None`;
- `drained()` returns once nothing is in flight: a stopped run waits on it so that the answers
  of uploads already on the wire are journaled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

__all__ = ["Slot", "SubmissionBudget"]


class Slot:
    def __init__(self, budget: SubmissionBudget) -> None:
        self._budget = budget
        self.spent = False

    def spend(self) -> None:
        """The upload was accepted: the slot counts against the budget for good, from now."""
        if not self.spent:
            self.spent = True
            self._budget.spent += 1
            self._budget._holding -= 1


class SubmissionBudget:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0
        self.in_flight = 0  # slots out, spent or not: what a stopped run waits for
        self._holding = 0  # slots out and not spent: they may still come back
        self.closed = False
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        limit = "none" if self.limit is None else self.limit
        return f"<SubmissionBudget spent={self.spent}/{limit} in_flight={self.in_flight}>"

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def close(self) -> None:
        self.closed = True
        self._notify()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot | None]:
        """A slot for one upload, or None when no more may go out."""
        while not self._grantable():
            if self.closed or self.exhausted:
                yield None
                return
            await self._changed.wait()
        slot = Slot(self)
        self.in_flight += 1
        self._holding += 1
        try:
            yield slot
        finally:
            self.in_flight -= 1
            self._holding -= not slot.spent
            self._notify()

    async def drained(self) -> None:
        while self.in_flight:
            await self._changed.wait()

    def _grantable(self) -> bool:
        if self.closed:
            return False
        return self.limit is None or self.spent + self._holding < self.limit

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
