"""The error classification of the contract's section 4, and the pure parsing in `api`."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest
from helpers import CONTRACT_TABLE, GONE_CODES

from batchtoon.errors import (
    ApiError,
    ItemRejected,
    Retryable,
    RunFatal,
    TaskGone,
    Throttled,
    Transient,
    classify,
)
from batchtoon.provider.api import (
    ApiClient,
    TaskState,
    _retry_after,
    error_from_answer,
    parse_credits,
    parse_query,
    parse_submit,
)
from batchtoon.sandbox import Sandbox
from batchtoon.sandbox.envelopes import error_body

# Marked here, at collection, so that anyio keeps the parametrize ids: the conftest's
# late marking makes anyio rebuild each async test and drop its parameters.


def envelope(status: int, code: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {**error_body(status, code, message), **extra}


@pytest.mark.parametrize(("status", "code", "cls"), CONTRACT_TABLE)
@pytest.mark.parametrize("on_query", [False, True])
def test_every_table_code_is_classified(
    status: int, code: str, cls: type[ApiError], on_query: bool
) -> None:
    error = classify(status, code, "the provider's words", on_query=on_query)
    assert type(error) is cls
    assert (error.status, error.code, str(error)) == (status, code, "the provider's words")


@pytest.mark.parametrize(("status", "code"), GONE_CODES)
def test_gone_codes_on_a_query_are_task_gone(status: int, code: str) -> None:
    error = classify(status, code, "gone", on_query=True)
    assert type(error) is TaskGone
    assert (error.status, error.code) == (status, code)


@pytest.mark.parametrize(("status", "code"), GONE_CODES)
def test_gone_codes_on_a_submit_are_run_fatal(status: int, code: str) -> None:
    # "Not found" on a submit means the endpoint is wrong, not that a task went away.
    assert type(classify(status, code, "gone", on_query=False)) is RunFatal


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("ERROR_NOT_ENOUGH_CREDITS", RunFatal),
        ("EXCEEDING_LIMITS", Throttled),
        ("ERROR_BATCH_TASK_LIMIT_EXCEEDED", Throttled),
        ("", Throttled),
        ("SOMETHING_NEW", Throttled),
    ],
)
def test_429_is_told_apart_by_code(code: str, cls: type[ApiError]) -> None:
    assert type(classify(429, code, "m")) is cls


@pytest.mark.parametrize(
    ("status", "on_query", "cls"),
    [
        (400, False, ItemRejected),
        (413, False, ItemRejected),
        (415, False, ItemRejected),
        (422, False, ItemRejected),
        (418, False, ItemRejected),
        (401, False, RunFatal),
        (403, True, RunFatal),
        (404, True, TaskGone),
        (410, True, TaskGone),
        (404, False, RunFatal),
        (410, False, RunFatal),
        (429, False, Throttled),
        (503, True, Throttled),
        (500, False, Transient),
        (502, True, Transient),
        (504, False, Transient),
        (599, False, Transient),
    ],
)
def test_unknown_codes_fall_back_on_the_status(
    status: int, on_query: bool, cls: type[ApiError]
) -> None:
    assert type(classify(status, "A_CODE_NOBODY_DOCUMENTED", "m", on_query=on_query)) is cls


def test_throttled_carries_retry_after_and_others_are_retryable_or_not() -> None:
    error = classify(429, "EXCEEDING_LIMITS", "slow down", retry_after=2.5)
    assert isinstance(error, Throttled) and error.retry_after == 2.5
    assert isinstance(error, Retryable)
    assert isinstance(classify(502, "ERROR_GATEWAY", "m"), Retryable)
    assert not isinstance(classify(429, "ERROR_NOT_ENOUGH_CREDITS", "m"), Retryable)
    assert error.reason == "429 EXCEEDING_LIMITS: slow down"


# error_from_answer: which field names the code, and when a 200 is an error.


@pytest.mark.parametrize(("status", "code", "cls"), CONTRACT_TABLE)
def test_error_from_answer_reads_error_detail_code(
    status: int, code: str, cls: type[ApiError]
) -> None:
    # The deprecated field disagrees: error_detail.code must win.
    data = envelope(status, code, "why")
    data["error_code_str"] = "ERROR_NOT_ENOUGH_CREDITS" if cls is not RunFatal else "ERROR_GATEWAY"
    error = error_from_answer(status, data)
    assert type(error) is cls
    assert error is not None and (error.code, str(error)) == (code, "why")


@pytest.mark.parametrize(
    ("detail", "cls"),
    [
        ({}, RunFatal),
        (None, RunFatal),
        ({"status_code": 429, "code": ""}, RunFatal),
    ],
)
def test_error_from_answer_falls_back_on_error_code_str(
    detail: dict[str, Any] | None, cls: type[ApiError]
) -> None:
    data = {"error_code": 429, "error_code_str": "ERROR_NOT_ENOUGH_CREDITS", "error_msg": "broke"}
    if detail is not None:
        data["error_detail"] = detail
    error = error_from_answer(429, data)
    assert type(error) is cls
    assert error is not None and (error.code, str(error)) == ("ERROR_NOT_ENOUGH_CREDITS", "broke")


@pytest.mark.parametrize(
    ("error_code", "code", "cls"),
    [
        (422, "ERROR_NO_FACE_IN_FILE", ItemRejected),
        (429, "ERROR_NOT_ENOUGH_CREDITS", RunFatal),
        (429, "EXCEEDING_LIMITS", Throttled),
        (404, "ERROR_RESOURCE_NOT_FOUND", TaskGone),
        (500, "", Transient),
    ],
)
def test_a_200_with_a_nonzero_error_code_is_an_error(
    error_code: int, code: str, cls: type[ApiError]
) -> None:
    error = error_from_answer(200, envelope(error_code, code, "nope"), on_query=True)
    assert type(error) is cls
    assert error is not None and error.status == error_code


def test_a_success_envelope_is_no_error() -> None:
    data = envelope(0, "", "", task_type="async", task_id="t1")
    data["error_detail"]["status_code"] = 200
    assert error_from_answer(200, data) is None
    assert error_from_answer(200, {"task_id": "t1"}) is None


def test_any_other_status_is_an_error_even_with_error_code_zero() -> None:
    error = error_from_answer(502, {"error_code": 0})
    assert isinstance(error, Transient) and error.status == 502


def test_error_messages_are_scrubbed_of_the_key() -> None:
    error = error_from_answer(
        401, envelope(401, "ERROR_USER_NOT_EXISTS", "bad key s3cr3t"), secret="s3cr3t"
    )
    assert error is not None and "s3cr3t" not in str(error) and "***" in str(error)


async def test_a_body_that_is_not_json_is_transient(sandbox: Sandbox, client: ApiClient) -> None:
    # A proxy's HTML page: over HTTP, through ApiClient.
    for status in (502, 200, 500):
        sandbox.inject("submit", status, body="html")
        with pytest.raises(Transient, match="not JSON"):
            await client.submit(b"never read", 0)
    for status in (429, 503):  # ... but a proxy's "slow down" page still means slow down
        sandbox.inject("submit", status, body="html", retry_after=2.5)
        with pytest.raises(Throttled, match="not JSON") as caught:
            await client.submit(b"never read", 0)
        assert caught.value.retry_after == 2.5
    sandbox.inject("query", 502, body="html")
    with pytest.raises(Transient, match="not JSON"):
        await client.query("any")
    assert sandbox.counters.submit_requests == 0  # the injected pages stood in front


# parse_submit / parse_query / parse_credits


@pytest.mark.parametrize(
    "data",
    [
        {"task_type": "async", "task_id": "abc", "request_id": "r1"},
        {"data": {"task_id": "abc"}, "request_id": "r1"},
        {"task_id": "abc", "data": {"task_id": "ignored"}, "request_id": "r1"},
    ],
)
def test_parse_submit_finds_task_id_at_top_or_under_data(data: dict[str, Any]) -> None:
    submitted = parse_submit(data)
    assert (submitted.task_id, submitted.request_id) == ("abc", "r1")


@pytest.mark.parametrize("data", [{}, {"task_id": ""}, {"data": {}}, {"data": "abc"}])
def test_parse_submit_without_task_id_is_transient(data: dict[str, Any]) -> None:
    with pytest.raises(Transient):
        parse_submit(data)


@pytest.mark.parametrize(
    ("task_status", "status", "url", "succeeded", "failed"),
    [
        (0, "QUEUING", "", False, False),
        (1, "PROCESSING", "", False, False),
        (2, "PROCESS_SUCCESS", "http://x/r.jpg", True, False),
        (2, "PROCESS_SUCCESS", "", False, True),  # success without a URL is not success
        (1, "PROCESS_SUCCESS", "http://x/r.jpg", True, False),  # data.status decides
        (2, "PROCESS_FAILED", "", False, True),  # task_status 2 ("successful") yet failed
        (2, "TIMEOUT_FAILED", "", False, True),
        (2, "LIMIT_RETRY_FAILED", "", False, True),
        (2, "PROCESS_FAILED", "http://x/r.jpg", False, True),
        (2, "PROCESSING", "", False, False),
        (0, "", "", False, False),  # no data.status: task_status and the URL decide
        (2, "", "http://x/r.jpg", True, False),
        (2, "", "", False, True),
    ],
)
def test_parse_query_decides_by_data_status(
    task_status: int, status: str, url: str, succeeded: bool, failed: bool
) -> None:
    state = parse_query(
        {"error_code": 0, "task_status": task_status, "data": {"status": status, "result_url": url}}
    )
    assert state == TaskState(task_status, status, url)
    assert (state.succeeded, state.failed, state.done) == (succeeded, failed, succeeded or failed)


def test_parse_query_reads_task_status_under_data_and_rejects_garbage() -> None:
    state = parse_query(
        {"data": {"task_status": "2", "status": "PROCESS_SUCCESS", "result_url": "u"}}
    )
    assert state.task_status == 2 and state.succeeded
    with pytest.raises(Transient):
        parse_query({"task_status": "soon", "data": {}})


def test_parse_credits_takes_a_list_or_one_row() -> None:
    rows = {"data": [{"name": "a", "balance": 3, "total": 10}, {"name": "b", "balance": "1.5"}]}
    assert [(b.name, b.balance, b.total) for b in parse_credits(rows)] == [
        ("a", 3, 10),
        ("b", 1.5, 0),
    ]
    assert [b.name for b in parse_credits({"data": {"name": "one", "balance": 1}})] == ["one"]
    assert parse_credits({"data": None}) == []


# Retry-After


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0.25", 0.25),
        ("1.500", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header) == seconds


@pytest.mark.parametrize("ahead", [30.0, 3600.0])
def test_retry_after_as_an_http_date(ahead: float) -> None:
    value = _retry_after(formatdate(time.time() + ahead, usegmt=True))
    assert value is not None
    assert ahead - 2 <= value <= ahead + 1  # the date has whole seconds


def test_retry_after_in_the_past_is_zero() -> None:
    assert _retry_after(formatdate(time.time() - 600, usegmt=True)) == 0.0
