"""Catch-up throughput: `streamer run --once` over a backlog vs `pg_recvlogical --endpos`.

    python -m bench.catchup [--rows 200000] [--single-rows 20000] [--repeat 3] [--quick]

Per scenario (1,000-row transactions, then single-row transactions) one fresh source and
one fresh target cluster. Before the backlog is loaded, `streamer init` creates one slot
(and one fresh target database) per repetition and one more pgoutput slot per repetition
for pg_recvlogical, so every timed run decodes the same backlog from the same start.
Each timed run follows a CHECKPOINT of both clusters; the order of the two tools
alternates between repetitions.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from bench.common import (
    SOURCE_DB,
    LoadWatch,
    Spread,
    checkpoint,
    clusters,
    conditions_line,
    create_recv_slot,
    create_source,
    current_wal_lsn,
    load_backlog,
    log,
    machine_info,
    markdown_table,
    pg_recvlogical_cmd,
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

SUMMARY_SECONDS = re.compile(r"rows normalized (\d+), rows rejected (\d+), .*seconds ([0-9.]+)")


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    per_txn: int


def run_scenario(
    scenario: Scenario, repeat: int, seed: int, timeout: float, quiet_wait: float
) -> dict[str, Any]:
    log(f"{scenario.name}: {scenario.rows:,} rows, {scenario.per_txn} per transaction")
    watch = LoadWatch()
    with clusters() as (source, target), scratch_dir() as cwd:
        source_url = create_source(source)
        settings = server_settings(source_url)
        targets: list[str] = []
        for i in range(repeat):
            targets.append(target.createdb(f"app_{i}"))
            run_checked(
                streamer_cmd("init"), streamer_env(source_url, targets[i], f"streamer_{i}"), cwd
            )
            create_recv_slot(source_url, f"recv_{i}")
        load_s = load_backlog_logged(source_url, scenario, seed)
        endpos = current_wal_lsn(source_url)
        rows = int(scalar(source_url, "SELECT count(*) FROM raw_transactions"))
        runs: list[dict[str, Any]] = []
        for i in range(repeat):
            order = ("streamer", "pg_recvlogical") if i % 2 == 0 else ("pg_recvlogical", "streamer")
            run: dict[str, Any] = {"repetition": i + 1, "order": list(order)}
            for tool in order:
                checkpoint(source_url, targets[i])
                busy = wait_for_quiet(quiet_wait)
                if tool == "streamer":
                    env = streamer_env(source_url, targets[i], f"streamer_{i}")
                    cmd = streamer_cmd("run", "--once")
                    timed, numbers = timed_tool(
                        cmd, env, cwd, timeout, pair=(source, target), rows=rows
                    )
                    normalized, rejected = target_counts(targets[i])
                    if normalized + rejected != rows:
                        raise RuntimeError(
                            f"target has {normalized}+{rejected} rows, source {rows}"
                        )
                    match = SUMMARY_SECONDS.search(timed.output)
                    numbers.update(
                        in_process_seconds=float(match.group(3)) if match else None,
                        rows_normalized=normalized,
                        rows_rejected=rejected,
                    )
                else:
                    cmd = pg_recvlogical_cmd(source, SOURCE_DB, f"recv_{i}", endpos)
                    timed, numbers = timed_tool(
                        cmd, None, cwd, timeout, pair=(source, target), rows=rows
                    )
                run[tool] = {**numbers, "machine_busy_pct_before": busy}
                rate = rows / timed.seconds
                log(
                    f"  rep {i + 1} {tool}: {timed.seconds:.2f} s, {rate:,.0f} rows/s "
                    f"(other load during the run {numbers['foreign_cpu_pct']}% of the CPUs)"
                )
            run["ratio"] = round(
                run["streamer"]["rows_per_s"] / run["pg_recvlogical"]["rows_per_s"], 3
            )
            runs.append(run)
    return {
        "scenario": scenario.name,
        "rows": rows,
        "rows_per_transaction": scenario.per_txn,
        "load_seconds": round(load_s, 1),
        "endpos": endpos,
        "server_settings": settings,
        "conditions": watch.summary(),
        "runs": runs,
        "summary": summarize(runs),
    }


def load_backlog_logged(source_url: str, scenario: Scenario, seed: int) -> float:
    seconds = load_backlog(source_url, scenario.rows, scenario.per_txn, seed)
    log(f"  loaded {scenario.rows:,} rows in {seconds:.1f} s")
    return seconds


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in ("streamer", "pg_recvlogical"):
        out[tool] = {
            key: Spread.of([r[tool][key] for r in runs]).__dict__
            for key in (
                "seconds",
                "rows_per_s",
                "cpu_user_s",
                "cpu_sys_s",
                "main_thread_cpu_s",
                "other_threads_cpu_s",
                "source_pg_cpu_s",
                "target_pg_cpu_s",
                "foreign_cpu_pct",
            )
        }
    out["ratio"] = Spread.of([r["ratio"] for r in runs]).__dict__
    return out


def report(results: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = []
    for res in results:
        runs = res["runs"]
        for tool in ("streamer", "pg_recvlogical"):
            rows.append(
                [
                    f"{res['rows']:,} rows x {res['rows_per_transaction']}/txn",
                    tool,
                    Spread.of([r[tool]["seconds"] for r in runs]).fmt(2),
                    Spread.of([r[tool]["rows_per_s"] for r in runs]).fmt(0),
                    Spread.of([r[tool]["cpu_user_s"] + r[tool]["cpu_sys_s"] for r in runs]).fmt(1),
                    Spread.of([r[tool]["in_process_seconds"] for r in runs]).fmt(2)
                    if tool == "streamer" and all(r[tool]["in_process_seconds"] for r in runs)
                    else "",
                    Spread.of([r[tool].get("foreign_cpu_pct", 0.0) for r in runs]).fmt(0),
                ]
            )
        rows.append(
            [
                "",
                "**ratio streamer / pg_recvlogical**",
                "",
                Spread.of([r["ratio"] for r in runs]).fmt(3),
                "",
                "",
                "",
            ]
        )
    table = markdown_table(
        (
            "backlog",
            "tool",
            "wall s (start to exit)",
            "rows/s",
            "CPU s (user+sys)",
            "in-process s (after startup)",
            "other load % (noise)",
        ),
        rows,
    )
    return f"{table}\n\nWhere the CPU went (medians, CPU seconds):\n\n{cpu_report(results)}"


def cpu_report(results: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = []
    for res in results:
        runs = res["runs"]
        for tool in ("streamer", "pg_recvlogical"):

            def med(key: str, tool: str = tool, runs: list[dict[str, Any]] = runs) -> float:
                return Spread.of([r[tool][key] for r in runs]).median

            process = med("cpu_user_s") + med("cpu_sys_s")
            total = process + med("source_pg_cpu_s") + med("target_pg_cpu_s")
            cores = os.cpu_count() or 1
            rows.append(
                [
                    f"{res['rows']:,} x {res['rows_per_transaction']}/txn",
                    tool,
                    f"{process:.2f}",
                    f"{med('main_thread_cpu_s'):.2f}" if tool == "streamer" else "",
                    f"{med('other_threads_cpu_s'):.2f}" if tool == "streamer" else "",
                    f"{med('source_pg_cpu_s'):.2f}",
                    f"{med('target_pg_cpu_s'):.2f}",
                    f"{total:.2f}",
                    f"{100 * total / (cores * med('seconds')):.0f}%",
                ]
            )
    return markdown_table(
        (
            "backlog",
            "tool",
            "process",
            "main thread",
            "other threads",
            "source PG (walsender)",
            "target PG",
            "total",
            "of all cores x wall",
        ),
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catchup", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="backlog, batched scenario")
    parser.add_argument("--txn-rows", type=int, default=1000, help="rows per transaction")
    parser.add_argument("--single-rows", type=int, default=20_000, help="single-row scenario")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900, help="per timed run, seconds")
    parser.add_argument(
        "--only", choices=("batched", "single"), help="run one scenario instead of both"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="before each timed run, wait up to this many seconds for the shared machine "
        "to be < 25%% busy (0: do not wait)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.single_rows, args.repeat, args.quiet_wait = 5000, 1000, 1, 0
    scenarios = [
        Scenario("batched", args.rows, args.txn_rows),
        Scenario("single", args.single_rows, 1),
    ]
    scenarios = [s for s in scenarios if args.only in (None, s.name)]
    results = [
        run_scenario(s, args.repeat, args.seed, args.timeout, args.quiet_wait) for s in scenarios
    ]
    table = report(results)
    settings = results[0]["server_settings"]
    print(f"\n## Catch-up throughput (median (min..max) of {args.repeat} runs)\n")
    print(table)
    print(f"\n{conditions_line(settings)}")
    path = write_results(
        "catchup",
        {"benchmark": "catchup", "args": vars(args), "machine": machine_info(), "results": results},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
