"""`ThumbnailProcess`: the thumbnails of arriving results made in a child process, so that
making them never takes Python's GIL from the run. In a thread, they handed the GIL back and
forth with the event loop at every file operation: 2,000 photos cost 118 context switches a
photo and 9.7 s of CPU; with the child, 49 and 7.6 s, the child's included
(`benchmarks/results-million.md`).

    maker = ThumbnailProcess(folder, hidden=("AILAB_API_KEY",))
    made = await maker.make(paths)  # False: not made there, the caller makes them
    await maker.aclose()

Guarantees:
- the child runs `serve` in this Python, started at the first batch (a run that stores no
  result starts none), with this process's environment but the variables in `hidden` (the
  API key's), in the current folder (relative paths mean the same), in a session
  of its own (Ctrl-C at a terminal is this process's to handle), its output read by this
  process only and its errors sent nowhere: it never prints to the user;
- one batch at a time: `make` sends it, and returns True once the child has made its
  thumbnails and written their memo lines (`Thumbnails.name_each`: the page at the run's end
  only looks them up); False if the child cannot be started or is gone, and from then on;
- `stop` and `aclose` (also when cancelled) tell the child to stop (SIGTERM: it ends after the
  thumbnail under way; what is left is the page's to make) and waits for it, `STOP_WAIT`
  seconds at most before it is killed; a child whose parent died sees its input end and exits
  after its batch; one whose input has ended (or that was stopped) ignores SIGTERM from then
  on and ends on its own, its memo saved;
- the child is signalled by its pidfd where the OS has them: never a process that took its pid
  since, and never reaped by the signal (asyncio's own `send_signal` polls first, which reaps
  a child already ended: asyncio then logs that its status was read elsewhere and reports 255).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import anyio
from anyio.abc import Process

from batchtoon.report.thumbs import Thumbnails

__all__ = ["STOP_WAIT", "ThumbnailProcess", "serve"]

_HOME = str(Path(__file__).resolve().parents[2])  # the folder batchtoon is imported from
# The child's program: this very batchtoon, found last (the standard library stays first).
_CHILD = "import sys; sys.path.append(sys.argv[2]); import batchtoon.report.maker as m; m.serve()"
STOP_WAIT = 2.0  # seconds a stopped child has to end the thumbnail under way
DONE = b"\n"  # the child's answer: a batch is made


class ThumbnailProcess:
    def __init__(self, folder: Path, *, hidden: Iterable[str] = ()) -> None:
        self.folder = folder
        self._hidden = frozenset(hidden)
        self._process: Process | None = None
        self._pidfd: int | None = None  # the child's, to signal it by (`_signal`)
        self._gone = False  # the child could not start, or died: the caller makes the rest
        self._one_batch = anyio.Lock()

    def __repr__(self) -> str:
        state = "gone" if self._gone else "running" if self._process else "not started"
        return f"<ThumbnailProcess {self.folder} {state}>"

    async def make(self, paths: list[Path]) -> bool:
        """Have the child make these files' thumbnails; True once it has."""
        async with self._one_batch:
            if self._gone:
                return False
            try:
                process = self._process or await self._start()
                assert process.stdin is not None and process.stdout is not None
                await process.stdin.send(_batch(paths))
                self._gone = await process.stdout.receive(len(DONE)) != DONE
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                self._gone = True
            return not self._gone

    def stop(self) -> None:
        """Have the child end after the thumbnail under way (from the event loop's thread): a
        stopped run's grace goes on meanwhile. `make` makes nothing more."""
        self._gone = True
        if self._process is not None and self._process.returncode is None:
            self._signal(self._process, signal.SIGTERM)

    async def aclose(self) -> None:
        """Stop the child (see the module docstring)."""
        process, self._process, self._gone = self._process, None, True
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                assert process.stdin is not None
                await process.stdin.aclose()  # an idle child sees its input end ...
            self._signal(process, signal.SIGTERM)  # ... one under way ends after its thumbnail
            with anyio.move_on_after(STOP_WAIT):
                await process.wait()
            if process.returncode is None:
                self._signal(process, signal.SIGKILL)
            await process.aclose()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _signal(self, process: Process, number: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self._pidfd is None:
                process.send_signal(number)
            else:
                signal.pidfd_send_signal(self._pidfd, number)

    async def _start(self) -> Process:
        if not sys.executable or getattr(sys, "frozen", False):
            raise OSError("no Python interpreter to run the child with")  # (an embedded one)
        env = {name: value for name, value in os.environ.items() if name not in self._hidden}
        command = [sys.executable, "-c", _CHILD, str(self.folder), _HOME]
        self._process = await anyio.open_process(
            command, stderr=subprocess.DEVNULL, env=env, start_new_session=True
        )
        self._pidfd = _pidfd(self._process.pid)
        return self._process


def _pidfd(pid: int) -> int | None:
    """A pidfd of the child just started, or None where the OS has none (not Linux, or before
    Linux 5.3): it is then signalled by its pid."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _batch(paths: list[Path]) -> bytes:
    """A batch as a line: a JSON list of the paths (any bytes a path holds survive: undecodable
    ones as the surrogates `os.fsdecode` makes, which JSON escapes)."""
    return json.dumps([os.fsdecode(path) for path in paths]).encode("ascii") + b"\n"


def _serve(folder: Path) -> None:
    """The child: make each batch read from standard input, answer `DONE`, until it ends or
    SIGTERM comes (then it ends after the thumbnail under way, at once if between batches)."""
    thumbnails = Thumbnails(folder)
    busy = False

    def stop(*_: object) -> None:
        thumbnails.stop()
        if not busy:
            raise SystemExit  # waiting for a batch: nothing to finish

    signal.signal(signal.SIGTERM, stop)
    try:
        for line in sys.stdin.buffer:
            busy = True
            thumbnails.name_each([Path(path) for path in json.loads(line)])
            sys.stdout.buffer.write(DONE)
            sys.stdout.buffer.flush()
            busy = False
            if thumbnails.stopped:
                return
    finally:
        # Its input is over, or it was stopped: it ends on its own now. A SIGTERM from here on
        # (`aclose` sends one at once) is ignored, not left to Python's exit, which puts the
        # default action back and would let it kill the child mid-way.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        thumbnails.save()


def serve() -> None:
    """The child's entry: `_serve` of the folder its command names; its errors are nobody's
    to read (its output is this process's, its errors go nowhere): it just ends."""
    with contextlib.suppress(BaseException):
        _serve(Path(sys.argv[1]))
