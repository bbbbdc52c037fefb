"""`streamer demo`: the whole product on a throwaway local PostgreSQL, no configuration.

One embedded cluster holds both databases (payments_lake as the source, payments_main as
the target); the streamer runs against them exactly as it would in production.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streamer.app import run_slot
from streamer.config import load_settings
from streamer.ops.embedded import LocalCluster, free_port
from streamer.ops.setup import ensure_all
from streamer.ops.synthetic import SEED_ROWS, PayloadFactory
from streamer.runtime.metrics import Metrics
from streamer.runtime.metrics_server import start_metrics_server
from streamer.runtime.stopping import StopFlag

log = logging.getLogger(__name__)

SOURCE_DDL = """
CREATE TABLE IF NOT EXISTS raw_transactions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    data JSONB NOT NULL,
    merchant JSONB NOT NULL,
    transactional_id UUID NOT NULL,
    created_at TIMESTAMP DEFAULT NOW(),
    processed BOOLEAN DEFAULT FALSE,
    processed_at TIMESTAMP
);
"""
INSERT_SQL = (
    "INSERT INTO raw_transactions (data, merchant, transactional_id)"
    " VALUES (%s, %s, gen_random_uuid())"
)
SHOW_COLUMNS = ("provider", "status", "amount", "currency", "country", "merchant_name")


def insert_rows(url: str, rows: Sequence[tuple[Any, Any]], per_txn: int = 50) -> None:
    with psycopg.connect(url) as conn:
        for start in range(0, len(rows), per_txn):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    INSERT_SQL, [(Jsonb(d), Jsonb(m)) for d, m in rows[start : start + per_txn]]
                )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_summary(target_url: str) -> None:
    with psycopg.connect(target_url) as conn:
        by_provider = conn.execute(
            "SELECT provider, status, count(*) FROM transactions GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        rejected = conn.execute(
            "SELECT reason, count(*) FROM transactions_rejected GROUP BY 1 ORDER BY 1"
        ).fetchall()
        sample = conn.execute(
            f"SELECT {', '.join(SHOW_COLUMNS)} FROM transactions"
            " ORDER BY source_lsn, source_created_at LIMIT 5"
        ).fetchall()
    print("\nnormalized transactions by provider and status:")
    print(_table(("provider", "status", "rows"), by_provider))
    print("\nrejected rows by reason:")
    print(_table(("reason", "rows"), rejected or [("(none)", 0)]))
    print("\nfirst rows:")
    print(_table(SHOW_COLUMNS, sample))


def _row(values: Sequence[Any], widths: Sequence[int]) -> str:
    return " ".join(
        ("" if v is None else str(v)).ljust(w) for v, w in zip(values, widths, strict=False)
    )


def _feed(url: str, stop: StopFlag) -> None:
    factory = PayloadFactory(seed=int(time.time()))
    while not stop.wait(0.5):
        try:
            insert_rows(url, factory.many(3))
        except psycopg.Error:
            return


def _tail(url: str, stop: StopFlag) -> None:
    """Print normalized rows as they arrive in the target."""
    seen = "0/0"
    widths = (11, 8, 10, 12, 8, 7, 16)
    print(_row(("source_lsn", *SHOW_COLUMNS), widths))
    print(_row(["-" * (w - 1) for w in widths], widths))
    while not stop.wait(0.3):
        try:
            with psycopg.connect(url) as conn:
                rows = conn.execute(
                    f"SELECT source_lsn::text, {', '.join(SHOW_COLUMNS)} FROM transactions"
                    " WHERE source_lsn > %s::pg_lsn ORDER BY source_lsn LIMIT 50",
                    (seen,),
                ).fetchall()
        except psycopg.Error:
            return
        for row in rows:
            print(_row(row, widths), flush=True)
            seen = row[0]


def run_demo(once: bool, rows: int, stop: StopFlag) -> int:
    print("starting a throwaway PostgreSQL (wal_level=logical) on 127.0.0.1 ...", flush=True)
    with LocalCluster(name="demo") as cluster:
        source_url = cluster.createdb("payments_lake")
        target_url = cluster.createdb("payments_main")
        with psycopg.connect(source_url, autocommit=True) as conn:
            conn.execute(SOURCE_DDL)
        port = 0 if once else free_port()
        settings = load_settings(
            {}, {"source": source_url, "target": target_url, "metrics_port": port}
        )
        for line in ensure_all(settings):
            print(line)
        metrics = Metrics()
        metrics.set_info(settings.slot, settings.publication)
        if once:
            insert_rows(source_url, SEED_ROWS + PayloadFactory().many(max(0, rows - 3)))
            print(f"loaded {max(rows, 3)} rows into payments_lake.raw_transactions")
            summary = run_slot(settings, True, metrics, stop, setup=False)
            print(summary.line())
            print_summary(target_url)
            return 0
        insert_rows(source_url, SEED_ROWS)
        server = start_metrics_server(metrics, settings)
        print(f"source: {source_url}\ntarget: {target_url}")
        print(f"metrics: http://127.0.0.1:{port}/metrics — Ctrl-C stops the demo\n")
        threads = [
            threading.Thread(target=fn, args=(url, stop), daemon=True)
            for fn, url in ((_feed, source_url), (_tail, target_url))
        ]
        for thread in threads:
            thread.start()
        try:
            run_slot(settings, False, metrics, stop, setup=False)
        finally:
            stop.set()
            if server is not None:
                server.shutdown()
        print_summary(target_url)
    return 0
