"""`Snapshot`: how far a run has got, in a module of its own so that `status` (which shows a
running run's numbers) and the progress display can name it without loading the engine."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """How far a run has got, as its progress display shows it. Counts are of results (one per
    photo and style); see `Summary` for the terms."""

    expected: int | None  # results the sources hold, once a quick count has run
    found: int  # results the run has reached so far
    settled: int  # of those, the ones with their term (done, failed, refused...)
    done: int  # of those, already done or done now
    news: int  # failed or refused in this run
    submitted: int
    elapsed: float  # seconds since the run began
    submit_rate: float  # submissions per second allowed now ...
    max_submit_rate: float  # ... and when the API is not throttling
    slowed: bool  # the API throttled, and the rate has not climbed back yet
    uploaded_bytes: int
    upload_rate: float  # bytes per second while uploads were going out
    done_now: int = 0  # of `done`, those this run wrote: what its rate counts
    to_submit: int = 0  # results neither settled nor waiting on a task: submissions to come
    tick: float = 0.0  # seconds between two queries of a task
    doing: str = ""  # what the run does after its items: "writing the gallery"; "" before

    @property
    def total(self) -> int:
        """What the display counts up to: never less than what was found."""
        return max(self.expected or 0, self.found)

    @property
    def pending(self) -> int:
        """Results without their term yet: to submit, or waiting on the provider."""
        return self.total - self.settled

    @property
    def per_minute(self) -> float:
        """Results this run wrote, a minute, over its time so far (the summary's rate)."""
        return self.done_now / self.elapsed * 60 if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds to the end, from the work left: the submissions to come at the rate allowed
        now, then a tick for their results; None while nothing can be said (no rate)."""
        if not self.pending:
            return 0.0
        if self.submit_rate <= 0:
            return None
        return self.to_submit / self.submit_rate + self.tick
