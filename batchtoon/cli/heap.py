"""The memory of a long run kept to what it holds, where the C library is glibc's (elsewhere
all of this does nothing).

`steady_heap()`: two settings of glibc's allocator (`mallopt`), before the run starts threads:

- The mmap threshold, fixed. glibc gives a block of 128 KiB or more a mapping of its own,
  returned whole when freed, but the first time such a block is freed it raises that
  threshold (up to 32 MiB) for the rest of the process. From then on the tables a run keeps
  growing (`records.compact`, the ledger's rows: arrays that grow by reallocating) come from
  the heap, and each time one grows it leaves its old copy there as a hole that smaller blocks
  fill only in part. Over 20,000 photos the heap held 11 MiB free at the end (some 450 bytes
  a photo of peak RSS); with the threshold fixed, 4 MiB.
- Two arenas. glibc gives each thread that allocates an arena of its own, up to eight a core,
  and what one thread frees stays in its arena for that arena's next blocks only. A run's
  worker threads (files, thumbnails) then hold some 16 arenas each with its own free space.
  The GIL lets one thread allocate at a time anyway (but for C code that lets it go), so
  sharing costs little: over 20,000 photos, peak RSS 84 -> 77 MiB, CPU within the noise.

`keep_lean()`: the holes that are left still hold their pages (6-10 MiB of a 100,000-photo
run's heap was free, and resident, from its middle on). Once a second glibc's `malloc_trim`
gives the OS back every whole free page in them: some 1 ms of CPU in a worker thread (ctypes
lets the GIL go), and the next block put there costs a page fault.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import anyio

from batchtoon.pipeline.clock import SYSTEM_CLOCK, Clock, ticks

__all__ = ["ARENAS", "MMAP_THRESHOLD", "RELEASE_EVERY", "keep_lean", "release_free_pages",
           "steady_heap"]  # fmt: skip

# Bytes from which a block gets a mapping of its own: above what is made and freed a photo at
# a time (a 256 px picture's pixels are 256 KiB: with the threshold there, a gallery's run made
# and returned three mappings a photo, each faulted in page by page), below a big batch's
# tables (an array of 8-byte keys passes it at 131,072 of them).
MMAP_THRESHOLD = 1024 * 1024
ARENAS = 2
RELEASE_EVERY = 1.0  # seconds between two `release_free_pages`
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_M_ARENA_MAX = -8


def steady_heap() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD` and its arenas at `ARENAS` for this
    process (before it starts threads); True if both were."""
    libc = _glibc()
    if libc is None:
        return False
    fixed = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(fixed and libc.mallopt(_M_ARENA_MAX, ARENAS))


def release_free_pages() -> bool:
    """Give the OS back the whole pages of the heap's free blocks; True if glibc did any."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


async def keep_lean(clock: Clock = SYSTEM_CLOCK) -> None:
    """`release_free_pages` now, then every `RELEASE_EVERY` seconds, in a worker thread, until
    cancelled (nothing at all where the C library is not glibc's)."""
    if _glibc() is None:
        return
    async for _ in ticks(RELEASE_EVERY, clock):
        await anyio.to_thread.run_sync(release_free_pages)


@functools.cache
def _glibc() -> Any:
    """glibc's functions (a `ctypes.CDLL`), or None where the C library is another."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (ValueError, OSError):  # (or None) where the C library is another
        return None
    import ctypes  # only here: 2 ms of import the other commands need not pay

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
