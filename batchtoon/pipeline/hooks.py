"""`Hooks` (`--exec CMD`): a command run after each result is stored, to print or show it.

CMD is split once, as a shell would split it (`shlex`), but never run through a shell: each
argument that is exactly `{output}`, `{photo}` or `{style}` is replaced by the result's path,
the photo's path or the style's name as one whole argument, so a file named `$(rm -rf ~).jpg`
is only a name. An argument with text around a placeholder is left as it is.

Guarantees: at most `exec.concurrency` hooks run at once, each for at most `exec.timeout`
seconds (then it is killed); a hook that fails (cannot start, exits non-zero, times out) is
logged and counted (`failed`), and changes nothing else: the result is already stored and
journaled before its hook is offered. `offer` never waits; `run` works through what was offered
and, once `close` is called, ends when every hook offered has run (`done`); `stop` ends it at
once, killing the hooks running, and the hooks not run are counted (`not_run`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import signal
import subprocess
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchtoon.errors import UsageError
from batchtoon.settings.config import ExecSettings

__all__ = ["PLACEHOLDERS", "Hooks", "hook_argv", "split_command"]

PLACEHOLDERS = ("{output}", "{photo}", "{style}")


def split_command(command: str) -> list[str]:
    """CMD as arguments; a command that cannot be split (an open quote) is a usage error."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"--exec {command!r}: {error}: check its quotes") from None
    if not argv:
        raise UsageError("--exec: the command is empty")
    return argv


def hook_argv(template: list[str], output: str, photo: str, style: str) -> list[str]:
    """The command for one result: each whole placeholder argument replaced."""
    values = dict(zip(PLACEHOLDERS, (output, photo, style), strict=True))
    return [values.get(argument, argument) for argument in template]


class Hooks:
    def __init__(self, settings: ExecSettings, log: logging.Logger | None = None) -> None:
        if settings.command is None:
            raise ValueError("Hooks needs exec.command")
        self._template = split_command(settings.command)
        self._settings = settings
        self._log = log or logging.getLogger("batchtoon")
        self._send, self._receive = anyio.create_memory_object_stream[list[str]](math.inf)
        self.offered = self.ran = self.failed = 0
        self.done = anyio.Event()
        self._scope = anyio.CancelScope()

    def __repr__(self) -> str:
        return f"<Hooks ran={self.ran} failed={self.failed}>"

    def on_event(self, event: dict[str, Any]) -> None:
        """The events' callback: a hook for each result stored."""
        if event["event"] == "done":
            self.offer(event["output"], event["photo"], event["style"])

    def offer(self, output: str, photo: str, style: str) -> None:
        self.offered += 1
        self._send.send_nowait(hook_argv(self._template, output, photo, style))

    @property
    def not_run(self) -> int:
        return self.offered - self.ran

    def close(self) -> None:
        """No more results: `run` ends once the hooks offered have run."""
        self._send.close()

    def stop(self) -> None:
        """End now: the hooks running are killed, the others not run."""
        self._scope.cancel()

    async def run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as group:
                    for _ in range(self._settings.concurrency):
                        group.start_soon(self._work, self._receive.clone())
                    self._receive.close()
        finally:
            self.done.set()

    async def _work(self, argvs: MemoryObjectReceiveStream[list[str]]) -> None:
        async with argvs:
            async for argv in argvs:
                problem = await self._one(argv)
                self.ran += 1
                if problem:
                    self.failed += 1
                    self._log.warning("hook %s: %s", shlex.join(argv), problem)

    async def _one(self, argv: list[str]) -> str:
        """Run one hook; why it failed, or "" if it did not."""
        try:
            process = await anyio.open_process(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            return f"could not start: {error.strerror or error}"
        async with process:
            with anyio.move_on_after(self._settings.timeout) as timer:
                code = await process.wait()
            if timer.cancelled_caught:
                with contextlib.suppress(ProcessLookupError):  # its whole group: no orphans
                    os.killpg(process.pid, signal.SIGKILL)
                with anyio.CancelScope(shield=True):
                    await process.wait()
                return f"killed after {self._settings.timeout:g} s (exec.timeout)"
        return f"exited with {code}" if code else ""
