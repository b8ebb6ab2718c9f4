"""The sandbox as a hostile server: garbage with HTTP 200, broken HTTP, reused task ids,
redirects to another origin, huge waits, bad results, late answers, stuck tasks; and its uplink
and persistent state. Every test talks real HTTP on loopback."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import stat
import struct
import sys
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import numpy as np
import pytest
from helpers import client_for, fetch, image_bytes, wait_done
from PIL import Image

from batchtoon.errors import ItemRejected, TaskGone, Unanswered
from batchtoon.provider.api import (
    CREDITS_PATH,
    KEY_HEADER,
    QUERY_PATH,
    SUBMIT_PATH,
    ApiClient,
    Balance,
)
from batchtoon.sandbox import Faults, Sandbox, SandboxConfig, Upload, run_key
from batchtoon.sandbox.config import Endpoint
from batchtoon.sandbox.envelopes import http_date
from batchtoon.sandbox.hostile import BAD_HTTP, GARBAGE, Body

PHOTO = image_bytes(320, 256)
OTHER = image_bytes(300, 280, "JPEG")
ENVELOPE = {"request_id", "log_id", "error_code", "error_code_str", "error_msg", "error_detail"}
PATHS = {"submit": SUBMIT_PATH, "query": QUERY_PATH + "?task_id=t", "credits": CREDITS_PATH}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def noise_png(side: int, seed: int) -> bytes:
    """A PNG that does not compress: its size on the wire is about 3 bytes a pixel."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=0)
    return out.getvalue()


def form(image: bytes = PHOTO) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("task_type", "async")
    data.add_field("index", "0")
    data.add_field("image", image, filename="upload", content_type="image/png")
    return data


@asynccontextmanager
async def raw(
    sandbox: Sandbox, endpoint: str, *, key: str | None = None, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """One request as it is (no redirects followed, no decompression), with the key."""
    method = "POST" if endpoint == "submit" else "GET"
    if endpoint == "submit":
        kwargs.setdefault("data", form())
    headers = {KEY_HEADER: sandbox.api_key if key is None else key}
    kwargs.setdefault("allow_redirects", False)
    url = PATHS.get(endpoint, endpoint)
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, sandbox.base_url + url, headers=headers, **kwargs) as resp,
    ):
        yield resp


def garbage_name(endpoint: str, content_type: str, data: bytes) -> str | None:
    """Which of `GARBAGE[endpoint]` this body is, if any."""
    return next(
        (name for name, body in GARBAGE[endpoint].items() if _is(body, content_type, data)), None
    )


def _is(body: Body, content_type: str, data: bytes) -> bool:
    if isinstance(body, Mapping):
        try:
            parsed = json.loads(data)
        except ValueError:
            return False
        fields = {k: v for k, v in parsed.items() if k not in ENVELOPE}
        return parsed["error_code"] == 0 and fields == dict(body)
    if body == "html":
        return content_type == "text/html" and data.startswith(b"<html")
    if body == "empty":
        return data == b""
    try:
        data.decode()
    except UnicodeDecodeError:
        return body == "not_utf8"
    return False


async def done_task(sandbox: Sandbox, client: ApiClient, image: bytes = PHOTO) -> tuple[str, str]:
    """Submit, wait for success: (task id, result URL)."""
    task_id = (await client.submit(image, 0)).task_id
    state = await wait_done(client, task_id)
    assert state.succeeded, state
    return task_id, state.result_url


# 1. Garbage with HTTP 200, and bytes that are no HTTP.


@pytest.mark.parametrize("name", list(GARBAGE["query"]))
async def test_injected_query_garbage_comes_with_http_200(sandbox: Sandbox, name: str) -> None:
    sandbox.inject("query", 200, body=GARBAGE["query"][name])
    async with raw(sandbox, "query") as resp:
        assert resp.status == 200
        assert garbage_name("query", resp.content_type, await resp.read()) == name
    async with raw(sandbox, "query") as resp:
        assert resp.status == 404  # used up: the endpoint answers again


@pytest.mark.parametrize("name", list(GARBAGE["submit"]))
async def test_injected_submit_garbage_creates_no_task(name: str) -> None:
    async with Sandbox(time_scale=0.001, render="echo", credits=3) as sandbox:
        sandbox.inject("submit", 200, body=GARBAGE["submit"][name])
        async with raw(sandbox, "submit") as resp:
            assert resp.status == 200
            assert garbage_name("submit", resp.content_type, await resp.read()) == name
        assert not sandbox.tasks and sandbox.credits == 3


async def test_garbage_fault_draws_from_each_endpoints_list() -> None:
    async with Sandbox(time_scale=0.001, faults=Faults(garbage=1.0), seed=4) as sandbox:
        seen: dict[str, set[str | None]] = {"query": set(), "submit": set()}
        for i in range(24):
            endpoint = "submit" if i % 3 == 0 else "query"
            async with raw(sandbox, endpoint) as resp:
                assert resp.status == 200
                seen[endpoint].add(garbage_name(endpoint, resp.content_type, await resp.read()))
    assert None not in seen["query"] | seen["submit"]
    assert len(seen["query"]) >= 4 and len(seen["submit"]) >= 3
    assert sandbox.counters.faults["garbage"] == 24
    assert sandbox.counters.submit_requests == sandbox.counters.query_requests == 0


async def test_bad_http_is_written_raw_then_the_connection_closes(sandbox: Sandbox) -> None:
    sandbox.inject("query", 200, body="bad_http")
    host, port = urlsplit(sandbox.base_url).hostname, urlsplit(sandbox.base_url).port
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {PATHS['query']} HTTP/1.1\r\nHost: x\r\n{KEY_HEADER}: {sandbox.api_key}\r\n\r\n"
    writer.write(request.encode())
    with anyio.fail_after(5):
        assert await reader.read() == BAD_HTTP  # read() returns at the close
    writer.close()
    await writer.wait_closed()
    sandbox.inject("query", 200, body="bad_http")
    with pytest.raises(aiohttp.ClientResponseError):
        async with raw(sandbox, "query"):
            pass


# 2. One task id for two submissions.


async def test_a_reused_task_id_points_at_the_later_task() -> None:
    faults = Faults(reuse_task_id=1.0)
    async with (
        Sandbox(time_scale=0.001, render="echo", credits=5, faults=faults) as sandbox,
        client_for(sandbox) as client,
    ):
        first = (await client.submit(PHOTO, 0, "PNG")).task_id
        second = (await client.submit(OTHER, 3, "JPEG")).task_id
        assert first == second
        assert sandbox.counters.accepted == {(sha(PHOTO), 0): 1, (sha(OTHER), 3): 1}
        assert sandbox.credits == 3 and sandbox.counters.faults["reuse_task_id"] == 1
        state = await wait_done(client, first)
        assert await fetch(client, state.result_url, max_bytes=1 << 20) == OTHER


# 3. Redirects to another origin.


@pytest.mark.parametrize(
    ("endpoint", "status"), [("submit", 307), ("query", 302), ("query", 307), ("credits", 302)]
)
async def test_redirects_point_at_another_origin(endpoint: Endpoint, status: int) -> None:
    config = SandboxConfig(time_scale=0.001, render="echo", redirects={endpoint: status})
    async with Sandbox(config) as sandbox, raw(sandbox, endpoint) as resp:
        assert resp.status == status
        location = urlsplit(resp.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == sandbox.elsewhere_url
        assert sandbox.elsewhere_url != sandbox.base_url
        assert location.path + (f"?{location.query}" if location.query else "") == PATHS[endpoint]
    assert not sandbox.tasks and not sandbox.counters.elsewhere
    assert sandbox.counters.faults == {f"redirect {status} {endpoint}": 1}


async def test_the_other_host_records_whether_the_key_came_along() -> None:
    config = SandboxConfig(time_scale=0.001, redirects={"submit": 307, "query": 302})
    async with Sandbox(config) as sandbox:
        async with raw(sandbox, "submit", allow_redirects=True) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
        async with (
            aiohttp.ClientSession() as session,
            session.get(sandbox.base_url + PATHS["query"]) as resp,  # no key
        ):
            assert resp.status == 200
        with anyio.fail_after(5):
            await sandbox.until(lambda: len(sandbox.counters.elsewhere) == 2)
    posted, queried = sandbox.counters.elsewhere
    assert (posted.method, posted.path, posted.carried_key) == ("POST", SUBMIT_PATH, True)
    assert (queried.method, queried.path, queried.carried_key) == ("GET", PATHS["query"], False)
    assert sandbox.counters.keys_leaked == 1 and not sandbox.tasks


async def test_an_injected_redirect_is_one_off(sandbox: Sandbox) -> None:
    sandbox.inject("credits", 302, body="redirect")
    async with raw(sandbox, "credits") as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == sandbox.elsewhere_url + CREDITS_PATH
    async with raw(sandbox, "credits") as resp:
        assert resp.status == 200 and (await resp.json())["error_code"] == 0


# 4. Retry-After: huge, and as an HTTP date.


async def test_retry_after_can_be_huge_or_a_date(sandbox: Sandbox) -> None:
    sandbox.inject("query", 429, "EXCEEDING_LIMITS", retry_after=1e9)
    sandbox.inject("query", 503, "AI_SERVICE_FLOW_RESTRICTION", retry_after=http_date(1e9))
    async with raw(sandbox, "query") as resp:
        assert resp.status == 429 and float(resp.headers["Retry-After"]) == 1e9
    async with raw(sandbox, "query") as resp:
        assert resp.status == 503
        when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
        assert when - time.time() == pytest.approx(1e9, abs=60)


# 5. Results: compressed, endless, a pixel bomb; the key echoed back.


@pytest.mark.parametrize(
    ("encoding", "decode"), [("gzip", gzip.decompress), ("deflate", zlib.decompress)]
)
async def test_results_come_compressed_as_a_cdn_sends_them(encoding: str, decode: Any) -> None:
    async with (
        Sandbox(time_scale=0.001, render="echo", result_encoding=encoding) as sandbox,
        client_for(sandbox) as client,
    ):
        _, url = await done_task(sandbox, client)
        async with raw(sandbox, url.removeprefix(sandbox.base_url)) as resp:
            body = await resp.read()
            assert resp.headers["Content-Encoding"] == encoding
            assert int(resp.headers["Content-Length"]) == len(body)
    assert body != PHOTO and decode(body) == PHOTO
    assert sandbox.counters.downloads == 1


async def test_an_endless_result_streams_in_chunks_with_flat_memory(sandbox: Sandbox) -> None:
    size = 300 << 20
    sandbox.inject("result", 200, body="endless", size=size)
    tracemalloc.start()  # the sandbox serves from this process: its allocations count too
    try:
        async with raw(sandbox, "/results/any") as resp:
            assert "Content-Length" not in resp.headers
            assert resp.headers["Transfer-Encoding"] == "chunked"
            received = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                received += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 16 << 20, f"peak {peak >> 20} MB while streaming {size >> 20} MB"


async def test_a_client_that_hangs_up_ends_an_endless_result() -> None:
    sandbox = Sandbox(time_scale=0.001, render="echo")
    async with sandbox:
        sandbox.inject("result", 200, body="endless", size=1 << 40)
        async with raw(sandbox, "/results/any") as resp:
            assert len(await resp.content.read(1 << 20)) > 0
        with anyio.fail_after(5):  # a handler still streaming would hold the close for 60 s
            await sandbox.close()


async def test_a_pixel_bomb_is_a_tiny_png_declaring_40_gigapixels(sandbox: Sandbox) -> None:
    sandbox.inject("result", 200, body="pixel_bomb")
    async with raw(sandbox, "/results/any") as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        data = await resp.read()
    assert len(data) < 200 and data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        chunks.append((kind, body))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">II", chunks[0][1][:8]) == (200_000, 200_000)
    assert zlib.decompress(chunks[1][1])  # a whole zlib stream, just a short one
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


async def test_result_urls_can_carry_the_key() -> None:
    async with (
        Sandbox(time_scale=0.001, render="echo", key_in_result_url=True) as sandbox,
        client_for(sandbox) as client,
    ):
        _, url = await done_task(sandbox, client)
        assert parse_qs(urlsplit(url).query) == {KEY_HEADER: [sandbox.api_key]}
        assert await fetch(client, url, max_bytes=1 << 20) == PHOTO


async def test_an_injected_error_can_echo_the_key(sandbox: Sandbox) -> None:
    sandbox.inject("submit", 401, "ERROR_{key}", message="The key {key} is not known.")
    async with raw(sandbox, "submit") as resp:
        body = await resp.json()
    key = sandbox.api_key
    assert body["error_detail"]["code"] == body["error_code_str"] == f"ERROR_{key}"
    assert body["error_msg"] == body["error_detail"]["message"] == f"The key {key} is not known."


# 6. A submit accepted, billed, and answered late.


async def test_a_late_submit_is_billed_although_the_client_gave_up() -> None:
    faults = Faults(late_submit=1.0, late_seconds=1e6)
    sandbox = Sandbox(time_scale=0.01, render="echo", credits=5, faults=faults)
    async with sandbox, client_for(sandbox, request_timeout=0.2) as impatient:
        with pytest.raises(Unanswered, match="sent but no answer came"):
            await impatient.submit(PHOTO, 0)
        with anyio.fail_after(5):
            await sandbox.until(lambda: len(sandbox.tasks) == 1)
        assert sandbox.credits == 4 and sandbox.counters.faults["late_submit"] == 1
        (lost,) = sandbox.tasks
        assert (await impatient.query(lost)).task_status in (0, 1, 2)  # it exists
        faults.late_seconds = 30  # 0.3 s
        async with client_for(sandbox) as patient:
            started = time.monotonic()
            task_id = (await patient.submit(PHOTO, 0)).task_id
            assert time.monotonic() - started >= sandbox.clock.real(30)
        assert task_id in sandbox.tasks and sandbox.credits == 3
        with anyio.fail_after(5):  # the first answer, due in 1e6 s, does not hold the close
            await sandbox.close()


# 7. A task stuck PROCESSING.


@pytest.mark.parametrize("deadline", [3600.0, float("inf")])
async def test_a_stuck_task_stays_processing_until_its_deadline(deadline: float) -> None:
    faults = Faults(stuck=1.0, stuck_seconds=deadline)
    async with (
        Sandbox(time_scale=1.0, processing_time=(4.0, 4.0), render="echo", faults=faults) as sb,
        client_for(sb) as client,
    ):
        task_id = (await client.submit(PHOTO, 0)).task_id
        sb.clock.advance(2)
        assert (await client.query(task_id)).status == "PROCESSING"
        sb.clock.advance(3500)
        assert (await client.query(task_id)).status == "PROCESSING"
        sb.clock.advance(200)
        state = await client.query(task_id)
    expected = "PROCESSING" if deadline == float("inf") else "TIMEOUT_FAILED"
    assert state.status == expected and state.result_url == ""
    assert sb.counters.faults["stuck"] == 1


# 8. Uploads: recorded, and paced by one shared uplink.


async def test_accepted_uploads_are_recorded(sandbox: Sandbox, client: ApiClient) -> None:
    await client.submit(PHOTO, 1, "PNG")
    await client.submit(OTHER, 4, "JPEG")
    with pytest.raises(ItemRejected):
        await client.submit(b"not an image", 2)
    assert sandbox.counters.uploads == [
        Upload(sha(PHOTO), 1, len(PHOTO), "PNG", 320, 256),
        Upload(sha(OTHER), 4, len(OTHER), "JPEG", 300, 280),
    ]
    # Every form part, rejected or not: the image, "async" and the one-digit index.
    images = len(PHOTO) + len(OTHER) + len(b"not an image")
    assert sandbox.counters.upload_bytes == images + 3 * (len("async") + 1)
    summary = sandbox.counters.as_json(sandbox.tasks)
    assert summary["upload_size_max"] == max(len(PHOTO), len(OTHER))
    assert summary["upload_size_mean"] == (len(PHOTO) + len(OTHER)) / 2


async def test_the_uplink_is_shared_by_concurrent_uploads() -> None:
    photos = [noise_png(256, seed) for seed in range(4)]
    rate = sum(map(len, photos)) / 0.8  # all four in 0.8 s; one alone in 0.2 s
    async with (
        Sandbox(time_scale=0.001, render="echo", uplink=rate) as sandbox,
        client_for(sandbox) as client,
    ):
        started = time.monotonic()
        await client.submit(photos[0], 0)
        alone = time.monotonic() - started

        async def timed(photo: bytes) -> float:
            await client.submit(photo, 0)
            return time.monotonic() - started

        started = time.monotonic()
        finished = await asyncio.gather(*(timed(photo) for photo in photos))
    assert alone >= 0.9 * len(photos[0]) / rate
    assert max(finished) >= 0.9 * sum(map(len, photos)) / rate
    # Taking turns, they finish together; one after the other, the first would be done at 1/4.
    assert min(finished) >= 0.6 * max(finished), finished
    assert sandbox.counters.upload_bytes >= 5 * len(photos[0])


# 9. State kept across a close and a start, or a kill.


def files_hold(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


async def test_state_survives_a_close_and_a_start(tmp_path: Path) -> None:
    config = SandboxConfig(
        time_scale=0.001, render="echo", credits=5, api_keys=("k-one", "k-two"), state_dir=tmp_path
    )
    async with Sandbox(config) as first, client_for(first) as client:
        done, _ = await done_task(first, client)
        revoked = (await client.submit(OTHER, 2)).task_id
        first.revoke(revoked)
    assert files_hold(tmp_path, "k-one") == [] and files_hold(tmp_path, "k-two") == []
    async with Sandbox(config) as second, client_for(second) as client:
        assert await client.credits() == [Balance("ai-anime-generator", 3, 5)]
        state = await client.query(done)
        assert state.succeeded
        assert await fetch(client, state.result_url, max_bytes=1 << 20) == PHOTO
        with pytest.raises(TaskGone) as caught:
            await client.query(revoked)
        assert caught.value.code == "ERROR_TASK_REVOKED"
        async with client_for(second, key="k-two") as other:
            with pytest.raises(TaskGone) as caught:
                await other.query(done)
            assert caught.value.code == "ERROR_RESOURCE_NOT_FOUND"


async def test_state_keeps_the_clock_and_every_expiry(tmp_path: Path) -> None:
    config = SandboxConfig(time_scale=0.001, render="echo", state_dir=tmp_path)
    async with Sandbox(config) as first, client_for(first) as client:
        task_id, url = await done_task(first, client)
        first.clock.advance(23 * 3600)
    async with Sandbox(config) as second, client_for(second) as client:
        assert second.clock.now() >= 23 * 3600
        assert await fetch(client, url, max_bytes=1 << 20) == PHOTO  # its old URL, its port
        second.clock.advance(2 * 3600)
        with pytest.raises(TaskGone) as caught:
            await client.query(task_id)
        assert caught.value.code == "ERROR_RESOURCE_RECLAIMED"
        with pytest.raises(TaskGone):
            await fetch(client, url, max_bytes=1 << 20)


async def test_a_resumed_sandbox_listens_where_it_last_did_if_it_can(tmp_path: Path) -> None:
    config = SandboxConfig(time_scale=0.001, render="echo", state_dir=tmp_path)
    async with Sandbox(config) as first:
        pass
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", urlsplit(first.base_url).port or 0))
        squatter.listen()
        async with Sandbox(config) as second:
            assert second.base_url != first.base_url
    async with Sandbox(config) as third:
        assert third.base_url == second.base_url


KILLED = """
import asyncio, sys, threading
from pathlib import Path

import batchtoon.sandbox.server as server
from batchtoon.sandbox import Sandbox, run_key

server.render_result = lambda *args: threading.Event().wait()  # every render hangs

async def main() -> None:
    state = Path(sys.argv[1])
    async with Sandbox(api_keys=(run_key(state),), state_dir=state, credits=9) as sandbox:
        print(sandbox.base_url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_state_survives_a_sigkill_mid_render(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            base_url = (await process.stdout.readline()).decode().strip()
        key = run_key(tmp_path)  # the one the killed process made
        async with aiohttp.ClientSession() as session:
            task_id = (await ApiClient(session, base_url, key).submit(PHOTO, 5)).task_id
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert files_hold(tmp_path, key) == [tmp_path / "key"]
    async with (
        Sandbox(api_keys=(key,), state_dir=tmp_path, time_scale=0.001, render="echo") as sandbox,
        client_for(sandbox) as client,
    ):
        state = await wait_done(client, task_id)  # rendered now, from the upload it kept
        assert state.succeeded and sandbox.credits == 8
        assert await fetch(client, state.result_url, max_bytes=1 << 20) == PHOTO
    assert not list((tmp_path / "uploads").iterdir())


def test_run_key_is_made_once_and_private(tmp_path: Path) -> None:
    root = tmp_path / "state"
    key = run_key(root)
    assert run_key(root) == key and len(key) == 32
    assert stat.S_IMODE(os.stat(root / "key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
