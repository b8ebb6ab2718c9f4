"""The commands as a person meets them: help, mistakes, completion, pipes, keys, and what
`plan`, `status` and `run --json` answer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import make_photos
from PIL import Image
from test_cli import ROOT, batchtoon, clean_env, one_line_no_traceback

from batchtoon.cli import main
from batchtoon.sandbox import Sandbox

pytestmark = pytest.mark.usefixtures("no_outside_settings")


def tiny(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, "JPEG")
    path.write_bytes(out.getvalue())


# Help and mistakes.


def test_help_shows_defaults_examples_and_the_key_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "--rate R" in text and "(default: 2)" in text and "(default: batchtoon-out)" in text
    assert "examples:" in text and "batchtoon run ~/Pictures" in text
    assert "AILAB_API_KEY" in text and "BATCHTOON_OUT=" in text and "BATCHTOON_OUTPUT_DIR" in text
    assert "--fix, --no-fix" in text and "--report, --no-report" in text


STYEL = "batchtoon run: unknown flag --styel"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "samples", "--styel", "2d"], f"{STYEL}: did you mean --style?"),
        (["run", "samples", "--styel=2d"], f"{STYEL}: did you mean --style?"),
        (["rn", "samples"], "batchtoon: unknown command rn: did you mean run?"),
        (["stauts"], "batchtoon: unknown command stauts: did you mean status?"),
        (["plan", "samples", "--no-fx"], "plan: unknown flag --no-fx: did you mean --no-fix?"),
        (["run", "samples", "--con", "2"], "did you mean --config or --concurrency?"),
        (["status", "--state", "lost"], "batchtoon status: --state: invalid choice: 'lost'"),
        (["run"], "batchtoon run: the following arguments are required: SOURCE"),
        ([], "batchtoon: give a command: run, plan, status"),
        (["run", "samples", "--sandbox", "--api-base", "http://x"], "cannot go together"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_with_a_suggestion_and_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and said in err, err
    assert "usage:" not in err


async def test_an_unknown_flag_in_a_real_process_is_one_line_not_the_usage_dump() -> None:
    done = await batchtoon("run", "samples", "--styel", "2d")
    assert done.returncode == 2
    assert one_line_no_traceback(done.stderr) == (
        "batchtoon run: unknown flag --styel: did you mean --style?\n"
    )


# Completion.


@pytest.mark.parametrize(
    ("shell", "words"),
    [("bash", "complete"), ("zsh", "#compdef"), ("fish", "complete --command batchtoon")],
)
def test_completion_prints_the_script_for_each_shell(
    shell: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    assert words in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("batchtoon run --sty", {"--style"}),
        ("batchtoon st", {"status"}),
        ("batchtoon run samples --style vin", {"vintage-comic"}),
        ("batchtoon status --state f", {"failed"}),
    ],
)
def test_the_completion_answers_what_the_shell_asks(
    line: str, expected: set[str], tmp_path: Path
) -> None:
    answer = tmp_path / "answer"
    env = clean_env(
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_SHELL="bash",
        _ARGCOMPLETE_STDOUT_FILENAME=str(answer),
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        COMP_TYPE="9",
    )
    subprocess.run([sys.executable, "-m", "batchtoon"], env=env, cwd=ROOT, timeout=30, check=True)
    assert {word.strip() for word in answer.read_text().split("\v")} == expected


# The environment: pipes, keys, terminals.


@pytest.mark.parametrize(
    "argv", [["config"], ["completion", "bash"], ["status", "--list"], ["plan", "samples"]]
)
def test_a_closed_pipe_exits_141_quietly(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    if argv[0] == "status":  # a journal to read
        (out / ".batchtoon").mkdir(parents=True)
        record = {"v": 1, "t": 0, "event": "rejected", "source": "a.jpg", "style": 0}
        lines = [json.dumps({**record, "source": f"{i}.jpg", "reason": "no"}) for i in range(50)]
        (out / ".batchtoon" / "journal.jsonl").write_text("\n".join(lines) + "\n")
        argv = [*argv, "--out", str(out)]
    read, write = os.pipe()
    os.close(read)  # like `| head -1` after its line: every write now fails with EPIPE
    done = subprocess.run(
        [sys.executable, "-m", "batchtoon", *argv],
        stdout=write, stderr=subprocess.PIPE, env=clean_env(), cwd=ROOT, timeout=30,
    )  # fmt: skip
    os.close(write)
    assert (done.returncode, done.stderr) == (141, b"")


@pytest.mark.parametrize("key", ["abc\r\ndef", "ab\tc\n", "ab\x1b[2Jc", "ab c", "clé"])
async def test_an_api_key_that_cannot_be_a_header_is_refused_in_one_line(
    key: str, tmp_path: Path
) -> None:
    done = await batchtoon("plan", "samples", "--out", str(tmp_path), key=key)
    assert done.returncode == 2
    text = one_line_no_traceback(done.stderr)
    assert text.startswith("batchtoon: AILAB_API_KEY: the API key holds ")
    assert "abc" not in text and "cl" not in text.split("holds")[1]


def test_an_internal_error_is_one_line_and_the_traceback_goes_to_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchtoon.cli import show

    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(show, "completion", broken)
    assert main(["completion", "bash"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: a bug" in err
    path = Path(err.rsplit("the traceback in ", 1)[1].split()[0].rstrip(";"))
    assert "Traceback" in path.read_text()
    path.unlink()


async def test_names_with_control_characters_are_escaped_on_screen(tmp_path: Path) -> None:
    evil = tmp_path / "in" / "\x1b[2Jevil\rname.jpg"
    tiny(evil, (100, 100))  # refused before upload: its name is printed
    done = await batchtoon("run", str(tmp_path / "in"), "--sandbox", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    both = done.stdout + done.stderr
    assert b"\x1b" not in both and b"\r" not in both
    assert b"\\x1b[2Jevil\\x0dname.jpg" in done.stderr
    log = (tmp_path / "out" / ".batchtoon" / "batchtoon.log").read_bytes()
    assert b"\x1b" not in log and b"\\x1b[2Jevil\\x0dname.jpg" in log


# Screen: -v, -q, --json.


async def test_verbose_quiet_and_json(tmp_path: Path) -> None:
    make_photos(tmp_path / "in", 2)
    tiny(tmp_path / "in" / "thumb.jpg", (90, 90))
    args = ["run", str(tmp_path / "in"), "--sandbox"]
    loud = await batchtoon(*args, "--out", str(tmp_path / "a"), "-v")
    assert loud.returncode == 1
    # the log's line, not the item's line as well; and the log's start and end lines
    assert loud.stderr.count(b"batchtoon: WARNING refused") == 1
    assert b"batchtoon: refused" not in loud.stderr
    assert b"INFO start: batchtoon " in loud.stderr and b"INFO end: done, exit 1" in loud.stderr
    plain = await batchtoon(*args, "--out", str(tmp_path / "c"))
    assert b"batchtoon: refused" in plain.stderr and b"WARNING" not in plain.stderr
    assert b"sandbox: http://127.0.0.1" in loud.stderr
    quiet = await batchtoon(*args, "--out", str(tmp_path / "b"), "-q", "--json")
    assert quiet.returncode == 1  # only the error: the item refused, no banner, no bars
    assert quiet.stderr.decode().splitlines() == [
        f"batchtoon: refused {tmp_path / 'in' / 'thumb.jpg'}: 90x90 is under the API's 256 px "
        "minimum: use a larger photo"
    ]
    summary = json.loads(quiet.stdout)
    assert summary["exit_code"] == 1 and summary["found"] == 3
    assert summary["results"]["done_now"] == 2 and summary["results"]["refused"] == 1
    assert len(quiet.stdout.strip().splitlines()) == 1


# plan's exit code.


@pytest.mark.parametrize(
    ("credits", "key", "code", "said"),
    [
        (None, "good", 0, b""),
        (10, "good", 0, b""),
        (3, "good", 3, b"not enough credits: the balance is 3 and this run needs 5"),
        (None, "wrong", 3, b"the API refused the key"),
        (None, "locked", 3, b"the API refused the key"),
    ],
)
async def test_plan_says_no_with_exit_3_when_the_api_would_stop_the_run(
    tmp_path: Path, credits: int | None, key: str, code: int, said: bytes
) -> None:
    make_photos(tmp_path / "in", 5)
    async with Sandbox(api_keys=("good", "locked"), locked_keys=("locked",), credits=credits) as sb:
        done = await batchtoon(
            "plan", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            "--api-base", sb.base_url, key=key,
        )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert said in done.stderr
    assert b"billable submissions: 5" in done.stdout


# status.


async def test_status_groups_failures_by_kind_filters_by_state_and_lists_outputs(
    tmp_path: Path,
) -> None:
    make_photos(tmp_path / "in", 2)
    tiny(tmp_path / "in" / "thumb1.jpg", (120, 90))
    tiny(tmp_path / "in" / "thumb2.jpg", (200, 150))
    out = str(tmp_path / "out")
    run = await batchtoon("run", str(tmp_path / "in"), "--sandbox", "--out", out, "-q")
    assert run.returncode == 1
    text = (await batchtoon("status", "--out", out)).stdout.decode()
    assert text.splitlines()[:2] == [
        "results: 4 = 2 done + 2 refused",
        "photos:  4 = 2 done + 2 refused",
    ]
    assert "failures, by kind (1;" in text and "    2 x " in text
    assert "is under the API's 256 px minimum" in text and "e.g. " in text
    refused = (await batchtoon("status", "--out", out, "--state", "refused")).stdout.decode()
    assert [line.split()[0] for line in refused.splitlines()] == ["refused", "refused"]
    assert "thumb1.jpg (vintage-comic): 120x90 is under" in refused
    listed = (await batchtoon("status", "--out", out, "--list", "--json")).stdout.decode()
    rows = [json.loads(line) for line in listed.splitlines()]
    assert sorted(row["state"] for row in rows) == ["done", "done", "refused", "refused"]
    done = [row for row in rows if row["state"] == "done"]
    assert all(Path(row["output"]).is_file() for row in done)
    report = json.loads((await batchtoon("status", "--out", out, "--json")).stdout)
    assert report["kinds"][0]["count"] == 2 and len(report["failed"]) == 2
    assert report["kinds"][0]["kind"].startswith("<n>x<n> is under")
