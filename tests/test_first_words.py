"""What a person meets first: the names they guess (a variable named after its flag, `-P`,
`--log-file`, a style's short name), help that tells the truth, and counts in good English.

In-process through `main([...])` where the command line is the point; a real run (over HTTP,
against the sandbox) where the words of a run are."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from harness import make_photos
from test_cli import ROOT, batchtoon

from batchtoon.cli import main
from batchtoon.cli.parser import (
    COMMANDS,
    FLAGS,
    RUN_ONLY,
    SWITCHES,
    Flag,
    build,
    flag_variables,
    parse,
    variable,
)
from batchtoon.settings.config import SETTINGS
from batchtoon.settings.styles import STYLE_SLUGS
from batchtoon.version import __version__
from batchtoon.words import counted

pytestmark = pytest.mark.usefixtures("no_outside_settings")


def in_force(capsys: pytest.CaptureFixture[str], key: str) -> tuple[object, str]:
    """A setting's value in force, and where it came from, as `batchtoon config` says."""
    assert main(["config", "--json"]) == 0
    setting = json.loads(capsys.readouterr().out)["settings"][key]
    return setting["value"], setting["from"]


# A value each kind of setting takes, and for the settings with a rule of their own, theirs.
GOOD = {"bool": "yes", "styles": "2d", "patterns": "*.jpg", "str": "x"}
GOOD_FOR = {
    "api.base_url": "http://127.0.0.1:9",
    "api.key_env": "MY_KEY",
    "output.template": "{stem}.{ext}",
    "sources.shard": "1/3",
    "prepare.fit": "pad",
}


def good_value(key: str) -> str:
    setting = SETTINGS[key]
    if setting.kind in ("int", "float"):
        return str(int(max(setting.low or 0, 3)))
    return GOOD_FOR.get(key, GOOD[setting.kind])


@pytest.mark.parametrize("flag", FLAGS, ids=lambda flag: flag.name)
def test_every_flag_has_a_variable_named_after_it(
    flag: Flag, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "BATCHTOON_" + flag.name.removeprefix("--").replace("-", "_").upper()
    assert flag_variables()[name] == flag.key
    monkeypatch.setenv(name, good_value(flag.key))
    assert in_force(capsys, flag.key)[1] == f"env {name}"


def test_the_flag_named_variable_and_the_old_name_both_work_and_must_agree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHTOON_RATE", "3")
    assert in_force(capsys, "submit.rate") == (3, "env BATCHTOON_RATE")
    monkeypatch.delenv("BATCHTOON_RATE")
    monkeypatch.setenv("BATCHTOON_SUBMIT_RATE", "4")
    assert in_force(capsys, "submit.rate") == (4, "env BATCHTOON_SUBMIT_RATE")
    monkeypatch.setenv("BATCHTOON_RATE", "5")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "BATCHTOON_RATE and BATCHTOON_SUBMIT_RATE both set submit.rate" in err


def test_no_flag_named_variable_is_another_settings_own() -> None:
    own = {setting.env: key for key, setting in SETTINGS.items()}
    for name, key in flag_variables().items():
        assert own.get(name, key) == key, name


def test_a_style_named_by_its_start_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--style", "3d"]) == 2
    assert "unknown style '3d': did you mean 3d-fairy-tale (1)?" in capsys.readouterr().err


def test_run_help_lists_every_style_name_whole(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for index, slug in enumerate(STYLE_SLUGS):
        assert f"{index}={slug}" in out  # not broken at its hyphen across two lines


def test_plan_help_lists_no_run_only_flag_yet_takes_a_runs_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    out = capsys.readouterr().out
    run_only = [flag.name for flag in FLAGS if flag.key in RUN_ONLY]
    assert "--rate" in run_only and "--log-file" in run_only
    for name in [*run_only, "--quiet", "--progress", "--verbose"]:
        assert name not in out, name
    assert "--style" in out and "--fix" in out  # what a plan does use
    (tmp_path / "photos").mkdir()
    assert main(["plan", str(tmp_path / "photos"), "--rate", "3", "-q"]) == 0


def test_help_names_no_file_an_installed_package_lacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("run", "plan", "status", "report", "config"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert "configs/" not in shown and "samples" not in shown, command


def test_counts_of_one_are_singular() -> None:
    assert [counted(1, "photo"), counted(2, "photo"), counted(0, "retry"), counted(1, "retry")] == [
        "1 photo",
        "2 photos",
        "0 retries",
        "1 retry",
    ]


async def test_one_converted_photo_is_said_in_the_singular_and_the_log_goes_where_asked(
    tmp_path: Path,
) -> None:
    from PIL import Image

    photos = tmp_path / "in"
    photos.mkdir()
    Image.new("RGB", (400, 300), "teal").save(photos / "one.gif")
    log = tmp_path / "elsewhere" / "run.log"
    done = await batchtoon(
        "run", str(photos), "--sandbox", "-q", "--out", str(tmp_path / "out"),
        "--log-file", str(log), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "1 photo converted (1 gif)" in text
    assert "1 submission accepted" in text and "0 retries" in text
    start = next(line for line in log.read_text().splitlines() if "start:" in line)
    assert "key given by the caller ($AILAB_API_KEY unset)" in start
    assert not (tmp_path / "out" / ".batchtoon" / "batchtoon.log").exists()


async def test_dash_p_draws_the_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 2)
    args = ["run", str(tmp_path / "in"), "--sandbox", "--out", str(tmp_path / "out")]
    plain = await batchtoon(*args, cwd=tmp_path)
    barred = await batchtoon(*args, "-P", cwd=tmp_path)
    assert plain.returncode == barred.returncode == 0
    assert b"results/s]" not in plain.stderr and b"2/2 [" not in plain.stderr
    assert b"2/2 [" in barred.stderr  # tqdm's bar, at its total


def test_the_log_names_the_key_variable_only_when_it_holds_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batchtoon.batch import _key_origin

    monkeypatch.setenv("AILAB_API_KEY", "k1")
    assert _key_origin("AILAB_API_KEY", "k1") == "key from $AILAB_API_KEY"
    assert _key_origin("AILAB_API_KEY", "k2") == "key given by the caller ($AILAB_API_KEY set)"
    monkeypatch.delenv("AILAB_API_KEY")
    assert _key_origin("AILAB_API_KEY", "k2") == "key given by the caller ($AILAB_API_KEY unset)"


def test_version_loads_neither_the_engine_nor_its_http_client_nor_pillow() -> None:
    import subprocess

    probe = (
        "import sys\nfrom batchtoon.cli import main\ntry:\n    main(['--version'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aiohttp', 'PIL', 'batchtoon.batch', 'numpy', 'tqdm') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.splitlines() == [f"batchtoon {__version__}", "[]"]


def run_parser() -> argparse.ArgumentParser:
    return build(dict.fromkeys(COMMANDS, lambda args: 0))


def test_every_switch_of_run_has_a_variable_named_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = next(
        action for action in run_parser()._actions if isinstance(action, argparse._SubParsersAction)
    ).choices["run"]
    switches = {
        max(action.option_strings, key=len)
        for action in run._actions
        if action.option_strings and action.nargs == 0 and action.const is True
    }
    assert switches == set(SWITCHES)  # none forgotten
    for flag in SWITCHES:
        monkeypatch.setenv(variable(flag), "yes")
        args = parse(run_parser(), ["run", "photos", "-q"] if flag == "--quiet" else ["run", "x"])
        assert getattr(args, flag.removeprefix("--").replace("-", "_")) is True, flag
        monkeypatch.delenv(variable(flag))


def test_a_switchs_variable_is_checked_and_cannot_contradict_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHTOON_SANDBOX", "maybe")
    assert main(["run", "photos"]) == 2
    assert "BATCHTOON_SANDBOX: maybe is not true or false" in capsys.readouterr().err
    monkeypatch.setenv("BATCHTOON_SANDBOX", "no")
    monkeypatch.setenv("BATCHTOON_QUIET", "1")
    assert main(["run", "photos", "-v"]) == 2
    assert "--verbose and --quiet cannot go together" in capsys.readouterr().err
    assert main(["config", "--json"]) == 0  # the settings do not take them for their own


async def test_batchtoon_sandbox_yes_runs_against_the_sandbox(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 2)
    done = await batchtoon(
        "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
        env={"BATCHTOON_SANDBOX": "yes", "BATCHTOON_QUIET": "on"}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"" and b"2 found = 2 done now" in done.stdout
