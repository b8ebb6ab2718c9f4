"""The `batchtoon` command as a user runs it: a real subprocess, its exit code and its words."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import make_photos, outputs

from batchtoon.sandbox import Sandbox
from batchtoon.settings.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "AILAB_API_KEY"


def clean_env(key: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without the API key, BATCHTOON_ variables or the user's own
    config folder (a developer's ~/.config/batchtoon/config.yaml must not change a test)."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV and not k.startswith("BATCHTOON_")}
    env["XDG_CONFIG_HOME"] = str(ROOT / "tests" / "no-such-config-home")
    if key is not None:
        env[KEY_ENV] = key
    return {**env, **extra}


async def batchtoon(
    *args: str, key: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-m", "batchtoon", *args],
        env=clean_env(key, **(env or {})),
        check=False,
        cwd=cwd,
    )


def one_line_no_traceback(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    return text


@pytest.mark.parametrize(
    ("yaml", "words"),
    [
        ("submit:\n  concurency: 3\n", "unknown key 'submit.concurency': did you mean"),
        ("submit:\n  rate: fast\n", "'submit.rate': fast is not a number"),
        ("poll:\n  interval: -1\n", "'poll.interval': -1 is below 0.001"),
        ("submit:\n  rate: .nan\n", "'submit.rate': nan is not a finite number"),
        ("styles: [0, 12]\n", "'styles'"),
        ("retry: 3\n", "'retry' must be a mapping"),
        ("output: [\n", "not valid YAML at line"),
        ("output:\n  template: '{stem}.jpg'\n", "must end with .{ext}"),
    ],
)
async def test_a_bad_config_is_one_line_naming_the_key_and_exit_2(
    tmp_path: Path, yaml: str, words: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml)
    done = await batchtoon(
        "run", "samples", "--sandbox", "--config", str(config), "--out", str(tmp_path)
    )
    assert done.returncode == 2
    assert words in one_line_no_traceback(done.stderr)


async def test_no_key_and_no_sandbox_says_how_to_set_it(tmp_path: Path) -> None:
    done = await batchtoon("run", "samples", "--out", str(tmp_path))
    assert done.returncode == 2
    text = one_line_no_traceback(done.stderr)
    assert KEY_ENV in text and "--sandbox" in text


async def test_a_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    done = await batchtoon("run", str(tmp_path / "nope"), "--sandbox", "--out", str(tmp_path))
    assert done.returncode == 2 and "does not exist" in one_line_no_traceback(done.stderr)


def test_the_default_config_file_documents_every_key_with_its_default() -> None:
    path = ROOT / "configs" / "default.yaml"
    assert load_settings(path) == Settings()
    text = path.read_text()

    def names(obj: Any) -> list[str]:
        found = []
        for field in dataclasses.fields(obj):
            found.append(field.name)
            if dataclasses.is_dataclass(value := getattr(obj, field.name)):
                found += names(value)
        return found

    missing = [name for name in names(Settings()) if f"{name}:" not in text]
    assert not missing


async def test_sandbox_run_then_status_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = await batchtoon(
        "run", "samples", "--sandbox", "--style", "0,2d", "--out", str(out), "--quiet"
    )
    assert done.returncode == 0, done.stderr.decode()
    assert len(outputs(out)) == 10
    assert b"results: 10 found = 10 done now" in done.stdout
    status = await batchtoon("status", "--out", str(out), "--json")
    report = json.loads(status.stdout)
    assert report["results"] == {"done": 10, "pending": 0, "failed": 0, "refused": 0}
    assert report["photos"]["done"] == 5 and report["failed"] == []
    uploads = report["uploads"]  # what the summary said, as the journal has it
    assert uploads["uploaded_mb"] > 1 and uploads["mb_per_s"] > 0 and uploads["saved_mb"] >= 0


async def test_ctrl_c_stops_within_seconds_prints_the_resume_command_and_resumes(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 30)
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        args = ["run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url]
        args += ["--quiet", "--rate", "20", "--poll-interval", "0.02"]
        env = clean_env(sandbox.api_key)
        command = [sys.executable, "-m", "batchtoon", *args]
        async with await anyio.open_process(command, env=env) as process:
            with anyio.fail_after(20):
                await sandbox.until(lambda: sandbox.counters.accepted_total >= 3)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):  # "within a few seconds"
                await process.wait()
            assert process.stderr is not None
            stderr = (await process.stderr.receive()).decode()
        assert process.returncode == 130
        assert "to go on, run: batchtoon run" in stderr and "Traceback" not in stderr
        assert sandbox.counters.accepted_total < 30
        again = await batchtoon(*args, key=sandbox.api_key)
        assert again.returncode == 0, again.stderr.decode()
        assert sandbox.counters.accepted_total == 30  # nothing paid twice
    assert len(outputs(out)) == 30
