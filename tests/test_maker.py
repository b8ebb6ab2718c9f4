"""The child process that makes arriving results' thumbnails (`report.maker`): it makes each
batch and remembers it, never sees the API key, ends on its own when its parent lets go of it
or dies, and when it cannot run the thumbnails are made in a thread instead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from harness import photo
from test_cli import ROOT, batchtoon
from test_stop import thumbnail_makers

from batchtoon.report import maker
from batchtoon.report.arriving import ArrivingThumbnails
from batchtoon.report.maker import ThumbnailProcess
from batchtoon.report.thumbs import Thumbnails

SECRET = "BATCHTOON_TEST_SECRET"


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.jpg" for i in range(count)]
    for seed, path in enumerate(paths):
        path.write_bytes(photo(seed=seed))
    return paths


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (exited, or a zombie no one has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


async def test_a_child_makes_each_batch_without_the_key_and_ends_when_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "sk-not-for-the-child")
    paths = _photos(tmp_path / "in", 5)
    folder = tmp_path / "thumbs"
    process = ThumbnailProcess(folder, hidden=(SECRET,))
    with anyio.fail_after(60):
        assert await process.make(paths[:3])
        assert await process.make(paths[3:])
    child = process._process
    assert child is not None
    environment = Path(f"/proc/{child.pid}/environ").read_bytes().split(b"\0")
    assert any(entry.startswith(b"PATH=") for entry in environment)  # (the probe can see)
    assert not any(entry.startswith(SECRET.encode()) for entry in environment)
    remembered = Thumbnails(folder)
    assert all(remembered.known(path) for path in paths)  # made, and their memo lines written
    assert len(list(folder.glob("*.jpg"))) == 5
    await process.aclose()
    assert child.returncode == 0  # ended on its own: neither the signal's nor a kill's
    assert not await process.make(paths)  # let go of: the caller makes what comes after


async def test_a_child_let_go_ends_on_its_own_whatever_sigterm_comes_as_it_exits(
    tmp_path: Path,
) -> None:
    """Its input over, the child ends on its own (exit 0), even with a SIGTERM arriving at
    every moment of its way out, Python's own exit included (as `aclose` sends one at once)."""
    paths = _photos(tmp_path / "in", 1)
    process = ThumbnailProcess(tmp_path / "thumbs")
    with anyio.fail_after(60):
        assert await process.make(paths)
    child = process._process
    assert child is not None and child.stdin is not None
    ended = os.pidfd_open(child.pid)  # signals by it (asyncio's own would reap the child)
    await child.stdin.aclose()  # let go of, as `aclose` does first
    with anyio.fail_after(10):
        while child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(ended, signal.SIGTERM)
            with anyio.move_on_after(0.001):  # (waits on its end, a signal each ms meanwhile)
                await child.wait()
    os.close(ended)
    await process.aclose()
    assert child.returncode == 0  # ended on its own: not by one of the signals


@contextlib.contextmanager
def _children_waited_for_by_the_loop() -> Iterator[None]:
    """asyncio's children waited for in the event loop's turns, by pidfd (the default from
    Python 3.12), not by a thread blocked in `waitpid` for each (3.11's): an ended child is
    then reaped by asyncio at the loop's next turn, not before."""
    if sys.version_info >= (3, 12):
        yield
        return
    previous = asyncio.get_child_watcher()
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    try:
        yield
    finally:
        asyncio.set_child_watcher(previous)


async def test_a_child_that_has_ended_is_stopped_without_being_reaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping a child that has already ended, asyncio not told yet, leaves its exit status
    for asyncio to read: its own, and no warning that someone else read it (a signal sent by
    asyncio's `send_signal` polls the child first, which reaps it)."""
    process = ThumbnailProcess(tmp_path / "thumbs")
    with _children_waited_for_by_the_loop():
        with anyio.fail_after(60):
            assert await process.make(_photos(tmp_path / "in", 1))
        child = process._process
        assert child is not None
        ended = os.pidfd_open(child.pid)
        signal.pidfd_send_signal(ended, signal.SIGKILL)
        assert select.select([ended], [], [], 10)[0]  # ended: waited for here, not in the loop
        os.close(ended)
        process.stop()  # in the same turn of the loop: asyncio has not reaped it yet
        await process.aclose()
    assert child.returncode == -signal.SIGKILL  # its own end, as asyncio read it
    assert not [record.getMessage() for record in caplog.records if record.name == "asyncio"]


async def test_a_stopped_child_makes_no_more_and_ends(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "in", 2)
    process = ThumbnailProcess(tmp_path / "thumbs")
    with anyio.fail_after(60):
        assert await process.make(paths[:1])
    child = process._process
    assert child is not None
    process.stop()  # as a stopped run does, before its grace is over
    assert not await process.make(paths[1:])  # left to the caller
    with anyio.fail_after(10):
        await child.wait()  # it ends on the signal alone
    await process.aclose()
    assert Thumbnails(tmp_path / "thumbs").known(paths[1]) is None


async def test_a_child_whose_parent_is_killed_ends_on_its_own(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "in", 2)
    script = textwrap.dedent(
        f"""
        import sys, anyio
        from pathlib import Path
        from batchtoon.report.maker import ThumbnailProcess

        async def main():
            process = ThumbnailProcess(Path({str(tmp_path / "thumbs")!r}))
            assert await process.make([Path(p) for p in {[str(p) for p in paths]!r}])
            print(process._process.pid, flush=True)
            await anyio.sleep_forever()

        anyio.run(main)
        """
    )
    parent = await anyio.open_process([sys.executable, "-c", script])
    try:
        assert parent.stdout is not None
        with anyio.fail_after(30):
            pid = int((await parent.stdout.receive()).decode())
        ended = os.pidfd_open(pid)
        assert not _gone(pid)
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        with anyio.fail_after(10):  # its input ends with its parent: it reads that, and exits
            await anyio.wait_readable(ended)  # (a process's pidfd: readable once it has ended)
        os.close(ended)
    finally:
        await parent.aclose()


class _Told(Thumbnails):
    """Sets `done` once a batch is made (in this process)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.done = threading.Event()

    def name_each(
        self, paths: list[Path], *, before_each: Callable[[], object] = lambda: None
    ) -> list[str | None]:
        names = super().name_each(paths, before_each=before_each)
        self.done.set()
        return names


async def test_without_a_child_the_thumbnails_are_made_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _photos(tmp_path / "in", 3)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    thumbnails = _Told(tmp_path / "thumbs")
    process = ThumbnailProcess(thumbnails.folder)
    arriving = ArrivingThumbnails(thumbnails, cwd=tmp_path, process=process)
    for path in paths:
        arriving.offer(str(path), tmp_path / "none.jpg")  # (a result not there: no thumbnail)
    async with anyio.create_task_group() as group:
        group.start_soon(arriving.run)
        assert await anyio.to_thread.run_sync(thumbnails.done.wait, 30)
        group.cancel_scope.cancel()
    assert thumbnails.made == len(paths) and "gone" in repr(process)
    assert all(Thumbnails(thumbnails.folder).known(path) for path in paths)


def test_a_batch_carries_any_bytes_a_path_holds() -> None:
    paths = [Path(os.fsdecode(b'caf\xe9 \n"x".jpg')), Path("a/b.jpg")]
    line = maker._batch(paths)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, as the child reads it
    assert [Path(path) for path in json.loads(line)] == paths


async def test_a_run_whose_thumbnails_cannot_be_written_keeps_every_result(
    tmp_path: Path,
) -> None:
    """As on a full disk, every thumbnail write fails (their folder is a file here): the child
    makes none, the run finishes every result, says in one line that the gallery was not
    written (the file in the way named), and leaves no thumbnail process."""
    photos, out = tmp_path / "in", tmp_path / "out"
    for sample in ("rocket.jpg", "coffee.png"):
        photos.mkdir(exist_ok=True)
        (photos / sample).write_bytes((ROOT / "samples" / sample).read_bytes())
    (out / ".batchtoon").mkdir(parents=True)
    (out / ".batchtoon" / "thumbs").write_text("not a folder")
    done = await batchtoon("run", str(photos), "--out", str(out), "--sandbox")
    said = done.stderr.decode()
    assert done.returncode == 0, said
    assert sorted(p.name for p in out.glob("*.jpg")) == [
        "coffee.vintage-comic.jpg",
        "rocket.vintage-comic.jpg",
    ]
    thumbs = out / ".batchtoon" / "thumbs"  # the line names the file in the way, and what to do
    assert (
        f"batchtoon: cannot write the gallery {out / 'index.html'}: {thumbs} is a file, "
        "not a folder: move it, or choose another path\n"
        in said
        and "Traceback" not in said
    )
    assert (out / ".batchtoon" / "thumbs").read_text() == "not a folder"  # not ours: kept
    assert not thumbnail_makers(out)
    again = await batchtoon("report", "--out", str(out))  # as the run's last line says to
    assert again.returncode == 74 and f"{thumbs} is a file, not a folder" in again.stderr.decode()
    thumbs.rename(tmp_path / "moved")  # as the line says to: then the gallery is written
    again = await batchtoon("report", "--out", str(out))
    assert again.returncode == 0, again.stderr.decode()
    assert (out / "index.html").is_file() and thumbs.is_dir()
