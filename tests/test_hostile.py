"""Hostile disks, servers and folders: each case is what a user gets — files intact, money
spent, exit code, message — against the sandbox playing the hostile part."""

from __future__ import annotations

import errno
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from harness import journal_records, make_photos, outputs, photo, run_engine, settings_for
from PIL import Image
from test_cli import batchtoon

from batchtoon.errors import Unwritable, UsageError
from batchtoon.exitcodes import ExitCode
from batchtoon.locations.results import IN_MEMORY, Spool
from batchtoon.pipeline.planner import make_plan
from batchtoon.records.journal import Journal
from batchtoon.sandbox import Faults, Sandbox
from batchtoon.sandbox.envelopes import http_date
from batchtoon.sandbox.hostile import GARBAGE

QUICK: dict[str, Any] = {
    "retry__attempts": 2,
    "retry__total": 0.3,
}  # a lasting fault: given up soon

# Data loss: user files and paid results.


async def test_a_folder_named_tmp_beside_the_journal_is_never_touched(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "tmp", 6)  # the user's photos, in a folder named tmp
    (tmp_path / "tmp" / "notes.txt").write_text("mine")
    journal = tmp_path / "journal.jsonl"  # beside it
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        for _ in range(2):
            await run_engine(sandbox, [tmp_path / "tmp"], tmp_path / "out", journal=str(journal))
        assert sandbox.counters.accepted_total == 6  # paid once each, over two runs
    assert (tmp_path / "tmp" / "notes.txt").read_text() == "mine"
    assert all(p.is_file() for p in photos)
    assert len(outputs(tmp_path / "out")) == 6


async def test_every_style_gets_its_own_file_even_when_the_template_forgets_the_style(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 3)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(
            sandbox, [tmp_path / "in"], out, styles=(0, 2), output__template="{dir}/{stem}.{ext}"
        )
        assert sandbox.counters.accepted_total == 6
    assert engine.stats.tally.results == {"done now": 6}
    assert len(outputs(out)) == 6  # six paid, six kept: none overwrote another


# Paying in a loop, or twice.


async def test_a_task_that_never_finishes_is_paid_for_three_times_at_most(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 3)
    async with Sandbox(time_scale=0.001, render="echo", faults=Faults(stuck=1.0)) as sandbox:
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", result_ttl=0.2,
            submit__max_resubmissions=2,
        )  # fmt: skip
        assert sandbox.counters.accepted_total == 9  # the first submission and two more, each
    assert engine.exit_code == ExitCode.FAILED
    [reason] = engine.stats.failures
    assert "submitted 3 times already, which is the limit (submit.max_resubmissions)" in reason


async def test_an_upload_whose_answer_never_comes_is_sent_three_times_at_most_and_said(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 2)
    faults = Faults(late_submit=1.0, late_seconds=1e6)
    async with Sandbox(time_scale=0.001, render="echo", faults=faults) as sandbox:
        engine = await run_engine(  # (its records whole: what it journaled is the subject)
            sandbox, [tmp_path / "in"], tmp_path / "out", api__answer_timeout=0.2,
            compact_journal=False,
        )  # fmt: skip
        assert sandbox.counters.accepted_total == 6  # billed, though never answered in time
    assert engine.stats.unanswered == 6  # and each said as possible extra cost
    assert engine.exit_code == ExitCode.FAILED
    failed = [r for r in journal_records(tmp_path / "out") if r["event"] == "failed"]
    assert len(failed) == 2 and all("3 uploads went unanswered" in r["reason"] for r in failed)


def test_a_journal_reached_through_a_link_is_the_same_journal(tmp_path: Path) -> None:
    real = tmp_path / "real" / "journal.jsonl"
    real.parent.mkdir()
    (tmp_path / "link").symlink_to(real.parent, target_is_directory=True)
    first = Journal(real)
    first.open()
    try:
        with pytest.raises(UsageError, match="in use by another batchtoon run"):
            Journal(tmp_path / "link" / "journal.jsonl").open()
    finally:
        first.close()


async def test_an_output_folder_inside_the_photos_is_never_walked(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 3)
    out = tmp_path / "in" / "cartoons"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        for _ in range(2):
            await run_engine(sandbox, [tmp_path / "in"], out)
        assert sandbox.counters.accepted_total == 3  # never the cartoons' cartoons
        plan = await make_plan(settings_for(sandbox, out), [tmp_path / "in"], Journal(out).ledger)
    assert len(outputs(out)) == 3
    assert plan.photos == 3 and "is inside SOURCE" in plan.notes[0]


def test_a_large_result_streams_to_its_part_file_not_into_memory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / ".a.0.batchtoon-part")
    chunk = bytes(64 << 10)
    for _ in range(IN_MEMORY // len(chunk) * 3):
        spool.write(chunk)
    assert spool.on_disk and spool.part.stat().st_size == spool.size == 3 * IN_MEMORY
    spool.close()
    assert not spool.part.exists()  # not committed: removed, by its name


async def test_a_result_of_many_megabytes_is_written_whole_through_the_disk(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    noise = np.random.default_rng(1).integers(0, 255, (1600, 1600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "big.png")  # about 7.7 MB: over IN_MEMORY
    source = (folder / "big.png").read_bytes()
    assert len(source) > IN_MEMORY
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        await run_engine(sandbox, [folder], tmp_path / "out", prepare__fix=False)
    [result] = outputs(tmp_path / "out")
    assert result.read_bytes() == source  # echo: as uploaded, whole


async def test_an_endless_result_is_refused_at_the_cap(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 1)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.inject("result", 200, body="endless", size=300 << 20, times=10)
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", output__max_result_bytes=8 << 20
        )
    [reason] = engine.stats.failures
    assert "over the cap of 8388608 bytes" in reason
    assert list((tmp_path / "out").rglob("*batchtoon-part")) == []


# Hangs: a run that never ends.


@pytest.mark.parametrize("kind", sorted(GARBAGE["query"]))
async def test_a_query_that_answers_garbage_never_hangs_the_run(tmp_path: Path, kind: str) -> None:
    make_photos(tmp_path / "in", 2)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.inject("query", 200, body=GARBAGE["query"][kind], times=10**6)
        with anyio.fail_after(30):
            engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out", **QUICK)
        assert sandbox.counters.accepted_total == 2  # and never submitted again
    if kind == "success, result_url null":
        assert engine.exit_code == ExitCode.FAILED
        assert [*engine.stats.failures] == ["the provider reported success but sent no result URL"]
    else:  # paid for, so never failed: left in the journal for the next run
        assert engine.exit_code == ExitCode.LEFT and engine.stats.left == 2


async def test_a_query_answering_broken_http_never_hangs_the_run(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 1)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.inject("query", 200, body="bad_http", times=10**6)
        with anyio.fail_after(30):
            engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out", **QUICK)
    assert engine.exit_code == ExitCode.LEFT


async def test_one_task_id_for_two_photos_never_gives_a_photo_another_ones_cartoon(
    tmp_path: Path,
) -> None:
    sources = make_photos(tmp_path / "in", 10)
    faults = Faults(reuse_task_id=0.3)
    async with Sandbox(time_scale=0.001, render="echo", faults=faults, seed=3) as sandbox:
        with anyio.fail_after(60):
            engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        paid = sandbox.counters.accepted_total
    assert engine.stats.extra > 0  # ids were reused, and those photos were submitted again
    assert paid <= 3 * len(sources)  # within the bound
    for source in sources:  # echo: a photo's result is its own bytes, or there is none
        rel = source.relative_to(tmp_path / "in")
        result = tmp_path / "out" / rel.parent / f"{rel.stem}.vintage-comic.jpg"
        assert not result.exists() or result.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("retry_after", [1e9, http_date(1e9)])
async def test_a_huge_retry_after_waits_retry_max_wait_only(
    tmp_path: Path, retry_after: float | str
) -> None:
    make_photos(tmp_path / "in", 2)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.inject("submit", 429, "EXCEEDING_LIMITS", retry_after=retry_after)
        with anyio.fail_after(20):
            engine = await run_engine(
                sandbox, [tmp_path / "in"], tmp_path / "out", retry__max_wait=0.2
            )
    assert engine.exit_code == ExitCode.OK and engine.submit_rate.slowdowns == 1


# Security.


@pytest.mark.parametrize("endpoint", ["submit", "query"])
async def test_a_redirect_to_another_host_is_not_followed_and_the_key_stays_home(
    tmp_path: Path, endpoint: str
) -> None:
    make_photos(tmp_path / "in", 3)
    redirects = {endpoint: 307}
    async with Sandbox(time_scale=0.001, render="echo", redirects=redirects) as sandbox:
        engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
        assert sandbox.counters.elsewhere == []  # nothing went there, key or no key
    assert engine.exit_code == ExitCode.FATAL
    assert engine.control.fatal_error is not None
    assert "redirect to http://127.0.0.1" in engine.control.fatal_error.reason


async def test_a_key_echoed_back_reaches_no_file_and_no_screen(tmp_path: Path) -> None:
    key = "k3y" + "s3cr3t" * 6
    make_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    sandbox = Sandbox(time_scale=0.001, render="echo", api_keys=(key,), key_in_result_url=True)
    async with sandbox:
        sandbox.inject("query", 500, "{key}", message="the key was {key}")
        sandbox.inject("submit", 422, "ERROR_NO_FACE_IN_FILE", message="no face for {key}")
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url,
            "--poll-interval", "0.02", "-q", key=key,
        )  # fmt: skip
    status = await batchtoon("status", "--out", str(out), "--json")
    assert done.returncode == ExitCode.FAILED, done.stderr.decode()  # the one with no face
    files = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    for blob in (done.stdout, done.stderr, status.stdout, *files):
        assert key.encode() not in blob
    assert b"no face for ***" in done.stderr


# The environment's errors: one line and a documented exit code, never "internal error".


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 160 KiB, for a full disk; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


async def remount(disk: Path, options: str) -> None:
    await anyio.run_process(["mount", "-o", f"remount,{options}", str(disk)])


def textured(folder: Path, count: int) -> None:
    """Photos of about 40 KB each: a few fill the small disk."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for n in range(count):
        out = io.BytesIO()
        pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(out, "JPEG", quality=80)
        (folder / f"p{n}.jpg").write_bytes(out.getvalue())


async def test_a_full_disk_stops_in_one_line_and_the_same_command_finishes(
    tmp_path: Path, small_disk: Path
) -> None:
    textured(tmp_path / "in", 8)
    out = small_disk / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        args = ["run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url]
        args += ["--poll-interval", "0.02", "--rate", "200", "-q", "--no-report"]
        full = await batchtoon(*args, key=sandbox.api_key)
        stderr = full.stderr.decode()
        assert full.returncode == ExitCode.UNWRITABLE, stderr
        assert "the disk is full: free some space, then run the same command again" in stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
        await remount(small_disk, "size=8m")
        again = await batchtoon(*args, key=sandbox.api_key)
        assert again.returncode == ExitCode.OK, again.stderr.decode()
        assert sandbox.counters.accepted_total <= 8 + 4  # at most the uploads in flight, again
    assert len(outputs(out)) == 8
    assert list(out.rglob("*batchtoon-part")) == []


async def test_a_read_only_output_folder_is_one_line(tmp_path: Path, small_disk: Path) -> None:
    await remount(small_disk, "ro")
    done = await batchtoon("run", "samples", "--sandbox", "--out", str(small_disk / "out"))
    assert done.returncode == ExitCode.UNWRITABLE
    [line] = done.stderr.decode().splitlines()
    assert "the file system is read-only: choose a writable folder" in line


@pytest.mark.parametrize("where", ["journal is a folder", "out under a file"])
async def test_a_path_that_cannot_be_written_is_one_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "afile").write_text("mine")
    flags = (
        ["--journal", str(tmp_path / "folder.jsonl"), "--out", str(tmp_path / "out")]
        if where == "journal is a folder"
        else ["--out", str(tmp_path / "afile" / "out")]
    )
    done = await batchtoon("run", "samples", "--sandbox", "-q", *flags)
    stderr = done.stderr.decode()
    assert done.returncode == ExitCode.UNWRITABLE, stderr
    assert len(stderr.splitlines()) == 1 and "cannot " in stderr and "internal" not in stderr
    assert (tmp_path / "afile").read_text() == "mine"


async def test_a_journal_on_another_file_system_than_the_output_works(
    tmp_path: Path, small_disk: Path
) -> None:
    await remount(small_disk, "size=4m")
    make_photos(tmp_path / "in", 4)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(
            sandbox, [tmp_path / "in"], tmp_path / "out", journal=str(small_disk / "j.jsonl")
        )
    assert engine.exit_code == ExitCode.OK and len(outputs(tmp_path / "out")) == 4


async def test_a_source_name_too_long_for_its_output_name_is_shortened(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    name = "x" * 250 + ".jpg"  # 254 bytes: with ".vintage-comic" it would not fit
    (folder / name).write_bytes(photo(seed=1))
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        for _ in range(2):
            engine = await run_engine(sandbox, [folder], tmp_path / "out")
        assert sandbox.counters.accepted_total == 1
    [result] = outputs(tmp_path / "out")
    assert engine.exit_code == ExitCode.OK and len(result.name.encode()) < 255
    assert result.name.startswith("x" * 150)


async def test_a_pixel_bomb_result_is_refused_with_a_reason(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 1)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        sandbox.inject("result", 200, body="pixel_bomb", times=10)
        engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
    assert [*engine.stats.failures] == ["the result declares too many pixels to open safely"]


async def test_a_manifest_with_a_huge_line_reports_it_and_does_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(photo(seed=1))
    manifest = tmp_path / "list.jsonl"
    lines = [json.dumps({"path": "a.jpg"}), json.dumps({"path": "y" * (2 << 20) + ".jpg"})]
    manifest.write_text("\n".join(lines * 1) + "\n" + "\n" * 1000)
    done = await batchtoon("run", str(manifest), "--sandbox", "--out", str(tmp_path / "out"))
    stderr = done.stderr.decode()
    assert done.returncode == ExitCode.FAILED and "Traceback" not in stderr
    assert "list.jsonl line 2" in stderr or "yyyy" in stderr
    assert len(outputs(tmp_path / "out")) == 1


def test_journal_lines_of_another_shape_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    sha = "ab" * 32
    records = [
        {"v": 2, "t": 1.0, "event": "queued", "key": f"{sha}:0", "source": "a", "output": {}},
        {"v": 2, "t": 1.0, "event": "submitted", "key": f"{sha}:0", "task_id": "t"},
        {"v": 2, "t": 1.0, "event": "succeeded", "key": f"{sha}:0", "result_url": "u",
         "expires_at": "tomorrow"},
        {"v": 2, "t": 1.0, "event": "downloaded", "key": f"{sha}:0", "output": {"a": 1}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    journal = Journal.replay(path)
    assert (journal.skipped_lines, journal.skipped_tasks) == (3, 0)
    entry = journal.ledger.entries[f"{sha}:0"]
    assert entry.state == "submitted" and entry.expires_at == 0.0  # nothing half applied


# Wrong or silent results.


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("list.csv", "\ufeffpath,style\na.jpg,2d\n"),
        ("list.csv", "\ufeffFile Name,Style\na.jpg,2d\n"),
        ("list.jsonl", '\ufeff{"path": "a.jpg", "style": "2d"}\n'),
    ],
)
async def test_manifests_as_spreadsheets_write_them(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "a.jpg").write_bytes(photo(seed=1))
    (tmp_path / name).write_text(text, encoding="utf-8")
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(sandbox, [tmp_path / name], tmp_path / "out")
    assert engine.exit_code == ExitCode.OK
    assert [p.name for p in outputs(tmp_path / "out")] == ["a.2d.jpg"]


async def test_photos_named_dot_dot_png_are_done(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("..png", "...png"):
        Image.new("RGB", (300, 300), (len(name) * 40, 0, 0)).save(folder / name, "PNG")
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(sandbox, [folder], tmp_path / "out")
    assert engine.stats.tally.results == {"done now": 2}
    assert len(outputs(tmp_path / "out")) == 2


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_result_is_accepted_and_kept_as_decoded(
    tmp_path: Path, encoding: str
) -> None:
    sources = make_photos(tmp_path / "in", 2)
    async with Sandbox(time_scale=0.001, render="echo", result_encoding=encoding) as sandbox:
        engine = await run_engine(sandbox, [tmp_path / "in"], tmp_path / "out")
    assert engine.exit_code == ExitCode.OK
    assert sorted(p.read_bytes() for p in outputs(tmp_path / "out")) == sorted(
        s.read_bytes() for s in sources
    )


async def test_an_unreadable_journal_line_about_a_task_is_said(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    journal = out / ".batchtoon" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"v":1,"event":"submitted","task_id":"abc","key":  garbled}\n')
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url,
            "--poll-interval", "0.02", key=sandbox.api_key,
        )  # fmt: skip
    assert done.returncode == ExitCode.OK
    assert b"journal: 1 line could not be read, 1 of them about a paid task" in done.stdout


async def test_a_photo_given_twice_is_taken_once(tmp_path: Path) -> None:
    [source, *_] = make_photos(tmp_path / "in", 3)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        engine = await run_engine(sandbox, [tmp_path / "in", source], tmp_path / "out")
        assert sandbox.counters.accepted_total == 3
    assert engine.exit_code == ExitCode.OK
    assert engine.stats.tally.results == {"done now": 3} and len(outputs(tmp_path / "out")) == 3


def test_a_file_where_a_folder_should_be_is_named_in_the_one_line(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    blocker = tmp_path / "out" / "thumbs"
    blocker.write_text("someone's")
    with pytest.raises(NotADirectoryError) as raised:
        (blocker / "a" / "b.jpg").write_bytes(b"x")
    said = str(Unwritable.from_os_error(raised.value, tmp_path / "page.html", "write"))
    assert said == (
        f"cannot write {tmp_path / 'page.html'}: {blocker} is a file, not a folder: move it, "
        "or choose another path"
    )
    nameless = NotADirectoryError(errno.ENOTDIR, "Not a directory")  # no file name to look at
    assert str(Unwritable.from_os_error(nameless, "x", "write")) == (
        "cannot write x: a part of it is a file, not a folder: choose another path"
    )
