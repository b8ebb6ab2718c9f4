"""Running the engine in-process against a sandbox, and making photos to feed it."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import numpy as np
from anyio.streams.text import TextReceiveStream
from PIL import Image

from batchtoon.pipeline.engine import Engine
from batchtoon.provider.api import ApiClient
from batchtoon.records.journal import Journal
from batchtoon.sandbox import Sandbox
from batchtoon.settings.config import Settings

FAST = {
    "poll__interval": 0.01,
    "poll__rate": 20_000.0,
    "poll__concurrency": 64,
    "submit__rate": 5_000.0,
    "submit__concurrency": 8,
    "retry__backoff": 0.001,
    "retry__max_backoff": 0.01,
    "api__timeout": 10.0,
}


def photo(size: tuple[int, int] = (320, 256), seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A small photo whose bytes differ for every seed."""
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    image.putpixel((seed % size[0], (seed // size[0]) % size[1]), (255, 255, 255))
    image.putpixel((0, 0), (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A gradient with grain: it compresses like a photo, and is quick to make at 24 MP."""
    grain = np.random.default_rng(seed).integers(0, 24, (256, 256, 1), dtype=np.uint8)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 200, width).astype(np.uint8)[None, :]
    pixels[..., 1] = np.linspace(0, 200, height).astype(np.uint8)[:, None]
    pixels[..., 2] = 90
    pixels += np.tile(grain, (height // 256 + 1, width // 256 + 1, 3))[:height, :width]
    return Image.fromarray(pixels, "RGB")


def make_photos(folder: Path, count: int, *, start: int = 0) -> list[Path]:
    paths = []
    for i in range(start, start + count):
        path = folder / f"sub{i % 3}" / f"photo{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(seed=i))
        paths.append(path)
    return paths


def settings_for(sandbox: Sandbox, out: Path, **overrides: Any) -> Settings:
    return Settings().override(
        api__base_url=sandbox.base_url, output__dir=str(out), **{**FAST, **overrides}
    )


@asynccontextmanager
async def engine_for(
    sandbox: Sandbox,
    sources: list[Path],
    out: Path,
    *,
    retry_failed: bool = False,
    **overrides: Any,
) -> AsyncIterator[Engine]:
    """An engine with its journal open and its API session up, not yet running."""
    settings = settings_for(sandbox, out, **overrides)
    journal = Journal(settings.journal_path)
    journal.open()
    try:
        async with aiohttp.ClientSession() as session:
            api = ApiClient.from_settings(session, settings, sandbox.api_key)
            yield Engine(settings, api, journal, sources, retry_failed=retry_failed)
    finally:
        journal.close()


async def run_engine(
    sandbox: Sandbox,
    sources: list[Path],
    out: Path,
    *,
    retry_failed: bool = False,
    **overrides: Any,
) -> Engine:
    async with engine_for(sandbox, sources, out, retry_failed=retry_failed, **overrides) as engine:
        await engine.run()
    return engine


def when(journal: Journal, event: str, count: int) -> anyio.Event:
    """An event set once `count` records of kind `event` are durable in the journal."""
    reached, seen = anyio.Event(), [0]

    def observe(record: dict[str, Any]) -> None:
        seen[0] += record["event"] == event
        if seen[0] >= count:
            reached.set()

    journal.observers.append(observe)
    return reached


async def run_until(engine: Engine, reached: anyio.Event, then: Callable[[], None]) -> None:
    """Run the engine; once `reached` is set (within 10 s), call `then` and let the run end."""
    async with anyio.create_task_group() as group:
        group.start_soon(engine.run)
        with anyio.fail_after(10):
            await reached.wait()
        then()


def journal_records(out: Path) -> list[dict[str, Any]]:
    path = out / ".batchtoon" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outputs(out: Path) -> list[Path]:
    """Every file in the output folder but the run's own: its bookkeeping and its gallery."""
    own = {out / "index.html"}
    return sorted(
        p for p in out.rglob("*") if p.is_file() and ".batchtoon" not in p.parts and p not in own
    )


async def json_lines(stream: anyio.abc.ByteReceiveStream) -> AsyncIterator[dict[str, Any]]:
    """Each whole line of `stream` (a child's stdout), as JSON, as soon as it is written."""
    pending = ""
    async for text in TextReceiveStream(stream):
        *lines, pending = (pending + text).split("\n")
        for line in lines:
            yield json.loads(line)
