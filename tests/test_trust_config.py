"""Trust boundaries of the settings: a config found in the current folder cannot choose where
the key goes, the run names the file and the API first, every file and value is read within
bounds, and the API key is used without the whitespace a paste leaves around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import make_photos
from helpers import peak_run
from test_cli import KEY_ENV, batchtoon, one_line_no_traceback

from batchtoon.cli import main
from batchtoon.sandbox import Sandbox

FAST = ("--poll-interval", "0.02", "--rate", "200", "--quiet")


@pytest.mark.parametrize(
    ("setting", "env"),
    [("base_url: {elsewhere}", {}), ("key_env: SOME_SECRET", {"SOME_SECRET": "s3cr3t-value"})],
)
async def test_a_config_found_in_the_folder_cannot_send_the_key_elsewhere(
    setting: str, env: dict[str, str], tmp_path: Path
) -> None:
    make_photos(tmp_path / "in", 2)
    async with Sandbox(time_scale=0.001) as elsewhere:
        text = "api:\n  " + setting.format(elsewhere=elsewhere.base_url) + "\n"
        (tmp_path / "batchtoon.yaml").write_text(text)
        done = await batchtoon(
            "run", "in", "--out", "out", *FAST, key="the-key", env=env, cwd=tmp_path
        )
        assert elsewhere.counters.submit_requests == elsewhere.counters.query_requests == 0
    assert done.returncode == 2
    line = one_line_no_traceback(done.stderr)
    key = setting.partition(":")[0]
    assert line.startswith(
        f"batchtoon: config batchtoon.yaml (found in the working folder) sets 'api.{key}'"
    )
    assert "--config" in line and "--no-config" in line
    assert not (tmp_path / "out").exists()  # nothing ran: no journal, no log, no gallery
    assert "s3cr3t" not in line and "the-key" not in line


async def test_a_run_names_the_config_it_read_and_a_host_not_the_default_first(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 2)
    (tmp_path / "batchtoon.yaml").write_text("submit:\n  concurrency: 3\n")
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        (tmp_path / "named.yaml").write_text(f"api:\n  base_url: {sandbox.base_url}\n")
        found = await batchtoon(
            "run", "in", "--out", "out", "--api-base", sandbox.base_url, *FAST,
            key=sandbox.api_key, cwd=tmp_path,
        )  # fmt: skip
        named = await batchtoon(
            "run", "in", "--out", "out2", "--config", "named.yaml", *FAST,
            key=sandbox.api_key, cwd=tmp_path,
        )  # fmt: skip
    assert (found.returncode, named.returncode) == (0, 0), (found.stderr, named.stderr)
    api = f"API {sandbox.base_url} (not the default"
    assert found.stderr.decode().splitlines()[0] == (
        f"batchtoon: config batchtoon.yaml (found in the working folder); {api}, from flag "
        "--api-base)"
    )
    assert named.stderr.decode().splitlines()[0] == (
        f"batchtoon: config named.yaml (named by --config); {api}, from config named.yaml)"
    )
    for out, config in (("out", "batchtoon.yaml"), ("out2", "named.yaml")):
        log = (tmp_path / out / ".batchtoon" / "batchtoon.log").read_text().splitlines()
        start = next(line for line in log if " start: " in line)
        assert f"API {sandbox.base_url}" in start and start.endswith(f"; config {config}")


@pytest.mark.usefixtures("no_outside_settings")
def test_no_config_skips_the_file_in_the_folder_and_the_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batchtoon.yaml").write_text("submit:\n  rate: fast\n")
    assert main(["config"]) == 2
    assert "'submit.rate': fast is not a number" in capsys.readouterr().err
    assert main(["config", "--no-config", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config_file"] is None and report["settings"]["submit.rate"]["from"] == "default"
    (tmp_path / "batchtoon.yaml").unlink()
    user = tmp_path / "xdg" / "batchtoon" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("api:\n  base_url: https://elsewhere.example\n")
    assert main(["config"]) == 2
    assert "(found in the user config folder) sets 'api.base_url'" in capsys.readouterr().err
    assert main(["config", "--no-config"]) == 0
    assert main(["config", "--config", str(user)]) == 0  # named: trusted
    assert "base_url: https://elsewhere.example" in capsys.readouterr().out


# Bounded parsing.

LAUGHS = "[" + ",".join(['"lol"'] * 9) + "]"


def billion_laughs(levels: int, aliases: int) -> str:
    """A config whose `sources.include` and `submit.rate` stand for aliases**levels strings,
    all of it in a few hundred bytes: each level is a list of `aliases` aliases of the one
    below, written inside one another so that every anchor is in a known key."""
    inner = f"&l0 {LAUGHS}"
    for level in range(1, levels + 1):
        inner = f"&l{level} [{inner}," + ",".join([f"*l{level - 1}"] * (aliases - 1)) + "]"
    return f"sources:\n  include: {inner}\nsubmit:\n  rate: *l{levels}\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (billion_laughs(8, 9), "'sources.include': [[[[...]"),  # 72 aliases, 9**9 strings
        (billion_laughs(12, 10), "more than 100 YAML aliases"),
        ("submit:\n  rate: " + "[" * 50_000 + "]" * 50_000 + "\n", "nests or holds values"),
        ("submit:\n  rate: 1" + "0" * 5000 + "\n", "nests or holds values"),
        ("submit:\n  rate: &r [1, *r]\n", "'submit.rate': [1, [1, [1, [...]]]] is not a number"),
        ("styles: " + "q" * 100_000 + "\n", "'styles': unknown style 'qqq"),
        ("sources:\n  shard: " + "k" * 100_000 + "/4\n", "'sources.shard': kkk"),
    ],
)
def test_a_config_that_expands_or_nests_is_refused_in_one_short_line_within_bounds(
    text: str, words: str, tmp_path: Path
) -> None:
    (tmp_path / "c.yaml").write_text(text)
    code, err, peak = peak_run(["config", "--config", str(tmp_path / "c.yaml")], tmp_path)
    assert code == 2 and words in err and len(err) < 600, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert peak < 200 * 2**20  # a few tens of MB: Python and batchtoon loaded


def test_config_from_dev_zero_or_a_huge_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    for path in ("/dev/zero", str(tmp_path / "big.yaml")):
        code, err, peak = peak_run(["config", "--config", path], tmp_path)
        assert (code, err) == (
            2,
            f"batchtoon: config {path} is over 1024 KB: it is not a config file\n",
        )
        assert peak < 200 * 2**20


@pytest.mark.usefixtures("no_outside_settings")
@pytest.mark.parametrize(
    ("base", "why"),
    [
        ("https://api.example.com/v1 ", "holds a space or a control character"),
        ("https://api.exa mple.com", "holds a space or a control character"),
        ("https://api.example.com\r\nX-Evil: 1", "holds a space or a control character"),
        ("https://api.example.com\x00", "holds a space or a control character"),
        ("https://", "is not an http:// or https:// URL with a host"),
        ("https://:443/v1", "is not an http:// or https:// URL with a host"),
        ("ftp://api.example.com", "is not an http:// or https:// URL with a host"),
        ("api.example.com", "is not an http:// or https:// URL with a host"),
        ("https://api.example.com:99999", "is not an http:// or https:// URL with a host"),
    ],
)
def test_an_api_base_that_is_no_usable_url_is_refused_up_front(
    base: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--api-base", base]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchtoon: --api-base: ") and why in err and err.count("\n") == 1
    assert "\r" not in err and "\x00" not in err


@pytest.mark.usefixtures("no_outside_settings")
def test_a_usable_api_base_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--api-base", "https://api.example.com:8443/v1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["api.base_url"]["value"] == "https://api.example.com:8443/v1"


# The key.


@pytest.mark.parametrize("around", ["\n", " ", "\r\n", "\t \n"])
async def test_a_key_pasted_with_whitespace_around_it_is_used_without_and_said_so(
    around: str, tmp_path: Path
) -> None:
    make_photos(tmp_path / "in", 1)
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", "in", "--out", "out", "--api-base", sandbox.base_url, *FAST,
            key=" " + sandbox.api_key + around if around != "\n" else sandbox.api_key + around,
            cwd=tmp_path,
        )  # fmt: skip
        assert sandbox.counters.accepted_total == 1
    assert done.returncode == 0, done.stderr
    err = done.stderr.decode()
    assert f"the API key in ${KEY_ENV} has spaces or a line break around it" in err
    assert sandbox.api_key not in err
    log = (tmp_path / "out" / ".batchtoon" / "batchtoon.log").read_text()
    assert sandbox.api_key not in log
