"""`--shard K/N`: N processes share the sources exactly once; the setting is checked as every
setting is; the rates are the account's; the Kubernetes example is a well-formed Indexed Job."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import engine_for, make_photos

from batchtoon.errors import UsageError
from batchtoon.locations.sources import Filter, Shard, Source, count_sources, iter_sources
from batchtoon.sandbox import Sandbox
from batchtoon.settings.config import Settings, resolve

ROOT = Path(__file__).resolve().parent.parent


def shard_items(sources: list[Path], k: int, n: int) -> list[str]:
    only = Filter(shard=Shard(k, n))
    return [
        str(item.path) for item in iter_sources(list(sources), only) if isinstance(item, Source)
    ]


def test_n_shards_take_every_photo_and_manifest_line_exactly_once(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 40)
    manifest = tmp_path / "list.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"m/{i}.jpg"}) + "\n" for i in range(30)))
    sources = [tmp_path / "photos", manifest]
    everything = shard_items(sources, 0, 1)
    shares = [shard_items(sources, k, 4) for k in range(4)]
    assert sorted(path for share in shares for path in share) == sorted(everything)  # no overlap
    assert all(share for share in shares)  # a spread: every shard has some
    counted = [count_sources(sources, Filter(shard=Shard(k, 4))) for k in range(4)]
    assert counted == [len(share) for share in shares]


def test_a_photo_and_its_namesake_in_another_format_fall_in_one_shard(tmp_path: Path) -> None:
    # `a.jpg` and `a.png` would both be `a.<style>.jpg`: one journal must tell them apart
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        for ext in ("jpg", "png"):
            (folder / f"p{i}.{ext}").write_bytes(b"x")
    for k in range(3):
        names = {Path(p).stem for p in shard_items([folder], k, 3)}
        assert all(Path(p).stem in names for p in shard_items([folder], k, 3))
        assert len(shard_items([folder], k, 3)) == 2 * len(names)


def test_the_shard_of_an_item_is_the_same_on_every_machine_and_version() -> None:
    # pinned: a change of hash would hand a half-done batch's photos to other shards
    names = ["sub0/photo0000", "trips/2024/IMG_0001", "a", "über/naïve"]
    assert [next(k for k in range(4) if Shard(k, 4).takes(n)) for n in names] == [3, 3, 3, 2]
    assert [next(k for k in range(7) if Shard(k, 7).takes(n)) for n in names] == [6, 4, 2, 3]


@pytest.mark.parametrize(
    ("flags", "environ", "said"),
    [
        ({"sources.shard": ("--shard", "4/4")}, {}, "--shard: 4/4: K must be below N"),
        ({"sources.shard": ("--shard", "1/0")}, {}, "--shard: 1/0: N must be 1 or more"),
        ({}, {"BATCHTOON_SOURCES_SHARD": "half"}, "BATCHTOON_SOURCES_SHARD: half is not K/N"),
    ],
)
def test_the_shard_is_checked_like_every_setting(
    flags: dict[str, tuple[str, object]], environ: dict[str, str], said: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(said)):
        resolve(flags=flags, environ=environ)
    shard = resolve(flags={"sources.shard": ("--shard", " 3 / 4 ")}, environ={}).settings
    assert Shard.parse(shard.sources.shard or "") == Shard(3, 4)


async def test_with_a_shard_the_rates_are_the_accounts_divided_by_n(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    async with engine_for(
        sandbox, [], tmp_path / "out", sources__shard="1/4", submit__rate=8.0, poll__rate=40.0
    ) as engine:
        assert engine.submit_rate.max_rate == 2.0
        assert engine.poll_rate.max_rate == 10.0


def test_journals_that_share_a_folder_have_logs_of_their_own() -> None:
    assert Settings(journal="/data/journal-3.jsonl").log_path == Path("/data/journal-3.log")
    assert Settings().log_path == Path("batchtoon-out/.batchtoon/batchtoon.log")
    url_out = Settings().override(output__dir="s3://bucket/cartoons")
    assert url_out.work_dir.parts[0] == ".batchtoon"  # local, in the current folder
    assert url_out.journal_path.parent == url_out.work_dir


def test_the_kubernetes_example_is_an_indexed_job_of_n_shards() -> None:
    job: dict[str, Any] = yaml.safe_load(
        (ROOT / "docs" / "kubernetes-indexed-job.yaml").read_text()
    )
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert n == spec["parallelism"] and n > 1
    [container] = spec["template"]["spec"]["containers"]
    argv = [*container["command"], *container["args"]]
    assert argv[:2] == ["batchtoon", "run"]
    assert argv[argv.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{n}"
    assert "$(JOB_COMPLETION_INDEX)" in argv[argv.index("--journal") + 1]
    assert all(a.startswith("s3://") for a in (argv[2], argv[argv.index("--out") + 1]))
    env = {item["name"]: item for item in container["env"]}
    assert env["AILAB_API_KEY"]["valueFrom"]["secretKeyRef"]["key"]
    assert "value" not in env["AILAB_API_KEY"]  # the key is never written in the file
    assert all("value" not in env[name] for name in env if "SECRET" in name or "KEY" in name)
