"""The output location is the truth (issue 18): real `batchtoon` processes against the sandbox,
writing to a folder and to a bucket on moto's S3 server. Each case asserts the files (nothing
of the user's replaced, nothing outside `--out` touched), the money (accepted submissions
against unique photo x style) and the exit code."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
import yaml
from harness import photo
from test_cli import ROOT
from test_gallery import _data
from test_s3 import S3, echo_sandbox, s3  # noqa: F401  the moto server fixture

from batchtoon.errors import Unwritable
from batchtoon.locations.files import part_name, write_whole
from batchtoon.locations.layout import Layout
from batchtoon.locations.results import Spool, file_spool
from batchtoon.sandbox import Sandbox

PHOTOS = 6


@dataclass
class Site:
    """Where photos and results live: a folder, or a bucket (then `env` points at moto)."""

    root: str  # a folder's path, or s3://bucket
    store: S3 | None = None
    env: dict[str, str] = field(default_factory=dict)

    def at(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def put(self, rel: str, data: bytes) -> None:
        if self.store is None:
            Path(self.at(rel)).parent.mkdir(parents=True, exist_ok=True)
            Path(self.at(rel)).write_bytes(data)
        else:
            bucket = self.root.removeprefix("s3://")
            self.store.client.put_object(Bucket=bucket, Key=rel, Body=data)

    def files(self, prefix: str) -> dict[str, bytes]:
        """Every file below `prefix` (relative to it) but batchtoon's own: its `.batchtoon`
        record and its gallery."""
        if self.store is None:
            top = Path(self.at(prefix))
            found = (p for p in top.rglob("*") if p.is_file() and ".batchtoon" not in p.parts)
            every = {p.relative_to(top).as_posix(): p.read_bytes() for p in found}
            return {rel: data for rel, data in every.items() if rel != "index.html"}
        bucket = self.root.removeprefix("s3://")
        keys = self.store.objects(bucket, f"{prefix}/")
        return {k.removeprefix(f"{prefix}/"): self.store.body(bucket, k) for k in keys}


@pytest.fixture(params=["folder", "bucket"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "folder":
        (tmp_path / "site").mkdir()
        return Site(str(tmp_path / "site"))
    store: S3 = request.getfixturevalue("s3")
    return Site(f"s3://{store.bucket()}", store, store.env)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with echo_sandbox() as running:
        yield running


def camera(site: Site, folder: str, seed: int) -> dict[str, bytes]:
    """`PHOTOS` photos named IMG_0000.jpg... below `folder`: every camera names them alike."""
    taken = {f"IMG_{i:04d}.jpg": photo(seed=seed + i) for i in range(PHOTOS)}
    for name, data in taken.items():
        site.put(f"{folder}/{name}", data)
    return taken


async def run(
    sandbox: Sandbox, site: Site, cwd: Path, source: str, out: str, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "batchtoon", "run", site.at(source), "--out", site.at(out),
        "--style", "2d", "--api-base", sandbox.base_url, "--quiet", "--poll-interval", "0.02",
        "--rate", "300", *extra,
    ]  # fmt: skip
    env = {**os.environ, **site.env, "AILAB_API_KEY": sandbox.api_key}
    return await anyio.run_process(argv, env=env, cwd=cwd, check=False)


def said(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    """Its stderr's lines, but the first line's notice of the API host these tests name."""
    lines = done.stderr.decode().splitlines()
    return [line for line in lines if "(not the default, from flag --api-base)" not in line]


def paid(sandbox: Sandbox) -> tuple[int, int]:
    """(accepted submissions, unique photo x style among them)."""
    accepted = sandbox.counters.accepted
    return sum(accepted.values()), len(accepted)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_two_cameras_into_one_output_never_replace_each_other(
    sandbox: Sandbox, site: Site, tmp_path: Path
) -> None:
    a, b = camera(site, "a", 0), camera(site, "b", 100)
    first = await run(sandbox, site, tmp_path, "a", "out", "--journal", str(tmp_path / "jA"))
    assert first.returncode == 0, first.stderr.decode()
    after_a = site.files("out")
    second = await run(sandbox, site, tmp_path, "b", "out", "--journal", str(tmp_path / "jB"))
    assert second.returncode == 0, second.stderr.decode()
    after_b = site.files("out")
    assert {k: after_b[k] for k in after_a} == after_a  # every one of A's cartoons kept
    # The echo sandbox's result is its photo: each photo's cartoon is there, once.
    assert sorted(map(sha, after_b.values())) == sorted(map(sha, [*a.values(), *b.values()]))
    assert paid(sandbox) == (2 * PHOTOS, 2 * PHOTOS)
    assert site.files("a") == a and site.files("b") == b  # nothing outside --out touched


async def test_two_cameras_into_one_output_at_once_each_get_their_own_files(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "site").mkdir()  # a folder: see the next test about moto's conditional put
    site = Site(str(tmp_path / "site"))
    a, b = camera(site, "a", 0), camera(site, "b", 100)
    codes: list[int] = []

    async def one(camera: str) -> None:
        journal = str(tmp_path / f"j{camera}")
        codes.append(
            (await run(sandbox, site, tmp_path, camera, "out", "--journal", journal)).returncode
        )

    async with anyio.create_task_group() as both:
        for name in ("a", "b"):
            both.start_soon(one, name)
    assert codes == [0, 0]
    found = site.files("out")
    assert sorted(map(sha, found.values())) == sorted(map(sha, [*a.values(), *b.values()]))
    assert paid(sandbox) == (2 * PHOTOS, 2 * PHOTOS)


async def test_a_finished_output_costs_nothing_to_a_new_journal_or_another_machine(
    sandbox: Sandbox, site: Site, tmp_path: Path
) -> None:
    camera(site, "in", 0)
    done = await run(sandbox, site, tmp_path / "m1", "in", "out")
    assert done.returncode == 0, done.stderr.decode()
    before, downloads = site.files("out"), sandbox.counters.downloads
    again = [
        await run(sandbox, site, tmp_path / "m1", "in", "out", "--journal", str(tmp_path / "j2")),
        await run(sandbox, site, tmp_path / "m2", "in", "out"),  # another current folder
    ]
    assert [r.returncode for r in again] == [0, 0], again[1].stderr.decode()
    assert paid(sandbox) == (PHOTOS, PHOTOS)  # nothing paid again
    assert sandbox.counters.downloads == downloads  # nothing downloaded again
    assert site.files("out") == before


async def test_resharding_a_finished_output_pays_nothing(
    sandbox: Sandbox, site: Site, tmp_path: Path
) -> None:
    camera(site, "in", 0)
    for k in range(2):
        done = await run(sandbox, site, tmp_path, "in", "out", "--shard", f"{k}/2",
                         "--journal", str(tmp_path / f"j2-{k}"))  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
    before = site.files("out")
    for k in range(3):
        done = await run(sandbox, site, tmp_path, "in", "out", "--shard", f"{k}/3",
                         "--journal", str(tmp_path / f"j3-{k}"))  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
    assert paid(sandbox) == (PHOTOS, PHOTOS)
    assert site.files("out") == before


async def test_an_output_equal_to_its_source_never_takes_its_results_as_photos(
    sandbox: Sandbox, site: Site, tmp_path: Path
) -> None:
    taken = camera(site, "photos", 0)
    taken["IMG_copy.jpg"] = taken["IMG_0000.jpg"]  # the same photo twice: its result copied
    site.put("photos/IMG_copy.jpg", taken["IMG_copy.jpg"])
    for _ in range(2):
        done = await run(sandbox, site, tmp_path, "photos", "photos")
        assert done.returncode == 0, done.stderr.decode()
    assert paid(sandbox) == (PHOTOS, PHOTOS)
    names = sorted(site.files("photos"))
    assert names == sorted([*taken, *(n.replace(".jpg", ".2d.jpg") for n in taken)])


async def test_a_users_file_at_a_wanted_name_is_kept_and_the_result_named_apart(
    sandbox: Sandbox, site: Site, tmp_path: Path
) -> None:
    taken = camera(site, "in", 0)
    site.put("out/IMG_0000.2d.jpg", b"the user's own")
    done = await run(sandbox, site, tmp_path, "in", "out")
    assert done.returncode == 0, done.stderr.decode()
    found = site.files("out")
    assert found["IMG_0000.2d.jpg"] == b"the user's own"
    sha8 = sha(taken["IMG_0000.jpg"])[:8]
    assert found[f"IMG_0000.2d-{sha8}.jpg"] == taken["IMG_0000.jpg"]
    assert paid(sandbox) == (PHOTOS, PHOTOS) and len(found) == PHOTOS + 1


# A bucket is left out: moto checks `If-None-Match: *` and then puts, not atomically across its
# server's threads (S3 itself decides a conditional put atomically); that a claimed name is
# refused to a second claimant in a bucket is `test_provenance`'s.
async def test_two_processes_given_one_shard_at_once_never_pay_twice(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "site").mkdir()
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    codes: list[int] = []

    async def one(journal: str) -> None:
        done = await run(sandbox, site, tmp_path, "in", "out", "--shard", "0/1",
                         "--journal", str(tmp_path / journal))  # fmt: skip
        codes.append(done.returncode)

    async with anyio.create_task_group() as both:
        for journal in ("j1", "j2"):
            both.start_soon(one, journal)
    # 5: it left to the other what the other had claimed (either may, or both, by timing)
    assert len(codes) == 2 and set(codes) <= {0, 5}
    accepted, unique = paid(sandbox)
    assert accepted == unique == PHOTOS  # each photo paid once, by one of them
    assert len(site.files("out")) == PHOTOS  # one result each
    again = await run(sandbox, site, tmp_path, "in", "out", "--journal", str(tmp_path / "j1"))
    assert again.returncode == 0 and paid(sandbox) == (PHOTOS, PHOTOS)


@pytest.mark.parametrize("how", ["flag", "variable", "config"])
async def test_a_journal_that_is_not_ours_is_refused_with_one_line_and_left_alone(
    sandbox: Sandbox, tmp_path: Path, how: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    profile = home / ".profile"
    profile.write_text("export PATH=$HOME/bin:$PATH\n")
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    extra: tuple[str, ...] = ()
    if how == "flag":
        extra = ("--journal", str(profile))
    elif how == "variable":
        site.env["BATCHTOON_JOURNAL"] = str(profile)
    else:
        (tmp_path / "batchtoon.yaml").write_text(f"journal: {profile}\n")
    done = await run(sandbox, site, tmp_path, "in", "out", *extra)
    assert done.returncode == 2
    [line] = said(done)
    assert (
        line == f"batchtoon: {profile} is not a batchtoon journal (it holds something else): "
        "give --journal a new file name, or an existing journal"
    )
    assert profile.read_text() == "export PATH=$HOME/bin:$PATH\n"
    assert sorted(p.name for p in home.iterdir()) == [".profile"]  # no lock, no log beside it
    assert paid(sandbox) == (0, 0) and not (tmp_path / "site" / "out").exists()


async def test_a_journal_that_is_not_ours_is_refused_before_the_sandbox_starts(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    camera(Site(str(tmp_path / "site")), "in", 0)
    argv = [
        sys.executable, "-m", "batchtoon", "run", str(tmp_path / "site" / "in"), "--sandbox",
        "--out", str(tmp_path / "out"), "--journal", str(notes),
    ]  # fmt: skip
    done = await anyio.run_process(argv, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"batchtoon: {notes} is not a batchtoon journal (it holds something else): "
        "give --journal a new file name, or an existing journal"
    ]
    assert notes.read_text() == "my notes\n" and not (tmp_path / "out").exists()


# Part files.


def test_two_writers_of_one_output_each_write_it_whole(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out", "{dir}/{stem}.{style_name}.{ext}")
    first, second = photo(seed=1), photo(seed=2)
    spools = [Spool(layout.part("x.2d"), in_memory=1) for _ in range(2)]
    for spool, data in zip(spools, (first, second), strict=True):
        spool.write(data)  # both under way at once, each in its own part file
    assert spools[0].part != spools[1].part
    for spool in spools:
        file_spool(spool, ["x.2d"], layout)  # neither fails: no shared part to lose
    assert (tmp_path / "out" / "x.2d.jpg").read_bytes() == second
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.2d.jpg"]


async def test_a_link_planted_where_a_part_file_went_is_left_alone(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    taken = camera(site, "in", 0)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "site" / "out"
    out.mkdir()
    links = [out / ".IMG_0000.2d.jpg.batchtoon-part", out / ".IMG_0000.2d.batchtoon-part"]
    for link in links:
        link.symlink_to(victim)  # the names part files had
    done = await run(sandbox, site, tmp_path, "in", "out")
    assert done.returncode == 0, done.stderr.decode()
    assert victim.read_text() == "keep me" and all(link.is_symlink() for link in links)
    assert (out / "IMG_0000.2d.jpg").read_bytes() == taken["IMG_0000.jpg"]


def test_a_part_file_is_never_created_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    part = tmp_path / ".x.2d.jpg.0123456789ab.batchtoon-part"
    part.symlink_to(victim)
    spool = Spool(part, in_memory=1)
    with pytest.raises(Unwritable, match="a file of that name is in the way"):
        spool.write(photo())
    spool.close()
    assert victim.read_text() == "keep me" and part.is_symlink()


def test_a_whole_write_through_a_planted_link_fails_and_touches_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    part, dest = tmp_path / ".x.jpg.own.batchtoon-part", tmp_path / "x.jpg"
    part.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_whole(dest, b"result", part=part)
    assert victim.read_text() == "keep me" and part.is_symlink() and not dest.exists()


def test_a_part_a_killed_write_left_is_removed_by_its_name_and_a_folder_there_left_alone(
    tmp_path: Path,
) -> None:
    part, dest = tmp_path / ".x.jpg.own.batchtoon-part", tmp_path / "x.jpg"
    part.write_bytes(b"torn")
    other = tmp_path / "other.jpg"
    os.link(part, other)  # a second name for the part's file: it keeps its bytes
    write_whole(dest, b"result", part=part)
    assert dest.read_bytes() == b"result" and not part.exists() and other.read_bytes() == b"torn"
    part.mkdir()
    with pytest.raises(FileExistsError):
        write_whole(dest, b"again", part=part)
    assert part.is_dir() and dest.read_bytes() == b"result"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_part_names_are_each_writes_own_and_a_forked_process_has_its_own(tmp_path: Path) -> None:
    names = {part_name("x.jpg") for _ in range(1000)}
    assert len(names) == 1000 and all(name.startswith(".x.jpg.") for name in names)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # (the child only writes its name and ends, whatever happens)
        try:
            os.write(write, part_name("x.jpg").encode())
        finally:
            os._exit(0)
    os.close(write)
    theirs = os.read(read, 4096).decode()
    os.close(read)
    os.waitpid(child, 0)
    ours = part_name("x.jpg")
    tag = len(".x.jpg.") + 12  # the name up to the end of its tag
    assert theirs.startswith(".x.jpg.") and theirs[:tag] != ours[:tag]  # not only another count


# The gallery, status.


def cards(page: Path) -> list[str]:
    """The photos a gallery page shows, by name."""
    return sorted(card[0] for card in _data(page)["cards"])


async def test_a_page_the_user_wrote_is_kept_and_the_gallery_takes_its_own_name(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    out = tmp_path / "site" / "out"
    out.mkdir()
    (out / "index.html").write_text("<h1>my album</h1>")
    done = await run(sandbox, site, tmp_path, "in", "out")
    assert done.returncode == 0, done.stderr.decode()
    assert (out / "index.html").read_text() == "<h1>my album</h1>"
    assert len(cards(out / "batchtoon-gallery.html")) == PHOTOS
    (out / "batchtoon-gallery.html").write_text("<h1>mine too</h1>")
    again = await run(sandbox, site, tmp_path, "in", "out")  # both names the user's: none
    assert again.returncode == 0
    assert "no gallery written" in again.stderr.decode()
    assert (out / "batchtoon-gallery.html").read_text() == "<h1>mine too</h1>"


async def test_each_shards_gallery_shows_the_whole_output_and_report_takes_a_glob(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    out = tmp_path / "site" / "out"
    for k in range(2):
        done = await run(sandbox, site, tmp_path, "in", "out", "--shard", f"{k}/2",
                         "--journal", str(tmp_path / f"j-{k}.jsonl"))  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        # What the output holds: after the second shard, the first one's photos too.
        assert len(cards(out / "index.html")) == len(site.files("out"))
    assert len(site.files("out")) == PHOTOS
    (out / "index.html").unlink()
    (out / ".batchtoon" / "made").rename(tmp_path / "made")  # the journals alone, now
    report = await anyio.run_process(
        [sys.executable, "-m", "batchtoon", "report", "--out", str(out),
         "--journal", str(tmp_path / "j-*.jsonl")], cwd=tmp_path, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr.decode()
    assert len(cards(out / "index.html")) == PHOTOS


async def test_status_list_without_out_names_the_files_where_they_are(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    done = await run(sandbox, site, tmp_path, "in", "out", "--journal", str(tmp_path / "j"))
    assert done.returncode == 0, done.stderr.decode()
    (tmp_path / "elsewhere").mkdir()
    listed = await anyio.run_process(
        [sys.executable, "-m", "batchtoon", "status", "--journal", str(tmp_path / "j"),
         "--list", "--json"], cwd=tmp_path / "elsewhere", check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr.decode()
    paths = [json.loads(line)["output"] for line in listed.stdout.splitlines()]
    assert len(paths) == PHOTOS and all(Path(p).is_file() for p in paths)


async def test_the_plan_of_a_finished_output_with_a_new_journal_bills_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    done = await run(sandbox, site, tmp_path, "in", "out")
    assert done.returncode == 0, done.stderr.decode()
    planned = await anyio.run_process(
        [sys.executable, "-m", "batchtoon", "plan", site.at("in"), "--out", site.at("out"),
         "--style", "2d", "--journal", str(tmp_path / "new.jsonl"), "--json"],
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr.decode()
    plan = json.loads(planned.stdout)
    assert plan["billable_submissions"] == 0 and plan["already_done"] == PHOTOS


def test_the_kubernetes_example_never_runs_two_pods_of_one_index() -> None:
    job = yaml.safe_load((ROOT / "docs" / "kubernetes-indexed-job.yaml").read_text())
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    assert job["spec"]["backoffLimitPerIndex"] >= 1 and job["spec"]["completionMode"] == "Indexed"


async def test_a_run_started_afresh_after_its_journal_was_removed_finishes_the_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    first = await run(sandbox, site, tmp_path, "in", "out", "--max-submissions", "2")
    assert first.returncode == 4  # the budget: the rest claimed, never paid
    (tmp_path / "site" / "out" / ".batchtoon" / "journal.jsonl").unlink()
    again = await run(sandbox, site, tmp_path, "in", "out")
    assert again.returncode == 0, again.stderr.decode()  # its claims taken over, not left
    assert len(site.files("out")) == PHOTOS and paid(sandbox) == (PHOTOS, PHOTOS)


async def test_a_record_that_cannot_be_written_is_one_line_and_exit_74(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    site = Site(str(tmp_path / "site"))
    camera(site, "in", 0)
    site.put("out/.batchtoon/names", b"a file where the record's folder goes")
    with anyio.fail_after(60):  # never a claim loop that goes on for ever
        done = await run(sandbox, site, tmp_path, "in", "out")
    assert done.returncode == 74
    [line] = said(done)
    assert "cannot make the folder" in line and "names" in line
    assert paid(sandbox) == (0, 0)
