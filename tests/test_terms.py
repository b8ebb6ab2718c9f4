"""One set of terms everywhere: the run's summary (text and `--json`), `status` (text and
`--json`), the gallery's header and filters, and the plan read one journal, and say the same
numbers; while a run goes on, `status` shows the run's own numbers; the ETA comes from the
work left."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import make_photos, photo
from test_cli import batchtoon, clean_env

from batchtoon.batch import Snapshot
from batchtoon.cli.live import LiveFile, live_path, read_live
from batchtoon.sandbox import Sandbox

pytestmark = pytest.mark.usefixtures("no_outside_settings")

# What each vocabulary's term is in the journal's four states (status's and the gallery's).
STATE_OF = {
    "already_done": "done", "done_now": "done", "failed": "failed",
    "failed_earlier": "failed", "refused": "refused", "refused_earlier": "refused",
    "left": "pending",
    # the plan's, in the future tense
    "to_submit": "pending", "to_submit_again": "pending", "duplicates": "pending",
    "in_progress": "pending",
}  # fmt: skip
STATES = ("done", "failed", "refused", "pending")


def in_states(terms: dict[str, int]) -> dict[str, int]:
    found = dict.fromkeys(STATES, 0)
    for term, n in terms.items():
        found[STATE_OF[term]] += n
    return found


def gallery_header(page: Path) -> dict[str, int]:
    text = page.read_text(encoding="utf-8")
    data = re.search(r'id="gallery-data">(.*?)</script>', text, re.S)
    assert data is not None
    packed: dict[str, Any] = json.loads(data[1])
    return {label: number for label, number in packed["counts"]}


async def test_one_journal_read_by_every_view_gives_the_same_numbers(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    make_photos(photos, 5)
    (photos / "tiny.jpg").write_bytes(photo((200, 150)))  # refused in both styles
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        common = ["--out", str(out), "--api-base", sandbox.base_url, "--style", "0,2"]
        common += ["--rate", "500", "--poll-interval", "0.02"]
        sandbox.inject("submit", 422, "ERROR_NO_FACE_IN_FILE")  # one result fails
        first = await batchtoon("run", str(photos), *common, "-q", key=sandbox.api_key)
        assert first.returncode == 1, first.stderr
        again = await batchtoon("run", str(photos), *common, "--json", key=sandbox.api_key)
        planned = await batchtoon("plan", str(photos), *common, "--json", key=sandbox.api_key)
        said = await batchtoon("run", str(photos), *common, key=sandbox.api_key)
        plan_text = await batchtoon("plan", str(photos), *common, key=sandbox.api_key)
    status = await batchtoon("status", "--out", str(out), "--json")
    status_text = (await batchtoon("status", "--out", str(out))).stdout.decode()
    summary = json.loads(again.stdout)
    plan = json.loads(planned.stdout)
    journal = json.loads(status.stdout)
    header = gallery_header(out / "index.html")

    expected = {"done": 9, "failed": 1, "refused": 2, "pending": 0}  # 6 photos x 2 styles
    table = {
        "run --json (the resume)": in_states(summary["results"]),
        "plan --json": in_states(plan["counts"]),
        "status --json": journal["results"],
        "gallery header": {state: header[state] for state in STATES},
    }
    for view, numbers in table.items():
        assert numbers == expected, view
    assert summary["found"] == plan["results"] == header["results"] == sum(expected.values())
    assert summary["photos_found"] == sum(journal["photos"].values()) == header["photos"] == 6
    assert "results: 12 = 9 done + 1 failed + 2 refused" in status_text
    # the same, in the text of the run's summary and of the plan (their terms, summed as above)
    assert "results: 12 found = 9 already done + 1 failed earlier + 2 refused earlier" in (
        said.stdout.decode()
    )
    assert "results: 12 found = 9 already done + 1 failed earlier + 2 refused earlier" in (
        plan_text.stdout.decode()
    )
    assert "photos:  6 = 4 done + 1 failed + 1 refused" in status_text
    # the gallery's filters count the same cells: its chips are drawn from the same data
    assert header["photos"] == 6 and header["results"] == 12


def test_the_eta_comes_from_the_submissions_left_and_the_tick() -> None:
    resumed = Snapshot(
        expected=100, found=100, settled=60, done=60, news=0, submitted=0, elapsed=1.0,
        submit_rate=2.0, max_submit_rate=2.0, slowed=False, uploaded_bytes=0, upload_rate=0.0,
        done_now=0, to_submit=40, tick=5.0,
    )  # fmt: skip
    # 60 results already done settle in a second; 40 submissions at 2/s remain, then a tick
    assert resumed.eta == 40 / 2 + 5
    assert resumed.pending == 40 and resumed.per_minute == 0
    waiting = Snapshot(
        expected=10, found=10, settled=6, done=6, news=0, submitted=10, elapsed=10.0,
        submit_rate=2.0, max_submit_rate=2.0, slowed=False, uploaded_bytes=0, upload_rate=0.0,
        done_now=6, to_submit=0, tick=5.0,
    )  # fmt: skip
    assert waiting.eta == 5.0  # all submitted: a tick for the last results
    assert waiting.per_minute == 36.0


async def test_status_during_a_run_shows_the_runs_own_total_pending_and_rate(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 30)
    out = tmp_path / "out"
    journal = out / ".batchtoon" / "journal.jsonl"
    argv = ["run", str(tmp_path / "in"), "--sandbox", "--out", str(out), "--rate", "4"]
    argv += ["--stats-interval", "1", "--no-report"]
    lines: list[str] = []
    async with await anyio.open_process(
        [sys.executable, "-m", "batchtoon", *argv], env=clean_env(), cwd=tmp_path
    ) as process:
        assert process.stderr is not None
        buffered = b""
        with anyio.fail_after(60):
            async for chunk in process.stderr:
                buffered += chunk
                *whole, buffered = buffered.split(b"\n")
                lines += [line.decode() for line in whole]
                if any(re.match(r"batchtoon: \d+/30 results", line) for line in lines):
                    break  # the run says where it is: ask status now, while it runs
            seen = await batchtoon("status", "--out", str(out), "--json", cwd=tmp_path)
            text = await batchtoon("status", "--out", str(out), cwd=tmp_path)
            second = await batchtoon(*argv, cwd=tmp_path)  # finds the journal in the run's hands
            assert second.returncode != 0 and b"in use" in second.stderr, second.stderr
            assert live_path(journal).exists()  # the running run's file, left alone
            async for chunk in process.stderr:
                lines += chunk.decode().splitlines()
        await process.wait()
    running = json.loads(seen.stdout)["running"]
    assert len(running) == 1, seen.stdout
    live = running[0]
    assert live["found"] == 30 and live["pending"] == 30 - live["settled"]
    assert live["eta_s"] is not None and live["eta_s"] > 0
    shown = text.stdout.decode().splitlines()[0]
    assert re.match(r"running: \d+/30 results \(\d+%\), \d+ done, \d+ pending, ", shown), shown
    assert process.returncode == 0
    after = json.loads((await batchtoon("status", "--out", str(out), "--json")).stdout)
    assert after["running"] == []  # the run is over: its numbers are not shown as a run's
    assert not live_path(journal).exists()  # removed by the run, as it ended


def test_status_never_shows_less_than_the_line_the_run_shows(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    seen_by_status: list[Snapshot | None] = []
    show = LiveFile(live_path(journal), then=lambda _: seen_by_status.append(read_live(journal)))
    start = Snapshot(
        expected=30, found=0, settled=0, done=0, news=0, submitted=0, elapsed=0.0,
        submit_rate=4.0, max_submit_rate=4.0, slowed=False, uploaded_bytes=0, upload_rate=0.0,
    )  # fmt: skip
    shown = [  # a quarter of a second apart, as a run hands them
        dataclasses.replace(start, found=n, settled=n // 2, done=n // 2, submitted=n, elapsed=n / 4)
        for n in range(5)
    ]
    for snapshot in shown:
        show(snapshot)  # the run's line shows it: status, asked now, shows the same
    assert seen_by_status == shown


def test_a_live_file_a_killed_run_left_is_not_a_run_once_its_pid_is_another_process(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.jsonl"
    shown = Snapshot(
        expected=30, found=3, settled=1, done=1, news=0, submitted=3, elapsed=1.0,
        submit_rate=4.0, max_submit_rate=4.0, slowed=False, uploaded_bytes=0, upload_rate=0.0,
    )  # fmt: skip
    LiveFile(live_path(journal))(shown)  # written by this process, alive: a run
    assert read_live(journal) == shown
    data = json.loads(live_path(journal).read_bytes())
    assert isinstance(data["started"], int)  # (Linux: /proc tells a process's start time)
    # Its pid is now another process's (here: this one's, restarted; in a container: pid 1)
    data["started"] -= 1
    live_path(journal).write_text(json.dumps(data))
    assert read_live(journal) is None
    del data["started"]  # a file of a build before start times: the pid alone says
    live_path(journal).write_text(json.dumps(data))
    assert read_live(journal) == shown


def test_a_result_this_run_wrote_before_reaching_its_photo_is_done_now_not_already_done() -> None:
    from batchtoon.pipeline.stats import Tally
    from batchtoon.records.compact import key_of

    for found in ("one by one", "unchanged"):
        tally = Tally()
        # a resume: an earlier run's task finishes, and its file is written, before the
        # producer reaches the photo
        tally.end("sha:0", "done now", files=1)
        assert tally.also_finished == 1
        keys = key_of("sha:0"), key_of("sha:2")  # its other style was done by an earlier run
        if found == "unchanged":  # reached now, neither read nor hashed: its outputs are there
            assert tally.unchanged([("a.jpg", keys)]) == 2
        else:  # reached now: its output is there, written by this run
            tally.photo("a.jpg", 2)
            for key in keys:
                tally.found_done(key, "a.jpg")
        assert dict(tally.results) == {"done now": 1, "already done": 1}
        assert tally.also_finished == 0  # not counted twice
        assert dict(tally.photos) == {"done now": 1}  # the worst of its styles' terms
