"""Photos in object storage, and many machines: real `batchtoon run` processes against moto's
S3 server (the real protocol, on 127.0.0.1) and the sandbox; nothing of batchtoon is mocked."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from fakes import FakeApi, ManualClock
from harness import json_lines, photo
from moto.server import ThreadedMotoServer
from test_crash import kill_and_resume, start
from test_stages import download_one, result

from batchtoon.errors import Retryable, StoreBusy, StoreFailure, Unwritable
from batchtoon.locations import storage
from batchtoon.locations.layout import Layout
from batchtoon.locations.results import Spool, file_spool
from batchtoon.pipeline.outcomes import Blocked, Stored
from batchtoon.sandbox import Sandbox
from batchtoon.settings.styles import style_slug

SECRET = "batchtoon-test-secret-4f9c1e"  # the fake AWS secret: it must never be shown


@dataclass
class S3:
    """moto's S3 server, the environment that points a client at it, and a boto3 client."""

    endpoint: str
    env: dict[str, str]
    client: Any

    def bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def upload_photos(self, bucket: str, prefix: str, count: int) -> dict[str, bytes]:
        """`count` distinct photos below `prefix`, in three folders: key -> bytes."""
        photos = {f"{prefix}/sub{i % 3}/photo{i:04d}.jpg": photo(seed=i) for i in range(count)}
        for key, data in photos.items():
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return photos

    def objects(self, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
        """The objects below `prefix` but batchtoon's bookkeeping (its `.batchtoon/` record),
        as `harness.outputs` sees a folder."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        found = (o for page in pages for o in page.get("Contents", []))
        return {o["Key"]: o for o in found if "/.batchtoon/" not in f"/{o['Key']}"}

    def body(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    nowhere = tmp_path_factory.mktemp("aws") / "none"  # no profile of this machine's user
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "batchtoon-test-id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        storage._by_scheme.cache_clear()  # made again with this environment
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        try:
            yield S3(env["AWS_ENDPOINT_URL"], env, client)
        finally:
            storage._by_scheme.cache_clear()
            server.stop()


def echo_sandbox() -> Sandbox:
    """A fast sandbox that sends each upload back as its result: a result is its photo."""
    return Sandbox(time_scale=0.001, processing_time=(20, 80), render="echo")


async def batchtoon(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-m", "batchtoon", *args], env={**os.environ, **env}, cwd=cwd, check=False
    )


def local_journal(cwd: Path) -> Path:
    [journal] = cwd.glob(".batchtoon/*/journal.jsonl")
    return journal


# The run's records kept whole, not compacted at its end: what it journaled is the subject.
HISTORY = {"BATCHTOON_COMPACT_JOURNAL": "0"}


def records(journal: Path, event: str) -> list[dict[str, Any]]:
    lines = journal.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def shown_anywhere(secret: str, *texts: bytes, folder: Path) -> bool:
    files = (p.read_bytes() for p in folder.rglob("*") if p.is_file())
    return any(secret.encode() in text for text in (*texts, *files))


async def test_a_run_from_s3_to_s3_writes_each_result_once_as_journaled(
    tmp_path: Path, s3: S3
) -> None:
    bucket = s3.bucket()
    photos = s3.upload_photos(bucket, "in", 9)
    styles = (0, 2)
    async with echo_sandbox() as sandbox:
        done = await batchtoon(
            "run", f"s3://{bucket}/in", "--out", f"s3://{bucket}/out", "--style", "0,2",
            "--api-base", sandbox.base_url, "--poll-interval", "0.02", "--rate", "300",
            env={**s3.env, **HISTORY, "AILAB_API_KEY": sandbox.api_key}, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    expected = {
        f"out/{key.removeprefix('in/').removesuffix('.jpg')}.{style_slug(style)}.jpg": data
        for key, data in photos.items()
        for style in styles
    }
    written = s3.objects(bucket, "out/")
    assert written.keys() == expected.keys()  # each photo in each style, once; nothing else
    downloaded = {r["output"]: r for r in records(local_journal(tmp_path), "downloaded")}
    assert downloaded.keys() == {f"s3://{bucket}/{key}" for key in expected}
    for key, data in expected.items():
        journaled, held = downloaded[f"s3://{bucket}/{key}"], written[key]
        assert s3.body(bucket, key) == data  # the echo renderer: the result is the photo
        assert journaled["size"] == held["Size"] == len(data)
        assert journaled["sha256"] == hashlib.sha256(data).hexdigest()
        assert held["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    stderr = done.stderr.decode()
    assert stderr.count("journal .batchtoon/") == 1, stderr  # where it is kept: said once
    assert not (tmp_path / "s3:").exists()  # no local folder named after the URL
    assert not shown_anywhere(SECRET, done.stdout, done.stderr, folder=tmp_path)


ODD_KEYS = ("in//lead.jpg", "in/a//b.jpg", "in/with space.jpg", "in/café ü.jpg", "in/x/../y.jpg")


async def test_keys_with_double_slashes_spaces_and_unicode_are_read_as_listed(
    tmp_path: Path, s3: S3
) -> None:
    bucket = s3.bucket()
    for seed, key in enumerate(ODD_KEYS):
        s3.client.put_object(Bucket=bucket, Key=key, Body=photo(seed=seed))
    async with echo_sandbox() as sandbox:
        done = await batchtoon(
            "run", f"s3://{bucket}/in", "--out", "out", "--api-base", sandbox.base_url,
            "--poll-interval", "0.02", "--rate", "300", "--quiet",
            env={**s3.env, **HISTORY, "AILAB_API_KEY": sandbox.api_key}, cwd=tmp_path,
        )  # fmt: skip
        assert sandbox.counters.accepted_total == len(ODD_KEYS)
    assert done.returncode == 0, done.stderr.decode()  # none "moved or deleted"
    journal = tmp_path / "out" / ".batchtoon" / "journal.jsonl"
    sources = {r["source"] for r in records(journal, "downloaded")}
    assert sources == {f"s3://{bucket}/{key}" for key in ODD_KEYS}


async def test_sigkill_mid_run_to_s3_then_resume_writes_each_photo_once(
    tmp_path: Path, s3: S3
) -> None:
    bucket = s3.bucket()
    photos = s3.upload_photos(bucket, "in", 36)
    moments = [("accepted", 6), ("downloads", 14), ("accepted", 26)]
    async with echo_sandbox() as sandbox:
        await kill_and_resume(
            sandbox, f"s3://{bucket}/in", f"s3://{bucket}/out", len(photos), moments,
            env=s3.env, cwd=tmp_path,
        )  # fmt: skip
    written = s3.objects(bucket, "out/")
    assert len(written) == len(photos)  # each photo once, and nothing partial beside them
    for key, data in photos.items():
        result = f"out/{key.removeprefix('in/').removesuffix('.jpg')}.vintage-comic.jpg"
        assert s3.body(bucket, result) == data  # whole
    assert not list(tmp_path.glob(".batchtoon/*/spill/*"))  # no part file left behind


async def test_four_shards_do_the_batch_once_and_status_adds_their_journals_up(
    tmp_path: Path, s3: S3
) -> None:
    bucket = s3.bucket()
    photos = s3.upload_photos(bucket, "in", 24)
    source, out = f"s3://{bucket}/in", f"s3://{bucket}/out"
    async with echo_sandbox() as sandbox:
        shards = [
            await start(
                sandbox, source, out, "--style", "0,2", "--shard", f"{k}/4",
                "--journal", str(tmp_path / f"journal-{k}.jsonl"), env={**s3.env, **HISTORY},
                cwd=tmp_path,
            )
            for k in range(4)
        ]  # fmt: skip
        with anyio.fail_after(120):
            for process in shards:
                await process.wait()
        assert [p.returncode for p in shards] == [0] * 4
        accepted = sandbox.counters.accepted
    assert len(accepted) == len(photos) * 2 and set(accepted.values()) == {1}  # none twice
    assert len(s3.objects(bucket, "out/")) == len(photos) * 2  # one per photo and style
    journals = sorted(glob.glob(str(tmp_path / "journal-*.jsonl")))
    assert all(records(Path(j), "downloaded") for j in journals)  # every shard had its share
    status = await batchtoon(
        "status", "--journal", str(tmp_path / "journal-*.jsonl"), "--json", env={}, cwd=tmp_path
    )
    assert status.returncode == 0, status.stderr.decode()
    report = json.loads(status.stdout)
    assert report["results"]["done"] == len(photos) * 2
    assert report["photos"]["done"] == len(photos)
    shards_named = [arg for j in journals for arg in ("--journal", j)]
    again = await batchtoon("status", *shards_named, "--json", env={}, cwd=tmp_path)
    assert json.loads(again.stdout)["results"] == report["results"]


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (["nosuch://x/photos", "--out", "cartoons"], "nosuch:// is no storage fsspec knows"),
        (["photos", "--out", "nosuch://x/cartoons"], "nosuch:// is no storage fsspec knows"),
    ],
)
async def test_a_url_with_no_backend_is_one_line_and_exit_2(
    tmp_path: Path, where: list[str], said: str
) -> None:
    (tmp_path / "photos").mkdir()
    done = await batchtoon("run", *where, env={"AILAB_API_KEY": "k"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [f"batchtoon: {said}: give a folder, or a URL "
                                                 "such as s3://bucket/photos"]  # fmt: skip


async def test_s3_without_the_extra_says_which_extra_to_install(tmp_path: Path) -> None:
    hide_s3fs = (
        "import sys; sys.modules['s3fs'] = None; from batchtoon.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    done = await anyio.run_process(
        [sys.executable, "-c", hide_s3fs, "run", "s3://bucket/photos", "--out", "cartoons"],
        env={**os.environ, "AILAB_API_KEY": "k"}, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "batchtoon: s3:// needs s3fs: install batchtoon with its s3 extra "
        "(pipx install '.[s3]' from a clone)"
    ]


@pytest.mark.parametrize("side", ["source", "out"])
async def test_a_missing_bucket_is_one_line_naming_the_url(
    tmp_path: Path, s3: S3, side: str
) -> None:
    bucket = s3.bucket()
    s3.upload_photos(bucket, "in", 1)
    missing = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/photos"
    source, out = (missing, f"s3://{bucket}/out") if side == "source" else (
        f"s3://{bucket}/in", missing,
    )  # fmt: skip
    done = await batchtoon(
        "run", source, "--out", out, env={**s3.env, "AILAB_API_KEY": "k"}, cwd=tmp_path
    )
    assert done.returncode == 2
    [line] = done.stderr.decode().splitlines()
    flag = "SOURCE" if side == "source" else "--out"
    assert line == f"batchtoon: {flag} {missing}: no such bucket: {missing[5:].split('/')[0]}"
    assert SECRET not in line


def test_a_folder_is_listed_a_page_at_a_time_as_it_is_read(
    s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.bucket()
    keys = [*ODD_KEYS, "in/b/1.jpg", "in/b/2.jpg", "in/c.jpg", "inside.jpg", "in2/x.jpg"]
    for key in keys:
        s3.client.put_object(Bucket=bucket, Key=key, Body=b"x")
    monkeypatch.setattr(storage, "PAGE", 2)  # S3 lists 2 keys a request
    found = storage.find(f"s3://{bucket}/in")
    first = next(found)  # one page asked for, not the whole listing
    s3.client.put_object(Bucket=bucket, Key="in/zz-later.jpg", Body=b"x")
    rels = [first[1], *(rel for _, rel in found)]
    expected = sorted(key.removeprefix("in/") for key in keys if key.startswith("in/"))
    assert rels == [*expected, "zz-later.jpg"]  # in path order; the later key: read as it went
    assert first[0] == f"s3://{bucket}/in/{first[1]}"


def test_a_write_is_checked_against_what_the_store_holds(s3: S3) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/out/a.jpg"
    storage.put(url, b"\xff\xd8whole\xff\xd9")
    assert s3.body(bucket, "out/a.jpg") == b"\xff\xd8whole\xff\xd9"
    assert storage.listing(f"s3://{bucket}/out") == {"a.jpg"}
    copied = storage.copy(url, f"s3://{bucket}/out/b/c.jpg")
    assert copied.size == 9 and storage.listing(f"s3://{bucket}/out") == {"a.jpg", "b/c.jpg"}
    assert storage.listing(f"s3://{bucket}/nothing-here") == set()
    with pytest.raises(StoreFailure, match="no such bucket"):
        storage.listing(f"s3://no-such-{bucket}/out")


def test_a_large_result_spills_to_a_local_file_then_goes_up_whole(tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket()
    layout = Layout(f"s3://{bucket}/out", "{dir}/{stem}.{ext}", spill=tmp_path / "spill")
    data = photo(size=(640, 480), seed=3)
    spool = Spool(layout.part("a/b"), in_memory=1024)  # past 1 KiB: into the local part file
    for at in range(0, len(data), 1000):
        spool.write(data[at : at + 1000])
    assert spool.on_disk and spool.part.parent == tmp_path / "spill"
    filed = file_spool(spool, ["a/b", "c"], layout)  # the second: copied by the store itself
    assert filed.paths == (f"s3://{bucket}/out/a/b.jpg", f"s3://{bucket}/out/c.jpg")
    assert all(s3.body(bucket, key) == data for key in ("out/a/b.jpg", "out/c.jpg"))
    assert not list((tmp_path / "spill").iterdir())  # the part file is gone once uploaded
    assert layout.existing(["a/b", "c", "d"], "jpg") == {"a/b", "c"}


async def test_a_result_for_a_bucket_gone_stops_the_run_and_keeps_the_item(
    tmp_path: Path, s3: S3
) -> None:
    clock = ManualClock()
    api = FakeApi(clock)
    api.script("http://cdn/u1", photo(seed=1))
    item = result(1, clock)
    out = f"s3://no-such-{s3.bucket()}/out"
    outbox = await download_one(api, item, out, spill=tmp_path)
    [blocked] = outbox.delivered
    assert isinstance(blocked, Blocked)  # the run stops as for a full disk: nothing fails
    assert str(blocked.problem).startswith(f"cannot write {out}/photo1.0.jpg: no such bucket")
    api.script("http://cdn/u1", photo(seed=1))
    [stored] = (
        await download_one(api, item, out.replace("no-such-", ""), spill=tmp_path)
    ).delivered
    assert isinstance(stored, Stored)


def test_store_errors_are_sorted_into_what_passes_and_what_does_not() -> None:
    url = "s3://bucket/x.jpg"
    assert storage._failure(url, ConnectionRefusedError(111, "refused")).transient
    assert storage._failure(url, TimeoutError()).transient
    assert storage._failure(url, FileNotFoundError("NoSuchKey")).missing
    assert not storage._failure(url, PermissionError("AccessDenied")).transient
    assert str(storage._failure(url, FileNotFoundError("The specified bucket does not exist"))) == (
        "no such bucket"
    )
    assert issubclass(StoreBusy, Retryable) and not issubclass(Unwritable, Retryable)


async def test_a_watched_bucket_is_scanned_and_a_new_photo_taken(tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket()
    s3.upload_photos(bucket, "in", 2)
    async with echo_sandbox() as sandbox:
        argv = [
            sys.executable, "-m", "batchtoon", "run", f"s3://{bucket}/in", "--out",
            str(tmp_path / "out"), "--api-base", sandbox.base_url, "--poll-interval", "0.02",
            "--watch", "--settle", "0.2", "--scan-interval", "0.1", "--idle-exit", "2",
            "--events", "-",
        ]  # fmt: skip
        env = {**os.environ, **s3.env, "AILAB_API_KEY": sandbox.api_key}
        async with await anyio.open_process(argv, env=env, cwd=tmp_path) as process:
            assert process.stdout is not None
            done: list[str] = []
            with anyio.fail_after(60):
                async for event in json_lines(process.stdout):
                    if event["event"] != "done":
                        continue
                    done.append(event["photo"])
                    if len(done) == 2:  # the backfill is done: a new photo arrives
                        s3.client.put_object(Bucket=bucket, Key="in/new.jpg", Body=photo(seed=9))
                    if len(done) == 3:
                        break
                code = await process.wait()
    assert code == 0
    assert done[-1] == f"s3://{bucket}/in/new.jpg"
