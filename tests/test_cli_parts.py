"""The pieces behind the command line: filters, names fit for a terminal and for every file
system, failure kinds, the log's scrubbing, and the sandbox the CLI starts or serves."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path, PurePosixPath

import aiohttp
import pytest
from harness import photo

from batchtoon.cli.commands import _sandbox_config, api_target
from batchtoon.cli.parser import COMMANDS, build, parse
from batchtoon.cli.reasons import kind_of
from batchtoon.errors import UsageError
from batchtoon.locations.layout import Layout, portable_part
from batchtoon.locations.sources import Filter, Source, display, iter_sources
from batchtoon.provider.api import ApiClient
from batchtoon.records.logs import open_log, screen_handler
from batchtoon.settings.config import Settings, resolve

# --include / --exclude


def tree(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


FILES = [
    "a.jpg",
    "b.PNG",
    "c.gif",
    "raw/d.jpg",
    "trips/e.jpg",
    "trips/2024/f.jpg",
    "trips/raw/g.jpg",
]


@pytest.mark.parametrize(
    ("include", "exclude", "taken"),
    [
        ((), (), FILES),
        (("*.jpg",), (), [f for f in FILES if f.endswith(".jpg")]),
        (("*.png",), (), ["b.PNG"]),  # case ignored, as the suffixes are
        (("trips/**",), (), ["trips/e.jpg", "trips/2024/f.jpg", "trips/raw/g.jpg"]),
        (("trips/*.jpg",), (), ["trips/e.jpg"]),
        ((), ("raw",), ["a.jpg", "b.PNG", "c.gif", "trips/e.jpg", "trips/2024/f.jpg"]),
        ((), ("*.gif", "trips/**/*.jpg"), ["a.jpg", "b.PNG", "raw/d.jpg"]),
        (("**/*.jpg",), ("trips/2024",), ["a.jpg", "raw/d.jpg", "trips/e.jpg", "trips/raw/g.jpg"]),
    ],
)  # fmt: skip
def test_include_and_exclude_match_the_path_below_the_source_folder(
    tmp_path: Path, include: tuple[str, ...], exclude: tuple[str, ...], taken: list[str]
) -> None:
    tree(tmp_path / "in", FILES)
    found = list(iter_sources([tmp_path / "in"], Filter(include, exclude)))
    assert sorted(str(s.rel) for s in found if isinstance(s, Source)) == sorted(taken)


def test_filters_leave_manifests_and_single_images_alone(tmp_path: Path) -> None:
    tree(tmp_path, ["one.gif"])
    (tmp_path / "list.csv").write_text("one.gif\n")
    only = Filter(include=("*.jpg",), exclude=("*.gif",))
    found = list(iter_sources([tmp_path / "one.gif", tmp_path / "list.csv"], only))
    assert [s.rel for s in found if isinstance(s, Source)] == [PurePosixPath("one.gif")] * 2


async def test_the_plan_counts_only_what_the_filters_take(tmp_path: Path) -> None:
    from test_cli import batchtoon

    for name in ("a.jpg", "raw/b.jpg", "c.jpg"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(photo(seed=len(name) + ord(name[0])))
    done = await batchtoon(
        "plan", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--json",
        "--exclude", "raw", "--exclude", "c.*",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b'"photos": 1' in done.stdout


# Names fit for a terminal and a log.


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain/name.jpg", "plain/name.jpg"),
        ("é and 漢字.jpg", "é and 漢字.jpg"),
        ("\x1b[2J\x1b]0;owned\x07.jpg", "\\x1b[2J\\x1b]0;owned\\x07.jpg"),
        ("line\nbreak\rreturn\ttab", "line\\x0abreak\\x0dreturn\\x09tab"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("rlo\u202egpj.exe", "rlo\\u202egpj.exe"),
        (os.fsdecode(b"caf\xe9.jpg"), "caf\\udce9.jpg"),
        (b"raw\xff\x1b", "raw\\udcff\\x1b"),
    ],
)
def test_display_escapes_control_characters_and_undecodable_bytes(
    raw: str | bytes, shown: str
) -> None:
    assert display(raw) == shown
    assert display(display(raw)) == display(raw)


def test_the_log_and_its_screen_lines_are_scrubbed_of_the_key_and_control_characters(
    tmp_path: Path,
) -> None:
    shown: list[str] = []
    log = open_log(tmp_path / "batchtoon.log", "sk-secret")
    screen = screen_handler(shown.append, "sk-secret")
    log.addHandler(screen)
    try:
        log.warning("failed %s: key %s", "\x1b[31mred\n2024-01-01 INFO forged", "sk-secret")
        log.info("retrying")
        open_log(tmp_path / "again.log", "sk-secret")  # a second run keeps the screen handler
        log.info("again")
    finally:
        log.removeHandler(screen)
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
    text = (tmp_path / "batchtoon.log").read_text()
    assert len(text.splitlines()) == 2 and "sk-secret" not in text and "\x1b" not in text
    assert "failed \\x1b[31mred\\x0a2024-01-01 INFO forged: key ***" in text
    assert shown[0] == "batchtoon: WARNING failed \\x1b[31mred\\x0a2024-01-01 INFO forged: key ***"
    assert shown[1:] == ["batchtoon: INFO retrying", "batchtoon: INFO again"]


# Failure kinds.


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("300x225 is under the API's 256 px minimum: use a larger photo",
         "300x168 is under the API's 256 px minimum: use a larger photo"),
        ("11.5 MB is over the 10 MB limit", "23.1 MB is over the 10 MB limit"),
        ("list.jsonl line 7: no path", "list.jsonl line 12: no path"),
        ("task 4f9a1c2b3d4e5f60718293a4 was lost", "task 0a1b2c3d4e5f60718293a4b5 was lost"),
    ],
)  # fmt: skip
def test_reasons_differing_only_in_numbers_or_ids_are_one_kind(one: str, other: str) -> None:
    assert kind_of(one) == kind_of(other)


def test_different_reasons_are_different_kinds() -> None:
    kinds = {kind_of(r) for r in ("PROCESS_FAILED", "TIMEOUT_FAILED", "empty file (0 bytes)")}
    assert len(kinds) == 3


# Portable output names.


@pytest.mark.parametrize(
    ("part", "portable"),
    [
        ("photo.2", "photo.2"),
        ("CON", "_CON"),
        ("con.0", "_con.0"),
        ("NUL.tar", "_NUL.tar"),
        ("com1.2", "_com1.2"),
        ("LPT9", "_LPT9"),
        ("CONSOLE.2", "CONSOLE.2"),
        ('a<b>c:d"e|f?g*h\\i', "a_b_c_d_e_f_g_h_i"),
        ("tab\there\x1b", "tab_here_"),
        ("trailing. . ", "trailing"),
        ("...", "_"),
        (os.fsdecode(b"caf\xe9"), "caf_"),
        ("é" * 200, "é" * 120),
    ],
)
def test_portable_part(part: str, portable: str) -> None:
    assert portable_part(part) == portable


def test_portable_names_change_every_component_of_an_output_name_and_only_when_asked() -> None:
    source = Source(Path("x"), PurePosixPath("AUX/trip: day 1./CON.jpg"))
    sha = "ab" * 32
    assert Layout(Path("out"), "{dir}/{stem}.{style}.{ext}").base(source, 2, sha) == (
        "AUX/trip: day 1./CON.2"
    )
    assert Layout(Path("out"), "{dir}/{stem}.{style}.{ext}", portable=True).base(
        source, 2, sha
    ) == ("_AUX/trip_ day 1/_CON.2")


# --sandbox keeps its state beside the journal; the sandbox command's flags.


async def test_a_sandbox_run_keeps_its_tasks_and_key_beside_the_journal(tmp_path: Path) -> None:
    args = argparse.Namespace(sandbox=True, quiet=True)
    found = resolve(flags={"output.dir": ("--out", str(tmp_path))}, environ={})
    async with api_target(args, found, "", keep_state=True) as (settings, key):
        async with aiohttp.ClientSession() as session:
            api = ApiClient(session, settings.api.base_url, key, timeout=10)
            task = (await api.submit(photo(seed=1), 2)).task_id
        with pytest.raises(UsageError, match="in use by another batchtoon run"):
            async with api_target(args, found, "", keep_state=True):
                pass
    assert (tmp_path / ".batchtoon" / "sandbox" / "key").read_text() == key
    async with api_target(args, found, "", keep_state=True) as (settings, again):
        assert again == key
        async with aiohttp.ClientSession() as session:
            api = ApiClient(session, settings.api.base_url, key, timeout=10)
            assert (await api.query(task)).status  # known: not 404 / gone
    assert settings.poll.interval == Settings().poll.interval / 10  # defaults at its pace


async def test_a_pace_the_user_set_is_kept_against_the_sandbox(tmp_path: Path) -> None:
    args = argparse.Namespace(sandbox=True, quiet=True)
    flags = {"output.dir": ("--out", str(tmp_path)), "submit.rate": ("--rate", "3")}
    found = resolve(flags=flags, environ={"BATCHTOON_POLL_INTERVAL": "2"})
    async with api_target(args, found, "", keep_state=False) as (settings, _):
        assert (settings.submit.rate, settings.poll.interval) == (3.0, 2.0)


def sandbox_args(*argv: str) -> argparse.Namespace:
    parser = build(dict.fromkeys(COMMANDS, lambda args: 0))
    return parse(parser, ["sandbox", *argv])


def test_the_sandbox_command_takes_every_knob(tmp_path: Path) -> None:
    config = _sandbox_config(
        sandbox_args(
            "--uplink", "100000", "--state-dir", str(tmp_path), "--result-encoding", "gzip",
            "--redirect", "query=307", "--redirect", "result=302", "--key-in-result-url",
            "--fault", "drop=0.1", "--fault", "slow_seconds=2", "--fault", "stuck=0.5",
            "--processing-time", "1-3", "--credits", "5", "--port", "0",
            "--submit-window", "22", "--query-window", "44",
        )
    )  # fmt: skip
    assert config.uplink == 100_000 and config.state_dir == tmp_path
    assert config.result_encoding == "gzip" and config.key_in_result_url
    assert config.redirects == {"query": 307, "result": 302}
    assert (config.faults.drop, config.faults.slow_seconds, config.faults.stuck) == (0.1, 2, 0.5)
    assert config.processing_time == (1.0, 3.0) and config.credits == 5
    assert (config.submit_window, config.query_window) == (22, 44)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--fault", "dorp=0.1"], "--fault: unknown name dorp: did you mean drop?"),
        (["--fault", "drop=1.5"], "--fault drop: 1.5 is above 1"),
        (["--fault", "drop"], "--fault: drop is not NAME=RATE"),
        (["--fault", "slow_seconds=nan"], "--fault slow_seconds: nan is not a finite number"),
        (["--redirect", "query=200"], "--redirect query: 200 is below 300"),
        (["--redirect", "upload=307"], "--redirect: unknown endpoint upload"),
        (["--uplink", "0"], "--uplink: 0 is below 1"),
        (["--submit-window", "0"], "--submit-window: 0 is below 1"),
        (["--query-window", "2.5"], "--query-window: 2.5 is not"),
        (["--port", "70000"], "--port: 70000 is above 65535"),
        (["--time-scale", "-1"], "--time-scale: -1 is below"),
        (["--processing-time", "6-2"], "A is above B"),
    ],
)
def test_a_bad_sandbox_knob_is_one_line(argv: list[str], said: str) -> None:
    with pytest.raises(UsageError) as raised:
        _sandbox_config(sandbox_args(*argv))
    assert said in str(raised.value) and "\n" not in str(raised.value)


@pytest.fixture(autouse=True)
def _no_log_left() -> None:
    logging.getLogger("batchtoon").handlers.clear()


async def test_the_sandbox_command_serves_with_its_knobs_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    import signal
    import sys

    import anyio
    from test_cli import ROOT, clean_env

    command = [
        sys.executable, "-m", "batchtoon", "sandbox", "--port", "0", "--api-key", "K",
        "--state-dir", str(tmp_path / "state"), "--redirect", "query=307",
        "--fault", "slow=0", "--uplink", "1000000", "--result-encoding", "gzip",
    ]  # fmt: skip
    async with await anyio.open_process(command, env=clean_env(), cwd=ROOT) as process:
        assert process.stdout is not None
        with anyio.fail_after(20):
            first = (await process.stdout.receive()).decode()
        base = first.split(" at ")[1].split()[0]
        async with aiohttp.ClientSession() as session:
            api = ApiClient(session, base, "K", timeout=10)
            assert await api.credits()  # it answers, with the key it was given
            query = f"{base}/api/common/query-async-task-result?task_id=x"
            headers = {"ailabapi-api-key": "K"}
            async with session.get(query, headers=headers, allow_redirects=False) as got:
                assert got.status == 307  # --redirect query=307
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            await process.wait()
    assert process.returncode == 0
    assert (tmp_path / "state" / "tasks.jsonl").exists()  # --state-dir
