"""The sandbox against the contract, over real HTTP on loopback, through `ApiClient`."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import (
    CONTRACT_TABLE,
    GONE_CODES,
    client_for,
    fetch,
    image_bytes,
    png_header_only,
    post_form,
    submit_and_fetch,
    wait_done,
)
from PIL import Image

from batchtoon.errors import ApiError, ItemRejected, RunFatal, TaskGone, Throttled, Transient
from batchtoon.provider.api import (
    CREDITS_PATH,
    KEY_HEADER,
    QUERY_PATH,
    SUBMIT_PATH,
    ApiClient,
    Balance,
)
from batchtoon.sandbox import Faults, Sandbox
from batchtoon.sandbox.imaging import MAX_UPLOAD_BYTES

FAILURES = {"PROCESS_FAILED", "TIMEOUT_FAILED", "LIMIT_RETRY_FAILED"}
PHOTO = image_bytes(320, 256)  # the smallest size most tests need: cheap to render

# Marked here, at collection, so that anyio keeps the parametrize ids: the conftest's
# late marking makes anyio rebuild each async test and drop its parameters.


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def get_json(
    sandbox: Sandbox, path: str, *, key: str | None = None, **params: str
) -> tuple[int, dict[str, Any]]:
    headers = {KEY_HEADER: key} if key is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(sandbox.base_url + path, params=params, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


def every_endpoint(client: ApiClient) -> list[Callable[[], Awaitable[object]]]:
    """A submit, a query and a credits call, each to be made once."""
    return [lambda: client.submit(PHOTO, 0), lambda: client.query("t"), client.credits]


def assert_envelope(body: dict[str, Any], status: int, code: str) -> None:
    """Section 4: error_code is the HTTP status, error_detail.code and error_code_str the code."""
    assert body["error_code"] == status
    assert body["error_code_str"] == code
    assert body["error_detail"]["status_code"] == status
    assert body["error_detail"]["code"] == code
    assert body["error_msg"] and body["error_detail"]["code_message"]
    assert body["request_id"] and body["log_id"]


# Section 1 and 2: the success envelope and a task's lifecycle.


async def test_submit_success_envelope(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await post_form(
            session, sandbox, {"task_type": "async", "image": PHOTO, "index": "4"}
        )
    assert status == 200
    assert set(body) >= {
        "request_id",
        "log_id",
        "error_code",
        "error_code_str",
        "error_msg",
        "error_detail",
        "task_type",
        "task_id",
    }
    assert (body["error_code"], body["error_code_str"], body["error_msg"]) == (0, "", "")
    assert body["error_detail"] == {
        "status_code": 200,
        "code": "",
        "code_message": "",
        "message": "",
    }
    assert body["task_type"] == "async"
    assert isinstance(body["task_id"], str) and body["task_id"] in sandbox.tasks
    assert sandbox.tasks[body["task_id"]].style == 4


async def test_lifecycle_queuing_processing_success_then_download(tmp_path: Path) -> None:
    # Real time barely moves against 100 virtual seconds: only `advance` changes the state.
    async with (
        Sandbox(time_scale=1.0, processing_time=(100.0, 100.0), render="quick") as sandbox,
        client_for(sandbox) as client,
    ):
        task_id = (await client.submit(PHOTO, 2, "PNG")).task_id
        _, body = await get_json(sandbox, QUERY_PATH, key=sandbox.api_key, task_id=task_id)
        assert (body["task_status"], body["data"]) == (0, {"status": "QUEUING", "result_url": ""})
        assert body["error_code"] == 0 and "error_detail" in body
        sandbox.clock.advance(30)  # past the first quarter
        state = await client.query(task_id)
        assert (state.task_status, state.status, state.result_url) == (1, "PROCESSING", "")
        assert not state.done
        sandbox.clock.advance(80)  # past the processing time; the render may still run
        state = await wait_done(client, task_id)
        assert (state.task_status, state.status) == (2, "PROCESS_SUCCESS") and state.succeeded
        assert state.result_url.startswith(sandbox.base_url)
        dest = tmp_path / "result"
        dest.write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    data = dest.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (1920, 1536)
        image.load()
    assert sandbox.counters.downloads == 1


async def test_failed_tasks_end_in_each_failure_status() -> None:
    async with (
        Sandbox(time_scale=0.001, faults=Faults(task_failure=1.0), seed=3) as sandbox,
        client_for(sandbox) as client,
    ):
        states = [
            await wait_done(client, (await client.submit(PHOTO, 0)).task_id) for _ in range(12)
        ]
    assert {s.status for s in states} == FAILURES
    assert all(s.failed and s.task_status == 2 and s.result_url == "" for s in states)
    assert sandbox.counters.failed_tasks[sha(PHOTO), 0] == 12
    assert sandbox.counters.accepted[sha(PHOTO), 0] == 12  # a failed task was still accepted


# Section 1: validation of the form.


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"image": PHOTO, "index": "0"}, "MISSING_PARAMETERS"),
        ({"task_type": "async", "index": "0"}, "MISSING_PARAMETERS"),
        ({"task_type": "sync", "image": PHOTO, "index": "0"}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "", "image": PHOTO}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "async", "image": PHOTO, "index": "9"}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "async", "image": PHOTO, "index": "-1"}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "async", "image": PHOTO, "index": "1.5"}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "async", "image": PHOTO, "index": "two"}, "ERROR_INVALID_PARAMETER"),
        ({"task_type": "async", "image": b"", "index": "0"}, "PARAMETERS_CANNOT_EMPTY"),
    ],
)
async def test_form_validation(sandbox: Sandbox, fields: dict[str, str | bytes], code: str) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await post_form(session, sandbox, fields)
    assert status == 400
    assert_envelope(body, 400, code)
    assert sandbox.counters.rejected == {code: 1}
    assert sandbox.counters.accepted_total == 0 and not sandbox.tasks


async def test_a_body_that_is_not_multipart_is_error_parameters(sandbox: Sandbox) -> None:
    headers = {KEY_HEADER: sandbox.api_key}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sandbox.base_url + SUBMIT_PATH, json={"task_type": "async"}, headers=headers
        ) as resp,
    ):
        assert resp.status == 400
        assert_envelope(await resp.json(), 400, "ERROR_PARAMETERS")


async def test_index_defaults_to_zero(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await post_form(session, sandbox, {"task_type": "async", "image": PHOTO})
    assert status == 200 and sandbox.tasks[body["task_id"]].style == 0


async def test_index_out_of_range_through_the_client(client: ApiClient, sandbox: Sandbox) -> None:
    with pytest.raises(ItemRejected) as caught:
        await client.submit(PHOTO, 9, "PNG")
    assert (caught.value.status, caught.value.code) == (400, "ERROR_INVALID_PARAMETER")


def _image(width: int, height: int, fmt: str = "PNG") -> bytes:
    # A bilevel image keeps even 5760x3240 to a few kilobytes and fast to decode.
    return image_bytes(width, height, fmt, mode="1")


def _padded(size: int) -> bytes:
    # A valid PNG followed by zeros: decoders stop at IEND, the size rule sees every byte.
    head = _image(300, 300)
    return head + bytes(size - len(head))


def _halved(data: bytes) -> bytes:
    return data[: len(data) // 2]


REJECTED_UPLOADS: list[tuple[str, bytes, int, str]] = [
    ("over 10 MB", _padded(MAX_UPLOAD_BYTES + 1), 413, "FILE_SIZE_EXCEEDS_LIMIT"),
    ("GIF", image_bytes(300, 300, "GIF"), 415, "UNSUPPORTED_FILE_TYPES"),
    ("TIFF", image_bytes(300, 300, "TIFF"), 415, "UNSUPPORTED_FILE_TYPES"),
    ("garbage", b"this is not an image at all" * 40, 422, "FILE_DECODING_FAILURE"),
    ("truncated PNG", _halved(image_bytes(600, 400)), 422, "FILE_DECODING_FAILURE"),
    ("truncated JPEG", _halved(image_bytes(600, 400, "JPEG")), 422, "FILE_DECODING_FAILURE"),
    ("short side 255", _image(255, 400), 422, "ERROR_LOW_RESOLUTION"),
    ("short side 255, portrait", _image(600, 255), 422, "ERROR_LOW_RESOLUTION"),
    ("long side 5761", _image(5761, 3240), 413, "ERROR_HIGH_RESOLUTION"),
    ("portrait long side 5761", _image(3240, 5761), 413, "ERROR_HIGH_RESOLUTION"),
    ("short side 3241", _image(3241, 3241), 413, "ERROR_HIGH_RESOLUTION"),
    ("100 megapixels declared", png_header_only(10_000, 10_000), 413, "ERROR_HIGH_RESOLUTION"),
]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [row[1:] for row in REJECTED_UPLOADS],
    ids=[row[0] for row in REJECTED_UPLOADS],
)
async def test_image_rules_reject(
    client: ApiClient, sandbox: Sandbox, data: bytes, status: int, code: str
) -> None:
    with pytest.raises(ItemRejected) as caught:
        await client.submit(data, 1, "PNG")
    assert (caught.value.status, caught.value.code) == (status, code)
    assert str(caught.value)  # the provider's message travels on the exception
    assert sandbox.counters.rejected == {code: 1}
    assert sandbox.counters.accepted_total == 0 and not sandbox.tasks


ACCEPTED_UPLOADS: list[tuple[str, bytes, str]] = [
    ("3240x5760 portrait", _image(3240, 5760), "PNG"),
    ("5760x3240 landscape", _image(5760, 3240), "PNG"),
    ("256x256", _image(256, 256), "PNG"),
    ("exactly 10 MB", _padded(MAX_UPLOAD_BYTES), "PNG"),
    ("JPEG", image_bytes(300, 300, "JPEG"), "JPEG"),
    ("BMP", image_bytes(300, 300, "BMP"), "BMP"),
    ("WEBP", image_bytes(300, 300, "WEBP"), "WEBP"),
]


@pytest.mark.parametrize(
    ("data", "fmt"), [row[1:] for row in ACCEPTED_UPLOADS], ids=[row[0] for row in ACCEPTED_UPLOADS]
)
async def test_image_rules_accept(data: bytes, fmt: str) -> None:
    # "echo" renders nothing, so the large accepted images cost no render time.
    async with Sandbox(time_scale=0.001, render="echo") as sandbox, client_for(sandbox) as client:
        submitted = await client.submit(data, 3, fmt)
        assert sandbox.counters.accepted == {(sha(data), 3): 1}
        assert sandbox.tasks[submitted.task_id].sha256 == sha(data)


# Section 4: the codes no request can provoke, injected in front of the endpoint.


@pytest.mark.parametrize(("status", "code", "cls"), CONTRACT_TABLE)
async def test_injected_submit_errors_are_classified(
    sandbox: Sandbox, client: ApiClient, status: int, code: str, cls: type[ApiError]
) -> None:
    message = f"The provider says {code.lower()}."
    sandbox.inject("submit", status, code, message=message)
    with pytest.raises(ApiError) as caught:
        await client.submit(PHOTO, 0, "PNG")
    assert type(caught.value) is cls
    assert (caught.value.status, caught.value.code, str(caught.value)) == (status, code, message)
    # The injection was used up: the next submit reaches the endpoint.
    await client.submit(PHOTO, 0, "PNG")
    assert sandbox.counters.accepted_total == 1


@pytest.mark.parametrize(("status", "code"), GONE_CODES)
async def test_injected_gone_codes_on_a_query_are_task_gone(
    sandbox: Sandbox, client: ApiClient, status: int, code: str
) -> None:
    task_id = (await client.submit(PHOTO, 0, "PNG")).task_id
    sandbox.inject("query", status, code, message="gone away")
    with pytest.raises(TaskGone) as caught:
        await client.query(task_id)
    assert (caught.value.status, caught.value.code, str(caught.value)) == (
        status,
        code,
        "gone away",
    )


async def test_injected_throttle_carries_retry_after(sandbox: Sandbox, client: ApiClient) -> None:
    sandbox.inject("query", 429, "ERROR_BATCH_TASK_LIMIT_EXCEEDED", retry_after=1.25, times=2)
    for _ in range(2):
        with pytest.raises(Throttled) as caught:
            await client.query("whatever")
        assert caught.value.retry_after == 1.25
    with pytest.raises(TaskGone):
        await client.query("whatever")


# Section 4: keys, accounts, credits and rates.


async def test_a_wrong_key_is_run_fatal_and_never_echoed(sandbox: Sandbox) -> None:
    async with client_for(sandbox, key="wrong-key-123") as client:
        for call in every_endpoint(client):
            with pytest.raises(RunFatal) as caught:
                await call()
            assert (caught.value.status, caught.value.code) == (401, "ERROR_USER_NOT_EXISTS")
            assert "wrong-key-123" not in caught.value.reason
    assert sandbox.counters.rejected["ERROR_USER_NOT_EXISTS"] == 3
    assert sandbox.counters.submit_requests == 0


async def test_a_missing_key_is_401(sandbox: Sandbox) -> None:
    status, body = await get_json(sandbox, QUERY_PATH, task_id="t")
    assert status == 401
    assert_envelope(body, 401, "ERROR_USER_NOT_EXISTS")
    async with aiohttp.ClientSession() as session:
        status, body = await post_form(
            session, sandbox, {"task_type": "async", "image": PHOTO}, key=""
        )
    assert status == 401 and sandbox.counters.accepted_total == 0


async def test_a_locked_account_is_403_run_fatal() -> None:
    async with Sandbox(
        render="echo", api_keys=("open", "locked"), locked_keys=("locked",)
    ) as sandbox:
        async with client_for(sandbox, key="locked") as client:
            for call in every_endpoint(client):
                with pytest.raises(RunFatal) as caught:
                    await call()
                assert (caught.value.status, caught.value.code) == (403, "ERROR_USER_LOCKED")
        async with client_for(sandbox, key="open") as client:
            await client.submit(PHOTO, 0)
    assert sandbox.counters.accepted_total == 1


async def test_credits_run_out_then_a_top_up_restores() -> None:
    async with (
        Sandbox(render="echo", time_scale=0.001, credits=2) as sandbox,
        client_for(sandbox) as client,
    ):
        await client.submit(PHOTO, 0)
        with pytest.raises(ItemRejected):
            await client.submit(b"not an image", 0)  # a rejected image costs nothing
        await client.submit(PHOTO, 1)
        assert await client.credits() == [Balance("ai-anime-generator", 0, 2)]
        for _ in range(2):
            with pytest.raises(RunFatal) as caught:
                await client.submit(PHOTO, 2)
            assert (caught.value.status, caught.value.code) == (429, "ERROR_NOT_ENOUGH_CREDITS")
            assert not isinstance(caught.value, Throttled)
        sandbox.top_up(1)
        assert await client.credits() == [Balance("ai-anime-generator", 1, 3)]
        await client.submit(PHOTO, 2)
        with pytest.raises(RunFatal):
            await client.submit(PHOTO, 3)
    assert sandbox.counters.accepted_total == 3
    assert sandbox.counters.rejected["ERROR_NOT_ENOUGH_CREDITS"] == 3


async def test_credits_endpoint_lists_balances(sandbox: Sandbox, client: ApiClient) -> None:
    status, body = await get_json(sandbox, CREDITS_PATH, key=sandbox.api_key)
    assert status == 200 and body["error_code"] == 0
    assert isinstance(body["data"], list) and body["data"]
    assert all({"name", "balance", "total"} <= set(row) for row in body["data"])
    balances = await client.credits()
    assert [(b.name, b.balance, b.total) for b in balances] == [
        (row["name"], row["balance"], row["total"]) for row in body["data"]
    ]


async def test_an_account_without_credits_says_so() -> None:
    async with Sandbox(render="echo", credits=0) as sandbox, client_for(sandbox) as client:
        assert await client.credits() == [Balance("ai-anime-generator", 0, 0)]
        with pytest.raises(RunFatal, match="no credits"):
            await client.submit(PHOTO, 0)


async def test_submit_rate_is_429_exceeding_limits_with_retry_after() -> None:
    async with (
        Sandbox(render="echo", time_scale=0.001, submit_rate=2.0) as sandbox,
        client_for(sandbox) as client,
    ):
        first = await client.submit(PHOTO, 0)
        await client.submit(PHOTO, 1)  # a bucket holds one second's worth: two requests
        with pytest.raises(Throttled) as caught:
            await client.submit(PHOTO, 2)
        assert (caught.value.status, caught.value.code) == (429, "EXCEEDING_LIMITS")
        assert caught.value.retry_after == pytest.approx(0.5)
        await client.query(first.task_id)  # queries have their own (unlimited) bucket
    assert sandbox.counters.throttled == 1
    assert sandbox.counters.rejected["EXCEEDING_LIMITS"] == 1
    assert sandbox.counters.accepted_total == 2


async def test_throttle_bursts_are_429_or_503_throttled() -> None:
    faults = Faults(throttle=1.0, throttle_seconds=3.0)
    async with (
        Sandbox(time_scale=0.01, faults=faults, seed=5) as sandbox,
        client_for(sandbox) as client,
    ):
        seen: set[tuple[int, str]] = set()
        for i in range(10):
            with pytest.raises(Throttled) as caught:
                await (client.submit(PHOTO, 0) if i % 2 else client.query("t"))
            seen.add((caught.value.status, caught.value.code))
            retry_after = caught.value.retry_after
            assert retry_after is not None and 0 < retry_after <= 0.03  # 3 virtual seconds
        assert await client.credits()  # the burst hits submits and queries only
    assert seen == {(429, "EXCEEDING_LIMITS"), (503, "AI_SERVICE_FLOW_RESTRICTION")}
    assert sandbox.counters.throttled == 10
    assert sandbox.counters.accepted_total == 0


# Section 2 and 3: tasks that are gone, and their results.


async def test_an_unknown_task_id_is_404_task_gone(sandbox: Sandbox, client: ApiClient) -> None:
    with pytest.raises(TaskGone) as caught:
        await client.query("no-such-task")
    assert (caught.value.status, caught.value.code) == (404, "ERROR_RESOURCE_NOT_FOUND")


async def test_another_accounts_task_is_404() -> None:
    async with Sandbox(render="echo", api_keys=("mine", "theirs")) as sandbox:
        async with client_for(sandbox, key="theirs") as client:
            task_id = (await client.submit(PHOTO, 0)).task_id
        async with client_for(sandbox, key="mine") as client:
            with pytest.raises(TaskGone) as caught:
                await client.query(task_id)
    assert caught.value.code == "ERROR_RESOURCE_NOT_FOUND"


async def test_a_revoked_task_is_410(sandbox: Sandbox, client: ApiClient) -> None:
    task_id = (await client.submit(PHOTO, 0)).task_id
    await client.query(task_id)
    sandbox.revoke(task_id)
    with pytest.raises(TaskGone) as caught:
        await client.query(task_id)
    assert (caught.value.status, caught.value.code) == (410, "ERROR_TASK_REVOKED")


async def test_a_missing_task_id_is_400(sandbox: Sandbox, client: ApiClient) -> None:
    with pytest.raises(ItemRejected) as caught:
        await client.query("")
    assert (caught.value.status, caught.value.code) == (400, "MISSING_PARAMETERS")
    status, body = await get_json(sandbox, QUERY_PATH, key=sandbox.api_key)
    assert status == 400
    assert_envelope(body, 400, "MISSING_PARAMETERS")


async def test_results_are_kept_24_hours(
    sandbox: Sandbox, client: ApiClient, tmp_path: Path
) -> None:
    task_id = (await client.submit(PHOTO, 0)).task_id
    state = await wait_done(client, task_id)
    assert state.succeeded
    sandbox.clock.advance(23 * 3600)
    assert (await client.query(task_id)).result_url == state.result_url
    (tmp_path / "early").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    sandbox.clock.advance(2 * 3600)
    with pytest.raises(TaskGone) as caught:
        await client.query(task_id)
    assert (caught.value.status, caught.value.code) == (410, "ERROR_RESOURCE_RECLAIMED")
    with pytest.raises(TaskGone):
        (tmp_path / "late").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    assert sandbox.counters.downloads == 1


async def test_an_injected_result_error_is_task_gone(
    sandbox: Sandbox, client: ApiClient, tmp_path: Path
) -> None:
    state = await wait_done(client, (await client.submit(PHOTO, 0)).task_id)
    sandbox.inject("result", 403, "AccessDenied")
    with pytest.raises(TaskGone):
        (tmp_path / "r").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    (tmp_path / "r").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    assert sandbox.counters.downloads == 1


# Faults on the way: every one is Transient and costs nothing.


@pytest.mark.parametrize(
    ("faults", "kind", "statuses"),
    [
        (Faults(drop=1.0), "drop", {0}),
        (Faults(server_error=1.0), "server_error", {500, 502, 504}),
        (Faults(html_error=1.0), "html_error", {502}),  # non-JSON: Transient, status kept
    ],
)
async def test_request_faults_are_transient(faults: Faults, kind: str, statuses: set[int]) -> None:
    async with (
        Sandbox(time_scale=0.001, faults=faults, seed=2) as sandbox,
        client_for(sandbox) as client,
    ):
        for i in range(6):
            with pytest.raises(Transient) as caught:
                await (client.submit(PHOTO, 0) if i % 2 else client.query("t"))
            assert caught.value.status in statuses
    # aiohttp itself resends a GET whose connection dropped: at least one fault per call.
    assert set(sandbox.counters.faults) == {kind} and sandbox.counters.faults[kind] >= 6
    assert sandbox.counters.submit_requests == 0 and sandbox.counters.query_requests == 0


async def test_a_truncated_download_is_transient(tmp_path: Path) -> None:
    async with (
        Sandbox(time_scale=0.001, render="quick", faults=Faults(truncate=1.0)) as sandbox,
        client_for(sandbox) as client,
    ):
        state = await wait_done(client, (await client.submit(PHOTO, 0)).task_id)
        with pytest.raises(Transient):
            (tmp_path / "r").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    assert sandbox.counters.downloads == 0
    assert sandbox.counters.faults["truncate"] == 1


async def test_slow_answers_still_arrive(tmp_path: Path) -> None:
    # 5 virtual seconds late at time_scale 0.001: 5 ms.
    faults = Faults(slow=1.0, slow_seconds=5.0)
    async with (
        Sandbox(render="echo", time_scale=0.001, faults=faults) as sandbox,
        client_for(sandbox) as client,
    ):
        await submit_and_fetch(client, PHOTO, 0, tmp_path / "r")
    assert sandbox.counters.faults["slow"] >= 2  # the submit and at least one query
    assert sandbox.counters.downloads == 1


async def test_a_slow_answer_past_the_client_timeout_is_transient() -> None:
    faults = Faults(slow=1.0, slow_seconds=0.2)
    async with (
        Sandbox(time_scale=1.0, faults=faults) as sandbox,
        client_for(sandbox, request_timeout=0.05) as client,
    ):
        with pytest.raises(Transient, match="timed out"):
            await client.query("t")


# Counters: what tests and benchmarks read.


async def test_counters(sandbox: Sandbox, client: ApiClient, tmp_path: Path) -> None:
    other = image_bytes(300, 260)
    first = (await client.submit(PHOTO, 3)).task_id
    await client.submit(PHOTO, 3)
    await client.submit(PHOTO, 5)
    await client.submit(other, 3)
    assert sandbox.counters.accepted == {
        (sha(PHOTO), 3): 2,
        (sha(PHOTO), 5): 1,
        (sha(other), 3): 1,
    }
    assert sandbox.counters.accepted_total == 4 and sandbox.counters.submit_requests == 4
    for _ in range(3):
        state = await client.query(first)
    assert sandbox.counters.query_requests == 3
    assert len(sandbox.tasks[first].queries) == 3
    assert sorted(sandbox.tasks[first].queries) == sandbox.tasks[first].queries
    state = await wait_done(client, first)
    queries = sandbox.counters.query_requests
    assert len(sandbox.tasks[first].queries) == queries
    (tmp_path / "r").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    (tmp_path / "r").write_bytes(await fetch(client, state.result_url, max_bytes=50 << 20))
    assert sandbox.counters.downloads == 2
    with pytest.raises(TaskGone):
        await client.query("nope")
    with pytest.raises(ItemRejected):
        await client.submit(b"", 0)
    assert sandbox.counters.rejected == {
        "ERROR_RESOURCE_NOT_FOUND": 1,
        "PARAMETERS_CANNOT_EMPTY": 1,
    }
    assert sandbox.counters.query_requests == queries + 1
    assert sandbox.counters.throttled == 0 and not sandbox.counters.faults
