"""The AILabTools AI Cartoon Generator API, as code: requests out, typed answers or errors back.

`ApiClient` is the one boundary between batchtoon and the network. Guarantees:

- every failure leaves it as an `batchtoon.errors.ApiError` subclass, classified by the
  contract's table; aiohttp's and the socket's own errors never escape;
- the API key is sent only in the `ailabapi-api-key` header of API calls to the base URL:
  never to a result URL (a third party's CDN), and API calls do not follow redirects (a
  redirect is `RunFatal`: the key would go along to wherever it points);
- the key is scrubbed from everything it hands back that came from the server (error codes
  and messages, task statuses), except a result URL, which must work (the journal scrubs it);
- an upload sent whole whose answer does not come within `answer_timeout` is `Unanswered`:
  it may have been accepted, so it is not an ordinary transient fault;
- `Retry-After` is honoured up to `max_wait` seconds, never longer;
- a result streams into a `Sink` as it comes, decoded if the server compressed it; a body
  shorter than its `Content-Length`, or longer than the cap (counted decoded, as it streams
  in), is an error, never a result.

The parsing functions are pure and usable on their own (the sandbox's tests use them).

aiohttp is loaded by the first request (`LazySession`): a run with nothing to send (a
finished batch resumed) never loads it, a third of `run`'s start-up.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from batchtoon.errors import (
    ApiError,
    ItemRejected,
    RunFatal,
    TaskGone,
    Throttled,
    Transient,
    Unanswered,
    classify,
)
from batchtoon.settings.config import Settings

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = [
    "CREDITS_PATH",
    "KEY_HEADER",
    "QUERY_PATH",
    "SUBMIT_PATH",
    "Api",
    "ApiClient",
    "Balance",
    "LazySession",
    "Sink",
    "Submitted",
    "TaskState",
    "error_from_answer",
    "parse_credits",
    "parse_query",
    "parse_submit",
    "submit_form",
]

SUBMIT_PATH = "/api/image/effects/ai-anime-generator"
QUERY_PATH = "/api/common/query-async-task-result"
CREDITS_PATH = "/api/common/query-credits"
KEY_HEADER = "ailabapi-api-key"

SUCCESS = "PROCESS_SUCCESS"
FAILURES = frozenset({"PROCESS_FAILED", "TIMEOUT_FAILED", "LIMIT_RETRY_FAILED"})
STATUSES = frozenset({"", "QUEUING", "PROCESSING", SUCCESS, *FAILURES})
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Submitted:
    task_id: str
    request_id: str = ""


@dataclass(frozen=True)
class TaskState:
    """One answer of the query endpoint."""

    task_status: int
    status: str
    result_url: str

    @property
    def succeeded(self) -> bool:
        # data.status decides when present (contract section 2, interpretation).
        if self.status:
            return self.status == SUCCESS and bool(self.result_url)
        return self.task_status == 2 and bool(self.result_url)

    @property
    def failed(self) -> bool:
        if self.status:
            return self.status in FAILURES or (self.status == SUCCESS and not self.result_url)
        return self.task_status == 2 and not self.result_url

    @property
    def done(self) -> bool:
        return self.succeeded or self.failed


@dataclass(frozen=True)
class Balance:
    name: str
    balance: float
    total: float


def _retry_after(value: str | None, most: float = 3600.0) -> float | None:
    """`Retry-After` as seconds: a number (fractions allowed) or an HTTP date; at most `most`."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(0.0, seconds), most) if seconds == seconds else None  # NaN


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _loads(body: bytes) -> object:
    """`body` as JSON: by orjson, or by json for what orjson refuses and json takes (a lone
    surrogate, NaN, an integer past 64 bits); ValueError if neither reads it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _json_object(body: bytes, status: int, retry_after: float | None = None) -> dict[str, Any]:
    try:
        data = _loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    message = f"the API answered HTTP {status} with a body that is not JSON"
    if status in (429, 503):  # a proxy's page for "slow down" still means slow down
        raise Throttled(message, status=status, retry_after=retry_after)
    raise Transient(message, status=status)


def error_from_answer(
    status: int,
    data: dict[str, Any],
    *,
    on_query: bool = False,
    retry_after: float | None = None,
    secret: str = "",
) -> ApiError | None:
    """The error a parsed answer carries, or None if it is a success envelope."""
    error_code = _number(data.get("error_code", 0))
    if status == 200 and not error_code:
        return None
    detail = _mapping(data, "error_detail")
    code = str(detail.get("code") or data.get("error_code_str") or "")
    message = str(
        detail.get("code_message") or detail.get("message") or data.get("error_msg") or "no message"
    )
    if secret:
        code, message = code.replace(secret, "***"), message.replace(secret, "***")
    http = status if status != 200 else error_code if 100 <= error_code < 600 else 500
    return classify(http, code, message, on_query=on_query, retry_after=retry_after)


def _number(value: object) -> int:
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        return -1  # not a number, so not 0: an error


def parse_submit(data: dict[str, Any]) -> Submitted:
    nested = _mapping(data, "data")
    task_id = data.get("task_id") or nested.get("task_id")
    if not task_id:
        raise Transient("the API accepted the image but sent no task_id")
    return Submitted(str(task_id), str(data.get("request_id", "")))


def parse_query(data: dict[str, Any]) -> TaskState:
    """A query's answer; `Transient` if it is not one the contract describes (a status of
    another type or name, a result URL that is not text): asked again, within bounds."""
    if "data" in data and not isinstance(data["data"], dict | None):
        raise Transient(f"the API sent a task's data that is not an object: {data['data']!r:.40}")
    nested = _mapping(data, "data")
    raw_status = data.get("task_status", nested.get("task_status", 0))
    status, url = nested.get("status") or "", nested.get("result_url") or ""
    task_status = _number(raw_status) if not isinstance(raw_status, bool) else -1
    if task_status not in (0, 1, 2):
        raise Transient(f"the API sent a task_status that is not 0, 1 or 2: {raw_status!r:.40}")
    if status not in STATUSES or not isinstance(url, str):
        raise Transient(f"the API sent a task status it does not document: {status!r:.40}")
    return TaskState(task_status, status, url)


def parse_credits(data: dict[str, Any]) -> list[Balance]:
    rows = data.get("data")
    if isinstance(rows, dict):
        rows = [rows]
    balances = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict):
            balances.append(
                Balance(
                    str(row.get("name", "")),
                    float(row.get("balance", 0) or 0),
                    float(row.get("total", 0) or 0),
                )
            )
    return balances


def submit_form(image: bytes, style: int, image_format: str) -> tuple[bytes, str]:
    """The submit's multipart/form-data body and its Content-Type.

    Encoded here in one piece rather than by aiohttp's FormData, which costs 0.3 ms of CPU and
    four more socket writes per upload: a sixth of the client's budget per image. The boundary
    only has to be absent from the image: 128 random bits from `random` are (a system call to
    the kernel's generator per upload cost as much as the encoding)."""
    boundary = f"{random.getrandbits(128):032x}"  # unique, not secret: no system call
    mime = MIME_TYPES.get(image_format, "application/octet-stream")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="task_type"\r\n\r\nasync\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="index"\r\n\r\n{style}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="image.{image_format.lower()}"\r\nContent-Type: {mime}\r\n\r\n'
    )
    body = head.encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Sink(Protocol):
    """Where a result's bytes go as they arrive (`batchtoon.locations.results.Spool`)."""

    def write(self, chunk: bytes) -> None: ...


class Api(Protocol):
    """What the stages need of the API: `ApiClient` over HTTP, or a test's fake."""

    async def submit(self, image: bytes, style: int, image_format: str = "JPEG") -> Submitted: ...

    async def query(self, task_id: str) -> TaskState: ...

    async def download(self, url: str, sink: Sink, *, max_bytes: int) -> None: ...


def _url(text: str) -> URL:
    from yarl import URL  # (with aiohttp, by the first request)

    return URL(text)


class LazySession:
    """The run's aiohttp session, opened by the first request made through it."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def request(self, method: str, url: URL | str, **kwargs: Any) -> Any:
        return self._opened().request(method, url, **kwargs)

    def get(self, url: URL | str, **kwargs: Any) -> Any:
        return self._opened().get(url, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session


class ApiClient:
    """Calls the API on one aiohttp session; see the module docstring for its guarantees."""

    def __init__(
        self,
        session: aiohttp.ClientSession | LazySession,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        answer_timeout: float = 300.0,
        max_wait: float = 120.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._seconds, self._answer_seconds = timeout, answer_timeout
        self._max_wait = max_wait

    @cached_property
    def _submit_url(self) -> URL:  # parsed once, not per request
        return _url(self._base + SUBMIT_PATH)

    @cached_property
    def _query_url(self) -> URL:
        return _url(self._base + QUERY_PATH)

    @cached_property
    def _timeout(self) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(total=self._seconds)

    @cached_property
    def _upload_timeout(self) -> aiohttp.ClientTimeout:
        """Connecting is quick or failed; once sent, an upload's answer may take long."""
        import aiohttp

        seconds, answer = self._seconds, self._answer_seconds
        return aiohttp.ClientTimeout(total=seconds + answer, sock_connect=seconds, sock_read=answer)

    @classmethod
    def from_settings(
        cls, session: aiohttp.ClientSession | LazySession, settings: Settings, api_key: str
    ) -> ApiClient:
        return cls(
            session, settings.api.base_url, api_key, timeout=settings.api.timeout,
            answer_timeout=settings.api.answer_timeout, max_wait=settings.retry.max_wait,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"ApiClient({self._base!r})"

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def submit(self, image: bytes, style: int, image_format: str = "JPEG") -> Submitted:
        body, content_type = submit_form(image, style, image_format)
        data = await self._call(
            "POST", self._submit_url, data=body, content_type=content_type, upload=True
        )
        return parse_submit(data)

    async def query(self, task_id: str) -> TaskState:
        url = self._query_url.with_query(task_id=task_id)
        data = await self._call("GET", url, on_query=True)
        state = parse_query(data)
        return replace(state, status=self.redact(state.status))

    async def credits(self) -> list[Balance]:
        return parse_credits(await self._call("GET", _url(self._base + CREDITS_PATH)))

    async def _call(
        self,
        method: str,
        url: URL,
        *,
        on_query: bool = False,
        content_type: str = "",
        upload: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        import aiohttp  # (a request: the network is needed now)

        headers = {KEY_HEADER: self._key}
        if content_type:
            headers["Content-Type"] = content_type
        timeout = self._upload_timeout if upload else self._timeout
        try:
            async with self._session.request(
                method, url, headers=headers, timeout=timeout,
                allow_redirects=False, **kwargs,
            ) as resp:  # fmt: skip
                body = await resp.read()
                retry_after = _retry_after(resp.headers.get("Retry-After"), self._max_wait)
                status = resp.status
                location = resp.headers.get("Location", "")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise self._transport_error(exc, upload) from None
        if 300 <= status < 400:
            raise RunFatal(
                f"the API answered HTTP {status}, a redirect to {_origin(self.redact(location))}: "
                "not followed, so the key stays here; check --api-base",
                status=status,
            )
        data = _json_object(body, status, retry_after)
        error = error_from_answer(
            status, data, on_query=on_query, retry_after=retry_after, secret=self._key
        )
        if error is None:
            return data
        try:
            raise error
        finally:  # the traceback holds this frame: kept here, the error would make a cycle
            del error

    def _transport_error(self, exc: BaseException, upload: bool) -> Transient:
        """A transport error as batchtoon's: an upload whose answer timed out is Unanswered."""
        import aiohttp

        text = self.redact(_describe(exc))
        waited = isinstance(exc, aiohttp.SocketTimeoutError) or (
            isinstance(exc, asyncio.TimeoutError | TimeoutError)
            and not isinstance(exc, aiohttp.ConnectionTimeoutError)
        )
        if upload and waited:
            return Unanswered(f"the upload was sent but no answer came: {text}")
        return Transient(text)

    async def download(self, url: str, sink: Sink, *, max_bytes: int) -> None:
        """Stream a result URL's body into `sink`, whole: cut short, over the cap or expired is
        an error."""
        if not url.lower().startswith(("http://", "https://")):
            raise ItemRejected("the API sent a result URL that is not http(s)")
        import aiohttp

        try:
            await self._fetch(url, sink, max_bytes)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Transient(f"result download failed: {self.redact(_describe(exc))}") from None

    async def _fetch(self, url: str, sink: Sink, max_bytes: int) -> None:
        async with self._session.get(url, timeout=self._timeout) as resp:
            if resp.status in (403, 404, 410):
                raise TaskGone(f"the result URL answered HTTP {resp.status}: it has expired")
            if resp.status != 200:
                raise classify(resp.status, "", f"the result URL answered HTTP {resp.status}")
            # A compressed body's Content-Length counts compressed bytes: it cannot be compared
            # with what comes out of the decoder (the image check catches a cut-short one).
            plain = resp.headers.get("Content-Encoding", "identity").lower() == "identity"
            declared = resp.content_length if plain else None
            if declared is not None and declared > max_bytes:
                raise ItemRejected(f"the result is {declared} bytes, over the cap of {max_bytes}")
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > max_bytes:
                    raise ItemRejected(f"the result is over the cap of {max_bytes} bytes")
                sink.write(chunk)
        if declared is not None and size != declared:
            raise Transient(f"the result download was cut short ({size} of {declared} bytes)")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "another address"


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        text = "timed out"
    return f"{type(exc).__name__}: {text}"
