"""Every error batchtoon raises, in one tree.

    BatchtoonError
    ├── UsageError          bad command line, config or journal lock: exit 2
    ├── Unwritable          the disk said no (full, read-only, not a folder...): exit 74
    ├── InputError          one source item cannot be sent (pre-flight): that item fails
    ├── StoreFailure        an object store said no (`missing`, `transient`): raised only by
    │                       `storage`, and turned by its caller into that caller's action
    └── ApiError            the API, or the way to it, said no (status, code, message)
        ├── ItemRejected    400/413/415/422: this image can never succeed as sent
        ├── TaskGone        404/410 on a query, or an expired result URL: submit again
        ├── RunFatal        401/403, 429 ERROR_NOT_ENOUGH_CREDITS, a redirect: stop submitting
        └── Retryable       worth trying again later
            ├── Throttled   429 EXCEEDING_LIMITS, 503: slow everyone down, honour Retry-After
            └── Transient   5xx, timeouts, resets, bodies that are not JSON: back off and retry
                ├── Unanswered  an upload sent whole whose answer never came: it may have been
                │               accepted (and paid), so it is tried again only a bounded
                │               number of times, each counted as possible extra cost
                └── StoreBusy   an object store (a URL --out) failed a result's write in a way
                                that may pass: retried; still failing, the run stops as for a
                                full disk (`Unwritable`)

`classify` turns an HTTP answer into one of the `ApiError` classes following the contract's
table (`shared/api/ailabtools-cartoon-api.md`, section 4). A 429 is classified by its code,
never by the status alone: out of credits and too many requests call for opposite actions.
Transport errors are mapped to `Transient` at one boundary, `batchtoon.provider.api.ApiClient`.
"""

from __future__ import annotations

import errno
import os
from pathlib import PurePath

__all__ = [
    "DISK_TROUBLE",
    "ApiError",
    "BatchtoonError",
    "InputError",
    "ItemRejected",
    "Retryable",
    "RunFatal",
    "StoreBusy",
    "StoreFailure",
    "TaskGone",
    "Throttled",
    "Transient",
    "Unanswered",
    "Unwritable",
    "UsageError",
    "classify",
]


class BatchtoonError(Exception):
    """Base of every error batchtoon raises on purpose."""


class UsageError(BatchtoonError):
    """The command line, the config or the journal lock is wrong: nothing can run (exit 2)."""


class Unwritable(BatchtoonError):
    """A file batchtoon must write cannot be written: the environment, not a bug. The message
    names the path, what happened and what to do; the journal stays consistent, and the same
    command goes on once the cause is fixed."""

    @classmethod
    def from_os_error(cls, error: OSError, path: object, doing: str) -> Unwritable:
        what, advice = DISK_TROUBLE.get(
            error.errno or 0, (error.strerror or str(error), "check the path and try again")
        )
        if error.errno == errno.ENOTDIR and (blocker := _file_in_the_way(error.filename)):
            what, advice = f"{blocker} is a file, not a folder", "move it, or choose another path"
        return cls(f"cannot {doing} {path}: {what}: {advice}")


def _file_in_the_way(name: object) -> str | None:
    """The first of `name`'s folders (from the top) that is there but not a folder."""
    if not isinstance(name, (str, bytes, os.PathLike)):
        return None
    for folder in reversed(PurePath(os.fsdecode(name)).parents):
        if os.path.lexists(folder) and not os.path.isdir(folder):
            return str(folder)
    return None


DISK_TROUBLE: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free some space, then run the same command again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space, then run it again"),
    errno.EROFS: ("the file system is read-only", "choose a writable folder (--out, --journal)"),
    errno.EACCES: ("permission denied", "choose a folder you can write to, or fix its rights"),
    errno.EPERM: ("not permitted", "choose a folder you can write to, or fix its rights"),
    errno.ENOTDIR: ("a part of it is a file, not a folder", "choose another path"),
    errno.EISDIR: ("it is a folder", "give the path of a file"),
    errno.EEXIST: ("a file of that name is in the way", "move it, or choose another path"),
    errno.ENAMETOOLONG: ("the name is too long for the file system", "use a shorter path"),
    errno.EXDEV: ("it is on another file system", "keep these files on one file system"),
    errno.EIO: ("the disk reported an I/O error", "check the disk"),
}


class StoreFailure(BatchtoonError):
    """An object store said no. `str()` is one line; `missing`: the object or bucket is not
    there; `transient`: it may pass (network, 5xx, throttling). Raised by `storage` only; each
    caller turns it into its action (a refused photo, a retried write, a one-line exit)."""

    def __init__(self, reason: str, *, missing: bool = False, transient: bool = False) -> None:
        super().__init__(reason)
        self.missing, self.transient = missing, transient


class InputError(BatchtoonError):
    """One source item cannot be sent to the API; the reason is a one-line message."""

    @property
    def reason(self) -> str:
        return str(self)


class ApiError(BatchtoonError):
    """The API (or the network on the way to it) answered something other than success."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def reason(self) -> str:
        """One line for reports: the provider's code and message."""
        head = " ".join(part for part in (str(self.status or ""), self.code) if part)
        return f"{head}: {self}" if head else str(self)


class ItemRejected(ApiError):
    """The provider refused this image; resending it unchanged cannot succeed."""


class TaskGone(ApiError):
    """The task id or its result URL no longer exists; the item must be submitted again."""


class RunFatal(ApiError):
    """The account cannot go on (bad key, locked, out of credits); stop submitting."""


class Retryable(ApiError):
    """A later attempt may succeed."""


class Throttled(Retryable):
    """The account is over its request rate or the service restricts flow; slow down."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class Transient(Retryable):
    """A passing fault: a 5xx, a timeout, a reset, a proxy's HTML page."""


class Unanswered(Transient):
    """An upload went out whole, but its answer never came: the provider may have accepted it
    (and charged for it). Sending it again is a bet: bounded, and counted as possible extra."""


class StoreBusy(Transient):
    """An object store failed to take a result in a way that may pass (the network, a 5xx,
    throttling, a write that reads back wrong): retried; if it lasts, the run stops."""


_CODES: dict[str, type[ApiError]] = {
    **dict.fromkeys(
        (
            "ERROR_PARAMETERS",
            "MISSING_PARAMETERS",
            "ERROR_INVALID_PARAMETER",
            "PARAMETERS_CANNOT_EMPTY",
            "FILE_SIZE_EXCEEDS_LIMIT",
            "FILE_RESOLUTION_EXCEEDS_LIMITS",
            "ERROR_HIGH_RESOLUTION",
            "UNSUPPORTED_FILE_TYPES",
            "FILE_DECODING_FAILURE",
            "ERROR_LOW_RESOLUTION",
            "FILE_CONTENT_NON_COMPLIANCE",
            "ERROR_NO_FACE_IN_FILE",
        ),
        ItemRejected,
    ),
    **dict.fromkeys(
        ("ERROR_RESOURCE_NOT_FOUND", "ERROR_TASK_REVOKED", "ERROR_RESOURCE_RECLAIMED"), TaskGone
    ),
    **dict.fromkeys(
        (
            "ERROR_USER_NOT_EXISTS",
            "ERROR_APPLICATIONS_NOT_EXISTS",
            "ERROR_USER_LOCKED",
            "ERROR_ILLEGAL_OPERATION",
            "ERROR_NOT_ENOUGH_CREDITS",
        ),
        RunFatal,
    ),
    **dict.fromkeys(
        (
            "EXCEEDING_LIMITS",
            "ERROR_BATCH_TASK_LIMIT_EXCEEDED",
            "AI_SERVICE_FLOW_RESTRICTION",
            "ERROR_INSUFFICIENT_RESOURCES",
        ),
        Throttled,
    ),
    **dict.fromkeys(
        ("PROCESSING_FAILURE", "SERVICE_INTERNAL_ERROR", "ERROR_GATEWAY", "AI_SERVICE_TIMEOUT"),
        Transient,
    ),
}


def _by_status(status: int, *, on_query: bool) -> type[ApiError]:
    """The fallback for a code the table does not know: the HTTP status class."""
    if status in (401, 403):
        return RunFatal
    if status in (404, 410):
        # On a query the task is gone; on a submit the endpoint is: the base URL is wrong.
        return TaskGone if on_query else RunFatal
    if status in (429, 503):
        return Throttled
    if 400 <= status < 500:
        return ItemRejected
    return Transient


def classify(
    status: int,
    code: str,
    message: str,
    *,
    on_query: bool = False,
    retry_after: float | None = None,
) -> ApiError:
    """The `ApiError` for an answer with this HTTP status and provider code."""
    cls = _CODES.get(code) or _by_status(status, on_query=on_query)
    if cls is TaskGone and not on_query:
        # Only a task can be gone; "not found" on a submit means the base URL is wrong.
        cls = RunFatal
    if cls is Throttled:
        return Throttled(message, status=status, code=code, retry_after=retry_after)
    return cls(message, status=status, code=code)
