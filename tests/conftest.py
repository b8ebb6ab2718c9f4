"""Shared fixtures: every test talks real HTTP to a sandbox on 127.0.0.1:0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from batchtoon.provider.api import ApiClient
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
def no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BATCHTOON_ variable, API key or user config folder of the machine's, and the
    current folder a fresh one (no ./batchtoon.yaml): what a command reads is the test's."""
    for name in [n for n in os.environ if n.startswith("BATCHTOON_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("AILAB_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def samples() -> Iterator[Path]:
    yield SAMPLES
