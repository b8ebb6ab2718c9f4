"""What object storage costs: the throughput benchmark's batch (N photos, the fast API's
timings: T = 2 s, P = 0.5 s, R = 100/s) read from a local folder and from an S3 server, written
to a local folder and to the S3 server, bound / wall for each.

The S3 server is moto's (the real protocol, on 127.0.0.1), in this process's threads while the
client runs in its own: its CPU (this process's, less what it spent before) is given beside
each row, since on 2 cores it competes with the client and the sandbox, as a real store's
would not. Each photo costs the store a HEAD, a ranged GET and a HEAD (pre-flight's stable
read), each result a PUT and a HEAD (the write checked); a folder is one listing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    write_images,
)

NAME = "storage"
CONCURRENCY = 32  # as the throughput benchmark
POLL_RATE = 2000.0
BUCKET = "batchtoon-bench"


@dataclass(frozen=True)
class Store:
    env: dict[str, str]  # what points a client at it: endpoint and (fake) credentials
    fs: Any  # an s3fs filesystem on it, for this process


@contextmanager
def s3_server() -> Iterator[Store]:
    """moto's S3 server on 127.0.0.1 (a free port), with one empty bucket."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        fs = s3fs.S3FileSystem(
            key="bench", secret="bench-secret", endpoint_url=endpoint, skip_instance_cache=True
        )
        fs.mkdir(BUCKET)
        yield Store(env, fs)
    finally:
        server.stop()


def run(options: Options) -> list[Row]:
    n = 300 if options.quick else 2000
    rows: list[Row] = []
    with bench_tempdir(NAME) as tmp, s3_server() as store:
        photos = tmp / "photos"
        write_images(photos, n, base_jpeg())
        begun = time.monotonic()
        store.fs.put(str(photos), f"{BUCKET}/photos", recursive=True)
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
            if isinstance(out, str) and len(store.fs.find(out[len("s3://") :])) != n:
                raise BenchError(f"{label}: the bucket does not hold {n} results")
    setting = f"N = {n:,}, {FAST_API.describe()}"
    return [*rows, Row(NAME, f"setting (every row above): {setting}", f"upload {uploaded:.1f} s")]


def _measure(
    store: Store, tmp: Path, n: int, label: str, source: Path | str, out: Path | str | None
) -> Row:
    bound = FAST_API.bound(n)
    server_cpu = time.process_time()  # the S3 server's threads: this process is idle otherwise
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
    server_cpu = time.process_time() - server_cpu
    run_ = measured.run
    return Row(
        NAME,
        f"bound / wall, {label}",
        f"{bound / run_.wall:.3f} (bound {bound:.2f} s, wall {run_.wall:.2f} s)",
        note=f"client {cpu_note(run_, n)}; the S3 server's CPU {server_cpu:.1f} s; requests "
        f"per image to the API (submit / query / download) {per_image(measured.counters, n)}. "
        f"Journal: {measured.timeline.describe(n, FAST_API.real_rate)}",
    )
