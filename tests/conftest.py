"""Shared fixtures: every test talks real HTTP to a sandbox on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from batchtoon.api import ApiClient
from batchtoon.sandbox import Sandbox

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def anyio_backend() -> str:
    # Every async test runs on anyio's asyncio backend (anyio_mode = "auto"; aiohttp needs it).
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A fast sandbox: "2-6 s" of processing takes 2-6 ms, results are posterised only."""
    async with Sandbox(time_scale=0.001, processing_time=(2.0, 6.0), render="quick", seed=7) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ApiClient]:
    async with aiohttp.ClientSession() as session:
        yield ApiClient(session, sandbox.base_url, sandbox.api_key, timeout=10)


@pytest.fixture
def samples() -> Iterator[Path]:
    yield SAMPLES
