"""What a person sees while a run goes on: on a terminal, a bar whose total is right from its
first frame; elsewhere (cron, nohup, a pipe), a status line now and then, while it runs."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import anyio
from harness import make_photos
from test_cli import clean_env

from batchtoon.batch import Snapshot
from batchtoon.cli.progress import Bars, StatusLines

FRAME = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "n/total [elapsed<remaining...]"


def read_all(fd: int) -> bytes:
    """Everything written to a pty until its other end is closed (blocking)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_on_a_terminal_the_bar_counts_to_the_true_total_from_its_first_frame(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 20)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a terminal's size
    argv = [sys.executable, "-m", "batchtoon", "run", str(tmp_path / "in"), "--sandbox"]
    argv += ["--style", "0,2", "--out", str(tmp_path / "out"), "--no-report"]
    process = subprocess.Popen(  # noqa: ASYNC220  (a pty's ends: anyio's process cannot take them)
        argv, stdin=child, stdout=child, stderr=child, env=clean_env(), close_fds=True
    )
    os.close(child)
    with anyio.fail_after(60):
        screen = (await anyio.to_thread.run_sync(read_all, main)).decode(errors="replace")
    os.close(main)
    assert process.wait(10) == 0, screen
    frames = [(int(n), int(total)) for n, total in FRAME.findall(screen)]
    assert frames, screen
    assert {total for _, total in frames} == {40}  # 20 photos x 2 styles, from the first frame
    assert all(n <= total for n, total in frames) and frames[-1] == (40, 40)


async def test_not_on_a_terminal_status_lines_come_while_it_runs(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 40)
    argv = [sys.executable, "-m", "batchtoon", "run", str(tmp_path / "in"), "--sandbox"]
    argv += ["--out", str(tmp_path / "out"), "--stats-interval", "1", "--no-report"]
    lines: list[tuple[float, str]] = []
    async with await anyio.open_process(argv, env=clean_env()) as process:
        assert process.stderr is not None
        buffered = b""
        with anyio.fail_after(60):
            async for chunk in process.stderr:
                buffered += chunk
                *whole, buffered = buffered.split(b"\n")
                lines += [(time.monotonic(), line.decode()) for line in whole]
        await process.wait()
        ended = time.monotonic()
    status = [(at, line) for at, line in lines if re.match(r"batchtoon: \d+/40 results", line)]
    assert process.returncode == 0 and status, lines
    assert status[0][0] < ended - 0.2  # it came while the run was going on, not at its end
    assert "\x1b" not in "".join(line for _, line in lines)  # no terminal codes in a file
    assert re.search(r"\d+ done, .*submitted", status[0][1])


def test_a_status_line_says_when_the_api_slowed_the_run(tmp_path: Path) -> None:
    out = tmp_path / "status.txt"
    with open(out, "w") as stream:
        lines = StatusLines(interval=10, stream=stream)
        for elapsed, slowed in ((5, False), (10, False), (20, True)):
            lines(snapshot(elapsed, slowed))
    first, second = out.read_text().splitlines()  # one a 10 s interval, none before it
    assert "slowed" not in first
    assert second.endswith("slowed by the API to 0.5/2 per s")


def snapshot(elapsed: float, slowed: bool) -> Snapshot:
    return Snapshot(
        expected=100, found=100, settled=int(elapsed), done=int(elapsed), news=0, submitted=30,
        elapsed=elapsed, submit_rate=0.5 if slowed else 2.0, max_submit_rate=2.0,
        slowed=slowed, uploaded_bytes=0, upload_rate=0.0,
    )  # fmt: skip


def test_the_end_of_a_run_says_it_writes_the_gallery_at_once(tmp_path: Path) -> None:
    out = tmp_path / "status.txt"
    with open(out, "w") as stream:
        lines = StatusLines(interval=30, stream=stream)
        lines(snapshot(1, slowed=False))  # before the first interval: no line
        lines(dataclasses.replace(snapshot(2, slowed=False), doing="writing the gallery"))
    assert out.read_text() == "batchtoon: writing the gallery…\n"
    with open(out, "w") as stream:
        bars = Bars(stream)
        bars(dataclasses.replace(snapshot(2, slowed=False), doing="writing the gallery"))
        bars.close()
    assert "writing the gallery…" in out.read_text()
