"""`SubmitWorker`: takes prepared uploads off the upload queue and submits them, one at a time.

The engine runs `submit.concurrency` workers, which is the concurrency limit; they share one
`SharedRate`, which is the request-rate limit, and one `SubmissionBudget`.

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
from batchtoon.images.preflight import Prepared
from batchtoon.pipeline.budget import SubmissionBudget
from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock
from batchtoon.pipeline.outcomes import Accepted, Fatal, Outbox, Outcome, Refused, Unsent
from batchtoon.provider.api import Api
from batchtoon.provider.pacing import SharedRate
from batchtoon.provider.retry import RetryPolicy
from batchtoon.records.ledger import Entry

__all__ = ["SubmitWorker", "Upload"]


@dataclass(slots=True)
class Upload:
    entry: Entry
    image: Prepared
    source: str  # a source path of the item, for the log
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
        max_unanswered: int = 2,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api, self._rate, self._retry = api, rate, retry
        self._budget, self._outbox = budget, outbox
        self._max_unanswered = max_unanswered
        self._clock = clock
        self.submitted = 0

    def __repr__(self) -> str:
        return f"<SubmitWorker submitted={self.submitted}>"

    async def run(self, uploads: ObjectReceiveStream[Upload]) -> None:
        async with uploads:
            async for upload in uploads:
                async with self._budget.slot() as slot:
                    if slot is None:
                        await self._outbox.deliver(Unsent(upload.entry))
                        continue
                    outcome = await self._submit(upload)
                    if isinstance(outcome, Accepted):
                        slot.spend()
                        self.submitted += 1
                    await self._outbox.deliver(outcome)

    async def _submit(self, upload: Upload) -> Outcome:
        try:
            task_id, began = await self._send(upload)
        except RunFatal as error:
            return Fatal(upload.entry, error)
        except ApiError as error:
            return Refused(upload.entry, error, upload.unanswered)
        image = upload.image
        sent = len(image.data)
        saved = max(0, image.original_bytes - sent)
        return Accepted(upload.entry, task_id, upload.unanswered, sent, saved, began)

    async def _send(self, upload: Upload) -> tuple[str, float]:
        """The task id, and when the attempt that got it began."""
        async for attempt in self._retry.attempts(upload.source):
            with attempt:
                sent_at = await self._rate.acquire()
                began = self._clock.monotonic()
                try:
                    answer = await self._api.submit(
                        upload.image.data, upload.entry.style, upload.image.format
                    )
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
        raise AssertionError("unreachable: tenacity reraises the last error")
