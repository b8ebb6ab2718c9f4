"""The output location's record (`locations.provenance`), alone: in a folder, and in a bucket on
moto's S3 server, where a claim is a conditional put."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from test_s3 import S3, s3  # noqa: F401  the moto server fixture

from batchtoon.locations.provenance import Made, Provenance
from batchtoon.locations.storage import Location

PHOTO, OTHER = "a" * 64, "b" * 64

Where = Callable[[], Location]


@pytest.fixture(params=["folder", "bucket"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "folder":
        return tmp_path / "out"
    store: S3 = request.getfixturevalue("s3")
    return f"s3://{store.bucket()}/shared"


def put(out: Location, name: str, data: bytes) -> None:
    if isinstance(out, Path):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    else:
        from batchtoon.locations import storage

        storage.put(f"{out}/{name}", data)


def test_a_name_is_claimed_once_and_the_second_claimant_is_told(out: Location) -> None:
    first, second = Provenance(out, "journal-1"), Provenance(out, "journal-2")
    assert first.claim("IMG_0000.2d", PHOTO, 2) == "mine"
    assert first.claim("IMG_0000.2d", PHOTO, 2) == "mine"  # again, by the same journal
    assert second.claim("IMG_0000.2d", OTHER, 2) == "taken"  # another photo: another name
    assert second.claim("IMG_0000.2d", PHOTO, 3) == "taken"  # another style too
    assert second.claim("IMG_0000.2d", PHOTO, 2) == "elsewhere"  # in hand by another journal


def test_a_users_file_at_a_name_is_never_claimed_unless_the_journal_knows_it(
    out: Location,
) -> None:
    put(out, "mine.2d.png", b"the user's own")
    record = Provenance(out, "journal-1")
    assert record.claim("mine.2d", PHOTO, 2) == "taken"
    assert record.claim("mine.2d", PHOTO, 2, adopt=True) == "mine"


def test_a_recorded_result_is_found_by_any_journal_while_its_file_is_there(
    out: Location,
) -> None:
    first = Provenance(out, "journal-1")
    assert first.claim("x.2d", PHOTO, 2) == "mine"
    put(out, "x.2d.jpg", b"12345")
    first.record(PHOTO, 2, Made("x.2d.jpg", 5, "c" * 64), "in/x.jpg")
    other = Provenance(out, "journal-2")
    assert other.lookup(PHOTO, 2) == Made("x.2d.jpg", 5, "c" * 64)
    assert other.lookup(PHOTO, 3) is None and other.lookup(OTHER, 2) is None
    assert other.is_ours(_at(out, "x.2d.jpg"))
    assert not other.is_ours(_at(out, "x.2d.json")) and not other.is_ours(_at(out, "y.jpg"))
    put(out, "x.2d.jpg", b"123")  # changed since: not the result recorded
    assert other.lookup(PHOTO, 2) is None


def test_a_garbled_record_claims_nothing(tmp_path: Path) -> None:
    names = tmp_path / ".batchtoon" / "names"
    names.mkdir(parents=True)
    (names / "x.2d.json").write_text("not json")
    record = Provenance(tmp_path, "journal-1")
    assert record.claim("x.2d", PHOTO, 2) == "taken"
    assert not record.is_ours(tmp_path / "x.2d.jpg")


def test_a_claim_is_never_made_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    names = tmp_path / "out" / ".batchtoon" / "names"
    names.mkdir(parents=True)
    os.symlink(victim, names / "x.2d.json")
    assert Provenance(tmp_path / "out", "journal-1").claim("x.2d", PHOTO, 2) == "taken"
    assert victim.read_text() == "keep me"


def _at(out: Location, name: str) -> Location:
    return out / name if isinstance(out, Path) else f"{out}/{name}"


def test_a_failed_items_claim_is_let_go_and_only_that(out: Location) -> None:
    first, second = Provenance(out, "journal-1"), Provenance(out, "journal-2")
    assert first.claim("x.2d", PHOTO, 2) == "mine"
    second.release("x.2d", PHOTO, 2)  # not its claim: kept
    assert second.claim("x.2d", PHOTO, 2) == "elsewhere"
    first.release("x.2d", PHOTO, 2)
    assert second.claim("x.2d", PHOTO, 2) == "mine"
    put(out, "x.2d.jpg", b"12345")
    second.record(PHOTO, 2, Made("x.2d.jpg", 5, "c" * 64), "in/x.jpg")
    second.release("x.2d", PHOTO, 2)  # a result is named in it: kept
    assert first.claim("x.2d", PHOTO, 2) == "elsewhere"


def test_a_claim_of_a_journal_gone_from_this_host_is_taken_over(tmp_path: Path) -> None:
    journal = tmp_path / "old.jsonl"
    journal.write_text('{"v":1,"t":1.0,"event":"journal","id":"journal-1"}\n')
    old = Provenance(tmp_path / "out", "journal-1", journal)
    assert old.claim("x.2d", PHOTO, 2) == "mine"
    assert Provenance(tmp_path / "out", "journal-2").claim("x.2d", PHOTO, 2) == "elsewhere"
    journal.unlink()  # the user started afresh
    (tmp_path / "new.jsonl").write_text('{"v":1,"t":2.0,"event":"journal","id":"journal-2"}\n')
    fresh = Provenance(tmp_path / "out", "journal-2", tmp_path / "new.jsonl")
    assert fresh.claim("x.2d", PHOTO, 2) == "mine"
    assert old.claim("x.2d", PHOTO, 2) == "elsewhere"  # (were it still running, it is told)
