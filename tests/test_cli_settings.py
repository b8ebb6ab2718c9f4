"""Settings from every source through one check: defaults < config file < environment < flags.

Most run `main([...])` in-process (`batchtoon config` resolves the settings and needs nothing
else); a subprocess only where the user's view of a real run matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_cli import ROOT, batchtoon, one_line_no_traceback

from batchtoon.cli import main
from batchtoon.cli.parser import FLAGS
from batchtoon.settings.config import SETTINGS, Settings, load_settings, resolve

# (setting, its flag, its variable, the bad value as typed, as YAML, the message's core)
BAD = [
    ("submit.rate", "--rate", "-1", "-1", "-1 is below 0.001"),
    ("submit.rate", "--rate", "nan", ".nan", "nan is not a finite number"),
    ("submit.rate", "--rate", "inf", ".inf", "inf is not a finite number"),
    ("submit.rate", "--rate", "-inf", "-.inf", "-inf is not a finite number"),
    ("submit.rate", "--rate", "fast", "fast", "fast is not a number"),
    ("submit.concurrency", "--concurrency", "0", "0", "0 is below 1"),
    ("submit.concurrency", "--concurrency", "2.5", "2.5", "2.5 is not a whole number"),
    ("submit.concurrency", "--concurrency", "300", "300", "300 is above 256"),
    ("max_submissions", "--max-submissions", "-3", "-3", "-3 is below 0"),
    ("poll.interval", "--poll-interval", "0", "0", "0 is below 0.001"),
    ("poll.rate", "--poll-rate", "-1", "-1", "-1 is below 0.001"),
    ("progress.interval", "--stats-interval", "0.5", "0.5", "0.5 is below 1"),
    ("styles", "--style", "12", "12", "style '12' is out of range"),
    ("api.base_url", "--api-base", "ftp://x", "ftp://x", "is not an http:// or https:// URL"),
    ("output.template", "--template", "{stem}.jpg", "'{stem}.jpg'", "must end with .{ext}"),
]


def env_name(key: str) -> str:
    return "BATCHTOON_" + key.replace(".", "_").upper()


def as_yaml(key: str, value: str) -> str:
    section, _, name = key.rpartition(".")
    return f"{section}:\n  {name}: {value}\n" if section else f"{name}: {value}\n"


pytestmark = pytest.mark.usefixtures("no_outside_settings")


@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize(("key", "flag", "typed", "in_yaml", "core"), BAD)
def test_one_check_path_same_words_and_exit_2_whatever_the_source(
    source: str,
    key: str,
    flag: str,
    typed: str,
    in_yaml: str,
    core: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    argv = ["config"]
    if source == "flag":
        argv += [f"{flag}={typed}"]
        where = f"batchtoon: {flag}: "
    elif source == "env":
        monkeypatch.setenv(env_name(key), typed)
        where = f"batchtoon: {env_name(key)}: "
    else:
        (tmp_path / "batchtoon.yaml").write_text(as_yaml(key, in_yaml))
        argv += ["--config", "batchtoon.yaml"]  # named: a found one may not set api.*
        where = f"batchtoon: config batchtoon.yaml: '{key}': "
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(where) and core in err, err


@pytest.mark.parametrize("typed", ["-1", "-inf", "nan", "0"])
async def test_a_bad_rate_flag_stops_a_real_run_before_anything_starts(
    tmp_path: Path, typed: str
) -> None:
    done = await batchtoon("run", "samples", "--sandbox", "--out", str(tmp_path), "--rate", typed)
    assert done.returncode == 2
    assert one_line_no_traceback(done.stderr).startswith("batchtoon: --rate: ")
    assert not (tmp_path / ".batchtoon").exists()  # nothing was started


def test_a_switch_from_the_environment_or_a_file_is_checked_alike(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTOON_PREPARE_FIX", "maybe")
    assert main(["config"]) == 2
    assert capsys.readouterr().err == (
        "batchtoon: BATCHTOON_PREPARE_FIX: maybe is not true or false\n"
    )


def test_environment_values_are_read_by_type() -> None:
    environ = {
        "BATCHTOON_SUBMIT_RATE": "5",
        "BATCHTOON_SUBMIT_CONCURRENCY": "7",
        "BATCHTOON_OUTPUT_DIR": "cartoons",
        "BATCHTOON_STYLES": "0,2d",
        "BATCHTOON_POLL_RATE": "",
        "BATCHTOON_MAX_SUBMISSIONS": "null",
        "BATCHTOON_PREPARE_FIX": "yes",
        "BATCHTOON_REPORT_ENABLED": "off",
        "BATCHTOON_SOURCES_EXCLUDE": "raw, tmp/**",
        "BATCHTOON_JOURNAL": "~",
        "BATCHTOON_RETRY_BACKOFF": "1e-3",
    }
    found = resolve(environ=environ)
    s = found.settings
    assert (s.submit.rate, s.submit.concurrency, s.output.dir) == (5.0, 7, "cartoons")
    assert s.styles == (0, 2) and s.poll.rate is None and s.max_submissions is None
    assert s.prepare.fix is True and s.report.enabled is False and s.journal is None
    assert s.sources.exclude == ("raw", "tmp/**") and s.retry.backoff == 0.001
    assert found.origins["submit.rate"] == "env BATCHTOON_SUBMIT_RATE"
    assert found.origins["retry.attempts"] == "default"


def test_an_optional_setting_from_the_environment_can_be_set_back_to_none(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.yaml").write_text("poll:\n  rate: 3\n")
    assert resolve(tmp_path / "c.yaml", environ={}).settings.poll.rate == 3.0
    assert (
        resolve(tmp_path / "c.yaml", environ={"BATCHTOON_POLL_RATE": ""}).settings.poll.rate is None
    )


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("submit:\n  rate: 1\n  concurrency: 2\nstyles: 5\n")
    found = resolve(
        tmp_path / "c.yaml",
        environ={"BATCHTOON_SUBMIT_RATE": "3", "BATCHTOON_SUBMIT_CONCURRENCY": "6"},
        flags={"submit.rate": ("--rate", "9")},
    )
    s = found.settings
    assert (s.submit.rate, s.submit.concurrency, s.styles) == (9.0, 6, (5,))
    assert found.origins["submit.rate"] == "flag --rate"
    assert found.origins["submit.concurrency"] == "env BATCHTOON_SUBMIT_CONCURRENCY"
    assert found.origins["styles"] == f"config {tmp_path / 'c.yaml'}"


def test_an_unknown_batchtoon_variable_is_refused_with_did_you_mean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHTOON_SUBMIT_RAET", "5")
    assert main(["config"]) == 2
    assert capsys.readouterr().err == (
        "batchtoon: BATCHTOON_SUBMIT_RAET: no such setting: did you mean BATCHTOON_SUBMIT_RATE?\n"
    )


def test_every_setting_has_one_flag_and_one_variable_and_the_default_file_names_the_flag() -> None:
    assert sorted(flag.key for flag in FLAGS) == sorted(SETTINGS)
    assert len({flag.name for flag in FLAGS}) == len(FLAGS)
    text = (ROOT / "configs" / "default.yaml").read_text()
    assert [flag.name for flag in FLAGS if flag.name not in text] == []
    assert "BATCHTOON_<SECTION>_<KEY>" in text


# Config discovery.


def test_config_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg" / "batchtoon" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("submit:\n  rate: 1\n")
    assert resolve().settings.submit.rate == 1.0  # the user config folder
    (tmp_path / "batchtoon.yaml").write_text("submit:\n  rate: 2\n")
    assert resolve().found_by == "the working folder"
    assert resolve().settings.submit.rate == 2.0
    (tmp_path / "env.yaml").write_text("submit:\n  rate: 3\n")
    monkeypatch.setenv("BATCHTOON_CONFIG", str(tmp_path / "env.yaml"))
    assert resolve().settings.submit.rate == 3.0
    (tmp_path / "flag.yaml").write_text("submit:\n  rate: 4\n")
    found = resolve(tmp_path / "flag.yaml")
    assert (found.settings.submit.rate, found.found_by) == (4.0, "--config")


def test_a_named_config_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHTOON_CONFIG", str(tmp_path / "gone.yaml"))
    assert main(["config"]) == 2
    assert "gone.yaml (named by $BATCHTOON_CONFIG): No such file" in capsys.readouterr().err


def test_an_empty_section_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("retry:\n  # attempts: 3\nsubmit:\n  rate: 3\n")
    assert load_settings(tmp_path / "c.yaml").submit.rate == 3.0


# `batchtoon config`.


def origins_in(text: str) -> dict[str, str]:
    """`batchtoon config`'s comments, by dotted key."""
    found, section = {}, ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith(" "):
            section = "" if "#" in line else line.rstrip(":")
        name = line.split(":")[0].strip()
        if "#" in line:
            found[f"{section}.{name}" if line.startswith(" ") else name] = line.split("# ")[-1]
    return found


def test_config_prints_yaml_that_loads_back_and_says_where_each_value_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batchtoon.yaml").write_text("submit:\n  rate: 3\n")
    monkeypatch.setenv("BATCHTOON_STYLES", "0,2d")
    monkeypatch.setenv("AILAB_API_KEY", "sk-very-secret")
    assert main(["config", "--concurrency", "7", "--no-report", "--exclude", "raw"]) == 0
    out = capsys.readouterr().out
    assert "sk-very-secret" not in out and "# API key ($AILAB_API_KEY): set" in out
    origins = origins_in(out)
    assert origins["submit.rate"] == "config batchtoon.yaml"
    assert origins["styles"] == "env BATCHTOON_STYLES"
    assert origins["submit.concurrency"] == "flag --concurrency"
    assert origins["report.enabled"] == "flag --no-report"
    assert origins["retry.attempts"] == "default"
    assert sorted(origins) == sorted(SETTINGS)
    (tmp_path / "again.yaml").write_text(out)
    expected = Settings().override(
        submit__rate=3.0, submit__concurrency=7, styles=(0, 2), report__enabled=False,
        sources__exclude=("raw",),
    )  # fmt: skip
    assert load_settings(tmp_path / "again.yaml") == expected
    assert yaml.safe_load(out)["submit"]["rate"] == 3.0


def test_config_json_and_the_key_shown_only_as_set_or_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["api_key"] == {"env": "AILAB_API_KEY", "state": "unset"}
    assert report["config_file"] is None
    assert report["settings"]["submit.rate"] == {"value": 2.0, "from": "default"}
    monkeypatch.setenv("AILAB_API_KEY", "sk-zz\r\nyy")
    assert main(["config", "--json", "--rate", "5", "--fix", "--portable-names"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["api_key"]["state"].startswith("set, but unusable: it holds a control")
    assert "sk-zz" not in json.dumps(report["api_key"])
    assert report["settings"]["submit.rate"] == {"value": 5.0, "from": "flag --rate"}
    assert report["settings"]["prepare.fix"]["value"] is True
    assert report["settings"]["output.portable_names"]["value"] is True


@pytest.mark.parametrize(
    ("argv", "key", "value"),
    [
        (["--stats-interval", "5"], "progress.interval", 5.0),
        (["--no-report"], "report.enabled", False),
        (["--report"], "report.enabled", True),
        (["--fix"], "prepare.fix", True),
        (["--no-fix"], "prepare.fix", False),
        (["--portable-names"], "output.portable_names", True),
        (["--include", "*.jpg", "--include", "trips/**"], "sources.include", ["*.jpg", "trips/**"]),
        (["--exclude", "raw"], "sources.exclude", ["raw"]),
        (["--max-short-side", "null"], "prepare.max_short_side", None),
        (["--style", "2d,0"], "styles", [0, 2]),
    ],
)
def test_each_new_flag_sets_its_setting(
    argv: list[str], key: str, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--json", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["settings"][key]["value"] == value


def test_no_fix_in_a_flag_beats_fix_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batchtoon.yaml").write_text("prepare:\n  fix: true\n")
    assert main(["config", "--json", "--no-fix"]) == 0
    setting = json.loads(capsys.readouterr().out)["settings"]["prepare.fix"]
    assert setting == {"value": False, "from": "flag --no-fix"}


# Uploads in flight: sized from the rate unless set.


@pytest.mark.parametrize(
    ("rate", "uploads"), [(0.5, 4), (2.0, 4), (16.0, 4), (17.0, 5), (100.0, 25), (2000.0, 256)]
)
def test_uploads_in_flight_are_a_quarter_second_of_the_rate_unless_set(
    rate: float, uploads: int
) -> None:
    settings = Settings().override(submit__rate=rate)
    assert settings.submit.concurrency is None and settings.submit.uploads == uploads
    assert settings.override(submit__concurrency=3).submit.uploads == 3  # set: as set


def test_config_shows_the_concurrency_in_force_and_that_the_rate_sized_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--rate", "100"]) == 0
    out = capsys.readouterr().out
    assert origins_in(out)["submit.concurrency"] == (
        "default; in force: 25, sized from submit.rate: 0.25 s of uploads at 100/s, 4 to 256"
    )
    (tmp_path / "again.yaml").write_text(out)  # loads back unset: sized again from its rate
    assert load_settings(tmp_path / "again.yaml").submit.concurrency is None
    assert main(["config", "--rate", "100", "--concurrency", "6", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]["submit.concurrency"]
    assert shown == {"value": 6, "from": "flag --concurrency"}
