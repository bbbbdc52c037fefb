"""CPU per row of the replication loop's pure stages, replayed without any server.

    python -m bench.hotpath [--rows 200000] [--txn-rows 1000] [--repeat 5] [--quick]

The frames a server would send for a backlog are synthesized (`tests.support.frames`)
from the same payload mix as the other benchmarks, in the source table's column layout,
and fed to `TransactionAssembler` in reads of 2,000 frames, as `streamer run` does.
Stages are measured cumulatively, each from scratch:

1. decode: frames -> source rows grouped by transaction (normalization replaced by a
   no-op);
2. + normalize: the real normalizer;
3. + COPY data: batches taken at the default batch size and their COPY data prepared
   (binary for the canonical rows, text for the rejected ones, as the writer does),
   which is all the main thread does for the writer.

Each figure is the best of --repeat runs of this process's CPU time, with the interpreter
tuned as in `streamer run` (GC threshold, switch interval). Nothing else runs, so the
numbers move by a few % between runs: use this to compare two versions of the hot path;
use `bench.catchup` for end-to-end throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import log, machine_info, markdown_table, write_results
from streamer.config import DEFAULT_BATCH_SIZE
from streamer.normalize import normalize
from streamer.normalize.records import SourceRow
from streamer.ops.synthetic import PayloadFactory
from streamer.pgoutput.relations import RelationCache
from streamer.sink.copy_binary import encode_for_copy
from streamer.sources.batching import BatchBuilder, Normalizer
from streamer.sources.driver import MAX_BATCH_BYTES, tune_interpreter
from streamer.sources.slot.assembler import TransactionAssembler
from streamer.sources.slot.stream import MAX_FRAMES_PER_READ
from tests.support import frames as encode

REL_ID = 16_390
EPOCH_2026_US = 820_454_400_000_000  # 2026-01-01 in PostgreSQL-epoch microseconds


def synthesize(rows: int, per_txn: int, seed: int = 7) -> list[bytes]:
    """The XLogData frames of `rows` inserts in `per_txn`-row transactions."""
    factory = PayloadFactory(seed=seed)
    frames = [
        encode.xlog_data(
            encode.relation(REL_ID, "public", "raw_transactions", encode.SEED_SOURCE_COLUMNS), 0
        )
    ]
    lsn = 0x1000000
    for first in range(0, rows, per_txn):
        count = min(per_txn, rows - first)
        commit_us = EPOCH_2026_US + first * 50
        frames.append(encode.xlog_data(encode.begin(lsn + 400 * count, commit_us, first), lsn))
        for _ in range(count):
            data, merchant = factory.one()
            values = [
                str(uuid.uuid4()),
                orjson.dumps(data).decode(),
                orjson.dumps(merchant).decode(),
                str(uuid.uuid4()),
                "2026-01-01 00:00:00.123456",
                "f",
                None,
            ]
            frames.append(encode.xlog_data(encode.insert(REL_ID, values), lsn))
            lsn += 400
        frames.append(encode.xlog_data(encode.commit(lsn, lsn + 48, commit_us), lsn))
        lsn += 64
    return frames


def _skip_normalize(row: SourceRow) -> Any:
    return row


def replay(frames: list[bytes], normalizer: Normalizer, copy_data: bool) -> float:
    """CPU seconds to push the frames through the assembler (and batching)."""
    builder = BatchBuilder(DEFAULT_BATCH_SIZE, MAX_BATCH_BYTES, 0.1, normalizer=normalizer)
    assembler = TransactionAssembler(RelationCache("public", "raw_transactions"), builder, 0)
    reads = [
        [memoryview(f) for f in frames[i : i + MAX_FRAMES_PER_READ]]
        for i in range(0, len(frames), MAX_FRAMES_PER_READ)
    ]
    started = time.process_time()
    for read in reads:
        assembler.feed(read, 0.0)
        if builder.full() or builder.ready(0.0, idle=True):
            batch = builder.take(0.0)
            if copy_data:
                batch.encoded = encode_for_copy(batch)
    return time.process_time() - started


STAGES: list[tuple[str, Callable[[SourceRow], Any], bool]] = [
    ("decode", _skip_normalize, False),
    ("+ normalize", normalize, False),
    ("+ COPY data", normalize, True),
]


def measure(rows: int, per_txn: int, repeat: int) -> dict[str, Any]:
    log(f"synthesizing {rows:,} rows in {per_txn}-row transactions")
    frames = synthesize(rows, per_txn)
    result: dict[str, Any] = {"rows": rows, "rows_per_transaction": per_txn, "stages": {}}
    for name, normalizer, copy_data in STAGES:
        best = min(replay(frames, normalizer, copy_data) for _ in range(repeat))
        result["stages"][name] = round(best / rows * 1e6, 2)
        log(f"  {name}: {result['stages'][name]} us/row")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hotpath",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--txn-rows", type=int, default=1000)
    parser.add_argument("--single-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.single_rows, args.repeat = 5000, 1000, 1
    tune_interpreter()
    results = [
        measure(args.rows, args.txn_rows, args.repeat),
        measure(args.single_rows, 1, args.repeat),
    ]
    table = []
    for res in results:
        stages = res["stages"]
        previous = 0.0
        cells = []
        for name, _, _ in STAGES:
            cells.append(f"{stages[name] - previous:.2f}")
            previous = stages[name]
        table.append(
            [f"{res['rows']:,} rows x {res['rows_per_transaction']}/txn", *cells, f"{previous:.2f}"]
        )
    print(f"\n## Hot path CPU per row (best of {args.repeat}), microseconds\n")
    print(markdown_table(("backlog", *(s[0] for s in STAGES), "total"), table))
    path = write_results(
        "hotpath",
        {"benchmark": "hotpath", "args": vars(args), "machine": machine_info(), "runs": results},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
