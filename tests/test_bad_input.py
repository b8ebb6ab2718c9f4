"""Bad input: every kind is reported with its reason, the good ones are all done, no traceback."""

from __future__ import annotations

import io
import os
from pathlib import Path

from harness import outputs, photo
from PIL import Image
from test_cli import KEY_ENV, batchtoon

from batchtoon.sandbox import Sandbox

CONVERTED = ("anim.gif", "scan.tiff", "wide.png", "heavy.jpg")


def image_file(path: Path, size: tuple[int, int], fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, fmt)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def bad_folder(root: Path) -> dict[str, str]:
    """Make a folder of good and bad files; return each bad file's name and words of its reason.

    Four are bad only as they are (GIF, TIFF, over 5760x3240, over 10 MB): CONVERTED, on by
    default, so they are sent (test_intake.py has the reasons `--no-fix` refuses them with)."""
    root.mkdir()
    (root / "good.jpg").write_bytes(photo(seed=1))
    (root / "deeper").mkdir()
    (root / "deeper" / "good.png").write_bytes(photo(seed=2, fmt="PNG"))
    (root / os.fsdecode(b"caf\xe9.jpg")).write_bytes(photo(seed=3))  # a name that is not UTF-8
    (root / "deeper" / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not a photo at all")
    whole = photo(seed=4, size=(600, 400))
    (root / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    png = image_file(root / "tmp.png", (300, 300), "PNG")
    (root / "tmp.png").unlink()
    (root / "cut.png").write_bytes(png[: len(png) - 30])
    image_file(root / "anim.gif", (300, 300), "GIF")
    image_file(root / "scan.tiff", (300, 300), "TIFF")
    (root / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + os.urandom(200))
    image_file(root / "tiny.jpg", (100, 120), "JPEG")
    image_file(root / "wide.png", (6000, 400), "PNG")
    (root / "heavy.jpg").write_bytes(photo(seed=5) + b"\0" * (11 * 1024 * 1024))
    (root / "gone.jpg").symlink_to(root / "nowhere.jpg")
    return {
        "empty.jpg": "empty file",
        "notes.jpg": "not an image",
        "cut.jpg": "truncated",
        "cut.png": "truncated",
        "phone.heic": "not an image",
        "tiny.jpg": "under the API's 256 px minimum",
        "gone.jpg": "broken symbolic link",
    }


async def test_a_folder_of_good_and_bad_files(tmp_path: Path) -> None:
    expected = bad_folder(tmp_path / "in")
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url,
            "--quiet", "--poll-interval", "0.02", key=sandbox.api_key,
        )  # fmt: skip
        assert sandbox.counters.accepted_total == 3 + len(CONVERTED)  # the bad ones never do
        assert sandbox.counters.rejected.total() == 0
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    for name, words in expected.items():
        [line] = [line for line in stderr.splitlines() if f"{name}:" in line]
        assert words in line, line
    assert len(outputs(out)) == 3 + len(CONVERTED)
    assert {p.name.split(".")[0] for p in outputs(out)} >= {n.split(".")[0] for n in CONVERTED}
    # the photo whose name is not UTF-8 is done too, under its own (byte-for-byte) name
    assert os.fsencode(out / os.fsdecode(b"caf\xe9.vintage-comic.jpg")) in {
        os.fsencode(p) for p in outputs(out)
    }
    assert f"= {3 + len(CONVERTED)} done now + {len(expected)} refused".encode() in done.stdout


async def test_manifest_lines_that_cannot_be_used_are_reported_by_line(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(photo(seed=1))
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        '{"path": "a.jpg", "style": "2d"}\n'
        "this is not json\n"
        '{"path": "a.jpg", "style": 12}\n'
        '{"style": 1}\n'
        '["a.jpg"]\n'
        '{"path": "../../../../etc/escape.jpg"}\n'
    )
    out = tmp_path / "out"
    done = await batchtoon("run", str(manifest), "--sandbox", "--out", str(out), "--quiet")
    stderr = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in stderr
    for number in (2, 3, 4, 5):
        assert f"list.jsonl line {number}:" in stderr
    assert "escape.jpg: file not found" in stderr  # reported, and never written outside <out>
    assert [p.name for p in outputs(out)] == ["a.2d.jpg"]


async def test_the_api_key_is_in_no_output_no_journal_no_log(tmp_path: Path) -> None:
    key = "k3y-" + "s3cr3t" * 6
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(photo(seed=1))
    out = tmp_path / "out"
    async with Sandbox(time_scale=0.001, render="echo", api_keys=(key,)) as sandbox:
        sandbox.inject("submit", 500, "SERVICE_INTERNAL_ERROR", message=f"echoing {key}")
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--out", str(out), "--api-base", sandbox.base_url,
            "--quiet", "--poll-interval", "0.02", key=key,
        )  # fmt: skip
    status = await batchtoon("status", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr.decode()
    written = [p.read_bytes() for p in (out / ".batchtoon").iterdir() if p.is_file()]
    for blob in (done.stdout, done.stderr, status.stdout, *written):
        assert key.encode() not in blob
    assert b"echoing ***" in (out / ".batchtoon" / "batchtoon.log").read_bytes()


async def test_a_wrong_key_stops_at_once_without_a_retry_storm(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for seed in range(20):
        (tmp_path / "in" / f"{seed}.jpg").write_bytes(photo(seed=seed))
    wrong = "wrong-" + "x" * 30
    async with Sandbox(time_scale=0.001, render="echo") as sandbox:
        done = await batchtoon(
            "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            "--api-base", sandbox.base_url, "--quiet", key=wrong,
        )  # fmt: skip
        refused = sandbox.counters.rejected["ERROR_USER_NOT_EXISTS"]
    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert refused <= 4  # at most one per upload already in flight, never retried
    assert wrong not in stderr and "Traceback" not in stderr
    assert f"check the API key in ${KEY_ENV}" in stderr and "run the same command again" in stderr
