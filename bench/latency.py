"""Streaming latency: single-row transactions at a fixed rate while `streamer run` streams.

    python -m bench.latency [--rate 500] [--duration 30] [--connections 2] [--repeat 3] [--quick]

The benchmark measures, itself (not through the streamer's metrics), the delay from a
source commit to the row being visible in the target, two ways:

* client-side: the inserting client notes when its COMMIT was acknowledged (monotonic
  clock); a poller queries the target by primary key every --poll-ms and notes when each
  id first shows up (in `transactions` or `transactions_rejected`). Resolution: the poll
  interval.
* server-side: `ingested_at - source_committed_at` (`rejected_at` for rejected rows) in the
  target: the source's commit timestamp (from pgoutput's BEGIN) vs the target's now(), both
  server clocks on this machine. now() is the start of the target transaction, so this
  misses the target write + commit time; the client-side number includes it.

Lag is "bounded" when every row arrived, the backlog (acknowledged but not yet visible) at
the end of the insert phase was at most one second of rows, and the backlog did not grow
over the run (max of the last third <= 2 x max of the first third + 10 rows).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    LoadWatch,
    Spread,
    cluster_cpu,
    clusters,
    conditions_line,
    create_source,
    log,
    machine_busy_seconds,
    machine_info,
    markdown_table,
    payload_rows,
    percentile,
    run_checked,
    scalar,
    scratch_dir,
    server_settings,
    sql,
    streamer_cmd,
    streamer_env,
    thread_cpu,
    write_results,
)
from streamer.ops.embedded import LocalCluster

INSERT = (
    "INSERT INTO raw_transactions (data, merchant, transactional_id)"
    " VALUES (%s::jsonb, %s::jsonb, %s::uuid) RETURNING id::text"
)
VISIBLE = (
    "SELECT source_id::text FROM transactions WHERE source_id = ANY(%s::uuid[])"
    " UNION ALL"
    " SELECT source_id::text FROM transactions_rejected WHERE source_id = ANY(%s::uuid[])"
)
MAX_POLL_IDS = 5000


@dataclass
class Shared:
    """State shared by the inserter, poller and sampler threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, float] = field(default_factory=dict)  # id -> commit acknowledged
    due: dict[str, float] = field(default_factory=dict)  # id -> scheduled send time
    slip: list[float] = field(default_factory=list)  # send time - scheduled time
    pending: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # id -> first seen in target
    inserting: bool = True
    errors: list[str] = field(default_factory=list)


def inserter(
    *,
    url: str,
    payloads: list[tuple[str, str, str]],
    counter: itertools.count[int],
    start: float,
    rate: float,
    shared: Shared,
) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                with shared.lock:
                    i = next(counter)
                if i >= len(payloads):
                    return
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent = time.monotonic()
                row = conn.execute(INSERT, payloads[i]).fetchone()
                acked = time.monotonic()
                assert row is not None
                with shared.lock:
                    shared.acked[row[0]] = acked
                    shared.due[row[0]] = due
                    shared.slip.append(sent - due)
                    shared.pending[row[0]] = acked
    except Exception as exc:
        shared.errors.append(f"inserter: {exc!r}")


def poller(url: str, interval: float, shared: Shared, deadline: list[float]) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline[0]:
                with shared.lock:
                    ids = list(itertools.islice(shared.pending, MAX_POLL_IDS))
                    if not ids and not shared.inserting:
                        return
                if ids:
                    asked = time.monotonic()
                    found = [r[0] for r in conn.execute(VISIBLE, (ids, ids)).fetchall()]
                    with shared.lock:
                        for source_id in found:
                            shared.seen[source_id] = asked
                            shared.pending.pop(source_id, None)
                time.sleep(interval)
    except Exception as exc:
        shared.errors.append(f"poller: {exc!r}")


def sampler(
    source_url: str, slot: str, pid: int, shared: Shared, stop: threading.Event
) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    with psycopg.connect(source_url, autocommit=True) as conn:
        while not stop.wait(1.0):
            lag = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
                " FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            ).fetchone()
            with shared.lock:
                acked, seen = len(shared.acked), len(shared.seen)
            samples.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "acked": acked,
                    "visible": seen,
                    "backlog_rows": acked - seen,
                    "slot_lag_bytes": int(lag[0]) if lag and lag[0] is not None else None,
                    "streamer_rss_mib": round(_rss_kib(pid) / 1024, 1),
                }
            )
    return samples


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50_ms": round(1000 * percentile(values, 50), 1),
        "p95_ms": round(1000 * percentile(values, 95), 1),
        "p99_ms": round(1000 * percentile(values, 99), 1),
        "max_ms": round(1000 * max(values), 1),
    }


def wait_visible(url: str, source_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sql(url, VISIBLE, ([source_id], [source_id])):
            return
        time.sleep(0.05)
    raise RuntimeError("the streamer did not deliver the warm-up row")


def run(args: argparse.Namespace) -> dict[str, Any]:
    total = int(args.rate * args.duration)
    payloads = list(payload_rows(total + 1, args.seed))
    watch = LoadWatch()
    with clusters() as (source, target), scratch_dir() as cwd:
        source_url = create_source(source)
        target_url = target.createdb("app")
        settings = server_settings(source_url)
        env = streamer_env(source_url, target_url, "streamer")
        run_checked(streamer_cmd("init"), env, cwd)
        with open(cwd / "streamer.log", "w+") as out:
            proc = subprocess.Popen(
                streamer_cmd("run"), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                warm = sql(source_url, INSERT, payloads[-1])[0][0]
                wait_visible(target_url, warm, 60)
                log(f"streaming; inserting {total:,} single-row transactions at {args.rate}/s")
                result = measure(
                    args, source_url, target_url, proc.pid, payloads[:total], pair=(source, target)
                )
            finally:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    returncode = proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    returncode = proc.wait()
                out.seek(0)
                streamer_log = out.read()
        if returncode != 0:
            raise RuntimeError(f"streamer run exited {returncode}:\n{streamer_log[-3000:]}")
        result["streamer_exit_code"] = returncode
        result["server_side"] = server_side(target_url, list(result.pop("ids")))
    result.update(server_settings=settings, conditions=watch.summary())
    return result


def cpu_snapshot(pid: int, pair: tuple[LocalCluster, LocalCluster]) -> tuple[float, float]:
    """(CPU seconds of the whole machine, of us: this process, the streamer, both
    clusters) so far; the difference of two snapshots tells how busy others kept the
    machine meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ours = usage.ru_utime + usage.ru_stime + sum(thread_cpu(pid).values())
    ours += sum(cluster_cpu(cluster, settle=0) for cluster in pair)
    return machine_busy_seconds(), ours


def measure(
    args: argparse.Namespace,
    source_url: str,
    target_url: str,
    pid: int,
    payloads: list[tuple[str, str, str]],
    *,
    pair: tuple[LocalCluster, LocalCluster],
) -> dict[str, Any]:
    cpu_start = cpu_snapshot(pid, pair)
    shared = Shared()
    counter = itertools.count()
    start = time.monotonic() + 0.2
    deadline = [float("inf")]
    stop_sampling = threading.Event()
    samples: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=inserter,
            kwargs={
                "url": source_url,
                "payloads": payloads,
                "counter": counter,
                "start": start,
                "rate": args.rate,
                "shared": shared,
            },
        )
        for _ in range(args.connections)
    ]
    poll = threading.Thread(target=poller, args=(target_url, args.poll_ms / 1000, shared, deadline))
    sample = threading.Thread(
        target=lambda: samples.extend(sampler(source_url, "streamer", pid, shared, stop_sampling))
    )
    for thread in (*threads, poll, sample):
        thread.start()
    for thread in threads:
        thread.join()
    insert_end = time.monotonic()
    cpu_end = cpu_snapshot(pid, pair)
    other = (cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])
    other_pct = 100 * max(0.0, other) / ((os.cpu_count() or 1) * (insert_end - start))
    with shared.lock:
        shared.inserting = False
        backlog_at_end = len(shared.acked) - len(shared.seen)
    deadline[0] = insert_end + args.drain_timeout
    poll.join()
    drained = time.monotonic() - insert_end
    stop_sampling.set()
    sample.join()
    if shared.errors:
        raise RuntimeError("; ".join(shared.errors))
    ids = list(shared.acked)
    latencies = [shared.seen[i] - shared.acked[i] for i in ids if i in shared.seen]
    missing = len(ids) - len(latencies)
    # p99 per window of scheduled time, to show whether latency drifts upward
    window = max(1.0, args.duration / 6)
    windows: dict[int, list[float]] = {}
    for i in ids:
        if i in shared.seen:
            key = int((shared.due[i] - start) // window)
            windows.setdefault(key, []).append(shared.seen[i] - shared.acked[i])
    last_acked = max(shared.acked.values())
    thirds = _thirds([s["backlog_rows"] for s in samples if s["t"] <= insert_end - start + 1])
    bounded = missing == 0 and backlog_at_end <= args.rate and thirds[2] <= 2 * thirds[0] + 10
    return {
        "ids": ids,
        "rows": len(ids),
        "target_rate": args.rate,
        "achieved_rate": round(len(ids) / max(1e-9, last_acked - start), 1),
        "send_slip_ms": {
            "p99": round(1000 * percentile(shared.slip, 99), 1),
            "max": round(1000 * max(shared.slip), 1),
        },
        "client_side": pcts(latencies),
        "client_side_windows": [
            {"from_s": round(k * window, 1), **pcts(v)} for k, v in sorted(windows.items())
        ],
        "missing_rows": missing,
        "backlog_rows_at_insert_end": backlog_at_end,
        "backlog_rows_max": max((s["backlog_rows"] for s in samples), default=0),
        "backlog_max_by_third": thirds,
        "slot_lag_bytes_max": max((s["slot_lag_bytes"] or 0 for s in samples), default=0),
        "drain_seconds": round(drained, 2),
        "bounded": bounded,
        "streamer_rss_mib_max": max((s["streamer_rss_mib"] for s in samples), default=0),
        "poll_ms": args.poll_ms,
        "foreign_cpu_pct": round(other_pct, 1),
        "samples": samples,
    }


def _thirds(values: list[int]) -> list[int]:
    if not values:
        return [0, 0, 0]
    n = len(values)
    parts = [values[: max(1, n // 3)], values[n // 3 : 2 * n // 3], values[2 * n // 3 :]]
    return [max(p) if p else 0 for p in parts]


def server_side(target_url: str, ids: list[str]) -> dict[str, Any]:
    rows = sql(
        target_url,
        "SELECT extract(epoch FROM ingested_at - source_committed_at)::float8"
        " FROM transactions WHERE source_id = ANY(%s::uuid[])"
        " UNION ALL SELECT extract(epoch FROM rejected_at - source_committed_at)::float8"
        " FROM transactions_rejected WHERE source_id = ANY(%s::uuid[])",
        (ids, ids),
    )
    values = [float(r[0]) for r in rows]
    rejected = int(
        scalar(
            target_url,
            "SELECT count(*) FROM transactions_rejected WHERE source_id = ANY(%s::uuid[])",
            (ids,),
        )
    )
    return {**pcts(values), "rejected_rows": rejected}


def report(res: dict[str, Any]) -> str:
    client, server = res["client_side"], res["server_side"]
    rows = [
        [
            "client-side: COMMIT ack → visible in target",
            client["p50_ms"],
            client["p95_ms"],
            client["p99_ms"],
            client["max_ms"],
        ],
        [
            "server-side: ingested_at - source_committed_at",
            server["p50_ms"],
            server["p95_ms"],
            server["p99_ms"],
            server["max_ms"],
        ],
    ]
    table = markdown_table(("latency (ms)", "p50", "p95", "p99", "max"), rows)
    windows = markdown_table(
        ("window from (s)", "rows", "p50", "p99", "max"),
        [
            [w["from_s"], w["n"], w["p50_ms"], w["p99_ms"], w["max_ms"]]
            for w in res["client_side_windows"]
        ],
    )
    lag = markdown_table(
        ("lag", "value"),
        [
            ["target rate / achieved (tx/s)", f"{res['target_rate']} / {res['achieved_rate']}"],
            [
                "insert send slip p99 / max (ms)",
                f"{res['send_slip_ms']['p99']} / {res['send_slip_ms']['max']}",
            ],
            [
                "backlog rows max / at end of inserts",
                f"{res['backlog_rows_max']} / {res['backlog_rows_at_insert_end']}",
            ],
            ["backlog max per third of the run", " / ".join(map(str, res["backlog_max_by_third"]))],
            ["slot lag max (bytes)", f"{res['slot_lag_bytes_max']:,}"],
            ["rows missing after drain", res["missing_rows"]],
            ["drain after last insert (s)", res["drain_seconds"]],
            ["streamer RSS max (MiB)", res["streamer_rss_mib_max"]],
            ["other load during the run (noise, % of all CPUs)", res["foreign_cpu_pct"]],
            ["**lag bounded**", "**yes**" if res["bounded"] else "**NO**"],
        ],
    )
    return f"{table}\n\nclient-side, by window of the run:\n\n{windows}\n\n{lag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=500, help="transactions per second")
    parser.add_argument("--duration", type=float, default=30, help="seconds of inserts")
    parser.add_argument("--connections", type=int, default=2, help="inserting connections")
    parser.add_argument("--poll-ms", type=float, default=5, help="target poll interval")
    parser.add_argument("--drain-timeout", type=float, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each on fresh clusters")
    parser.add_argument("--quick", action="store_true", help="smoke test: 200/s for 5 s, once")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.duration, args.repeat = 200, 5, 1
    runs = []
    for i in range(args.repeat):
        log(f"latency run {i + 1} of {args.repeat}")
        runs.append(run(args))
    rows = sum(r["rows"] for r in runs)
    print(
        f"\n## Streaming latency: {args.repeat} run(s) of {runs[0]['rows']:,} single-row "
        f"transactions at {args.rate:g}/s for {args.duration:g} s ({rows:,} in all)\n"
    )
    print(summary(runs))
    typical = sorted(runs, key=lambda r: r["client_side"]["p99_ms"])[len(runs) // 2]
    print(f"\nThe run with the median p99, in detail:\n\n{report(typical)}")
    print(f"\n{conditions_line(typical['server_settings'])}")
    path = write_results(
        "latency",
        {
            "benchmark": "latency",
            "args": vars(args),
            "machine": machine_info(),
            "summary": {
                side: {
                    q: asdict(Spread.of([r[side][q] for r in runs]))
                    for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
                }
                for side in ("client_side", "server_side")
            },
            "runs": runs,
        },
    )
    print(f"results: {path}")
    return 0 if all(r["bounded"] for r in runs) else 1


def summary(runs: list[dict[str, Any]]) -> str:
    """Median (min..max) over the runs of each percentile, and whether lag stayed
    bounded in every run."""
    table = []
    for side, label in (
        ("client_side", "client-side: COMMIT ack → visible in target"),
        ("server_side", "server-side: ingested_at - source_committed_at"),
    ):
        table.append(
            [label]
            + [
                Spread.of([r[side][q] for r in runs]).fmt(1)
                for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            ]
        )
    bounded = sum(1 for r in runs if r["bounded"])
    return (
        markdown_table(("latency (ms), median (min..max)", "p50", "p95", "p99", "max"), table)
        + f"\n\nlag bounded in {bounded} of {len(runs)} run(s)"
        + f"; backlog rows max {max(r['backlog_rows_max'] for r in runs)}"
        + f"; rows missing {sum(r['missing_rows'] for r in runs)}"
    )


if __name__ == "__main__":
    sys.exit(main())
