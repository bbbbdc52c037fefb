"""What the target server pays per row of a COPY into `transactions`, by schema variant.

    python -m bench.target [--rows 100000] [--repeat 3]

The COPY text of the benchmark payload mix is prepared once (the real assembler,
normalizer and COPY text code), then copied into a fresh `transactions` table of each
variant, after a CHECKPOINT: as built; as built but fed the same rows as binary COPY data
(captured with COPY TO, so only the server's side of a binary writer is measured); without
the `source_committed_at` index; without any index; and with `raw` as text instead of
jsonb. The figures are the median wall time of the COPY and its commit, and the CPU of
the server backend that ran it, per row. They tell which target-side lever would move
catch-up throughput once the target server is the bottleneck (see the README's Performance
section). Streamer sends the second: binary COPY whenever every value of the batch has a
binary form in `sink/copy_binary.py` (the benchmark mix always does), the first otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import psycopg

from bench.common import DURABLE_SETTINGS, log, machine_info, markdown_table, write_results
from bench.hotpath import synthesize
from streamer.normalize import normalize
from streamer.ops.embedded import LocalCluster, wheel_bindir
from streamer.pgoutput.relations import RelationCache
from streamer.sink.copy_text import encode_batch
from streamer.sink.schema import create_tables
from streamer.sink.tables import TRANSACTION_COLUMNS
from streamer.sources.batching import BatchBuilder
from streamer.sources.slot.assembler import TransactionAssembler

AS_BUILT = "as built (primary key, source_committed_at index, jsonb raw), COPY text"
BINARY = "as built, binary COPY (what streamer sends)"
DROP_INDEX = "DROP INDEX transactions_source_committed_at_idx"
DROP_KEY = "ALTER TABLE transactions DROP CONSTRAINT transactions_pkey"
VARIANTS: dict[str, list[str]] = {
    AS_BUILT: [],
    BINARY: [],
    "without the source_committed_at index": [DROP_INDEX],
    "without any index": [DROP_INDEX, DROP_KEY],
    "without any index, raw as text": [
        DROP_INDEX,
        DROP_KEY,
        "ALTER TABLE transactions ALTER COLUMN raw TYPE text",
    ],
}


def copy_text(rows: int) -> bytes:
    """The COPY text of `rows` rows of the payload mix, as `streamer run` prepares it."""
    builder = BatchBuilder(10**9, 1 << 40, 1e9, normalizer=normalize)
    assembler = TransactionAssembler(RelationCache("public", "raw_transactions"), builder, 0)
    assembler.feed([memoryview(frame) for frame in synthesize(rows, 1000)], 0.0)
    encoded = encode_batch(builder.take(0.0))
    if encoded is None:
        raise SystemExit("psycopg's COPY formatter is unavailable")
    return encoded[0]


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def binary_copy(url: str) -> bytes:
    """The rows of `transactions` as binary COPY data (what a binary writer would send)."""
    columns = ", ".join(TRANSACTION_COLUMNS)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        query = f"COPY transactions ({columns}) TO STDOUT (FORMAT binary)"
        with cur.copy(query) as copy:  # type: ignore[arg-type]
            return b"".join(bytes(block) for block in copy)


def timed_copy(url: str, text: bytes, binary: bool = False) -> tuple[float, float]:
    """(wall s, backend CPU s) of one COPY of `text` (binary COPY data with `binary`) and
    its commit."""
    columns = ", ".join(TRANSACTION_COLUMNS)
    options = " (FORMAT binary)" if binary else ""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        pid = int(row[0])
        cpu, start = backend_cpu(pid), time.perf_counter()
        with conn.cursor().copy(f"COPY transactions ({columns}) FROM STDIN{options}") as copy:
            copy.write(text)
        conn.commit()
        return time.perf_counter() - start, backend_cpu(pid) - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.target", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke test: 5,000 rows, once")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 5000, 1
    text = copy_text(args.rows)
    log(f"COPY text of {args.rows:,} rows: {len(text) / 1e6:.1f} MB")
    cluster = LocalCluster(wheel_bindir(), "bench-target-cost", **DURABLE_SETTINGS)
    results: dict[str, Any] = {}
    try:
        cluster.start()
        url = cluster.createdb("app")
        create_tables(url, "public")
        timed_copy(url, text)
        binary = binary_copy(url)
        log(f"the same rows as binary COPY data: {len(binary) / 1e6:.1f} MB")
        with psycopg.connect(url, autocommit=True) as admin:
            for name, statements in VARIANTS.items():
                runs = []
                for _ in range(args.repeat):
                    admin.execute("DROP TABLE IF EXISTS transactions CASCADE")
                    create_tables(url, "public")
                    for statement in statements:
                        admin.execute(statement)  # type: ignore[arg-type]
                    admin.execute("CHECKPOINT")
                    if name == BINARY:
                        runs.append(timed_copy(url, binary, binary=True))
                    else:
                        runs.append(timed_copy(url, text))
                wall = statistics.median(r[0] for r in runs) * 1e6 / args.rows
                cpu = statistics.median(r[1] for r in runs) * 1e6 / args.rows
                results[name] = {"wall_us_per_row": round(wall, 2), "cpu_us_per_row": round(cpu, 2)}
                log(f"  {name}: {wall:.2f} µs a row wall, {cpu:.2f} µs backend CPU")
    finally:
        cluster.destroy()
    table = [
        [name, f"{r['wall_us_per_row']:.2f}", f"{r['cpu_us_per_row']:.2f}"]
        for name, r in results.items()
    ]
    print(f"\n## Target COPY cost per row ({args.rows:,} rows, median of {args.repeat})\n")
    print(markdown_table(("transactions table", "wall µs/row", "backend CPU µs/row"), table))
    path = write_results(
        "target",
        {"benchmark": "target", "args": vars(args), "machine": machine_info(), "variants": results},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
