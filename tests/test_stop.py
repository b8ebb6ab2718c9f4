"""Ctrl-C on a real `batchtoon run` subprocess, on a terminal and piped: the prompt is back
within `STOP_GRACE` + 1 s, the message names the command that resumes and `batchtoon report`,
and resuming pays for nothing twice."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from harness import make_photos, outputs
from test_cli import ROOT, batchtoon, clean_env

from batchtoon.pipeline.engine import STOP_GRACE
from batchtoon.sandbox import Sandbox

PHOTOS = 500
BACK_WITHIN = STOP_GRACE + 1.0  # seconds from the signal to the process's exit
IN_FLIGHT = 2  # uploads at once, where that matters


def run_args(photos: Path, out: Path, sandbox: Sandbox) -> list[str]:
    """A run that takes a few seconds: 500 photos at 400 submissions/s, each task 0.1-0.5 s."""
    args = ["run", str(photos), "--out", str(out), "--api-base", sandbox.base_url]
    return [*args, "--rate", "400", "--poll-interval", "0.05"]


class Child:
    """`batchtoon` in a subprocess, its stdout and stderr either a pseudo-terminal or one pipe,
    read as it writes (a full terminal buffer would hold the process up)."""

    def __init__(self, args: list[str], key: str, *, terminal: bool) -> None:
        self.command = [sys.executable, "-m", "batchtoon", *args]
        self.key, self.terminal = key, terminal
        self.text = ""
        self._changed = anyio.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[subprocess.Popen[bytes]]:
        """The process, its output read meanwhile; killed if still there at the end."""
        env = clean_env(self.key)
        if self.terminal:
            main, child = pty.openpty()
            process = subprocess.Popen(  # noqa: ASYNC220  (a pty's ends: anyio cannot take them)
                self.command, stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT
            )
            os.close(child)
            reading = main
        else:
            process = subprocess.Popen(  # noqa: ASYNC220  (as the terminal's, for one reader)
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
            assert process.stdout is not None
            reading = process.stdout.fileno()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, self._read, reading)
                try:
                    yield process
                finally:
                    if process.poll() is None:
                        process.kill()
                    await anyio.to_thread.run_sync(process.wait)
        finally:
            if self.terminal:
                os.close(main)
            elif process.stdout is not None:
                process.stdout.close()

    async def said(self, words: str) -> None:
        """Return once the process has written `words`."""
        while words not in self.text:
            await self._changed.wait()

    def _read(self, fd: int) -> None:
        """Everything written, until the process's end closes it (in a thread)."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: a terminal whose other end is closed
                break
            if not chunk:
                break
            anyio.from_thread.run_sync(self._add, chunk.decode(errors="replace"))

    def _add(self, text: str) -> None:
        self.text += text
        self._changed.set()
        self._changed = anyio.Event()


async def exits_within(process: subprocess.Popen[bytes], signum: int, deadline: float) -> float:
    """Send `signum`; the seconds until the process exited (`TimeoutExpired` after
    `deadline`)."""
    sent = time.monotonic()
    process.send_signal(signum)
    await anyio.to_thread.run_sync(process.wait, deadline)
    return time.monotonic() - sent


def thumbnail_makers(out: Path) -> list[str]:
    """The processes making thumbnails for `out` (`report.maker`), by their command lines."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if any(b"batchtoon.report" in w for w in words) and any(bytes(out) in w for w in words):
            found.append(str(cmdline.parent))
    return found


async def started(
    sandbox: Sandbox, condition: Callable[[], bool], process: subprocess.Popen[bytes]
) -> None:
    with anyio.fail_after(60):
        await sandbox.until(condition)
    assert process.poll() is None, "the run ended before the test could stop it"


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
async def test_ctrl_c_on_500_photos_is_back_within_the_grace_and_resuming_pays_nothing_more(
    tmp_path: Path, terminal: bool
) -> None:
    make_photos(tmp_path / "in", PHOTOS)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.01, processing_time=(10.0, 50.0), render="echo") as sandbox:
        args = run_args(tmp_path / "in", out, sandbox)
        child = Child(args, sandbox.api_key, terminal=terminal)
        async with child.running() as process:
            await started(sandbox, lambda: sandbox.counters.accepted_total >= 150, process)
            took = await exits_within(process, signal.SIGINT, BACK_WITHIN)
        said = child.text
        assert process.returncode == 130, said
        assert took < BACK_WITHIN
        assert "to go on, run: batchtoon run" in said and "Traceback" not in said
        assert f"run: batchtoon report --out {out}" in said
        assert not (out / "index.html").exists()  # left for `batchtoon report`: no wait for it
        assert not thumbnail_makers(out), "the run's thumbnail process outlived it"
        assert sandbox.counters.accepted_total < PHOTOS
        again = await batchtoon(*args, "--quiet", key=sandbox.api_key)
        assert again.returncode == 0, again.stderr.decode()
        assert sandbox.counters.accepted_total == PHOTOS  # one style: one paid task a photo
    assert len(outputs(out)) == PHOTOS
    assert f"gallery: {out / 'index.html'}" in again.stdout.decode()


async def test_a_second_ctrl_c_ends_at_once_and_prints_the_resume_command(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 100)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.01, processing_time=(10.0, 50.0), render="echo") as sandbox:
        args = run_args(tmp_path / "in", out, sandbox)
        slower = ["--rate", "20", "--concurrency", str(IN_FLIGHT)]
        child = Child([*args, *slower], sandbox.api_key, terminal=False)
        async with child.running() as process:
            await started(sandbox, lambda: sandbox.counters.accepted_total >= 10, process)
            sandbox.config.faults.slow = 1.0  # every upload from now hangs: the stop waits
            sandbox.config.faults.slow_seconds = 1e6
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                await child.said("stopping")  # the first one was taken
            took = await exits_within(process, signal.SIGINT, 1.0)
        said = child.text
        sandbox.config.faults.slow = 0.0
        assert process.returncode == 130 and took < 1.0
        assert f"stopped at once; nothing is lost: to go on, run: batchtoon {args[0]}" in said
        again = await batchtoon(*args, "--quiet", key=sandbox.api_key)
        assert again.returncode == 0, again.stderr.decode()
        # As after a kill: an upload answered in the instant of the quit may be paid again.
        assert 100 <= sandbox.counters.accepted_total <= 100 + IN_FLIGHT
    assert len(outputs(out)) == 100


async def test_ctrl_c_with_the_reader_of_the_output_gone_still_prints_the_resume_command(
    tmp_path: Path,
) -> None:
    """`batchtoon run ... | tee log`: a Ctrl-C ends `tee` too; the summary has nowhere to go,
    but the resume command still comes, on stderr."""
    make_photos(tmp_path / "in", 100)
    async with Sandbox(time_scale=0.01, processing_time=(10.0, 50.0), render="echo") as sandbox:
        args = run_args(tmp_path / "in", tmp_path / "out", sandbox)
        process = subprocess.Popen(  # noqa: ASYNC220  (its stdout's reader goes away, as tee)
            [sys.executable, "-m", "batchtoon", *args, "--rate", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(sandbox.api_key),
            cwd=ROOT,
        )  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        try:
            await started(sandbox, lambda: sandbox.counters.accepted_total >= 10, process)
            process.stdout.close()
            await exits_within(process, signal.SIGINT, BACK_WITHIN)
            said = process.stderr.read().decode()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stderr.close()
    assert process.returncode == 141  # the reader went away (README: exit codes)
    assert "to go on, run: batchtoon run" in said and "Traceback" not in said


class Hanging(Sandbox):
    """A sandbox that says when its `slow` fault (at rate 1) first holds an upload."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.holding = anyio.Event()

    async def _fault(self, request: web.Request, route: str) -> web.StreamResponse | None:
        if route == "submit" and self.config.faults.slow == 1.0:
            self.holding.set()
        return await super()._fault(request, route)


@pytest.mark.slow  # it waits out the whole grace, by design
async def test_sigterm_with_uploads_that_never_answer_is_back_within_the_grace(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 100)
    out = tmp_path / "out"
    sandbox = Hanging(time_scale=0.01, processing_time=(10.0, 50.0), render="echo")
    async with sandbox:
        args = run_args(tmp_path / "in", out, sandbox)
        slower = ["--rate", "20", "--concurrency", str(IN_FLIGHT)]
        child = Child([*args, *slower], sandbox.api_key, terminal=False)
        async with child.running() as process:
            await started(sandbox, lambda: sandbox.counters.accepted_total >= 10, process)
            sandbox.config.faults.slow = 1.0  # every request from now hangs
            sandbox.config.faults.slow_seconds = 1e6
            with anyio.fail_after(10):
                await sandbox.holding.wait()
            took = await exits_within(process, signal.SIGTERM, BACK_WITHIN)
        sandbox.config.faults.slow = 0.0
        assert process.returncode == 130, child.text
        assert STOP_GRACE <= took < BACK_WITHIN  # it waited for the answers, then no longer
        assert "to go on, run: batchtoon run" in child.text
        again = await batchtoon(*args, "--quiet", key=sandbox.api_key)
        assert again.returncode == 0, again.stderr.decode()
        assert sandbox.counters.accepted_total == 100  # the hung uploads were never accepted
