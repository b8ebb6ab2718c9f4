"""The sandbox server: the AILabTools cartoon API, as documented, on loopback.

    async with Sandbox(SandboxConfig(time_scale=0.01)) as sandbox:
        sandbox.base_url    # http://127.0.0.1:<port>, the port the OS gave
        sandbox.api_key     # the first accepted key
        sandbox.counters    # what clients did: submissions per (sha256, style), queries, ...

Guarantees:
- it speaks `shared/api/ailabtools-cartoon-api.md`: the three endpoints, their envelopes, the
  size and format rules, every error code of section 4 (those that no request can provoke,
  such as `ERROR_NO_FACE_IN_FILE`, through `inject`);
- rendering and image checks run in worker threads: queries are answered while renders queue;
- a request meets, in order: an injected answer, a random fault, the key check, a throttling
  burst, the rate limit, and only then the endpoint;
- `close()` is idempotent and leaves no files behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import tempfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from aiolimiter import AsyncLimiter

from ..api import CREDITS_PATH, KEY_HEADER, QUERY_PATH, SUBMIT_PATH
from . import envelopes
from .config import SandboxConfig
from .imaging import MAX_UPLOAD_BYTES, Rejection, check_upload, render_result
from .tasks import SUCCESS, Clock, Task, TaskStore

__all__ = ["Counters", "Sandbox"]

Endpoint = Literal["submit", "query", "credits", "result"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAILURES = ("PROCESS_FAILED", "TIMEOUT_FAILED", "LIMIT_RETRY_FAILED")


@dataclass
class Counters:
    """What clients did, for tests and benchmarks to read."""

    submit_requests: int = 0
    accepted: Counter[tuple[str, int]] = field(default_factory=Counter)  # (sha256, style)
    query_requests: int = 0
    downloads: int = 0  # complete result downloads
    throttled: int = 0  # 429/503 answers for rate or bursts
    rejected: Counter[str] = field(default_factory=Counter)  # error code -> answers
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> times injected
    failed_tasks: Counter[tuple[str, int]] = field(default_factory=Counter)  # (sha256, style)

    @property
    def accepted_total(self) -> int:
        return sum(self.accepted.values())

    def as_json(self, tasks: dict[str, Task]) -> dict[str, object]:
        per_task = [len(task.queries) for task in tasks.values()]
        return {
            "submit_requests": self.submit_requests,
            "accepted": self.accepted_total,
            "accepted_unique": len(self.accepted),
            "query_requests": self.query_requests,
            "queries_per_task_max": max(per_task, default=0),
            "downloads": self.downloads,
            "throttled": self.throttled,
            "rejected": dict(self.rejected),
            "faults": dict(self.faults),
            "failed_tasks": sum(self.failed_tasks.values()),
        }


@dataclass
class _Injection:
    status: int
    code: str
    message: str
    retry_after: float | None
    body: Literal["json", "html", "drop"]
    times: int


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SandboxConfig(), **overrides)
        self.clock = Clock(self.config.time_scale)
        self.counters = Counters()
        self.credits = self.config.credits
        self._credits_total = self.config.credits  # what the account was ever given
        self.results_open = asyncio.Event()  # clear it to hold every result download
        self.results_open.set()
        self._rng = random.Random(self.config.seed)
        self._store = TaskStore(self.clock, self.config.task_ttl, self.config.result_ttl)
        self._injections: dict[str, deque[_Injection]] = {}
        self._limiters = {
            name: _limiter(rate)
            for name, rate in (
                ("submit", self.config.submit_rate),
                ("query", self.config.query_rate),
            )
        }
        self._burst_until = float("-inf")
        self._watchers: list[tuple[Callable[[], bool], asyncio.Event]] = []
        self._runner: web.AppRunner | None = None
        self._renderer: ThreadPoolExecutor | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.base_url = ""

    def __repr__(self) -> str:
        c = self.counters
        return (
            f"<Sandbox {self.base_url or 'stopped'} accepted={c.accepted_total} "
            f"queries={c.query_requests} downloads={c.downloads} throttled={c.throttled}>"
        )

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    @property
    def tasks(self) -> dict[str, Task]:
        return self._store.tasks

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="batchtoon-sandbox-")
        self._renderer = ThreadPoolExecutor(self.config.render_workers, "sandbox-render")
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/", self._index)
        app.router.add_get("/sandbox/counters", self._counters)
        app.router.add_post(SUBMIT_PATH, self._submit, name="submit")
        app.router.add_get(QUERY_PATH, self._query, name="query")
        app.router.add_get(CREDITS_PATH, self._credits, name="credits")
        app.router.add_get("/results/{token}", self._result, name="result")
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            await asyncio.to_thread(renderer.shutdown, wait=True, cancel_futures=True)
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            workdir.cleanup()

    # Knobs a test turns while the sandbox runs.

    def inject(
        self,
        endpoint: Endpoint,
        status: int,
        code: str = "",
        *,
        message: str = "Injected by the sandbox.",
        retry_after: float | None = None,
        body: Literal["json", "html", "drop"] = "json",
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `endpoint` this way, before anything else."""
        queue = self._injections.setdefault(endpoint, deque())
        queue.append(_Injection(status, code, message, retry_after, body, times))

    def top_up(self, credits: int) -> None:
        self.credits = (self.credits or 0) + credits
        # A top-up raises the total too: otherwise the balance could exceed it.
        self._credits_total = (self._credits_total or 0) + credits

    def revoke(self, task_id: str) -> None:
        self._store.tasks[task_id].revoked = True

    # The gate every request passes.

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; it is checked again after every request answered."""
        if condition():
            return
        reached = asyncio.Event()
        self._watchers.append((condition, reached))
        await reached.wait()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await self._answer(request, handler)
        finally:
            for condition, reached in self._watchers:
                if condition():
                    reached.set()
            self._watchers = [(c, e) for c, e in self._watchers if not e.is_set()]

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name
        if route is None:
            return await handler(request)
        if (injected := self._injected(request, route)) is not None:
            return injected
        if route in ("submit", "query") and (fault := await self._fault(request)) is not None:
            return fault
        if route == "result":
            return await handler(request)
        key = request.headers.get(KEY_HEADER, "")
        if key not in self.config.api_keys:
            return self._reject(401, "ERROR_USER_NOT_EXISTS", "The API key is missing or wrong.")
        if key in self.config.locked_keys:
            return self._reject(403, "ERROR_USER_LOCKED", "The account is locked.")
        if route in self._limiters and (throttled := await self._throttle(route)) is not None:
            return throttled
        return await handler(request)

    def _injected(self, request: web.Request, route: str) -> web.StreamResponse | None:
        queue = self._injections.get(route)
        if not queue:
            return None
        rule = queue[0]
        rule.times -= 1
        if rule.times <= 0:
            queue.popleft()
        self.counters.faults[f"injected {rule.status} {rule.code}".strip()] += 1
        if rule.body == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if rule.body == "html":
            return envelopes.proxy_page(rule.status, retry_after=rule.retry_after)
        return envelopes.error(rule.status, rule.code, rule.message, retry_after=rule.retry_after)

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        faults, roll = self.config.faults, self._rng.random
        if roll() < faults.drop:
            self.counters.faults["drop"] += 1
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if roll() < faults.server_error:
            self.counters.faults["server_error"] += 1
            status, code = self._rng.choice(
                (
                    (500, "SERVICE_INTERNAL_ERROR"),
                    (502, "ERROR_GATEWAY"),
                    (504, "AI_SERVICE_TIMEOUT"),
                )
            )
            return envelopes.error(status, code, "The service failed; try again.")
        if roll() < faults.html_error:
            self.counters.faults["html_error"] += 1
            return envelopes.proxy_page(502)
        if roll() < faults.slow:
            self.counters.faults["slow"] += 1
            await asyncio.sleep(self.clock.real(faults.slow_seconds))
        if roll() < faults.throttle:
            self.counters.faults["throttle"] += 1
            self._burst_until = max(self._burst_until, self.clock.now() + faults.throttle_seconds)
        return None

    async def _throttle(self, route: str) -> web.Response | None:
        burst_left = self._burst_until - self.clock.now()
        if burst_left > 0:
            self.counters.throttled += 1
            status, code = self._rng.choice(
                ((429, "EXCEEDING_LIMITS"), (503, "AI_SERVICE_FLOW_RESTRICTION"))
            )
            return self._reject(
                status, code, "Too many requests.", retry_after=self.clock.real(burst_left)
            )
        limiter = self._limiters[route]
        if limiter is None:
            return None
        if not limiter.has_capacity():
            self.counters.throttled += 1
            return self._reject(
                429,
                "EXCEEDING_LIMITS",
                "Over the account's request rate.",
                retry_after=limiter.time_period / limiter.max_rate,
            )
        await limiter.acquire()  # there is capacity: this takes a drop without waiting
        return None

    def _reject(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> web.Response:
        self.counters.rejected[code] += 1
        return envelopes.error(status, code, message, retry_after=retry_after)

    # The endpoints.

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=_USAGE.format(base=self.base_url, path=SUBMIT_PATH, query=QUERY_PATH)
        )

    async def _counters(self, request: web.Request) -> web.Response:
        """Not part of the provider's API: what clients did, for benchmarks in another process."""
        return web.json_response(self.counters.as_json(self._store.tasks))

    async def _submit(self, request: web.Request) -> web.Response:
        self.counters.submit_requests += 1
        try:
            fields = await _read_form(request)
        except Rejection as r:
            return self._reject(r.status, r.code, r.message)
        except (ValueError, AssertionError):
            return self._reject(400, "ERROR_PARAMETERS", "Send multipart/form-data.")
        try:
            style = _form_params(fields)
            image = fields["image"]
            await asyncio.to_thread(check_upload, image)
        except Rejection as r:
            return self._reject(r.status, r.code, r.message)
        if self.credits is not None and self.credits <= 0:
            return self._reject(429, "ERROR_NOT_ENOUGH_CREDITS", "The account has no credits left.")
        return envelopes.success(task_type="async", task_id=self._accept(request, image, style).id)

    def _accept(self, request: web.Request, image: bytes, style: int) -> Task:
        if self.credits is not None:
            self.credits -= 1
        sha = hashlib.sha256(image).hexdigest()
        self.counters.accepted[sha, style] += 1
        failed = self._rng.random() < self.config.faults.task_failure
        outcome = self._rng.choice(FAILURES) if failed else SUCCESS
        if failed:
            self.counters.failed_tasks[sha, style] += 1
        task = self._store.create(
            request.headers[KEY_HEADER],
            sha,
            style,
            self._rng.uniform(*self.config.processing_time),
            outcome,
        )
        if not failed:
            self._render(task, image)
        return task

    def _render(self, task: Task, image: bytes) -> None:
        assert self._renderer is not None and self._workdir is not None
        dest = Path(self._workdir.name) / task.id
        future = asyncio.get_running_loop().run_in_executor(
            self._renderer, render_result, image, task.style, self.config.render, dest
        )

        def done(f: asyncio.Future[tuple[Path, str]]) -> None:
            if f.cancelled() or f.exception() is not None:
                task.outcome = "PROCESS_FAILED"
            else:
                self._store.add_result(task, *f.result())

        future.add_done_callback(done)

    async def _query(self, request: web.Request) -> web.Response:
        self.counters.query_requests += 1
        task_id = request.query.get("task_id", "")
        if not task_id:
            return self._reject(400, "MISSING_PARAMETERS", "task_id is required.")
        task = self._store.lookup(request.headers[KEY_HEADER], task_id)
        if isinstance(task, str):
            http = 404 if task == "ERROR_RESOURCE_NOT_FOUND" else 410
            return self._reject(http, task, "The task does not exist or has expired.")
        task.queries.append(asyncio.get_running_loop().time())
        task_status, status = task.state(self.clock.now())
        url = f"{self.base_url}/results/{task.result_token}" if status == SUCCESS else ""
        return envelopes.success(
            task_status=task_status, data={"status": status, "result_url": url}
        )

    async def _credits(self, request: web.Request) -> web.Response:
        left = -1 if self.credits is None else self.credits
        total = -1 if self._credits_total is None else self._credits_total  # 0 stays 0
        row = {"name": "ai-anime-generator", "balance": left, "total": total}
        return envelopes.success(data=[row])

    async def _result(self, request: web.Request) -> web.StreamResponse:
        await self.results_open.wait()
        result = self._store.result(request.match_info["token"])
        if result is None:
            return web.Response(status=404, text="NoSuchKey: the result has expired.")
        body = await asyncio.to_thread(result.path.read_bytes)
        if self._rng.random() >= self.config.faults.truncate:
            self.counters.downloads += 1
            return web.Response(body=body, content_type=result.content_type)
        self.counters.faults["truncate"] += 1
        response = web.StreamResponse(headers={"Content-Type": result.content_type})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response


def _limiter(rate: float | None) -> AsyncLimiter | None:
    # A bucket of one second's worth of requests (at least one) refilled at `rate`.
    return None if rate is None else AsyncLimiter(max(1.0, rate), max(1.0, rate) / rate)


async def _read_form(request: web.Request) -> dict[str, bytes]:
    """The multipart fields; an image over 10 MB is drained, then refused with 413."""
    reader = await request.multipart()
    fields: dict[str, bytes] = {}
    too_big = False
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = bytearray()
        while chunk := await part.read_chunk(1 << 16):
            if len(data) <= MAX_UPLOAD_BYTES:
                data += chunk
        too_big |= len(data) > MAX_UPLOAD_BYTES
        fields[part.name] = bytes(data)
    if too_big:
        raise Rejection(413, "FILE_SIZE_EXCEEDS_LIMIT", "The image is over 10 MB.")
    return fields


def _form_params(fields: dict[str, bytes]) -> int:
    """The style index, after checking task_type and image are there; `Rejection` if not."""
    if "task_type" not in fields or "image" not in fields:
        raise Rejection(400, "MISSING_PARAMETERS", "task_type and image are required.")
    if fields["task_type"] != b"async":
        raise Rejection(400, "ERROR_INVALID_PARAMETER", "task_type must be async.")
    if not fields["image"]:
        raise Rejection(400, "PARAMETERS_CANNOT_EMPTY", "The image is empty.")
    index = fields.get("index", b"0").strip() or b"0"
    if not index.isdigit() or not 0 <= int(index) <= 8:
        raise Rejection(400, "ERROR_INVALID_PARAMETER", "index must be an integer from 0 to 8.")
    return int(index)


_USAGE = """batchtoon sandbox: the AILabTools AI Cartoon Generator API, offline.

Submit:  curl -H 'ailabapi-api-key: KEY' -F task_type=async -F image=@photo.jpg -F index=2 \\
              {base}{path}
Query:   curl -H 'ailabapi-api-key: KEY' '{base}{query}?task_id=TASK_ID'
Result:  curl -o cartoon.jpg RESULT_URL
Counts:  curl {base}/sandbox/counters   (the sandbox's own: what clients did)
"""
