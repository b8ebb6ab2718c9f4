"""glibc's allocator as the run command sets it (`cli/heap.py`). A run's large tables stay out
of the heap: after a large block is freed, a block above `MMAP_THRESHOLD` still gets a mapping
of its own (glibc would otherwise have raised its threshold past it, and served it, and every
copy of a growing table, from the heap). Threads share two arenas. The pages of the heap's
free blocks are given back to the OS."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import make_photos
from test_cli import ROOT, clean_env

# How many blocks have a mapping of their own, before and after one of 2 MiB is made (once a
# block of 8 MiB was made and freed), as one number: 1 if it got its own, 0 if from the heap.
PROBE = """
import ctypes, sys
from batchtoon.cli.heap import steady_heap

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    )]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "steady":
    assert steady_heap()
if sys.argv[1] == "run":  # the command, as a person runs it: it sets the allocator itself
    from batchtoon.cli import main
    assert main(sys.argv[2:]) == 0
freed = bytearray(8 << 20)
del freed
before = libc.mallinfo2().hblks
table = bytearray(2 << 20)
print(libc.mallinfo2().hblks - before)
"""


def probed(script: str, *argv: str) -> int:
    """The number a probe script prints last, run in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True,
        env=clean_env(None, PYTHONPATH=str(ROOT)), timeout=60,
    )  # fmt: skip
    return int(done.stdout.splitlines()[-1])


def mapped_after_a_large_free(how: str, *argv: str) -> int:
    return probed(PROBE, how, *argv)


def glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION")) and hasattr(ctypes.CDLL(None), "mallinfo2")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not glibc(), reason="glibc's allocator only (2.33 or later: mallinfo2)")
def test_a_large_block_gets_its_own_mapping_after_a_larger_one_was_freed() -> None:
    assert mapped_after_a_large_free("steady") == 1
    assert mapped_after_a_large_free("default") == 0  # glibc's own way: the probe can fail


@pytest.mark.skipif(not glibc(), reason="glibc's allocator only (2.33 or later: mallinfo2)")
def test_the_run_command_keeps_large_blocks_out_of_the_heap(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 2)
    run = ["run", str(tmp_path / "in"), "--sandbox", "--out", str(tmp_path / "out"), "--quiet"]
    assert mapped_after_a_large_free("run", *run) == 1


# The arenas eight threads allocate from, all alive at once: blocks of 200 KB (from the
# thread's arena: under the threshold) grouped by the 64 MiB-aligned heap each lies in (a
# thread's arena is one such heap; the main arena lies wherever the program's heap is).
ARENAS_PROBE = """
import ctypes, sys, threading
from batchtoon.cli.heap import steady_heap

if sys.argv[1] == "steady":
    assert steady_heap()
ready, blocks = threading.Barrier(8), []

def allocate():
    block = bytearray(200_000)
    blocks.append(block)
    ready.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len({ctypes.addressof(ctypes.c_char.from_buffer(b)) >> 26 for b in blocks}))
"""


@pytest.mark.skipif(not glibc(), reason="glibc's allocator only")
def test_eight_threads_share_two_arenas() -> None:
    # two arenas (the main one's heap may cross a 64 MiB line)
    assert probed(ARENAS_PROBE, "steady") <= 3
    # an arena a thread, glibc's own way: the probe can fail
    assert probed(ARENAS_PROBE, "default") >= 6


# MiB of resident memory given back after 40,000 blocks of 2,000 bytes (80 MB, from the heap)
# are freed below a block still in use (so the heap's top cannot shrink); for "lean", by the
# run command's task at each of its first two ticks (the clock's: a tick is over when the task
# sleeps again), with 80 MB more freed in between.
RELEASE_PROBE = """
import sys
import anyio
from batchtoon.cli.heap import RELEASE_EVERY, keep_lean, release_free_pages, steady_heap

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

def freed():
    blocks = [bytearray(2000) for _ in range(40_000)]
    kept = bytearray(2000)  # (left in use above them)
    del blocks
    return kept, resident()

class Clock:  # time moves by what a sleeper asked for, once the probe wakes it
    def __init__(self):
        self.now, self.slept = 0.0, []
        self.asleep, self.wake = anyio.Event(), anyio.Event()
    def monotonic(self):
        return self.now
    def wall(self):
        return self.now
    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.asleep.set()
        await self.wake.wait()
        self.wake = anyio.Event()
        self.now += seconds

assert steady_heap()
if sys.argv[1] == "lean":
    async def main():
        clock, given = Clock(), []
        async with anyio.create_task_group() as group:
            with anyio.fail_after(10):
                for tick in range(2):
                    kept, held = freed()
                    clock.asleep = anyio.Event()
                    if tick == 0:
                        group.start_soon(keep_lean, clock)
                    else:
                        clock.wake.set()
                    await clock.asleep.wait()
                    given.append((held - resident()) >> 20)
            group.cancel_scope.cancel()
        assert clock.slept == [RELEASE_EVERY] * 2, clock.slept
        print(min(given))
    anyio.run(main)
else:
    kept, held = freed()
    if sys.argv[1] == "release":
        assert release_free_pages()
    print((held - resident()) >> 20)
"""


@pytest.mark.skipif(not glibc(), reason="glibc's allocator only")
def test_the_pages_of_freed_blocks_are_given_back() -> None:
    assert probed(RELEASE_PROBE, "release") >= 60
    assert probed(RELEASE_PROBE, "lean") >= 40  # at each tick, not only the first
    assert probed(RELEASE_PROBE, "kept") < 10  # glibc's own way: the probe can fail
