"""`SubmitWorker`: takes upload tickets off the upload queue and submits them, one at a time.

The engine runs `submit.uploads` workers (`submit.concurrency`, or sized from the rate), which
is the concurrency limit; they share one `SharedRate`, which is the request-rate limit, and one
`SubmissionBudget`.

Each upload ends in exactly one outcome, delivered while its budget slot is still held (so a
stopped run, which waits for the slots, never ends before an accepted task id is journaled):
`Accepted` (a task id), `Refused` (the provider refused the image, or the retry policy gave
up), `Fatal` (the account cannot go on) or `Unsent` (the run stopped submitting).

An upload sent whole whose answer never came (`Unanswered`) may have been accepted and paid
for: it is sent again at most `max_unanswered` times, and the outcome says how many went
unanswered, so the run can report them as possible extra cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio.abc import ObjectReceiveStream

from batchtoon.errors import ApiError, ItemRejected, RunFatal, Throttled, Unanswered
from batchtoon.pipeline.backlog import Backlog
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.outcomes import Accepted, Fatal, Outbox, Outcome, Refused, Unsent
from batchtoon.pipeline.tickets import UploadTicket
from batchtoon.provider.api import Api
from batchtoon.provider.pacing import SharedRate
from batchtoon.provider.retry import RetryPolicy

__all__ = ["SubmitWorker"]


@dataclass(slots=True)
class _Sending:
    ticket: UploadTicket
    unanswered: int = 0  # uploads of it sent whole whose answer never came


class SubmitWorker:
    def __init__(
        self,
        api: Api,
        rate: SharedRate,
        retry: RetryPolicy,
        budget: SubmissionBudget,
        outbox: Outbox,
        *,
        backlog: Backlog | None = None,
        max_unanswered: int = 2,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api, self._rate, self._retry = api, rate, retry
        self._budget, self._outbox, self._backlog = budget, outbox, backlog
        self._max_unanswered = max_unanswered
        self._clock = clock
        self.submitted = 0

    def __repr__(self) -> str:
        return f"<SubmitWorker submitted={self.submitted}>"

    async def run(self, uploads: ObjectReceiveStream[UploadTicket]) -> None:
        async with uploads:
            async for ticket in uploads:
                if self._backlog is not None:
                    await self._backlog.keep_up()
                async with self._budget.slot() as slot:
                    if slot is None:
                        await self._outbox.deliver(Unsent(ticket))
                        continue
                    outcome = await self._submit(_Sending(ticket))
                    if isinstance(outcome, Accepted):
                        slot.spend()
                        self.submitted += 1
                    await self._outbox.deliver(outcome)

    async def _submit(self, upload: _Sending) -> Outcome:
        ticket = upload.ticket
        try:
            task_id, began = await self._retry.call(ticket.name, self._try_once, upload)
        except RunFatal as error:
            return Fatal(ticket, error)
        except ApiError as error:
            return Refused(ticket, error, upload.unanswered)
        sent = len(ticket.image.data)
        saved = max(0, ticket.image.original_bytes - sent)
        return Accepted(ticket, task_id, upload.unanswered, sent, saved, began)

    async def _try_once(self, upload: _Sending) -> tuple[str, float]:
        """The task id, and when the attempt that got it began."""
        ticket = upload.ticket
        sent_at = await self._rate.acquire()
        began = self._clock.monotonic()
        try:
            answer = await self._api.submit(ticket.image.data, ticket.style, ticket.image.format)
        except Throttled as error:
            self._rate.throttled(sent_at, error.retry_after)
            raise
        except Unanswered as error:
            upload.unanswered += 1
            if upload.unanswered > self._max_unanswered:
                raise ItemRejected(
                    f"{upload.unanswered} uploads went unanswered ({error}); each may "
                    "have been accepted and paid for: retry it later (--retry-failed)"
                ) from None
            raise
        return answer.task_id, began
