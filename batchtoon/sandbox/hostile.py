"""What a hostile or broken server sends instead of the provider's answer.

`answer` turns one `Injection` into a response: the provider's error envelope (the default), a
JSON success envelope with fields of the test's choosing (wrong types, missing ids), bodies that
are no JSON at all, bytes that are no HTTP at all, a redirect to another origin, a result that
never ends, or one that claims 40 gigapixels. `GARBAGE` names the bodies each endpoint may get
with HTTP 200, for tests to parametrize over and for `Faults.garbage` to draw from.

Guarantees:
- the placeholder `{key}` in an injected code or message becomes the caller's key, so a test
  can check that a client scrubs its key from what the server echoes;
- an endless result is streamed from one small buffer: memory stays flat whatever its size;
- every body here is built once and small, except the endless one, which is never built.
"""

from __future__ import annotations

import functools
import gzip
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from batchtoon.provider.api import KEY_HEADER
from batchtoon.sandbox import envelopes
from batchtoon.sandbox.config import Encoding

__all__ = ["GARBAGE", "KEY", "Body", "Injection", "answer", "encoded", "pixel_bomb", "redirect"]

KEY = "{key}"
Body = (
    Literal[
        "json",  # the provider's error envelope with the injection's status, code and message
        "html",  # a proxy's HTML page
        "empty",  # no body at all
        "not_utf8",  # bytes that are no UTF-8, labelled JSON
        "bad_http",  # a status line and headers that no HTTP parser accepts, then a close
        "drop",  # the connection closes without an answer
        "redirect",  # the status (302, 307...) with a Location on the other host
        "endless",  # a chunked image of `size` bytes with no Content-Length
        "pixel_bomb",  # a PNG that declares 200000x200000 pixels in 80 bytes
    ]
    | Mapping[str, Any]  # a JSON success envelope with these fields added or replaced
)

GARBAGE: dict[str, dict[str, Body]] = {
    "submit": {
        "HTML page": "html",
        "empty body": "empty",
        "not UTF-8": "not_utf8",
        "no task_id": {"task_type": "async"},
        "task_id null": {"task_type": "async", "task_id": None},
    },
    "query": {
        "HTML page": "html",
        "empty body": "empty",
        "not UTF-8": "not_utf8",
        "data.status a number": {"task_status": 2, "data": {"status": 2, "result_url": ""}},
        "data a list": {"task_status": 2, "data": [{"status": "PROCESS_SUCCESS"}]},
        "task_status a string": {"task_status": "done", "data": {"status": "PROCESSING"}},
        "result_url an object": {
            "task_status": 2,
            "data": {"status": "PROCESS_SUCCESS", "result_url": {"href": "/results/x"}},
        },
        "success, result_url null": {
            "task_status": 2,
            "data": {"status": "PROCESS_SUCCESS", "result_url": None},
        },
    },
}

NOT_UTF8 = b'{"error_code": 0, "task_id": "\xff\xfe\xc3\x28"}'
BAD_HTTP = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: twelve\r\n"
    b"this header line has no colon\r\n"
    b"\r\n"
    b'{"error_code": 0}'
)
ENDLESS_CHUNK = b"\xff\xd8\xff\xe0" + bytes((1 << 16) - 4)  # a JPEG's first bytes, then zeros


@dataclass
class Injection:
    status: int
    code: str = ""
    message: str = "Injected by the sandbox."
    retry_after: envelopes.RetryAfter = None
    body: Body = "json"
    times: int = 1
    size: int = 300 << 20  # bytes of an endless result


async def answer(request: web.Request, rule: Injection, *, elsewhere: str) -> web.StreamResponse:
    """The response `rule` describes; `elsewhere` is the other host's base URL."""
    body, status = rule.body, rule.status
    if isinstance(body, Mapping):
        return web.json_response(envelopes.success_body(**body), status=status)
    if body == "json":
        key = request.headers.get(KEY_HEADER, "")
        code, message = rule.code.replace(KEY, key), rule.message.replace(KEY, key)
        return envelopes.error(status, code, message, retry_after=rule.retry_after)
    if body == "html":
        return envelopes.proxy_page(status, retry_after=rule.retry_after)
    if body == "empty":
        return web.Response(status=status, content_type="application/json")
    if body == "not_utf8":
        return web.Response(status=status, body=NOT_UTF8, content_type="application/json")
    if body in ("bad_http", "drop"):
        return _hang_up(request, BAD_HTTP if body == "bad_http" else b"")
    if body == "redirect":
        return redirect(request, status, elsewhere)
    if body == "endless":
        return await _endless(request, status, rule.size)
    return web.Response(status=status, body=pixel_bomb(), content_type="image/png")


def redirect(request: web.Request, status: int, elsewhere: str) -> web.Response:
    """`status` with a Location on the other host: the same path and query, another origin."""
    return web.Response(status=status, headers={"Location": elsewhere + request.path_qs})


def _hang_up(request: web.Request, raw: bytes) -> web.Response:
    # Written under aiohttp, straight onto the socket, which then closes: the response
    # returned is never sent.
    assert request.transport is not None
    request.transport.write(raw)
    request.transport.close()
    return web.Response()


async def _endless(request: web.Request, status: int, size: int) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers={"Content-Type": "image/jpeg"})
    response.enable_chunked_encoding()  # no Content-Length: the client cannot know the size
    await response.prepare(request)
    view = memoryview(ENDLESS_CHUNK)
    try:
        for start in range(0, size, len(view)):
            await response.write(view[: min(len(view), size - start)])
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading, as it should well before 300 MB
    return response


def encoded(path: Path, encoding: Encoding) -> bytes:
    """A result file's bytes as a CDN sends them with `Content-Encoding: encoding`."""
    data = path.read_bytes()
    if encoding == "gzip":
        return gzip.compress(data, mtime=0)
    if encoding == "deflate":
        return zlib.compress(data)  # HTTP's "deflate" is the zlib format, not raw deflate
    return data


@functools.cache
def pixel_bomb(width: int = 200_000, height: int = 200_000) -> bytes:
    """A PNG whose chunks and checksums are all valid, declaring `width`x`height` RGB pixels.

    Its pixel data stops early in the first row, so it is tiny on the wire: whatever reads the
    header believes 40 gigapixels (120 GB decoded); whatever decodes it runs out of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    start = zlib.compress(bytes(1024), 9)  # a complete zlib stream: filter byte 0, black
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", start) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks
