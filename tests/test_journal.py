"""The journal: durable appends, torn tails, the lock, replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchtoon.errors import UsageError
from batchtoon.records.journal import Journal

SHA = "ab" * 32


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_records_are_on_disk_when_write_returns_and_replay_rebuilds_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.open()
    await journal.write("queued", key=f"{SHA}:2", source="a.jpg", output="a.2")
    await journal.write("submitted", key=f"{SHA}:2", task_id="t1")
    assert [r["event"] for r in lines(path)] == ["journal", "queued", "submitted"]  # before close
    journal.close()
    entry = Journal.replay(path).ledger.entries[f"{SHA}:2"]
    assert (entry.state, entry.task_id, entry.style, entry.submissions) == ("submitted", "t1", 2, 1)
    assert all(r["v"] == 1 and isinstance(r["t"], float) for r in lines(path))


async def test_a_torn_last_line_is_dropped_and_appending_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    good = json.dumps({"v": 1, "t": 1.0, "event": "submitted", "key": f"{SHA}:0", "task_id": "x"})
    path.write_text(good + "\n" + '{"v": 1, "t": 2.0, "event": "succ')  # killed mid-write
    journal = Journal(path)
    journal.open()
    assert journal.ledger.entries[f"{SHA}:0"].state == "submitted"
    kind: dict[str, Any] = {"class": "task"}  # a field named by a keyword
    await journal.write("failed", key=f"{SHA}:0", reason="r", **kind)
    journal.close()
    assert [r["event"] for r in lines(path)] == ["submitted", "journal", "failed"]


async def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(
        json.dumps({"v": 1, "t": 1.0, "event": "lost", "key": f"{SHA}:0", "reason": "r"})
    )
    journal = Journal(path)
    journal.open()
    await journal.write("submitted", key=f"{SHA}:0", task_id="y")
    journal.close()
    assert [r["event"] for r in lines(path)] == ["lost", "journal", "submitted"]


def test_a_garbled_line_in_the_middle_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    record = {"v": 1, "t": 1.0, "event": "submitted", "key": f"{SHA}:0", "task_id": "x"}
    path.write_text(json.dumps(record) + "\nnot json\n" + json.dumps(record) + "\n")
    journal = Journal.replay(path)
    assert journal.skipped_lines == 1 and journal.ledger.entries[f"{SHA}:0"].task_id == "x"


def test_a_second_run_on_the_same_journal_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.jsonl")
    first.open()
    try:
        with pytest.raises(UsageError, match=r"in use by another batchtoon run \(pid \d+\)"):
            Journal(tmp_path / "j.jsonl").open()
    finally:
        first.close()
    second = Journal(tmp_path / "j.jsonl")
    second.open()  # the lock went with the first run
    second.close()


@pytest.mark.parametrize(
    "held", [b"my notes\n", b"\x89PNG\r\n\x1a\n....", b"export PATH=$HOME/bin:$PATH\n"]
)
def test_a_file_that_is_not_a_journal_is_refused_and_nothing_is_made_beside_it(
    tmp_path: Path, held: bytes
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(held)
    for use in (lambda: Journal(path).open(), lambda: Journal.replay(path)):
        with pytest.raises(UsageError, match=r"notes.txt is not a batchtoon journal"):
            use()
    assert path.read_bytes() == held
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no lock, no log


def test_an_empty_file_becomes_a_journal_with_an_id_kept_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.touch()
    first = Journal(path)
    first.open()
    first.close()
    again = Journal(path)
    again.open()
    again.close()
    assert len(again.ledger.journal_id) == 32 and again.ledger.journal_id == first.ledger.journal_id
    assert [r["event"] for r in lines(path)] == ["journal"]


async def test_the_key_is_scrubbed_from_values_and_a_short_one_leaves_the_rest_whole(
    tmp_path: Path,
) -> None:
    for key, echoed in (("sk-live-0123456789", "https://x/r?key=sk-live-0123456789"), ("k", "k")):
        path = tmp_path / f"journal-{len(key)}.jsonl"
        journal = Journal(path, secret=key)
        journal.open()
        await journal.write("queued", key=f"{SHA}:2", source="kites/k.jpg", output="kites/k.2")
        await journal.write("submitted", key=f"{SHA}:2", task_id="tk1")
        await journal.write("succeeded", key=f"{SHA}:2", result_url=echoed, expires_at=9e9)
        journal.close()
        if len(key) > 1:
            assert key.encode() not in path.read_bytes()
        values = [v for line in path.read_text().splitlines() for v in json.loads(line).values()]
        assert key not in values
        entry = Journal.replay(path).ledger.entries[f"{SHA}:2"]
        assert (entry.state, entry.task_id, entry.targets) == (
            "succeeded", "tk1", {"kites/k.2": "kites/k.jpg"},
        )  # fmt: skip
        assert entry.result_url in ("https://x/r?key=***", "***")
