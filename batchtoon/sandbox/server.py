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
- a request meets, in order: an injected answer, a configured redirect, a random fault, the key
  check, a throttling burst, the one-second window, the rate limit, and only then the endpoint;
- its arrival is the loop's time when its headers have been read (real seconds): the window
  counts it, and a query's is recorded on its task (`Task.queries`, `query_gaps`);
- upload bodies are read through one shared `Uplink` when `uplink` is set;
- a knob left at zero draws no random number: adding one changes no seeded run;
- `close()` is idempotent, ends every deliberately delayed answer at once, and leaves no files
  behind, except in `state_dir` when one is set (see `state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import random
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import BodyPartReader, web
from aiolimiter import AsyncLimiter

from batchtoon.provider.api import CREDITS_PATH, KEY_HEADER, QUERY_PATH, SUBMIT_PATH
from batchtoon.sandbox import envelopes, hostile
from batchtoon.sandbox.config import Endpoint, RenderMode, SandboxConfig
from batchtoon.sandbox.counters import Counters, Upload, Visit
from batchtoon.sandbox.elsewhere import Elsewhere
from batchtoon.sandbox.hostile import Body, Injection
from batchtoon.sandbox.imaging import (
    MAX_UPLOAD_BYTES,
    ImageInfo,
    Rejection,
    check_upload,
    render_result,
)
from batchtoon.sandbox.state import Saved, StateDir
from batchtoon.sandbox.tasks import SUCCESS, Clock, Task, TaskStore
from batchtoon.sandbox.uplink import Uplink
from batchtoon.sandbox.window import SlidingWindow

__all__ = ["Counters", "Sandbox"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ARRIVED = web.RequestKey("arrived", float)  # a request's arrival, in the loop's time
Intake = Callable[[int], Awaitable[None]]
FAILURES = ("PROCESS_FAILED", "TIMEOUT_FAILED", "LIMIT_RETRY_FAILED")


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SandboxConfig(), **overrides)
        self.clock = Clock(self.config.time_scale)
        self.counters = Counters()
        self.credits = self.config.credits
        self._credits_total = self.config.credits  # what the account was ever given
        self.results_open = asyncio.Event()  # clear it to hold every result download
        self.results_open.set()
        self._rng = random.Random(self.config.seed)  # draws for requests
        # Tasks draw from their own stream: a seeded run gives the same outcomes however many
        # queries (each drawing for faults) come between two submits.
        seed = self.config.seed
        self._task_rng = random.Random(None if seed is None else f"{seed}:tasks")
        self._store = TaskStore(self.clock, self.config.task_ttl, self.config.result_ttl)
        self._injections: dict[str, deque[Injection]] = {}
        self._limiters = {
            name: _limiter(rate)
            for name, rate in (
                ("submit", self.config.submit_rate),
                ("query", self.config.query_rate),
            )
        }
        self._windows = {
            name: SlidingWindow(limit)
            for name, limit in (
                ("submit", self.config.submit_window),
                ("query", self.config.query_window),
            )
            if limit is not None
        }
        self._uplink = Uplink(self.config.uplink) if self.config.uplink is not None else None
        self._burst_until = float("-inf")
        self._watchers: list[tuple[Callable[[], bool], asyncio.Event]] = []
        self._closing = asyncio.Event()  # set first thing in close(): delays end
        self._elsewhere = Elsewhere(self._visited)
        self._runner: web.AppRunner | None = None
        self._renderer: ThreadPoolExecutor | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._state: StateDir | None = None
        self._port = 0
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

    @property
    def elsewhere_url(self) -> str:
        """The other origin redirects point to (see `elsewhere.Elsewhere`)."""
        return self._elsewhere.base_url

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._renderer = ThreadPoolExecutor(self.config.render_workers, "sandbox-render")
        port = self.config.port
        if self.config.state_dir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="batchtoon-sandbox-")
        else:
            saved_port = self._restore(self.config.state_dir)
            port = port or saved_port
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/", self._index)
        app.router.add_get("/sandbox/counters", self._counters)
        app.router.add_post(SUBMIT_PATH, self._submit, name="submit")
        app.router.add_get(QUERY_PATH, self._query, name="query")
        app.router.add_get(CREDITS_PATH, self._credits, name="credits")
        app.router.add_get("/results/{token}", self._result, name="result")
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._listen(self._runner, port)
        await self._elsewhere.start()
        self._save_account()  # the port, for the next start to try again

    async def _listen(self, runner: web.AppRunner, port: int) -> None:
        """Listen on `port`, or on the configured port if `port` was the last run's and is taken."""
        site = web.TCPSite(runner, self.config.host, port)
        try:
            await site.start()
        except OSError:
            await site.stop()
            if port == self.config.port:
                raise
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        host, self._port = runner.addresses[0][:2]
        self.base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self._port}"

    def _restore(self, root: Path) -> int:
        """Take over the state kept in `root`; the port it was served on (0: none)."""
        self._state = state = StateDir(root, self.clock)
        saved = state.load()
        if saved is not None:
            store = self._store
            store.salt = saved.salt or store.salt
            store.tasks, store.results = saved.tasks, saved.results
            if saved.account is not None:
                self.credits, self._credits_total = saved.account
            self.clock.advance(saved.now - self.clock.now())
        self._store.prune()
        state.compact(self._snapshot())
        state.open()
        self._store.recorder = state
        for task in [t for t in self._store.tasks.values() if t.rendering]:
            upload = state.uploads / task.file_stem
            if upload.exists():
                self._render(task, upload)
            else:
                self._store.fail(task)  # accepted, but killed before its upload was kept
        return saved.port if saved is not None else 0

    def _snapshot(self) -> Saved:
        store = self._store
        account = (self.credits, self._credits_total)
        return Saved(store.salt, store.tasks, store.results, account, self.clock.now(), self._port)

    async def close(self) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self._elsewhere.close()
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            await asyncio.to_thread(renderer.shutdown, wait=True, cancel_futures=True)
        state, self._state = self._state, None
        if state is not None:
            self._store.recorder = None
            self._store.prune()
            await asyncio.to_thread(state.compact, self._snapshot())
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
        retry_after: envelopes.RetryAfter = None,
        body: Body = "json",
        times: int = 1,
        size: int = 300 << 20,
    ) -> None:
        """Answer the next `times` requests to `endpoint` this way, before anything else.

        `body` is what comes back (see `hostile.Body`): the provider's error envelope, JSON
        fields on a success envelope, or one of the hostile answers. `{key}` in `code` or
        `message` becomes the caller's key; a string `retry_after` is sent as it is (e.g.
        `envelopes.http_date(1e9)`); `size` is the length of an `endless` result."""
        rule = Injection(status, code, message, retry_after, body, times, size)
        self._injections.setdefault(endpoint, deque()).append(rule)

    def top_up(self, credits: int) -> None:
        self.credits = (self.credits or 0) + credits
        # A top-up raises the total too: otherwise the balance could exceed it.
        self._credits_total = (self._credits_total or 0) + credits
        self._save_account()

    def revoke(self, task_id: str) -> None:
        self._store.revoke(task_id)

    def _save_account(self) -> None:
        if self._state is not None:
            self._state.account(self.credits, self._credits_total, self._port)

    # The gate every request passes.

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; it is checked again after every request answered,
        every task accepted (before its answer leaves) and every visit to the other host."""
        if condition():
            return
        reached = asyncio.Event()
        self._watchers.append((condition, reached))
        await reached.wait()

    def _notify(self) -> None:
        for condition, reached in self._watchers:
            if condition():
                reached.set()
        self._watchers = [(c, e) for c, e in self._watchers if not e.is_set()]

    def _visited(self, visit: Visit) -> None:
        self.counters.elsewhere.append(visit)
        self._notify()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[ARRIVED] = asyncio.get_running_loop().time()
        try:
            return await self._answer(request, handler)
        finally:
            self._notify()

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = cast("Endpoint | None", request.match_info.route.name)
        if route is None:
            return await handler(request)
        if (injected := await self._injected(request, route)) is not None:
            return injected
        if (status := self.config.redirects.get(route)) is not None:
            self.counters.faults[f"redirect {status} {route}"] += 1
            return hostile.redirect(request, status, self._elsewhere.base_url)
        fault = await self._fault(request, route) if route in ("submit", "query") else None
        if fault is not None:
            return fault
        if route == "result":
            return await handler(request)
        key = request.headers.get(KEY_HEADER, "")
        if key not in self.config.api_keys:
            return self._reject(401, "ERROR_USER_NOT_EXISTS", "The API key is missing or wrong.")
        if key in self.config.locked_keys:
            return self._reject(403, "ERROR_USER_LOCKED", "The account is locked.")
        throttled = await self._throttle(request, route) if route in self._limiters else None
        if throttled is not None:
            return throttled
        return await handler(request)

    async def _injected(self, request: web.Request, route: str) -> web.StreamResponse | None:
        queue = self._injections.get(route)
        if not queue:
            return None
        rule = queue[0]
        rule.times -= 1
        if rule.times <= 0:
            queue.popleft()
        self.counters.faults[f"injected {rule.status} {rule.code}".strip()] += 1
        return await hostile.answer(request, rule, elsewhere=self._elsewhere.base_url)

    async def _fault(self, request: web.Request, route: str) -> web.StreamResponse | None:
        faults, roll = self.config.faults, self._rng.random
        if roll() < faults.drop:
            self.counters.faults["drop"] += 1
            return await hostile.answer(request, Injection(0, body="drop"), elsewhere="")
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
        if self._roll(faults.garbage):
            self.counters.faults["garbage"] += 1
            body = self._rng.choice(list(hostile.GARBAGE[route].values()))
            return await hostile.answer(request, Injection(200, body=body), elsewhere="")
        if roll() < faults.slow:
            self.counters.faults["slow"] += 1
            await self._delay(faults.slow_seconds)
        if roll() < faults.throttle:
            self.counters.faults["throttle"] += 1
            self._burst_until = max(self._burst_until, self.clock.now() + faults.throttle_seconds)
        return None

    def _roll(self, rate: float, rng: random.Random | None = None) -> bool:
        # No draw at all for a rate of zero, so that a knob left alone changes no seeded run.
        return rate > 0 and (rng or self._rng).random() < rate

    async def _delay(self, seconds: float) -> None:
        """Wait `seconds` virtual seconds, or until the sandbox closes."""
        real = self.clock.real(seconds)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), None if math.isinf(real) else real)

    async def _throttle(self, request: web.Request, route: str) -> web.Response | None:
        burst_left = self._burst_until - self.clock.now()
        if burst_left > 0:
            self.counters.throttled += 1
            status, code = self._rng.choice(
                ((429, "EXCEEDING_LIMITS"), (503, "AI_SERVICE_FLOW_RESTRICTION"))
            )
            return self._reject(
                status, code, "Too many requests.", retry_after=self.clock.real(burst_left)
            )
        window = self._windows.get(route)
        if window is not None and (wait := window.arrive(request[ARRIVED])) is not None:
            self.counters.throttled += 1
            return self._reject(
                429, "EXCEEDING_LIMITS", "Over the account's requests in one second.",
                retry_after=wait,
            )  # fmt: skip
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
            fields = await _read_form(request, self._intake)
            style = _form_params(fields)
            info = await asyncio.to_thread(check_upload, fields["image"])
        except Rejection as r:
            return self._reject(r.status, r.code, r.message)
        except (ValueError, AssertionError):
            return self._reject(400, "ERROR_PARAMETERS", "Send multipart/form-data.")
        if self.credits is not None and self.credits <= 0:
            return self._reject(429, "ERROR_NOT_ENOUGH_CREDITS", "The account has no credits left.")
        task = await self._accept(request.headers[KEY_HEADER], fields["image"], style, info)
        if self._roll(self.config.faults.late_submit):
            self.counters.faults["late_submit"] += 1
            await self._delay(self.config.faults.late_seconds)  # the task exists, and is paid
        return envelopes.success(task_type="async", task_id=task.id)

    async def _intake(self, size: int) -> None:
        """Count `size` more upload bytes, once they have crossed the uplink."""
        self.counters.upload_bytes += size
        if self._uplink is not None:
            await self._uplink.carry(size)

    async def _accept(self, key: str, image: bytes, style: int, info: ImageInfo) -> Task:
        if self.credits is not None:
            self.credits -= 1
            self._save_account()
        sha, faults = hashlib.sha256(image).hexdigest(), self.config.faults
        self.counters.accepted[sha, style] += 1
        self.counters.uploads.append(Upload(sha, style, len(image), *info))
        rng = self._task_rng
        failed = rng.random() < faults.task_failure
        outcome = rng.choice(FAILURES) if failed else SUCCESS
        if failed:
            self.counters.failed_tasks[sha, style] += 1
        processing = rng.uniform(*self.config.processing_time)
        timing = (processing / 4, processing)
        if not failed and self._roll(faults.stuck, rng):
            self.counters.faults["stuck"] += 1
            outcome, timing = "TIMEOUT_FAILED", (processing / 4, faults.stuck_seconds)
        reused = self._store.last_id(key) if self._roll(faults.reuse_task_id, rng) else None
        if reused is not None:
            self.counters.faults["reuse_task_id"] += 1
        task = self._store.create(key, sha, style, timing, outcome, task_id=reused)
        self._notify()
        if task.rendering:
            await self._render_later(task, image)
        return task

    async def _render_later(self, task: Task, image: bytes) -> None:
        if self._state is None:
            return self._render(task, image)
        # Kept until rendered, so that a sandbox killed before then renders it when it starts.
        upload = self._state.uploads / task.file_stem
        await asyncio.to_thread(upload.write_bytes, image)
        self._render(task, upload)

    def _render(self, task: Task, source: bytes | Path) -> None:
        assert self._renderer is not None
        future = asyncio.get_running_loop().run_in_executor(
            self._renderer,
            _render_job,
            source,
            task.style,
            self.config.render,
            self._results_dir / task.file_stem,
        )
        future.add_done_callback(functools.partial(self._rendered, task))

    def _rendered(self, task: Task, future: asyncio.Future[tuple[Path, str]]) -> None:
        if self._closing.is_set() or self._store.tasks.get(task.id) is not task:
            return  # closing: a kept task renders again next start; replaced: no one asks
        if future.cancelled() or future.exception() is not None:
            self._store.fail(task)
        else:
            self._store.add_result(task, *future.result())
        if self._state is not None:
            (self._state.uploads / task.file_stem).unlink(missing_ok=True)

    @property
    def _results_dir(self) -> Path:
        if self._state is not None:
            return self._state.results
        assert self._workdir is not None
        return Path(self._workdir.name)

    async def _query(self, request: web.Request) -> web.Response:
        self.counters.query_requests += 1
        task_id = request.query.get("task_id", "")
        if not task_id:
            return self._reject(400, "MISSING_PARAMETERS", "task_id is required.")
        key = request.headers[KEY_HEADER]
        task = self._store.lookup(key, task_id)
        if isinstance(task, str):
            http = 404 if task == "ERROR_RESOURCE_NOT_FOUND" else 410
            return self._reject(http, task, "The task does not exist or has expired.")
        task.queries.append(request[ARRIVED])
        task_status, status = task.state(self.clock.now())
        url = self._result_url(task, key) if status == SUCCESS else ""
        return envelopes.success(
            task_status=task_status, data={"status": status, "result_url": url}
        )

    def _result_url(self, task: Task, key: str) -> str:
        url = f"{self.base_url}/results/{task.result_token}"
        return f"{url}?{urlencode({KEY_HEADER: key})}" if self.config.key_in_result_url else url

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
        encoding = self.config.result_encoding
        body = await asyncio.to_thread(hostile.encoded, result.path, encoding)
        headers = {"Content-Type": result.content_type}
        if encoding != "identity":
            headers["Content-Encoding"] = encoding  # Content-Length: the bytes on the wire
        if self._rng.random() >= self.config.faults.truncate:
            self.counters.downloads += 1
            return web.Response(body=body, headers=headers)
        self.counters.faults["truncate"] += 1
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response


def _render_job(source: bytes | Path, style: int, mode: RenderMode, dest: Path) -> tuple[Path, str]:
    """`render_result`, in a worker thread, from the upload or the file it was kept in."""
    data = source.read_bytes() if isinstance(source, Path) else source
    return render_result(data, style, mode, dest)


def _limiter(rate: float | None) -> AsyncLimiter | None:
    # A bucket of one second's worth of requests (at least one) refilled at `rate`.
    return None if rate is None else AsyncLimiter(max(1.0, rate), max(1.0, rate) / rate)


async def _read_form(request: web.Request, intake: Intake) -> dict[str, bytes]:
    """The multipart fields, each chunk through `intake` as it comes; an image over 10 MB is
    drained, then refused with 413."""
    reader = await request.multipart()
    fields: dict[str, bytes] = {}
    too_big = False
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = bytearray()
        while chunk := await part.read_chunk(1 << 16):
            await intake(len(chunk))
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
