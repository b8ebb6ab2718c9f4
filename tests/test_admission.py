"""One admission: for every state the journal can hold, and for the same photo found twice, the
plan and the run judge alike (the same intake and state machine) — the plan's verdicts are the
run's, and its billable count is the run's number of submissions."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import photo, run_engine, settings_for
from helpers import client_for, wait_done

from batchtoon.pipeline.planner import make_plan
from batchtoon.records.journal import Journal
from batchtoon.sandbox import Sandbox

DATA = photo(seed=11)
KEY = f"{hashlib.sha256(DATA).hexdigest()}:0"
DAY = 86_400.0


@dataclass
class World:
    sandbox: Sandbox
    folder: Path
    out: Path
    sources: list[Path]

    def journal(self, *records: dict[str, Any]) -> None:
        """Write these records as an earlier run would have, about `a.jpg`."""
        path = self.out / ".batchtoon" / "journal.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        about = {"key": KEY, "source": str(self.folder / "a.jpg")}
        lines = [{"v": 1, "t": time.time(), **about, **record} for record in records]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def output(self, name: str = "a.vintage-comic.jpg") -> None:
        (self.out / name).write_bytes(DATA)

    async def task(self, *, finish: bool) -> tuple[str, str]:
        """A real task of the sandbox's for this photo: (task id, result URL once finished)."""
        async with client_for(self.sandbox) as client:
            task_id = (await client.submit(DATA, 0)).task_id
            url = (await wait_done(client, task_id)).result_url if finish else ""
        return task_id, url


def queued() -> dict[str, Any]:
    return {"event": "queued", "output": "a.vintage-comic"}


def downloaded() -> dict[str, Any]:
    return {"event": "downloaded", "output": "a.vintage-comic.jpg", "size": 1, "sha256": ""}


async def nothing(world: World) -> None:
    pass


async def was_queued(world: World) -> None:
    world.journal(queued())


async def failed(world: World) -> None:
    world.journal(queued(), {"event": "failed", "class": "task", "reason": "PROCESS_FAILED"})


async def submitted(world: World) -> None:
    task_id, _ = await world.task(finish=False)
    world.journal(queued(), {"event": "submitted", "task_id": task_id})


async def submitted_long_ago(world: World) -> None:
    world.journal(queued(), {"event": "submitted", "task_id": "old", "t": time.time() - 2 * DAY})


async def succeeded(world: World) -> None:
    task_id, url = await world.task(finish=True)
    done = {"event": "succeeded", "result_url": url, "expires_at": time.time() + DAY}
    world.journal(queued(), {"event": "submitted", "task_id": task_id}, done)


async def succeeded_expired(world: World) -> None:
    task_id, url = await world.task(finish=True)
    done = {"event": "succeeded", "result_url": url, "expires_at": time.time() - 1}
    world.journal(queued(), {"event": "submitted", "task_id": task_id}, done)


async def done(world: World) -> None:
    world.journal(queued(), {"event": "submitted", "task_id": "x"}, downloaded())
    world.output()


async def done_then_deleted(world: World) -> None:
    world.journal(queued(), {"event": "submitted", "task_id": "x"}, downloaded())


async def done_and_copied(world: World) -> None:
    await done(world)
    (world.folder / "copy.jpg").write_bytes(DATA)  # a new file with the same content


async def copied_twice_new(world: World) -> None:
    (world.folder / "copy.jpg").write_bytes(DATA)  # two new files, one content


async def given_twice(world: World) -> None:
    world.sources.append(world.folder / "a.jpg")  # `plan dir dir/a.jpg`: the file is taken once


async def done_given_twice(world: World) -> None:
    await done(world)
    await given_twice(world)


async def submitted_long_ago_given_twice(world: World) -> None:
    await submitted_long_ago(world)
    await given_twice(world)


async def not_an_image_beside(world: World) -> None:
    (world.folder / "notes.jpg").write_bytes(b"not an image")


Setup = Callable[[World], Awaitable[None]]
CASES: list[tuple[str, Setup, bool, Counter[str]]] = [
    ("new", nothing, False, Counter(submit=1)),
    ("queued", was_queued, False, Counter(submit=1)),
    ("failed", failed, False, Counter(failed=1)),
    ("failed, --retry-failed", failed, True, Counter(submit=1)),
    ("submitted", submitted, False, Counter(poll=1)),
    ("submitted two days ago", submitted_long_ago, False, Counter(resubmit=1)),
    ("succeeded", succeeded, False, Counter(download=1)),
    ("succeeded, URL expired", succeeded_expired, False, Counter(resubmit=1)),
    ("done", done, False, Counter(done=1)),
    ("done, file deleted", done_then_deleted, False, Counter(resubmit=1)),
    ("done, and a copy of the photo added", done_and_copied, False, Counter(done=1, copy=1)),
    ("two new files, one content", copied_twice_new, False, Counter(submit=1, duplicate=1)),
    ("the same file given twice", given_twice, False, Counter(submit=1)),
    ("done, and given twice", done_given_twice, False, Counter(done=1)),
    ("submitted long ago, given twice", submitted_long_ago_given_twice, False, Counter(resubmit=1)),
    ("a file that is not an image", not_an_image_beside, False, Counter(submit=1, refused=1)),
]


@pytest.mark.parametrize(("setup", "retry_failed", "verdicts"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
async def test_the_plan_and_the_run_agree(
    tmp_path: Path, setup: Setup, retry_failed: bool, verdicts: Counter[str]
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(DATA)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        world = World(sandbox, folder, out, [folder])
        out.mkdir()
        await setup(world)
        settings = settings_for(sandbox, out)
        path = settings.journal_path
        ledger = Journal.replay(path).ledger if path.exists() else Journal(path).ledger
        plan = await make_plan(settings, [*world.sources], ledger, retry_failed=retry_failed)
        assert plan.verdicts == verdicts
        assert plan.photos == sum(verdicts.values())  # one style: a photo a verdict
        before = sandbox.counters.accepted_total
        engine = await run_engine(sandbox, world.sources, out, retry_failed=retry_failed)
        assert engine.machine.verdicts == plan.verdicts
        assert sandbox.counters.accepted_total - before == plan.billable
        assert engine.stats.submitted == plan.billable
        assert engine.stats.tally.photos_found == plan.photos
    if not {"failed", "refused"} & set(verdicts):  # and every photo ends with its output
        assert sorted(p.name for p in out.glob("*.jpg")) == sorted(
            f"{p.stem}.vintage-comic.jpg" for p in folder.iterdir()
        )
