"""Where photos come from and results go: a local path, or a URL of any installed fsspec backend.

A SOURCE or `--out` is a URL when it starts with a scheme of two or more letters and `://`
(`s3://bucket/photos`, `gs://...`, `memory://...`); anything else, `file://` included, is a
local path, read and written by the local code as before: nothing here is on a local run's way.
A URL is kept as text and a local path as a `Path` (`Location`), so `isinstance(where, str)`
tells a URL.

Guarantees (URLs):
- one filesystem per scheme per process (`fsspec.core.url_to_fs` on first use), shared by every
  thread: its credentials and endpoint come from the backend's own configuration (for S3 the
  AWS variables and profiles, `AWS_ENDPOINT_URL` included), and nothing of them is ever logged
  or printed;
- a scheme with no installed backend is one `UsageError` line (`s3:// needs s3fs: install
  batchtoon with its s3 extra (pipx install '.[s3]' from a clone)`);
- this module is the one boundary where a backend's errors are mapped: whatever it raises
  leaves as `StoreFailure` (one line, `missing` or `transient` said), which each caller turns
  into its own action (a refused photo, a retried write, a one-line exit);
- a write is whole or absent (one PUT), and checked after: its size, and its MD5 where the
  store's ETag is one (S3's, for an upload in one part); a copy is made by the store itself;
- stat and read are uncached: every `stat` asks the store (listings cached by fsspec are
  dropped first), so a before-and-after pair of stats sees a change between them.

Requests (S3): a photo is a HEAD, a ranged GET and a HEAD; a result a PUT and a HEAD; a
claim (`create`) a conditional PUT; a copy a
COPY and a HEAD; a folder or "which outputs exist" is one listing of its prefix (1,000 keys a
request). Blocking: run it in worker threads, as the local file code is.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from batchtoon.errors import StoreFailure, UsageError

__all__ = [
    "Location",
    "Stat",
    "check_container",
    "copy",
    "create",
    "find",
    "folder_text",
    "is_dir",
    "is_url",
    "join",
    "join_url",
    "listing",
    "location",
    "name",
    "open_text",
    "parent",
    "put",
    "read",
    "remove",
    "slug",
    "split",
    "stat",
]

Location = Path | str  # a local path, or a URL as text
T = TypeVar("T")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
# The backends a user is likely to name, and the package that brings each.
EXTRAS = {"s3": "s3fs: install batchtoon with its s3 extra (pipx install '.[s3]' from a clone)"}
# Errors that no retry mends: the object, the bucket or the right to it is not there.
_FINAL = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_FINAL_ERRNOS = frozenset({errno.EINVAL, errno.EMSGSIZE, errno.ENOENT, errno.EACCES})
# Keys of an fsspec `info` that tell one version of an object from another, by backend.
_VERSION_KEYS = ("ETag", "etag", "md5", "md5Hash", "crc32c", "generation", "VersionId")
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")
_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Stat:
    size: int
    version: tuple[object, ...]  # what else tells this version of the object from another


# Names.


def is_url(where: object) -> bool:
    """Whether `where` (text or a path) names a URL of a backend, not a local file."""
    if not isinstance(where, str):
        return False
    found = _SCHEME.match(where)
    return found is not None and found[1].lower() != "file"


def location(text: str | os.PathLike[str]) -> Location:
    """A SOURCE or output as given: a URL stays text; `file://...` and the rest are paths."""
    text = os.fspath(text)
    if is_url(text):
        return text
    if text.lower().startswith("file://"):
        return Path(text[len("file://") :])
    return Path(text)


def join(base: Location, rel: str) -> Location:
    """`rel` (posix) below `base`."""
    return base / rel if isinstance(base, Path) else join_url(base, rel)


def folder_text(folder: Path) -> str:
    """`folder` as absolute text with its separator at the end: a prefix that tells, as text,
    whether a path is below it (for the checks a walk makes of every photo)."""
    return os.path.join(os.path.abspath(folder), "")


def join_url(url: str, rel: str) -> str:
    return f"{url.rstrip('/')}/{rel}" if rel else url


def split(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b.jpg` as `("s3://bucket", "/a/b.jpg")`: where, and the path there."""
    found = _SCHEME.match(url)
    if found is None:
        raise ValueError(f"not a URL: {url!r}")
    head, slash, rest = url[found.end() :].partition("/")
    return url[: found.end()] + head, slash + rest


def parent(url: str) -> str:
    head, _, _ = url.rstrip("/").rpartition("/")
    return head if not head.endswith(":/") else url


def name(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def slug(url: str) -> str:
    """A folder name for `url`: readable, and distinct for distinct URLs (`s3-b-x-1a2b3c4d`)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", url).strip("-.")[:60]
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def _relpath(root: str, path: str) -> str:
    """`path` below `root` as the store lists it: one separator off, never more (the key
    `in//c.jpg` is `/c.jpg` below `in`, not `in/c.jpg`, which may not exist)."""
    return path[len(root) :].removeprefix("/") if path.startswith(root) else path


# The filesystem: one per scheme, shared by the threads.

_MAKING = threading.Lock()


def _filesystem(url: str) -> tuple[Any, str]:
    """The backend's filesystem for `url` and the path it knows the object by."""
    with _MAKING:
        fs = _by_scheme(_SCHEME.match(url)[1].lower())  # type: ignore[index]
    return fs, fs._strip_protocol(url)


@functools.cache
def _by_scheme(scheme: str) -> Any:
    # fsspec caches a filesystem per thread: made here once, it is shared by every thread
    # (its blocking calls run on fsspec's own event loop, which is safe from any thread).
    import fsspec.core  # only a run with a URL pays for importing it

    try:
        fs, _ = fsspec.core.url_to_fs(f"{scheme}://")
    except ImportError:
        needs = EXTRAS.get(scheme, "its fsspec backend, which is not installed here")
        raise UsageError(f"{scheme}:// needs {needs}") from None
    except ValueError:
        raise UsageError(
            f"{scheme}:// is no storage fsspec knows: give a folder, or a URL such as "
            "s3://bucket/photos"
        ) from None
    except Exception as error:  # a backend that cannot start without options of its own
        raise UsageError(f"{scheme}:// cannot be opened: {_failure(scheme, error)}") from None
    return fs


def _call(url: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call` on the store, its errors as `StoreFailure` (see the module docstring)."""
    try:
        return call(*args, **kwargs)
    except UsageError:
        raise
    except Exception as error:  # the boundary: a backend raises its own kinds, not only OSError
        raise _failure(url, error) from None


def _failure(url: str, error: BaseException) -> StoreFailure:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FileNotFoundError):
        if "bucket" in text.lower():  # S3's NoSuchBucket: not an object that may come back
            return StoreFailure("no such bucket")
        return StoreFailure("not found", missing=True)
    if isinstance(error, PermissionError):
        return StoreFailure(f"access denied ({text})")
    final = isinstance(error, _FINAL) or (
        isinstance(error, OSError) and error.errno in _FINAL_ERRNOS
    )
    return StoreFailure(text, transient=not final)


# Reading.


def stat(url: str) -> Stat:
    """The object's size and version, asked of the store now; `StoreFailure` if it is not a
    file (`missing` if it is not there)."""
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    info = _call(url, fs.info, path)
    if info.get("type") != "file":
        raise StoreFailure("not a file", missing=info.get("type") is None)
    keys = _VERSION_KEYS if any(info.get(k) for k in _VERSION_KEYS) else _TIME_KEYS
    return Stat(int(info["size"]), tuple(str(info.get(k)) for k in keys))


def read(url: str, size: int) -> bytes:
    """The object's first `size` bytes (all of it, as `stat` saw it) in one request."""
    fs, path = _filesystem(url)
    data: bytes = _call(url, fs.cat_file, path, start=0, end=size)
    return data


def is_dir(url: str) -> bool:
    """Whether `url` is a folder (a prefix with objects below it); `StoreFailure` if it is
    neither a folder nor a file (`missing`), or the store cannot say."""
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    return bool(_call(url, fs.info, path).get("type") == "directory")


def find(url: str) -> Iterator[tuple[str, str]]:
    """Every object below the folder `url`, as (its URL, its path below `url`), in path order;
    both exactly as the store lists it (`//`, spaces, `..`, unicode kept). Read as it is
    consumed: from S3 a request of the listing (`PAGE` keys) at a time, in the order S3 lists
    them, which is path order; another backend, which lists only whole, is sorted whole.
    `StoreFailure` (while it is read) if the store cannot list it."""
    fs, root = _filesystem(url)
    if hasattr(fs, "_call_s3") and not fs.version_aware:
        rels: Iterable[str] = (_relpath(root, path) for path in _s3_listing(url, fs, root))
    else:
        paths = _call(url, fs.find, root)
        rels = sorted(_relpath(root, path) for path in paths if not path.endswith("/"))
    return ((join_url(url, rel), rel) for rel in rels if rel)


PAGE = 1000  # keys a request, S3's most


def _s3_listing(url: str, fs: Any, root: str) -> Iterator[str]:
    """The paths of the objects below `root`, one request of S3's flat listing (`PAGE` keys)
    at a time, each asked for once the one before is consumed (s3fs's `find` gathers them
    all first)."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(root)
    asked = {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/" if key else "", "MaxKeys": PAGE}
    while True:
        # s3fs's own call: its retries, and its errors as the OSErrors `_failure` sorts
        page = _call(url, sync, fs.loop, fs._call_s3, "list_objects_v2", **asked)
        for found in page.get("Contents", []):
            if not found["Key"].endswith("/"):
                yield f"{bucket}/{found['Key']}"
        if not page.get("IsTruncated"):
            return
        asked["ContinuationToken"] = page["NextContinuationToken"]


def listing(url: str) -> set[str]:
    """The paths below `url` of every object there, by one listing (none: an empty set; a
    missing bucket is a `StoreFailure`, never "nothing there")."""
    try:
        return {rel for _, rel in find(url)}  # a set: the one thing here held whole
    except StoreFailure as failure:
        if failure.missing:
            return set()
        raise


def open_text(url: str, newline: str | None = None) -> IO[str]:
    """The object as text (UTF-8, a byte-order mark dropped), read as it is consumed; a store
    error while reading is an `OSError` with one line."""
    fs, path = _filesystem(url)
    raw = _call(url, fs.open, path, "rb")
    return io.TextIOWrapper(
        io.BufferedReader(_Guarded(url, raw)),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline=newline,
    )


class _Guarded(io.RawIOBase):
    """A backend's file, its errors as `OSError` (what a text reader's callers expect)."""

    def __init__(self, url: str, file: Any) -> None:
        self._url, self._file = url, file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = _call(self._url, self._file.read, len(buffer))
        except StoreFailure as failure:
            raise OSError(errno.EIO, str(failure)) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._file.close()
            finally:
                super().close()


def check_container(url: str) -> None:
    """`StoreFailure` unless the bucket of `url` is there and may be used (a store without
    buckets, whose paths start at a root, has nothing to check)."""
    fs, path = _filesystem(url)
    if fs.root_marker:
        return
    bucket = path.partition("/")[0]
    fs.invalidate_cache(bucket)
    try:
        _call(url, fs.info, bucket)
    except StoreFailure as failure:
        if failure.missing:
            raise StoreFailure(f"no such bucket: {bucket}") from None
        raise


# Writing.


def put(url: str, data: bytes | Path) -> None:
    """Write the object whole (from bytes, or a local file), then check what the store holds:
    its size, and its MD5 where its ETag is one. `StoreFailure` if it cannot, or if the store
    holds other bytes (`transient`: writing again may mend it)."""
    fs, path = _filesystem(url)
    if isinstance(data, Path):
        _call(url, fs.put_file, os.fspath(data), path)
        size, md5 = data.stat().st_size, _md5_file(data)
    else:
        _call(url, fs.pipe_file, path, data)
        size, md5 = len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()
    _verify(url, size, md5)


def create(url: str, data: bytes) -> bool:
    """Write the object only if none is there (S3's conditional put, `If-None-Match: *`): True
    if this call made it, False if an object was there already (left as it is)."""
    fs, path = _filesystem(url)
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    except Exception as error:  # the boundary, as in `_call`
        raise _failure(url, error) from None
    return True


def copy(source: str, dest: str) -> Stat:
    """Copy an object within the store, by the store itself (nothing goes through here), and
    check the copy's size; the copy's `Stat`."""
    fs, path = _filesystem(source)
    _, target = _filesystem(dest)
    original = stat(source)
    _call(dest, fs.cp_file, path, target)
    _verify(dest, original.size, None)
    return original


def remove(where: Location) -> None:
    """Remove one file or object that batchtoon wrote, by its name; gone already is fine."""
    if isinstance(where, Path):
        where.unlink(missing_ok=True)
        return
    fs, path = _filesystem(where)
    try:
        _call(where, fs.rm_file, path)
    except StoreFailure as failure:
        if not failure.missing:
            raise


def _verify(url: str, size: int, md5: str | None) -> None:
    held = stat(url)
    if held.size != size:
        raise StoreFailure(f"the store holds {held.size} bytes of {size} written", transient=True)
    etag = next((str(v).strip('"') for v in held.version if _MD5.fullmatch(str(v).strip('"'))), "")
    if md5 is not None and etag and etag != md5:
        raise StoreFailure("the store's checksum (ETag) differs from what was sent", transient=True)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
