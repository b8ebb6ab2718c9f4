"""What object storage costs: the throughput benchmark's batch (N photos, the fast API's
timings: T = 2 s, P = 0.5 s, R = 100/s) read from a local folder and from an S3 server, written
to a local folder and to the S3 server, bound / wall for each.

The S3 server is moto's (the real protocol, on 127.0.0.1) in a process of its own, as the
sandbox is, its request log off; its CPU during each run is given beside the row, since on 2
cores it competes with the client and the sandbox, as a real store's would not. This process
never imports an S3 client (a child forked from a bigger parent would report the parent's
peak RSS as its own): uploading and counting go through small child processes. Each photo
costs the store a HEAD, a ranged GET and a HEAD (pre-flight's stable read), each result a PUT
and a HEAD (the write checked); a folder is one listing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .common import (
    FAST_API,
    BenchError,
    Options,
    Row,
    base_jpeg,
    batchtoon_against,
    bench_tempdir,
    cpu_note,
    per_image,
    run_child,
    write_images,
)

NAME = "storage"
CONCURRENCY = 32  # as the throughput benchmark
POLL_RATE = 2000.0
BUCKET = "batchtoon-bench"
STARTUP_TIMEOUT = 30.0

SERVE = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.ERROR); "
    "from moto.server import main; main(['-H', '127.0.0.1', '-p', sys.argv[1]])"
)
UPLOAD = (
    "import sys, s3fs; fs = s3fs.S3FileSystem(); fs.mkdir(sys.argv[2]); "
    "fs.put(sys.argv[1], sys.argv[2] + '/photos', recursive=True)"
)
COUNT = "import sys, s3fs; print(len(s3fs.S3FileSystem().find(sys.argv[1])))"


@dataclass(frozen=True)
class Store:
    env: dict[str, str]  # what points a client at it: endpoint and (fake) credentials
    pid: int

    def cpu(self) -> float:
        """The server's CPU seconds so far (user + system)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def python(self, script: str, *args: str) -> str:
        """`script` in a child Python with this store's environment; its output."""
        env = {**os.environ, **self.env}
        child = run_child([sys.executable, "-c", script, *args], timeout=600, env=env)
        return child.check("an s3fs child").stdout


@contextmanager
def s3_server() -> Iterator[Store]:
    """moto's S3 server on 127.0.0.1, in its own process."""
    with socket.socket() as probe:  # a free port (moto cannot say which one it took)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server)
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        yield Store(env, server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"moto's S3 server did not listen on {port}") from None
            time.sleep(0.05)


def run(options: Options) -> list[Row]:
    n = 300 if options.quick else 2000
    rows: list[Row] = []
    with bench_tempdir(NAME) as tmp, s3_server() as store:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        begun = time.monotonic()
        store.python(UPLOAD, str(photos), BUCKET)
        uploaded = time.monotonic() - begun
        url = f"s3://{BUCKET}/photos"
        scenarios: list[tuple[str, Path | str, Path | str | None]] = [
            ("local folder -> local folder", photos, None),
            ("s3:// -> local folder", url, None),
            ("s3:// -> s3://", url, f"s3://{BUCKET}/cartoons"),
            ("local folder -> s3://", photos, f"s3://{BUCKET}/cartoons-2"),
        ]
        for label, source, out in scenarios:
            rows.append(_measure(store, tmp, n, label, source, out))
            if isinstance(out, str) and int(store.python(COUNT, out)) != n:
                raise BenchError(f"{label}: the bucket does not hold {n} results")
    setting = f"N = {n:,}, {FAST_API.describe()}"
    return [*rows, Row(NAME, f"setting (every row above): {setting}", f"upload {uploaded:.1f} s")]


def _measure(
    store: Store, tmp: Path, n: int, label: str, source: Path | str, out: Path | str | None
) -> Row:
    bound = FAST_API.bound(n)
    server_cpu = store.cpu()
    measured = batchtoon_against(
        FAST_API,
        [source],
        tmp,
        n=n,
        concurrency=CONCURRENCY,
        poll_rate=POLL_RATE,
        timeout=60 + 5 * bound,
        out=out,
        env=store.env,
    )
    server_cpu = store.cpu() - server_cpu
    run_ = measured.run
    return Row(
        NAME,
        f"bound / wall, {label}",
        f"{bound / run_.wall:.3f} (bound {bound:.2f} s, wall {run_.wall:.2f} s)",
        note=f"client {cpu_note(run_, n)}; the S3 server's CPU {server_cpu:.1f} s; requests "
        f"per image to the API (submit / query / download) {per_image(measured.counters, n)}. "
        f"Journal: {measured.timeline.describe(n, FAST_API.real_rate)}",
    )
