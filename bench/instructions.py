"""Instructions per row, counted by valgrind's callgrind: figures that do not move with
the host's load or CPU clock the way wall-clock ratios do.

    python -m bench.instructions [--rows 20000] [--single-rows 10000] [--repeat 2]
                                 [--hotpath-only] [--quick]

1. **End to end** (real source and target clusters, as `bench.catchup`): the streamer
   process of `streamer run --once` is run under callgrind over a backlog of N rows, and
   once more with nothing to do (a slot created after the backlog: start-up and exit).
   Instructions per row = (run over N rows - empty run) / N, for 1,000-row transactions
   and single-row transactions with the payload mix of `bench.catchup`. Each full run is
   repeated (`--repeat`, each on its own slot and target database) and the spread printed:
   the counts should repeat within 0.5 %. All threads of the process are counted.
2. **In-process hot path** (no servers, seconds): `bench.hotpath`'s synthesized frames
   replayed under callgrind through the real assembler, cumulatively by stage (decode,
   + normalize, + COPY data), each minus a replay of no rows. What the end-to-end figure
   has beyond it is the driver loop, the replication reads and the writer's COPY.

callgrind runs the code ~50x slower, so N stays moderate. Set `STREAMER_PURE_PYTHON=1`
to count the pure-Python twin.
"""

from __future__ import annotations

import argparse
import marshal
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    clusters,
    create_source,
    load_backlog,
    log,
    machine_info,
    markdown_table,
    run_checked,
    scratch_dir,
    streamer_cmd,
    streamer_env,
    write_results,
)

TOTALS = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)
STAGES = ("decode", "+ normalize", "+ COPY data")
# C entry points whose inclusive cost callgrind_annotate attributes to the I/O stage.
IO_FUNCTIONS = ("PQconsumeInput", "PQgetCopyData", "PQputCopyData", "PQputCopyEnd")


def callgrind(cmd: list[str], env: dict[str, str] | None, cwd: Path, out: Path) -> int:
    """Instructions executed by `cmd` (all threads); the profile is left in `out`."""
    full = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-line=no",
        *cmd,
    ]
    proc = subprocess.run(
        full, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    match = TOTALS.search(out.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"no totals in {out}")
    return int(match.group(1))


def inclusive(out: Path, functions: tuple[str, ...]) -> int:
    """Inclusive instructions of the named C functions in a callgrind profile."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].replace(",", "").isdigit():
            name = parts[-2] if parts[-1].startswith("[") else parts[-1]
            symbol = name.rsplit(":", 1)[-1]
            if symbol in functions:
                total += int(parts[0].replace(",", ""))
    return total


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{(high - low) / low * 100:.2f} %" if low else "-"


# -- end to end -------------------------------------------------------------------------
def end_to_end(rows: int, per_txn: int, repeat: int, work: Path) -> dict[str, Any]:
    log(f"end to end: {rows:,} rows in {per_txn}-row transactions, {repeat} counted runs")
    with clusters() as (source, target), scratch_dir() as cwd:
        source_url = create_source(source)
        slots: list[tuple[str, str]] = []
        for i in range(repeat):
            target_url = target.createdb(f"app_{i}")
            run_checked(streamer_cmd("init"), streamer_env(source_url, target_url, f"s_{i}"), cwd)
            slots.append((f"s_{i}", target_url))
        seconds = load_backlog(source_url, rows, per_txn)
        log(f"  loaded in {seconds:.1f} s")
        empty_url = target.createdb("app_empty")
        run_checked(streamer_cmd("init"), streamer_env(source_url, empty_url, "s_empty"), cwd)
        version = run_checked(
            streamer_cmd("--version"), streamer_env(source_url, empty_url, "-"), cwd
        )
        log(f"  counting {version.strip()} (set PYTHONPATH to count a checkout's code)")
        once = streamer_cmd("run", "--once")
        empty_out = work / f"empty-{per_txn}.out"
        empty = callgrind(once, streamer_env(source_url, empty_url, "s_empty"), cwd, empty_out)
        log(f"  empty run: {empty:,} instructions")
        counts, io = [], []
        for i, (slot, target_url) in enumerate(slots):
            out = work / f"run-{per_txn}-{i}.out"
            total = callgrind(once, streamer_env(source_url, target_url, slot), cwd, out)
            counts.append(total)
            io.append(inclusive(out, IO_FUNCTIONS) - inclusive(empty_out, IO_FUNCTIONS))
            log(f"  run {i + 1}: {total:,} instructions, {(total - empty) / rows:,.0f} a row")
    per_row = [(c - empty) / rows for c in counts]
    return {
        "rows": rows,
        "rows_per_transaction": per_txn,
        "empty_run": empty,
        "runs": counts,
        "per_row": round(min(per_row)),
        "per_row_runs": [round(p) for p in per_row],
        "spread": spread(per_row),
        "io_per_row": round(min(io) / rows),
    }


# -- in-process hot path ----------------------------------------------------------------
def worker(frames_path: str, stage: str) -> int:
    """Replay the frames in `frames_path` through stage `stage` (run under callgrind)."""
    from bench.hotpath import STAGES as HOT_STAGES  # noqa: PLC0415 (the worker only)
    from bench.hotpath import replay  # noqa: PLC0415
    from streamer.sources.driver import tune_interpreter  # noqa: PLC0415

    frames = marshal.loads(Path(frames_path).read_bytes())
    tune_interpreter()
    for name, normalizer, copy_data in HOT_STAGES:
        if name == stage:
            replay(frames, normalizer, copy_data)
            return 0
    raise SystemExit(f"unknown stage {stage!r}")


def hot_path(rows: int, per_txn: int, work: Path) -> dict[str, Any]:
    from bench.hotpath import synthesize  # noqa: PLC0415

    log(f"hot path: {rows:,} rows in {per_txn}-row transactions")
    paths = {}
    for name, count in (("empty", 0), ("full", rows)):
        path = work / f"frames-{per_txn}-{name}.marshal"
        path.write_bytes(marshal.dumps(synthesize(count, per_txn)))
        paths[name] = path
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cwd = Path.cwd()
    stages: dict[str, int] = {}
    for stage in STAGES:
        counts = {}
        for name, path in paths.items():
            cmd = [sys.executable, "-m", "bench.instructions", "--worker", str(path), stage]
            out = work / f"hot-{per_txn}-{name}.out"
            counts[name] = callgrind(cmd, env, cwd, out)
        stages[stage] = round((counts["full"] - counts["empty"]) / rows)
        log(f"  {stage}: {stages[stage]:,} instructions a row (cumulative)")
    return {"rows": rows, "rows_per_transaction": per_txn, "stages": stages}


def accelerated() -> str:
    from streamer import _speedups  # noqa: PLC0415

    return _speedups.IMPLEMENTATION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--single-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--hotpath-only", action="store_true", help="no servers: seconds")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, no servers")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind profiles")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    if shutil.which("valgrind") is None:
        log("valgrind is not installed: skipping the instruction counts")
        return 0
    if args.quick:
        args.rows, args.single_rows, args.repeat = 2000, 500, 1
        args.hotpath_only = True  # callgrind start-up alone is ~20 s a run
    implementation = accelerated()
    work = Path(tempfile.mkdtemp(prefix="streamer-callgrind-"))
    try:
        hot = [hot_path(args.rows, 1000, work), hot_path(args.single_rows, 1, work)]
        e2e: list[dict[str, Any]] = []
        if not args.hotpath_only:
            e2e = [
                end_to_end(args.rows, 1000, args.repeat, work),
                end_to_end(args.single_rows, 1, args.repeat, work),
            ]
    finally:
        if args.keep:
            log(f"profiles kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n## Instructions per row ({implementation}; callgrind)\n")
    if e2e:
        table = [
            [
                f"{r['rows']:,} rows x {r['rows_per_transaction']}/txn",
                f"{r['per_row']:,}",
                r["spread"],
                f"{r['empty_run'] / 1e6:,.0f} M",
            ]
            for r in e2e
        ]
        print(
            markdown_table(
                ("backlog", "streamer run --once, per row", "spread of runs", "empty run"), table
            )
        )
        print()
    table = []
    for i, h in enumerate(hot):
        cells, previous = [], 0
        for stage in STAGES:
            cells.append(f"{h['stages'][stage] - previous:,}")
            previous = h["stages"][stage]
        rest = []
        if e2e:
            r = e2e[i]
            rest = [f"{r['io_per_row']:,}", f"{r['per_row'] - previous - r['io_per_row']:,}"]
        table.append([f"{h['rows_per_transaction']}/txn", *cells, *rest])
    headers = ["backlog", "decode", "normalize", "COPY data"]
    if e2e:
        headers += ["I/O (libpq reads + COPY)", "driver, loop, writer, rest"]
    print("Where the instructions go, per row (hot path replayed in-process):\n")
    print(markdown_table(headers, table))
    path = write_results(
        "instructions",
        {
            "benchmark": "instructions",
            "implementation": implementation,
            "args": vars(args),
            "machine": machine_info(),
            "end_to_end": e2e,
            "hot_path": hot,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
