"""Peak memory of `streamer run --once`: a large backlog and one large source transaction.

    python -m bench.memory [--rows 1000000] [--big-txn-rows 200000] [--repeat 3] [--quick]

Peak RSS is the process's own high-water mark (`ru_maxrss` from wait4, i.e. VmHWM);
VmRSS is also polled every 100 ms as a cross-check. Each case uses fresh clusters; with
--repeat > 1 one slot and target database per repetition is created before loading.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from bench.common import (
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
    scalar,
    scratch_dir,
    server_settings,
    streamer_cmd,
    streamer_env,
    target_counts,
    timed_tool,
    wait_for_quiet,
    write_results,
)

RSS_TARGET_MIB = 200


@dataclass(frozen=True)
class Case:
    name: str
    rows: int
    per_txn: int


def run_case(
    case: Case, repeat: int, seed: int, timeout: float, quiet_wait: float
) -> dict[str, Any]:
    log(f"{case.name}: {case.rows:,} rows, {case.per_txn:,} per transaction")
    watch = LoadWatch()
    with clusters() as (source, target), scratch_dir() as cwd:
        source_url = create_source(source)
        settings = server_settings(source_url)
        targets = [target.createdb(f"app_{i}") for i in range(repeat)]
        for i, target_url in enumerate(targets):
            run_checked(streamer_cmd("init"), streamer_env(source_url, target_url, f"s_{i}"), cwd)
        load_s = load_backlog(source_url, case.rows, case.per_txn, seed)
        rows = int(scalar(source_url, "SELECT count(*) FROM raw_transactions"))
        log(f"  loaded {rows:,} rows in {load_s:.1f} s")
        runs: list[dict[str, Any]] = []
        for i, target_url in enumerate(targets):
            checkpoint(source_url, target_url)
            busy = wait_for_quiet(quiet_wait)
            env = streamer_env(source_url, target_url, f"s_{i}")
            timed, numbers = timed_tool(
                streamer_cmd("run", "--once"), env, cwd, timeout, pair=(source, target), rows=rows
            )
            normalized, rejected = target_counts(target_url)
            if normalized + rejected != rows:
                raise RuntimeError(f"target has {normalized}+{rejected} rows, source {rows}")
            runs.append(
                {
                    "repetition": i + 1,
                    "peak_rss_mib": round(timed.peak_rss_kib / 1024, 1),
                    "sampled_peak_rss_mib": round(timed.sampled_peak_rss_kib / 1024, 1),
                    **numbers,
                    "machine_busy_pct_before": busy,
                    "rss_samples_mib": [
                        (round(t, 1), round(kib / 1024, 1)) for t, kib in timed.rss_samples[::5]
                    ],
                }
            )
            log(
                f"  rep {i + 1}: peak RSS {timed.peak_rss_kib / 1024:.1f} MiB, "
                f"{timed.seconds:.1f} s, {rows / timed.seconds:,.0f} rows/s"
            )
    return {
        "case": case.name,
        "rows": rows,
        "rows_per_transaction": case.per_txn,
        "load_seconds": round(load_s, 1),
        "server_settings": settings,
        "conditions": watch.summary(),
        "runs": runs,
    }


def report(results: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = []
    for res in results:
        runs = res["runs"]
        peak = Spread.of([r["peak_rss_mib"] for r in runs])
        rows.append(
            [
                f"{res['rows']:,} rows, {res['rows_per_transaction']:,}/txn",
                peak.fmt(1),
                Spread.of([r["sampled_peak_rss_mib"] for r in runs]).fmt(1),
                "yes" if peak.max <= RSS_TARGET_MIB else "NO",
                Spread.of([r["seconds"] for r in runs]).fmt(1),
                Spread.of([r["rows_per_s"] for r in runs]).fmt(0),
                Spread.of([r["foreign_cpu_pct"] for r in runs]).fmt(0),
            ]
        )
    return markdown_table(
        (
            "streamer run --once over",
            "peak RSS MiB (VmHWM)",
            "max polled VmRSS MiB",
            f"<= {RSS_TARGET_MIB} MiB",
            "wall s",
            "rows/s",
            "other load % (noise)",
        ),
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="backlog case")
    parser.add_argument("--txn-rows", type=int, default=1000, help="rows per backlog txn")
    parser.add_argument("--big-txn-rows", type=int, default=200_000, help="one-transaction case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800, help="per run, seconds")
    parser.add_argument("--only", choices=("backlog", "big-txn"), help="run one case")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="before each run, wait up to this many seconds for the shared machine to be "
        "< 25%% busy (0: do not wait)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.big_txn_rows, args.repeat, args.quiet_wait = 20_000, 10_000, 1, 0
    cases = [
        Case("backlog", args.rows, args.txn_rows),
        Case("big-txn", args.big_txn_rows, args.big_txn_rows),
    ]
    cases = [c for c in cases if args.only in (None, c.name)]
    results = [run_case(c, args.repeat, args.seed, args.timeout, args.quiet_wait) for c in cases]
    print(f"\n## Peak memory of the streamer ({args.repeat} run(s) per case)\n")
    print(report(results))
    print(f"\n{conditions_line(results[0]['server_settings'])}")
    path = write_results(
        "memory",
        {"benchmark": "memory", "args": vars(args), "machine": machine_info(), "results": results},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
