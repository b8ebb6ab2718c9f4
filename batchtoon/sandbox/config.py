"""The sandbox's knobs. Durations are in the sandbox's *virtual* seconds (see `Clock`); rates
are real requests per second per account, because that is what a client's limiter meets, and
`uplink` is real bytes per second, because that is what a client's clock meets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Encoding", "Endpoint", "Faults", "RenderMode", "SandboxConfig"]

RenderMode = Literal["cartoon", "quick", "echo"]
Endpoint = Literal["submit", "query", "credits", "result"]
Encoding = Literal["identity", "gzip", "deflate"]


@dataclass
class Faults:
    """Fault rates, each the probability (0..1) that one request (or task) meets the fault.

    The request faults (`server_error`, `html_error`, `drop`, `slow`, `throttle`, `garbage`)
    hit submits and queries before the request does anything, as a proxy's would: a faulted
    submit costs nothing and creates no task. `late_submit`, `reuse_task_id` and `stuck` hit
    accepted submits: the task exists and is paid for.
    """

    server_error: float = 0.0  # a 500, 502 or 504 with a JSON envelope
    html_error: float = 0.0  # a 502 with a proxy's HTML page
    drop: float = 0.0  # the connection closes without an answer
    slow: float = 0.0  # the answer comes `slow_seconds` late
    slow_seconds: float = 5.0
    throttle: float = 0.0  # a burst of 429 EXCEEDING_LIMITS / 503 flow restriction begins
    throttle_seconds: float = 3.0  # how long a burst lasts
    task_failure: float = 0.0  # a task ends PROCESS_FAILED, TIMEOUT_FAILED or LIMIT_RETRY_FAILED
    truncate: float = 0.0  # a result download stops half-way through its Content-Length
    garbage: float = 0.0  # an HTTP 200 whose body is garbage (one of `hostile.GARBAGE`)
    late_submit: float = 0.0  # a submit is accepted and billed, then answered `late_seconds` late
    late_seconds: float = 60.0
    reuse_task_id: float = 0.0  # an accepted submit gets the id of the account's previous task
    stuck: float = 0.0  # a task stays PROCESSING `stuck_seconds`, then ends TIMEOUT_FAILED
    stuck_seconds: float = math.inf


@dataclass
class SandboxConfig:
    api_keys: tuple[str, ...] = ("sandbox-key",)
    locked_keys: tuple[str, ...] = ()  # accepted keys whose account is locked: 403
    processing_time: tuple[float, float] = (2.0, 6.0)  # uniform in this range
    time_scale: float = 1.0  # real seconds per virtual second: 0.01 runs "5 s" in 50 ms
    submit_rate: float | None = None  # None: no limit
    query_rate: float | None = None
    # At most N in any one second of real arrival time, a strict sliding window (every arrival
    # counts, even a refused one); more: 429 EXCEEDING_LIMITS. None: no such limit.
    submit_window: int | None = None
    query_window: int | None = None
    credits: int | None = None  # None: unlimited; one credit per accepted submission
    result_ttl: float = 86_400.0  # a result URL works this long after completion
    task_ttl: float = 86_400.0  # a task id is answered this long after completion
    render: RenderMode = "cartoon"  # quick: posterised only; echo: the upload as it came
    render_workers: int = 2
    seed: int | None = None
    faults: Faults = field(default_factory=Faults)
    host: str = "127.0.0.1"
    port: int = 0
    # What a hostile or merely different deployment does, steadily.
    redirects: dict[Endpoint, int] = field(default_factory=dict)  # {"query": 307}: elsewhere
    result_encoding: Encoding = "identity"  # gzip, deflate: compressed on the wire, as CDNs do
    key_in_result_url: bool = False  # result URLs echo the caller's key in their query string
    uplink: float | None = None  # bytes per real second read from all uploads together
    state_dir: Path | None = None  # keep tasks, results, credits and clock across processes
