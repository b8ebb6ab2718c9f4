"""Live work against a sandbox over loopback: the watched folder (`--watch`), the event stream
(`--events`, `Batch(on_event=...)`) and the hook per result (`--exec`)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import journal_records, json_lines, make_photos, photo, settings_for
from test_cli import ROOT, batchtoon, clean_env

from batchtoon.batch import Batch, Summary
from batchtoon.exitcodes import ExitCode
from batchtoon.pipeline.watcher import Settler
from batchtoon.records.events import EVENTS_VERSION
from batchtoon.records.journal import Journal
from batchtoon.sandbox import Sandbox

FIELDS = {"v", "time", "event", "photo", "style", "output", "reason", "cost"}
QUICK_WATCH = {"watch__enabled": True, "watch__settle": 0.2, "watch__scan_interval": 0.1}


class Events:
    """The events a Batch gives, and a way to wait for one of them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.seen if event["event"] == kind]

    async def until(self, met: Callable[[], bool], within: float = 20.0) -> None:
        with anyio.fail_after(within):
            while not met():
                self._changed = anyio.Event()
                await self._changed.wait()


async def watched(
    sandbox: Sandbox, folder: Path, out: Path, events: Events, act: Callable[[], Any], **over: Any
) -> Summary:
    """A watching run over `folder` while `act()` does its part; the run ends by --idle-exit."""
    settings = settings_for(sandbox, out, **{**QUICK_WATCH, "watch__idle_exit": 0.5, **over})
    batch = Batch(settings, api_key=sandbox.api_key, on_event=events)
    async with batch, anyio.create_task_group() as group:
        group.start_soon(act)
        with anyio.fail_after(60):
            done = await batch.run([folder])
    return done


def test_a_file_is_taken_once_it_held_still_for_the_settle_time() -> None:
    settler = Settler(2.0)
    assert not settler.saw("a", (10, 1), now=0.0)
    assert not settler.saw("a", (20, 2), now=1.9)  # grew: the settle starts again
    assert not settler.saw("a", (20, 2), now=3.8)
    assert settler.saw("a", (20, 2), now=3.9)
    assert not settler.saw("a", (20, 2), now=10.0)  # taken once
    assert not settler.saw("a", (30, 3), now=11.0)
    assert settler.saw("a", (30, 3), now=13.0)  # replaced: taken again


@pytest.mark.slow
async def test_photos_written_slowly_in_chunks_are_uploaded_whole_each_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "booth"
    folder.mkdir()
    shots = {folder / f"shot{i}.jpg": photo(size=(900, 600), seed=i) for i in range(2)}
    events = Events()

    async def write_slowly(path: Path, data: bytes) -> None:
        chunk = len(data) // 6 + 1
        with path.open("wb") as file:
            for start in range(0, len(data), chunk):  # 6 chunks, 0.5 s apart: 2.5 s a photo
                file.write(data[start : start + chunk])
                file.flush()
                await anyio.sleep(0.5)  # the writer's pace, not a wait for the tool

    async def act() -> None:
        async with anyio.create_task_group() as group:
            for path, data in shots.items():
                group.start_soon(write_slowly, path, data)

    done = await watched(sandbox, folder, tmp_path / "out", events, act, watch__settle=1.0)

    assert done.exit_code == ExitCode.OK
    whole = {(hashlib.sha256(data).hexdigest(), 0): 1 for data in shots.values()}
    assert dict(sandbox.counters.accepted) == whole  # each whole, each once
    assert not events.of("refused")
    assert len(events.of("done")) == 2


async def test_a_replaced_photo_is_done_again_and_an_identical_copy_is_not_paid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder, out = tmp_path / "booth", tmp_path / "out"
    folder.mkdir()
    first, second = photo(seed=1), photo(seed=2)
    shot = folder / "shot.jpg"
    shot.write_bytes(first)
    events = Events()

    async def act() -> None:
        await events.until(lambda: len(events.of("done")) == 1)
        old = Path(events.of("done")[0]["output"]).read_bytes()
        shot.write_bytes(second)  # a new version of the same photo
        await events.until(lambda: len(events.of("done")) == 2)
        assert Path(events.of("done")[0]["output"]).read_bytes() == old  # kept as it was
        (folder / "copy.jpg").write_bytes(second)  # the same content again
        await events.until(lambda: len(events.of("done")) == 3)

    done = await watched(sandbox, folder, out, events, act)

    assert done.exit_code == ExitCode.OK
    assert sum(sandbox.counters.accepted.values()) == 2  # the copy cost nothing
    assert [e["photo"] for e in events.of("submitted")] == [str(shot), str(shot)]
    original, again, copy = (Path(e["output"]) for e in events.of("done"))
    assert again.name == f"shot.vintage-comic-{hashlib.sha256(second).hexdigest()[:8]}.jpg"
    assert original.name == "shot.vintage-comic.jpg" and copy.name == "copy.vintage-comic.jpg"
    assert copy.read_bytes() == again.read_bytes()


async def test_idle_exit_ends_a_watch_with_nothing_to_do(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    events = Events()

    async def act() -> None:
        pass

    done = await watched(sandbox, folder, tmp_path / "out", events, act, watch__idle_exit=0.3)

    assert done.exit_code == ExitCode.OK
    assert events.seen == []


async def test_sigterm_during_a_watch_exits_as_documented_and_the_same_command_resumes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    photos, out = tmp_path / "booth", tmp_path / "out"
    make_photos(photos, 3)
    command = [
        "run", str(photos), "--out", str(out), "--api-base", sandbox.base_url, "--watch",
        "--settle", "0.2", "--scan-interval", "0.1", "--poll-interval", "0.05", "--events", "-",
    ]  # fmt: skip
    env = clean_env(sandbox.api_key)
    process = await anyio.open_process(
        [sys.executable, "-m", "batchtoon", *command], env=env, cwd=ROOT, stderr=subprocess.PIPE
    )
    async with process:
        assert process.stdout is not None
        done = 0
        with anyio.fail_after(30):
            async for event in json_lines(process.stdout):
                done += event["event"] == "done"
                if done == 3:
                    break
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            code = await process.wait()
    assert code == ExitCode.STOPPED
    paid = sum(sandbox.counters.accepted.values())
    assert paid == 3

    again = await batchtoon(*command, "--idle-exit", "0.3", key=sandbox.api_key)

    assert again.returncode == ExitCode.OK, again.stderr.decode()
    assert sum(sandbox.counters.accepted.values()) == paid  # nothing paid twice
    assert b"results:" in again.stderr  # with --events -, the summary is on stderr
    assert b"results:" not in again.stdout


async def test_events_are_json_one_per_state_change_matching_the_journal(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    photos, out, stream = tmp_path / "photos", tmp_path / "out", tmp_path / "events.jsonl"
    make_photos(photos, 4)
    (photos / "broken.jpg").write_bytes(b"not a photo")
    args = ["run", str(photos), "--out", str(out), "--api-base", sandbox.base_url]
    args += ["--poll-interval", "0.05"]

    history = {"BATCHTOON_COMPACT_JOURNAL": "0"}  # the journal's every record, to match
    done = await batchtoon(
        *args, "--style", "0,2", "--events", str(stream), key=sandbox.api_key, env=history
    )

    assert done.returncode in (ExitCode.OK, ExitCode.FAILED), done.stderr.decode()
    events = [json.loads(line) for line in stream.read_text().splitlines()]
    assert all(set(event) == FIELDS and event["v"] == EVENTS_VERSION for event in events)
    journal = journal_records(out)
    counts = {
        kind: sum(event["event"] == kind for event in events)
        for kind in ("found", "refused", "submitted", "done")
    }
    assert counts == {
        "found": sum(r["event"] == "queued" for r in journal),
        "refused": sum(r["event"] == "rejected" for r in journal),
        "submitted": sum(r["event"] == "submitted" for r in journal),
        "done": sum(r["event"] == "downloaded" for r in journal),
    }
    assert counts == {"found": 8, "refused": 2, "submitted": 8, "done": 8}
    assert [e["cost"] for e in events].count(True) == 8
    for event in events:
        if event["event"] == "done":
            assert Path(event["output"]).is_file()
    assert done.stdout.startswith(b"results:")  # to a file: the summary stays on stdout


HOOK = (
    f'{sys.executable} -c "import json, sys; '
    "open(sys.argv[1], 'a').write(json.dumps(sys.argv[2:]) + chr(10))\" {log} "
    "{{photo}} {{output}} {{style}} '{{photo}}.x'"
)


async def test_exec_gets_hostile_names_as_plain_arguments(sandbox: Sandbox, tmp_path: Path) -> None:
    photos, out, log = tmp_path / "photos", tmp_path / "out", tmp_path / "hooks.jsonl"
    photos.mkdir()
    names = ["$(touch pwned).jpg", "a b; touch pwned.jpg", "`touch pwned`'\".jpg", "-rf.jpg"]
    for i, name in enumerate(names):
        (photos / name).write_bytes(photo(seed=i))
    settings = settings_for(sandbox, out, exec__command=HOOK.format(log=log))
    async with Batch(settings, api_key=sandbox.api_key) as batch:
        done = await batch.run([photos])

    assert done.exit_code == ExitCode.OK
    assert (done.hooks_ran, done.hooks_failed) == (4, 0)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(Path(call[0]).name for call in calls) == sorted(names)
    for _, output, style, kept in calls:
        assert Path(output).is_file() and style == "vintage-comic"
        assert kept == "{photo}.x"  # only a whole argument is replaced
    assert not list(tmp_path.rglob("pwned*")) and not (ROOT / "pwned").exists()


async def test_a_hanging_hook_is_killed_counted_and_loses_no_result(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    make_photos(photos, 3)
    settings = settings_for(
        sandbox, out, exec__command="sleep 600", exec__timeout=0.2, exec__concurrency=3
    )
    async with Batch(settings, api_key=sandbox.api_key) as batch:
        with anyio.fail_after(30):
            done = await batch.run([photos])

    assert (done.hooks_ran, done.hooks_failed) == (3, 3)
    assert done.exit_code == ExitCode.OK  # a hook never changes the run's outcome
    assert len(list(out.glob("sub*/*.jpg"))) == 3
    log = (out / ".batchtoon" / "batchtoon.log").read_text()
    assert log.count("killed after 0.2 s") == 3


async def test_try_refuses_off_a_terminal_without_yes_and_pays_nothing(tmp_path: Path) -> None:
    (tmp_path / "me.jpg").write_bytes(photo(seed=3))

    said = await batchtoon("try", "me.jpg", "--sandbox", "--out", "out", cwd=tmp_path)

    assert said.returncode == ExitCode.USAGE
    assert b"pass --yes" in said.stderr and b"Traceback" not in said.stderr
    assert not (tmp_path / "out").exists()


async def test_try_writes_a_contact_sheet_of_every_style_and_journals_them(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "me.jpg").write_bytes(photo(size=(600, 400), seed=3))

    done = await batchtoon("try", "me.jpg", "--sandbox", "--out", "out", "--yes", cwd=tmp_path)

    assert done.returncode == ExitCode.OK, done.stderr.decode()
    sheet, page = tmp_path / "out/try/me.contact.jpg", tmp_path / "out/try/me.try.html"
    assert f"contact sheet: {sheet.relative_to(tmp_path)}".encode() in done.stdout
    with Image.open(sheet) as image:
        assert image.width == 5 * 360 and image.height > 2 * 200  # 10 tiles: 2 rows of 5
    text = page.read_text()
    assert text.count("<img") == 10 and "9 Graceful" not in text and "8 Graceful" in text
    ledger = Journal.replay(tmp_path / "out" / ".batchtoon" / "journal.jsonl").ledger
    downloaded = [e for e in ledger.entries.values() if e.state == "downloaded"]
    assert sorted(e.style for e in downloaded) == list(range(9))


async def test_a_photo_replaced_while_its_first_version_is_in_flight_is_done_in_both(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "booth"
    folder.mkdir()
    shot = folder / "shot.jpg"
    shot.write_bytes(photo(seed=1))
    events = Events()

    async def act() -> None:
        await events.until(lambda: len(events.of("submitted")) == 1)
        shot.write_bytes(photo(seed=2))  # the first version is still with the provider

    done = await watched(
        sandbox, folder, tmp_path / "out", events, act, poll__interval=1.0, watch__settle=0.1
    )

    assert done.exit_code == ExitCode.OK
    assert len(events.of("submitted")) == 2 and len(events.of("done")) == 2
    assert done.photos_found == 1 and done.found == 2


async def test_what_a_run_ends_without_finishing_is_one_left_event_each(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    make_photos(photos, 3)
    events = Events()
    settings = settings_for(sandbox, tmp_path / "out", max_submissions=1, submit__concurrency=1)
    async with Batch(settings, api_key=sandbox.api_key, on_event=events) as batch:
        done = await batch.run([photos])

    assert done.exit_code == ExitCode.BUDGET
    assert len(events.of("submitted")) == 1 and len(events.of("done")) == 1
    left = events.of("left")
    assert len(left) == done.results["left"] == 2
    assert all(event["reason"] and event["output"] is None for event in left)
