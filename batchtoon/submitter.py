"""`SubmitWorker`: takes prepared uploads off the engine's queue and submits them, one at a
time; the engine runs `submit.concurrency` of them, which is the concurrency limit, and they
share one `SharedRate`, which is the request-rate limit.

Each upload ends one way: accepted (journaled `submitted`, handed to the poller), refused by
the provider (journaled `failed`), given up after the retry policy's bounds (`failed`), or put
back unsubmitted because the run stopped submitting (left `queued` for the next run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyio.abc import ObjectReceiveStream

from .errors import ApiError, RunFatal, Throttled
from .ledger import Entry
from .preflight import Prepared
from .retry import retrying

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["SubmitWorker", "Upload"]


@dataclass(slots=True)
class Upload:
    entry: Entry
    image: Prepared


class SubmitWorker:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.submitted = 0

    def __repr__(self) -> str:
        return f"<SubmitWorker submitted={self.submitted}>"

    async def run(self, uploads: ObjectReceiveStream[Upload]) -> None:
        async with uploads:
            async for upload in uploads:
                if not self._engine.reserve_submission():
                    self._engine.put_back(upload.entry)
                    continue
                await self._submit(upload)

    async def _submit(self, upload: Upload) -> None:
        engine, entry = self._engine, upload.entry
        try:
            task_id = await self._send(upload)
        except RunFatal as error:
            engine.release_submission()
            engine.halt("fatal", error)
            engine.put_back(entry)
        except ApiError as error:
            engine.release_submission()
            await engine.fail(entry, error)
        else:
            self.submitted += 1
            await engine.submitted(entry, task_id)

    async def _send(self, upload: Upload) -> str:
        engine = self._engine
        async for attempt in retrying(engine.settings.retry, engine.note_retry):
            with attempt:
                sent_at = await engine.submit_rate.acquire()
                try:
                    answer = await engine.api.submit(
                        upload.image.data, upload.entry.style, upload.image.format
                    )
                except Throttled as error:
                    engine.submit_rate.throttled(sent_at, error.retry_after)
                    raise
                return answer.task_id
        raise AssertionError("unreachable: tenacity reraises the last error")
