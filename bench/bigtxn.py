"""One large source transaction, with and without pgoutput protocol 2 streaming.

    python -m bench.bigtxn [--rows 200000] [--pieces 20] [--pause 0.5] [--repeat 3]
                           [--work-mem 64MB] [--quick]

For each mode (`STREAMER_STREAMING=on` and `off`), on fresh clusters: `streamer run`
is running and idle; one transaction inserts `--rows` rows of the realistic payload mix
in `--pieces` statements `--pause` seconds apart (a bulk import that runs for a while,
as on a real lake; one statement that writes everything at once leaves nothing to
stream before its commit on a 2-core machine), and commits. Measured: the time from
that commit to all its rows being visible in the
target, and the source slot's `spill_bytes` / `stream_bytes` (pg_stat_replication_slots).
With streaming the rows are parked on the target while the transaction runs, so at the
commit only the move into the real tables is left; without it, the walsender decodes the
whole transaction (spilling to disk beyond logical_decoding_work_mem) only after the
commit. The ratio off/on is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench.common import (
    Spread,
    clusters,
    conditions_line,
    create_source,
    log,
    markdown_table,
    payload_rows,
    run_checked,
    scalar,
    scratch_dir,
    server_settings,
    sql,
    streamer_cmd,
    streamer_env,
    write_results,
)


def load_one_transaction(source_url: str, rows: int, pieces: int, pause: float) -> None:
    """`rows` rows in one source transaction of `pieces` INSERTs; returns at its commit."""
    with psycopg.connect(source_url) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_stage (n bigint PRIMARY KEY, data jsonb NOT NULL,"
            " merchant jsonb NOT NULL, tid uuid NOT NULL) ON COMMIT DROP"
        )
        with conn.cursor() as cur, cur.copy("COPY bench_stage FROM STDIN") as copy:
            for n, row in enumerate(payload_rows(rows, seed=7)):
                copy.write_row((n, *row))
        step = -(-rows // pieces)
        for lo in range(0, rows, step):
            conn.execute(
                "INSERT INTO raw_transactions (data, merchant, transactional_id)"
                " SELECT data, merchant, tid FROM bench_stage WHERE n >= %s AND n < %s ORDER BY n",
                (lo, lo + step),
            )
            time.sleep(pause)
        conn.commit()


def one_run(rows: int, streaming: str, work_mem: str, pieces: int, pause: float) -> dict[str, Any]:
    with clusters() as (source, target), scratch_dir() as cwd:
        sql(source.url(), f"ALTER SYSTEM SET logical_decoding_work_mem = '{work_mem}'")
        sql(source.url(), "SELECT pg_reload_conf()")
        source_url = create_source(source)
        target_url = target.createdb("app")
        env = streamer_env(source_url, target_url, "streamer", STREAMER_STREAMING=streaming)
        run_checked(streamer_cmd("init", "--backfill", "none"), env, cwd)
        proc = subprocess.Popen(
            streamer_cmd("run"), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            time.sleep(1.0)  # connected and idle
            load_one_transaction(source_url, rows, pieces, pause)
            committed = time.monotonic()
            while (
                scalar(target_url, "SELECT count(*) FROM transactions")
                + scalar(target_url, "SELECT count(*) FROM transactions_rejected")
                < rows
            ):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"streamer exited: {proc.stderr.read() if proc.stderr else ''}"
                    )
                time.sleep(0.02)
            visible_s = time.monotonic() - committed
            stats = sql(
                source_url,
                "SELECT spill_bytes, stream_bytes FROM pg_stat_replication_slots"
                " WHERE slot_name = 'streamer'",
            )
            settings = server_settings(source_url)
        finally:
            proc.terminate()
            proc.wait(30)
    spill, stream = (int(stats[0][0]), int(stats[0][1])) if stats else (0, 0)
    return {
        "visible_s": visible_s,
        "spill_bytes": spill,
        "stream_bytes": stream,
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bigtxn", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pieces", type=int, default=20, help="INSERT statements in the txn")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between them")
    parser.add_argument("--work-mem", default="64MB", help="logical_decoding_work_mem")
    parser.add_argument("--quick", action="store_true", help="smoke test: 20k rows, 1 run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat, args.work_mem, args.pieces, args.pause = 20_000, 1, "1MB", 4, 0.2
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(args.repeat):
        for mode in ("on", "off"):  # alternating, so drift hits both alike
            log(f"run {i + 1}/{args.repeat}, streaming {mode}")
            runs[mode].append(one_run(args.rows, mode, args.work_mem, args.pieces, args.pause))
    table = []
    for mode in ("on", "off"):
        seconds = Spread.of([r["visible_s"] for r in runs[mode]])
        spill = Spread.of([r["spill_bytes"] for r in runs[mode]])
        stream = Spread.of([r["stream_bytes"] for r in runs[mode]])
        table.append([f"streaming {mode}", seconds.fmt(2), spill.fmt(0), stream.fmt(0)])
    ratio = Spread.of(
        [
            off["visible_s"] / on["visible_s"]
            for on, off in zip(runs["on"], runs["off"], strict=True)
        ]
    )
    table.append(["**ratio off / on**", ratio.fmt(2), "", ""])
    print(
        markdown_table(
            [
                f"{args.rows:,} rows in one txn",
                "commit → all visible, s",
                "spill_bytes",
                "stream_bytes",
            ],
            table,
        )
    )
    print()
    settings = runs["on"][0]["settings"]
    print(conditions_line(settings) + f" logical_decoding_work_mem={args.work_mem}.")
    print(f"one transaction: {args.pieces} INSERTs {args.pause} s apart.")
    shape = {"rows": args.rows, "pieces": args.pieces, "pause": args.pause}
    path = write_results("bigtxn", {**shape, "work_mem": args.work_mem, "runs": runs})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
