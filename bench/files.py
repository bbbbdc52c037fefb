"""Files mode throughput: `streamer run --mode files --once` over S3 objects vs the slot.

    python -m bench.files [--files 200] [--records 5000] [--repeat 1] [--quick]

A moto S3 server on 127.0.0.1 (started and stopped here, in this process) holds the same
payloads twice: `--files` JSONL objects of `--records` records, and the same records as
Parquet (a `data` JSON text column), spread over dated partitions like the seed's. Each
timed run reads one format with `--workers 1` or `4` into a fresh target database. The
slot stream is measured in the same script on the same payload mix (PayloadFactory, the
mix bench.catchup uses): a `--slot-rows` backlog in `--txn-rows`-row transactions
through `streamer run --once`. Wall-clock from process start to exit; the moto server
runs in this process and competes for the same cores, as S3 would not.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    REPO_DIR,
    LoadWatch,
    Spread,
    checkpoint,
    clusters,
    conditions_line,
    create_source,
    load_backlog,
    log,
    machine_info,
    markdown_table,
    run_checked,
    scratch_dir,
    server_settings,
    streamer_cmd,
    streamer_env,
    target_counts,
    timed_tool,
    write_results,
)
from streamer.ops.embedded import LocalCluster
from streamer.ops.synthetic import PayloadFactory

BUCKET = "bench-lake"
FORMATS = ("jsonl", "parquet")
FILES_PER_PARTITION = 20
SUMMARY = re.compile(r"files completed (\d+), files failed (\d+), .*seconds ([0-9.]+)")


@contextmanager
def moto_s3(scratch: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server on a free 127.0.0.1 port; the AWS environment pointing at it."""
    import socket  # noqa: PLC0415

    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    empty = scratch / "no-aws-config"
    empty.write_text("")
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        }
    finally:
        server.stop()


def upload(aws: dict[str, str], files: int, records: int, seed: int) -> dict[str, int]:
    """Both formats of the same records; returns the bytes uploaded per format."""
    import boto3  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    s3 = boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket=BUCKET)
    factory = PayloadFactory(seed=seed)
    sizes = dict.fromkeys(FORMATS, 0)
    for n in range(files):
        rows = []
        for _ in range(records):
            data, merchant = factory.one()
            rows.append((str(uuid.uuid4()), merchant, orjson.dumps(data).decode()))
        jsonl = b"".join(
            orjson.dumps({"transactional_id": t, "merchant": m, "data": orjson.Fragment(d)}) + b"\n"
            for t, m, d in rows
        )
        table = pa.table(
            {
                "transactional_id": [t for t, _, _ in rows],
                "merchant_id": [m["id"] for _, m, _ in rows],
                "merchant_name": [m["name"] for _, m, _ in rows],
                "merchant_country": [m["country"] for _, m, _ in rows],
                "data": [d for _, _, d in rows],
            }
        )
        parquet = io.BytesIO()
        pq.write_table(table, parquet)
        key = f"2024-12-{1 + n // FILES_PER_PARTITION:02d}/transactions_{n:04d}"
        for fmt, body in (("jsonl", jsonl), ("parquet", parquet.getvalue())):
            s3.put_object(Bucket=BUCKET, Key=f"{fmt}/{key}.{fmt}", Body=body)
            sizes[fmt] += len(body)
    return sizes


def files_run(
    pair: tuple[LocalCluster, LocalCluster],
    cwd: Path,
    aws: dict[str, str],
    *,
    fmt: str,
    workers: int,
    name: str,
    expected: tuple[int, int],
    timeout: float,
) -> dict[str, Any]:
    """One timed `run --mode files --once` into a fresh target database."""
    target_url = pair[1].createdb(name)
    env = streamer_env("", target_url, "unused", PYTHONPATH=str(REPO_DIR), **aws)
    env["STREAMER_FILES_URL"] = f"s3://{BUCKET}/{fmt}/"
    checkpoint(target_url)
    cmd = streamer_cmd("run", "--mode", "files", "--once", "--workers", str(workers))
    files, rows = expected
    timed, numbers = timed_tool(cmd, env, cwd, timeout, pair=pair, rows=rows)
    normalized, rejected = target_counts(target_url)
    match = SUMMARY.search(timed.output)
    if normalized + rejected != rows or match is None or int(match.group(1)) != files:
        raise RuntimeError(f"{fmt} run: {normalized}+{rejected} rows, output {timed.output!r}")
    numbers.update(
        # wait4's ru_maxrss starts from this (large, moto-holding) process's RSS at fork
        peak_rss_mib=round(timed.sampled_peak_rss_kib / 1024, 1),
        files_per_s=round(files / timed.seconds, 2),
        in_process_seconds=float(match.group(3)),
        rows_normalized=normalized,
        rows_rejected=rejected,
    )
    return numbers


def slot_run(
    pair: tuple[LocalCluster, LocalCluster],
    cwd: Path,
    *,
    rows: int,
    per_txn: int,
    seed: int,
    timeout: float,
) -> dict[str, Any]:
    """The slot stream's catch-up over the same payload mix (as bench.catchup does)."""
    source_url = create_source(pair[0])
    target_url = pair[1].createdb("slot_target")
    env = streamer_env(source_url, target_url, "bench_files", PYTHONPATH=str(REPO_DIR))
    run_checked(streamer_cmd("init"), env, cwd)
    seconds = load_backlog(source_url, rows, per_txn, seed)
    log(f"  slot: loaded {rows:,} rows in {seconds:.1f} s")
    checkpoint(source_url, target_url)
    cmd = streamer_cmd("run", "--once")
    timed, numbers = timed_tool(cmd, env, cwd, timeout, pair=pair, rows=rows)
    numbers["peak_rss_mib"] = round(timed.sampled_peak_rss_kib / 1024, 1)
    normalized, rejected = target_counts(target_url)
    if normalized + rejected != rows:
        raise RuntimeError(f"slot run: {normalized}+{rejected} rows of {rows}")
    numbers["server_settings"] = server_settings(source_url)
    return numbers


def report(runs: list[dict[str, Any]], slot: dict[str, Any], repeat: int) -> str:
    rows: list[list[Any]] = []
    for run in runs:
        numbers = run["numbers"]
        rows.append(
            [
                run["format"],
                run["workers"],
                Spread.of([n["seconds"] for n in numbers]).fmt(2),
                Spread.of([n["files_per_s"] for n in numbers]).fmt(1),
                Spread.of([n["rows_per_s"] for n in numbers]).fmt(0),
                Spread.of([n["rows_per_s"] / slot["rows_per_s"] for n in numbers]).fmt(2),
                Spread.of([n["peak_rss_mib"] for n in numbers]).fmt(0),
            ]
        )
    rows.append(["slot stream", "", f"{slot['seconds']:.2f}", "", f"{slot['rows_per_s']:,.0f}"])
    rows[-1] += ["1.00", f"{slot['peak_rss_mib']:.0f}"]  # RSS: sampled VmRSS
    headers = ("source", "workers", "wall s", "files/s", "rows/s", "÷ slot rows/s", "RSS MiB")
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--records", type=int, default=5000, help="records per file")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", default="1,4", help="comma-separated --workers values")
    parser.add_argument("--slot-rows", type=int, default=200_000, help="slot backlog rows")
    parser.add_argument("--txn-rows", type=int, default=1000, help="rows per transaction")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800, help="per timed run, seconds")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 files of 500")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.records, args.slot_rows, args.repeat = 8, 500, 4000, 1
    workers = [int(w) for w in args.workers.split(",")]
    expected = (args.files, args.files * args.records)
    watch = LoadWatch()
    runs: list[dict[str, Any]] = []
    with clusters() as pair, scratch_dir() as cwd, moto_s3(cwd) as aws:
        log(f"uploading {args.files} files x {args.records:,} records, JSONL and Parquet")
        sizes = upload(aws, args.files, args.records, args.seed)
        mib = {fmt: f"{size / 2**20:.0f} MiB" for fmt, size in sizes.items()}
        log(f"  uploaded {mib['jsonl']} JSONL, {mib['parquet']} Parquet")
        for fmt in FORMATS:
            for w in workers:
                numbers = []
                for i in range(args.repeat):
                    name = f"files_{fmt}_{w}_{i}"
                    n = files_run(
                        pair,
                        cwd,
                        aws,
                        fmt=fmt,
                        workers=w,
                        name=name,
                        expected=expected,
                        timeout=args.timeout,
                    )
                    log(f"  {fmt} --workers {w}: {n['seconds']:.2f} s, {n['rows_per_s']:,.0f}/s")
                    numbers.append(n)
                runs.append({"format": fmt, "workers": w, "numbers": numbers})
        slot = slot_run(
            pair,
            cwd,
            rows=args.slot_rows,
            per_txn=args.txn_rows,
            seed=args.seed,
            timeout=args.timeout,
        )
        log(f"  slot stream: {slot['seconds']:.2f} s, {slot['rows_per_s']:,.0f} rows/s")
    table = report(runs, slot, args.repeat)
    print(
        f"\n## Files mode throughput ({args.files} files x {args.records:,} records; "
        f"slot: {args.slot_rows:,} rows in {args.txn_rows}-row transactions; "
        f"median of {args.repeat})\n"
    )
    print(table)
    print(f"\n{conditions_line(slot['server_settings'])}")
    path = write_results(
        "files",
        {
            "benchmark": "files",
            "args": vars(args),
            "machine": machine_info(),
            "conditions": watch.summary(),
            "uploaded_bytes": sizes,
            "files": runs,
            "slot": slot,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
