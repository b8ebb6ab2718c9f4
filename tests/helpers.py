"""Helpers shared by the tests: images made in memory, raw requests, waiting for a task."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from batchtoon.errors import ApiError, ItemRejected, RunFatal, Throttled, Transient
from batchtoon.provider.api import KEY_HEADER, SUBMIT_PATH, ApiClient, TaskState
from batchtoon.sandbox import Sandbox

FloatImage = NDArray[np.float32]

# Every row of the contract's section-4 table: (HTTP status, code, class on a submit).
CONTRACT_TABLE: list[tuple[int, str, type[ApiError]]] = [
    (400, "ERROR_PARAMETERS", ItemRejected),
    (400, "MISSING_PARAMETERS", ItemRejected),
    (400, "ERROR_INVALID_PARAMETER", ItemRejected),
    (400, "PARAMETERS_CANNOT_EMPTY", ItemRejected),
    (413, "FILE_SIZE_EXCEEDS_LIMIT", ItemRejected),
    (413, "FILE_RESOLUTION_EXCEEDS_LIMITS", ItemRejected),
    (413, "ERROR_HIGH_RESOLUTION", ItemRejected),
    (415, "UNSUPPORTED_FILE_TYPES", ItemRejected),
    (422, "FILE_DECODING_FAILURE", ItemRejected),
    (422, "ERROR_LOW_RESOLUTION", ItemRejected),
    (422, "FILE_CONTENT_NON_COMPLIANCE", ItemRejected),
    (422, "ERROR_NO_FACE_IN_FILE", ItemRejected),
    (401, "ERROR_USER_NOT_EXISTS", RunFatal),
    (401, "ERROR_APPLICATIONS_NOT_EXISTS", RunFatal),
    (403, "ERROR_USER_LOCKED", RunFatal),
    (403, "ERROR_ILLEGAL_OPERATION", RunFatal),
    (429, "ERROR_NOT_ENOUGH_CREDITS", RunFatal),
    (429, "EXCEEDING_LIMITS", Throttled),
    (429, "ERROR_BATCH_TASK_LIMIT_EXCEEDED", Throttled),
    (503, "AI_SERVICE_FLOW_RESTRICTION", Throttled),
    (503, "ERROR_INSUFFICIENT_RESOURCES", Throttled),
    (500, "PROCESSING_FAILURE", Transient),
    (500, "SERVICE_INTERNAL_ERROR", Transient),
    (502, "ERROR_GATEWAY", Transient),
    (504, "AI_SERVICE_TIMEOUT", Transient),
]
# The task-gone rows (404, 410): TaskGone on a query.
GONE_CODES: list[tuple[int, str]] = [
    (404, "ERROR_RESOURCE_NOT_FOUND"),
    (410, "ERROR_TASK_REVOKED"),
    (410, "ERROR_RESOURCE_RECLAIMED"),
]


def image_bytes(width: int, height: int, fmt: str = "PNG", *, mode: str = "RGB") -> bytes:
    """A small-on-disk image of this size: a smooth gradient compresses to almost nothing."""
    if mode == "1":
        image = Image.new("1", (width, height), 1)
    else:
        xs = np.linspace(0, 255, width, dtype=np.float32)
        ys = np.linspace(0, 255, height, dtype=np.float32)
        red = np.broadcast_to(xs[None, :], (height, width))
        green = np.broadcast_to(ys[:, None], (height, width))
        blue = np.full((height, width), 96, dtype=np.float32)
        pixels = np.stack([red, green, blue], axis=-1).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB").convert(mode)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but holds no pixels: header checks see it, decoding fails."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def pixels(source: Path | bytes | Image.Image) -> FloatImage:
    """An image as a float32 RGB array, for pixel differences."""
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB"), dtype=np.float32)
    opened = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
    with opened as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def mean_abs_diff(a: FloatImage, b: FloatImage) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).mean())


@asynccontextmanager
async def client_for(
    sandbox: Sandbox, *, key: str | None = None, request_timeout: float = 10.0, limit: int = 100
) -> AsyncIterator[ApiClient]:
    """An `ApiClient` on its own session for `sandbox` (its first key unless `key` is given)."""
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield ApiClient(
            session,
            sandbox.base_url,
            sandbox.api_key if key is None else key,
            timeout=request_timeout,
            answer_timeout=request_timeout,
        )


async def post_form(
    session: aiohttp.ClientSession,
    sandbox: Sandbox,
    fields: dict[str, str | bytes],
    *,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """A submit with exactly these multipart fields (files for bytes); (status, JSON body)."""
    form = aiohttp.FormData(default_to_multipart=True)  # even with no file part
    for name, value in fields.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename="upload", content_type="image/png")
        else:
            form.add_field(name, value)
    headers = {KEY_HEADER: sandbox.api_key if key is None else key}
    async with session.post(sandbox.base_url + SUBMIT_PATH, data=form, headers=headers) as resp:
        return resp.status, await resp.json()


class Bytes(bytearray):
    """A `Sink` that keeps everything in memory."""

    def write(self, chunk: bytes) -> None:
        self += chunk


async def fetch(client: ApiClient, url: str, *, max_bytes: int = 50 << 20) -> bytes:
    """A result URL's body, through `ApiClient.download`."""
    sink = Bytes()
    await client.download(url, sink, max_bytes=max_bytes)
    return bytes(sink)


async def wait_done(client: ApiClient, task_id: str, *, deadline: float = 10.0) -> TaskState:
    """Query until the task is finished (success or failure); fail after `deadline` seconds.

    The sandbox's lifecycle runs on a scaled clock and renders in threads, so there is no event
    to wait on from outside: each round trip is one query, bounded by the deadline.
    """
    with anyio.fail_after(deadline):
        while not (state := await client.query(task_id)).done:
            pass
    return state


async def submit_and_fetch(
    client: ApiClient, image: bytes, style: int, dest: Path, *, image_format: str = "PNG"
) -> Path:
    """Submit, wait for success, download the result to `dest`; the path written."""
    submitted = await client.submit(image, style, image_format)
    state = await wait_done(client, submitted.task_id)
    assert state.succeeded, state
    dest.write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    return dest


PEAK_PROBE = """
import re, sys
from batchtoon.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1]
sys.stdout.write(f"\\n{code} {peak}\\n")
"""


def peak_run(argv: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str, int]:
    """`batchtoon argv` in a process of its own: its exit code, its stderr and its peak
    resident memory in bytes: VmHWM, which starts afresh at exec (ru_maxrss keeps the peak
    of the forking process, pytest's own, on Linux)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, *argv],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=_own_env(cwd),
    )  # fmt: skip
    code, peak = done.stdout.rsplit("\n", 2)[-2].split()
    return int(code), done.stderr, int(peak) * 1024


def _own_env(cwd: Path) -> dict[str, str]:
    """This environment without BATCHTOON_ variables, the API key or the user's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHTOON_", "AILAB_"))}
    root = str(Path(__file__).resolve().parent.parent)
    return {**env, "XDG_CONFIG_HOME": str(cwd / "xdg"), "PYTHONPATH": root}
