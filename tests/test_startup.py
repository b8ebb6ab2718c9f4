"""Start-up: a command loads only what it uses, and runs on the faster event loop it can have.

`--version`, `--help`, `status` and `config` never load the HTTP client (aiohttp, and yarl and
multidict under it), the image libraries, the progress bars, file watching or the
object-storage layer: each is run in a fresh process, and the modules it loaded are read at its
exit. A run's event loop is uvloop's where uvloop can be imported, else asyncio's; its log's
start line says which."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import ROOT, clean_env

HEAVY = ("aiohttp", "yarl", "multidict", "PIL", "numpy", "tqdm", "watchfiles", "fsspec")

# The command, run as `batchtoon` runs it; then what it loaded, as one JSON line on stderr.
PROBE = """
import json, sys
from batchtoon.cli import main
if sys.argv[1] == "--no-uvloop":  # as on a machine without it: its import fails
    sys.modules["uvloop"] = None
    del sys.argv[1]
try:
    code = main(sys.argv[1:])
except SystemExit as done:
    code = done.code
loaded = sorted({name.partition(".")[0] for name in sys.modules})
sys.stderr.write("\\n" + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def loaded_by(argv: list[str], cwd: Path, key: str | None = None) -> tuple[object, set[str], str]:
    """`batchtoon argv` in a fresh process (with the API key `key`): its exit code, the
    top-level names of the heavy modules it loaded, and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True, text=True, env=clean_env(key, PYTHONPATH=str(ROOT)), cwd=cwd,
        timeout=60,
    )  # fmt: skip
    report = json.loads(done.stderr.rsplit("\n", 2)[-2])
    return report["code"], set(report["loaded"]) & set(HEAVY), done.stdout


def a_journal(out: Path) -> None:
    """A journal of two photos, both refused."""
    (out / ".batchtoon").mkdir(parents=True)
    records = [
        {"v": 1, "t": 0, "event": "rejected", "source": "a.jpg", "style": 0, "reason": "tiny"},
        {"v": 1, "t": 1, "event": "rejected", "source": "b.jpg", "style": 0, "reason": "tiny"},
    ]
    text = "\n".join(json.dumps(record) for record in records) + "\n"
    (out / ".batchtoon" / "journal.jsonl").write_text(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["run", "--help"],
        ["status"],
        ["status", "--json"],
        ["status", "--list"],
        ["config"],
        ["config", "--json"],
    ],
)
def test_a_command_that_talks_to_no_api_loads_no_http_client(
    argv: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    a_journal(out)
    if argv[0] in ("status", "config"):
        argv = [*argv, "--out", str(out)]
    code, heavy, stdout = loaded_by(argv, tmp_path)
    assert code == 0, stdout
    assert stdout  # it answered
    assert heavy == set(), f"batchtoon {' '.join(argv)} loaded {sorted(heavy)}"
    if argv[0] == "status" and "--json" in argv:
        assert json.loads(stdout)["results"]["refused"] == 2  # it read the journal


def test_the_probe_sees_what_a_run_loads(tmp_path: Path) -> None:
    """The probe can fail: a `plan` (which reads photos) loads the image library."""
    code, heavy, _ = loaded_by(["plan", str(ROOT / "samples"), "--out", str(tmp_path)], tmp_path)
    assert code == 0
    assert "PIL" in heavy


@pytest.mark.parametrize(("blocked", "loop"), [([], "uvloop"), (["--no-uvloop"], "asyncio")])
def test_a_run_goes_on_uvloop_where_it_can_else_on_asyncio(
    blocked: list[str], loop: str, tmp_path: Path
) -> None:
    pytest.importorskip("uvloop")
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    shutil.copy(ROOT / "samples" / "astronaut.png", photos)
    code, _, stdout = loaded_by([*blocked, "run", str(photos), "--sandbox", "--out", str(out),
                                 "-q"], tmp_path)  # fmt: skip
    assert code == 0, stdout
    start = next(
        line for line in (out / ".batchtoon" / "batchtoon.log").read_text().splitlines()
        if " start: " in line
    )  # fmt: skip
    assert f"; event loop {loop}; API " in start


def test_a_run_with_nothing_to_send_loads_no_http_client(tmp_path: Path) -> None:
    """A finished batch resumed sends nothing: aiohttp is loaded by the first request, so it
    is not loaded at all (the API named is one nothing answers at)."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    shutil.copy(ROOT / "samples" / "astronaut.png", photos)
    code, heavy, stdout = loaded_by(["run", str(photos), "--sandbox", "--out", str(out)], tmp_path)
    assert code == 0 and "aiohttp" in heavy, stdout  # (the probe can fail)
    again = ["run", str(photos), "--out", str(out), "--api-base", "http://127.0.0.1:9"]
    code, heavy, stdout = loaded_by(again, tmp_path, key="k" * 32)
    assert code == 0, stdout
    assert "1 found = 1 already done" in stdout
    assert not heavy & {"aiohttp", "yarl", "multidict", "tqdm"}, heavy  # (no bars: piped)
