"""Compact state, journal compaction, and a resume that does only the work left (issue 22)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tracemalloc
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from harness import journal_records, make_photos, outputs, photo, run_engine
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtoon.locations import layout as layout_module
from batchtoon.locations.layout import Layout, Listed
from batchtoon.records import compact
from batchtoon.records import ledger as ledger_module
from batchtoon.records.compact import MISSING, HashIndex, SortedIndex, key_of
from batchtoon.records.journal import Journal
from batchtoon.records.ledger import DoneItems, Ledger, make_record
from batchtoon.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


KEYS = st.integers(1, 2**64 - 2)  # what `key_of` makes (Python's hash() is never -1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "put", "take out"]), KEYS, st.integers(0, 2**32 - 1)),
        max_size=3000,
    ),
    st.booleans(),
)
def test_a_hash_index_answers_as_a_dict_does(steps: list[tuple[str, int, int]], near: bool) -> None:
    index, expected = HashIndex(capacity=16), {}
    for what, key, value in steps:
        key = key % 64 + 1 if near else key  # near: keys that collide, markers on the way
        if what == "put":
            assert index.put(key, value) == (key not in expected)
            expected[key] = value
        else:
            assert index.take_out(key) == (expected.pop(key, None) is not None)
    assert len(index) == len(expected)
    assert all(index.get(key) == value for key, value in expected.items())
    assert dict(index.items()) == expected
    assert index.get(key_of("never put")) in (MISSING, expected.get(key_of("never put")))


def test_a_hash_index_of_keys_taken_out_as_they_come_stays_small() -> None:
    index = HashIndex(capacity=16)
    for key in range(1, 100_001):
        index.put(key * 0x9E3779B97F4A7C15 % 2**64 or 1, 0)
        if key > 10:
            index.take_out((key - 10) * 0x9E3779B97F4A7C15 % 2**64 or 1)
    assert len(index) == 10
    assert "of 64>" in repr(index) or "of 32>" in repr(index), repr(index)


def _spread(key: int) -> int:
    return key if key % 2 else key * 0x9E3779B97F4A7C15 % 2**64 or 1


@settings(max_examples=60, deadline=None)
@given(
    # Keys appended between lookups: small numbers, and hashes spread over 64 bits.
    st.lists(st.lists(st.integers(1, 40).map(_spread), max_size=30), max_size=8),
    st.integers(1, 20),
)
def test_a_sorted_index_finds_the_last_position_of_a_key_and_says_what_it_shadows(
    batches: list[list[int]], bulk: int
) -> None:
    keys, last, shadowed, told = array("Q"), dict[int, int](), set[int](), set[int]()
    index = SortedIndex(keys)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compact, "BULK", bulk)  # both ways: one by one, and sorted in bulk
        for batch in batches:
            for key in batch:
                if key in last:
                    shadowed.add(last[key])
                last[key] = len(keys)
                keys.append(key)
            told.update(index.catch_up())  # (told again after a sort: the owner lets go once)
            assert all(index.get(key) == position for key, position in last.items())
            assert index.get(41) == MISSING
            assert told == shadowed  # every shadowed position, and no other


def done_item(index: int, folder: str) -> dict[str, Any]:
    key = f"{index:064x}:3"
    base, source = f"{folder}/photo{index:07d}-3", f"{folder}/photo{index:07d}.jpg"
    return make_record(
        "item", 0.0, key=key, state="downloaded", targets=[[base, source, index + 1]],
        ext="jpg", written=1, subs=1,
    )  # fmt: skip


def test_a_replayed_item_done_leaves_its_names_to_its_row() -> None:
    ledger = Ledger()
    for index in range(2_000):
        record = done_item(index, "in")
        base, source, _ = record["targets"][0]
        queued = make_record("queued", 0.0, key=record["key"], source=source, output=base)
        ledger.apply(queued, index * 400)
        assert len(ledger.claims) == 1
        ledger.apply(record, index * 400 + 200)
        assert len(ledger.claims) == 0
    assert ledger.taken_by_other("in/photo0001999-3", "in/another.jpg", 3)
    assert not ledger.taken_by_other("in/photo0001999-3", "in/photo0001999.jpg", 3)
    assert not ledger.taken_by_other("in/photo0002000-3", "in/another.jpg", 3)


def test_a_runs_own_done_targets_are_not_indexed_for_its_walk() -> None:
    ledger = Ledger()
    for index in range(1_000):
        ledger.apply(done_item(index, "in"), index * 200)
    ledger.done.only_targets_now()
    for index in range(1_000, 2_000):  # the run's own
        ledger.apply(done_item(index, "in"), index * 200)
    earlier = ledger.done.target("in/photo0000999.jpg", 3)
    assert earlier is not None and earlier.offset == 999 * 200
    assert ledger.done.target("in/photo0001000.jpg", 3) is None
    assert ledger.done.claimant("in/photo0001000-3") != MISSING  # its names are still its own
    assert ledger.knows(f"{1_000:064x}:3")


def ledger_bytes(count: int, folder: str) -> float:
    """Bytes a done item holds in a ledger (Python's allocations, after replaying `count`)."""
    records = [done_item(i, folder) for i in range(count)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ledger = Ledger()
        for offset, record in enumerate(records):
            ledger.apply(record, offset * 200)
        last = records[-1]["targets"][0]
        target = ledger.done.target(last[1], 3)  # (indexes built)
        assert target is not None and (target.seen, target.offset) == (count, (count - 1) * 200)
        assert ledger.taken_by_other(last[0], "another.jpg", 3)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ledger.counts()["downloaded"] == count
    return held / count


def test_a_done_item_costs_about_seventy_bytes_whatever_its_paths() -> None:
    short = ledger_bytes(20_000, "p")
    long = ledger_bytes(20_000, "photos/" + "a-long-folder-name/" * 12)
    assert short <= 80, short  # (its indexes' share: 4 bytes a slot, 1.25 to 2.5 slots)
    assert abs(long - short) <= 4, (short, long)  # nothing of the paths is kept


async def test_a_run_ends_with_one_record_an_item_and_a_resume_pays_nothing(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # photos named as a person names them: in/sub0/photo0000.jpg
    photos = make_photos(Path("in"), 24)
    out = Path("out")
    first = await run_engine(sandbox, [Path("in")], out, styles=(0, 3))
    assert first.stats.tally.results["done now"] == 48
    assert len(first.machine.ledger.claims) == 0  # a done item's row answers for its names
    records = journal_records(out)
    assert [r["event"] for r in records[:3]] == ["journal", "totals", "folders"]
    assert sorted(r["event"] for r in records[3:]) == ["item"] * 48
    assert all(r["state"] == "downloaded" for r in records[3:])
    lines = (out / ".batchtoon" / "journal.jsonl").read_bytes().splitlines(keepends=True)
    per_item = sum(map(len, lines[3:])) / 48  # (the three first are once a journal)
    assert per_item <= 250, per_item
    files = {path: path.stat().st_mtime_ns for path in outputs(out)}
    paid = sandbox.counters.accepted_total
    again = await run_engine(sandbox, [Path("in")], out, styles=(0, 3))
    assert sandbox.counters.accepted_total == paid == 48
    assert again.stats.tally.results["already done"] == 48
    assert again.stats.tally.photos["already done"] == len(photos)
    assert {path: path.stat().st_mtime_ns for path in outputs(out)} == files


@contextmanager
def files_opened() -> Iterator[list[str]]:
    """The paths the process opens meanwhile (an audit hook: hooks cannot be removed, so this
    one goes quiet after)."""
    opened: list[str] = []
    watching = [True]

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if watching[0] and event == "open" and isinstance(args[0], str | Path):
            opened.append(os.fspath(args[0]))

    sys.addaudithook(audit)
    try:
        yield opened
    finally:
        watching[0] = False


@pytest.mark.parametrize("given", ["folder", "manifest"])
async def test_a_finished_batch_resumes_without_reading_a_photo(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Whatever the form of the photos' paths, and for a photo whose results were named apart
    from a namesake's (`photo0000.png` beside `photo0000.jpg`): the resume finds every one
    unchanged, opens none, and counts a photo listed twice once."""
    monkeypatch.chdir(tmp_path)
    photos = make_photos(Path("in"), 12)
    namesake = Path("in/sub0/photo0000.png")
    namesake.write_bytes(photo(seed=99, fmt="PNG"))
    photos.append(namesake)
    sources = [Path("in")]
    if given == "manifest":  # plain, `./`, absolute; one photo twice
        paths = [*map(str, photos[:5]), *(f"./{p}" for p in photos[5:9])]
        paths += [str(p.absolute()) for p in photos[9:]] + [str(photos[0])]
        sources = [Path("photos.jsonl")]
        sources[0].write_text("".join(json.dumps({"path": p}) + "\n" for p in paths))
    out = Path("out")
    await run_engine(sandbox, sources, out, styles=(0, 3))
    with files_opened() as opened:
        again = await run_engine(sandbox, sources, out, styles=(0, 3))
    assert again.stats.tally.results == {"already done": 26}
    assert again.stats.tally.photos == {"already done": 13}
    read = {os.path.realpath(path) for path in opened}
    assert not read & {os.path.realpath(photo) for photo in photos}


@pytest.mark.parametrize("given", ["folder", "manifest"])
async def test_a_shards_resume_knows_its_own_photos_and_meets_no_other(
    sandbox: Sandbox, tmp_path: Path, given: str
) -> None:
    """`--shard 0/2` twice: the resume takes as done exactly the photos the first run did, and
    opens none of the other shard's either."""
    photos = make_photos(tmp_path / "in", 16)
    sources = [tmp_path / "in"]
    if given == "manifest":
        sources = [tmp_path / "photos.jsonl"]
        lines = (json.dumps({"path": str(p.relative_to(tmp_path))}) + "\n" for p in photos)
        sources[0].write_text("".join(lines))
    out = tmp_path / "out"
    first = await run_engine(sandbox, sources, out, styles=(3,), sources__shard="0/2")
    mine = first.stats.tally.results["done now"]
    assert 0 < mine < 16  # (a shard of its own: some photos, not all)
    with files_opened() as opened:
        again = await run_engine(sandbox, sources, out, styles=(3,), sources__shard="0/2")
    assert again.stats.tally.results == {"already done": mine}
    assert sandbox.counters.accepted_total == mine
    assert not {os.path.realpath(path) for path in opened} & {
        os.path.realpath(photo) for photo in photos
    }


async def test_a_changed_photo_and_a_deleted_result_are_still_found(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    photos = make_photos(tmp_path / "in", 10)
    out = tmp_path / "out"
    await run_engine(sandbox, [tmp_path / "in"], out, styles=(3,))
    paid = sandbox.counters.accepted_total
    made = outputs(out)
    made[0].unlink()  # a result deleted: made again (the photo is unchanged, read again)
    changed = photos[5]
    stat = changed.stat()
    same_size = bytearray(changed.read_bytes())
    same_size[-3] ^= 0x01  # new content, same size, same modification time: a new photo
    changed.write_bytes(bytes(same_size))
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = await run_engine(sandbox, [tmp_path / "in"], out, styles=(3,))
    assert made[0].is_file()
    assert again.stats.tally.results["already done"] == 8
    assert sandbox.counters.accepted_total == paid + 2  # the deleted result, the new photo


CRASH = """
import os, signal, sys
from pathlib import Path
from batchtoon.records import journal as module

path, point = Path(sys.argv[1]), sys.argv[2]
def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)
def dying_at(call, function):
    calls = [0]
    def dying(*args):
        calls[0] += 1
        if calls[0] == call:
            die()
        return function(*args)
    return dying
journal = module.Journal(path)
journal.open()  # an old journal: compacted here, items in hand written whole
if point == "writing":  # half way through writing the new file
    module._encode = dying_at(40, module._encode)
elif point == "copying":  # half way through copying the records of done items
    module.Journal._line_at = dying_at(150, module.Journal._line_at)
elif point == "renaming":
    module.os.replace = die
elif point == "renamed":
    module._sync_folder = die
journal.compact()  # (again: now the done items are rows, their records copied)
"""


def old_journal(path: Path, items: int) -> None:
    """A journal as batchtoon wrote them before compaction: four records an item."""
    lines = [make_record("journal", 0.0, id="a" * 32)]
    for i in range(items):
        key, source, base = f"{i:064x}:3", f"in/p{i}.jpg", f"p{i}-3"
        lines += [
            make_record("queued", 1.0, key=key, source=source, output=base),
            make_record("submitted", 2.0, key=key, sources=[source], task_id=f"t{i}", sent=9),
            make_record(
                "succeeded", 3.0, key=key, sources=[source], result_url="u", expires_at=9e9
            ),
        ]
        if i % 5:  # four in five done; the rest wait on their result
            output = f"out/{base}.jpg"
            lines.append(
                make_record(
                    "downloaded", 4.0, key=key, source=source, output=output, size=5, sha256=SHA
                )
            )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def state(path: Path) -> tuple[Any, ...]:
    ledger = Journal.replay(path).ledger
    entries = sorted(
        (e.key, e.state, sorted(e.targets.items()), e.task_id, e.result_url, e.submissions)
        for e in ledger.entries.values()
    )
    return entries, ledger.counts(), ledger.uploads.sent, ledger.journal_id, ledger.out


def test_a_sigkill_during_compaction_loses_nothing(tmp_path: Path) -> None:
    for point in ("writing", "copying", "renaming", "renamed", "none"):
        path = tmp_path / point / "journal.jsonl"
        path.parent.mkdir()
        old_journal(path, 400)  # 1,520 lines for 400 items: compacted on opening
        before = state(path)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", CRASH, str(path), point], env=env, timeout=60, check=False
        )
        assert done.returncode == (0 if point == "none" else -signal.SIGKILL), point
        assert state(path) == before, point
        journal = Journal(path)
        journal.open()  # what a crash left is compacted (again), and its leftovers gone
        journal.close()
        assert state(path) == before, point
        assert sorted(p.name for p in path.parent.iterdir()) == [
            "journal.jsonl",
            "journal.jsonl.lock",
        ], point
        assert len(path.read_text().splitlines()) == 3 + 400, point


def test_a_done_item_record_of_another_shape_is_skipped_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good, bad = done_item(1, "in"), done_item(2, "in")
    bad["targets"].append(["in/second-3", "in/second.jpg", "not a number"])
    path.write_text(
        "".join(json.dumps(record) + "\n" for record in (good, bad, done_item(3, "in")))
    )
    journal = Journal.replay(path)
    assert journal.skipped_lines == 1
    done = journal.ledger.done
    assert done.count == 2 and len(done.target_keys) == len(done.target_seen) == 2
    assert [entry.key for entry in journal.ledger.entries.values()] == [good["key"], f"{3:064x}:3"]


def test_the_distinct_sources_of_done_items_are_the_same_counted_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = [Ledger().done, Ledger().done]
    for table, numbers in zip(tables, ([1, 2, 2, 3], [3, 4]), strict=True):
        for row, number in enumerate(numbers):
            table.add(f"{row}{number:063x}:0", row, 0, [[f"b{row}", f"in/{number}.jpg", 1]], "jpg")
    small = DoneItems.distinct_sources(tables).difference({key_of("in/4.jpg")})
    monkeypatch.setattr(ledger_module, "BIG", 1)  # as for a million: numpy's
    big = DoneItems.distinct_sources(tables).difference({key_of("in/4.jpg")})
    assert len(small) == len(big) == 3


def test_a_folder_planted_at_the_compactions_name_is_left_and_the_journal_still_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    old_journal(path, 400)  # compacted on opening: but its file's name is taken
    before = state(path)
    planted = tmp_path / ".journal.jsonl.compacting"
    planted.mkdir()
    (planted / "mine.txt").write_text("mine")
    journal = Journal(path)
    journal.open()  # the journal as it was: whole, only longer
    journal.close()
    assert state(path) == before
    assert (planted / "mine.txt").read_text() == "mine"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "a", "a/b", "c"]), st.integers(0, 5)), max_size=40))
def test_a_walks_listing_of_results_answers_as_asking_each_file_does(
    tmp_path_factory: pytest.TempPathFactory, asked: list[tuple[str, int]]
) -> None:
    """`Listed` (one folder's names at a time, each folder listed once, a big one not at all)
    says of every result what a `stat` of it says, in any order of asking."""
    out = tmp_path_factory.mktemp("out")
    for folder in ("", "a", "a/b", "c"):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for n in (0, 2, 4):
            (out / folder / f"r{n}.jpg").touch()
    (out / "c" / "r1.jpg").mkdir()  # not a file
    (out / "a" / "r1.jpg").symlink_to(out / "a" / "r0.jpg")  # a link to one: as `isfile` says
    layout = Layout(out, "{dir}/{stem}.{ext}")
    for most in (2, layout_module.MOST_LISTED):  # (2: every folder too big to list)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(layout_module, "MOST_LISTED", most)
            listed = Listed(layout)
            for folder, n in asked:
                base = f"{folder}/r{n}" if folder else f"r{n}"
                there = (out / f"{base}.jpg").is_file()
                assert listed.has(base, "jpg") == layout.has(base, "jpg") == there


def test_compaction_holds_a_few_bytes_a_done_item_whatever_their_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compacting a run's journal at its end is the run's peak: it must not hold an object
    per done item while it copies them."""
    monkeypatch.setattr(ledger_module, "BIG", 1)  # the rows ordered as from 100,000: numpy's
    count = 20_000
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(done_item(i, "in")) + "\n" for i in range(count)))
    journal = Journal(path)
    journal.open()
    try:
        for _ in journal.ledger.done.located():  # (what the ledger builds once, built)
            pass
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            journal.compact()
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert journal.ledger.counts()["downloaded"] == count
    finally:
        journal.close()
    assert peak / count <= 40, peak / count
    assert len(path.read_text().splitlines()) == 3 + count


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), max_size=60, unique_by=lambda t: t[0])
)
def test_done_rows_are_given_in_journal_order_however_they_were_made(
    rows: list[tuple[int, bool]],
) -> None:
    """Rows made in journal order (a run's, a replay's) or not (whatever order a caller folds
    records in), some let go: `located` gives the rows that speak, by offset, whether it sorts
    them (by Python, by numpy for a big table) or finds them in order already."""
    for order in (sorted(rows), rows):
        done = Ledger().done
        for number, (offset, _) in enumerate(order):
            done.add(f"{number:064x}:0", offset, 0, [[f"b{number}", f"in/{number}.jpg", 1]], "jpg")
        for number, (_, dropped) in enumerate(order):
            if dropped:
                done.drop(f"{number:064x}:0")
        wanted = sorted((offset, row) for row, (offset, dropped) in enumerate(order) if not dropped)
        for big in (1, ledger_module.BIG):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(ledger_module, "BIG", big)
                assert [(offset, row) for row, offset in done.located()] == wanted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6), st.integers(1, 3)), max_size=60))
def test_the_files_written_are_those_of_the_rows_that_speak_for_their_item(
    steps: list[tuple[bool, int, int]],
) -> None:
    """Items made again (the later row shadows the earlier) and dropped, in any order: the
    count kept as rows change is that of each item's last row, of the items not dropped."""
    done, model = Ledger().done, {}
    for offset, (add, item, files) in enumerate(steps):
        key = f"{item:064x}:0"
        if add:
            targets = [[f"out/{item}-{n}", f"in/{item}-{n}.jpg", 1] for n in range(files)]
            done.add(key, offset, 0, targets, "jpg")
            model[item] = files
        else:
            done.drop(key)
            model.pop(item, None)
    assert done.files_written() == sum(model.values())
    assert done.count == len(model)
