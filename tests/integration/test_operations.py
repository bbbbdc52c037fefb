"""Operating streamer: metrics and health endpoints, status/check verdicts, fail-closed
slot handling, idle-slot safety, decommissioning."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from streamer.lsn import parse_lsn
from streamer.ops.embedded import free_port
from streamer.ops.synthetic import SEED_ROWS
from tests.integration.conftest import Lab


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, ""


def metric(text: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?")
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else None


def test_metrics_health_and_ready_endpoints(lab: Lab) -> None:
    port = free_port()
    proc = lab.start("run", env=lab.env(STREAMER_METRICS_PORT=str(port)))
    base = f"http://127.0.0.1:{port}"
    try:
        assert lab.wait_for(lambda: http_get(base + "/readyz")[0] == 200, 30)
        assert http_get(base + "/healthz")[0] == 200
        assert http_get(base + "/nope")[0] == 404
        lab.insert([*SEED_ROWS, ({"hello": "world"}, {"id": "m"})], per_txn=4)

        def applied() -> bool:
            text = http_get(base + "/metrics")[1]
            return metric(text, "streamer_transactions_total") == 1.0

        assert lab.wait_for(applied, 15)
        text = http_get(base + "/metrics")[1]
        assert metric(text, "streamer_rows_total", 'outcome="normalized",provider="stripe"') == 1
        assert metric(text, "streamer_rows_total", 'outcome="normalized",provider="payu"') == 1
        assert metric(text, "streamer_rows_total", 'outcome="normalized",provider="unknown"') == 1
        assert metric(text, "streamer_rows_total", 'outcome="rejected",provider="other"') == 1
        assert metric(text, "streamer_rejected_total", 'reason="unrecognized_payload"') == 1
        assert metric(text, "streamer_connected", 'database="source"') == 1
        assert (metric(text, "streamer_checkpoint_lsn") or 0) > 0
        assert metric(text, "streamer_end_to_end_latency_seconds_count") == 1
        assert (
            metric(
                text, "streamer_info", f'publication="{lab.name}",slot="{lab.name}",version="0.1.0"'
            )
            == 1
        )
    finally:
        assert lab.stop(proc) == 0, lab.output


def test_status_reports_and_judges(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    lab.insert([*SEED_ROWS, ({"hello": "world"}, {"id": "m"})], per_txn=1)
    assert lab.cli("run", "--once").returncode == 0
    result = lab.cli("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["slot_exists"] and status["healthy"]
    assert (status["transactions"], status["rejected"]) == (3, 1)
    assert status["rejected_by_reason"] == {"unrecognized_payload": 1}
    assert status["checkpoint_lsn"] == status["confirmed_flush_lsn"]
    # lag threshold: rows arrive but nobody streams them
    lab.insert(SEED_ROWS * 50, per_txn=10)
    lagging = lab.cli("status", "--max-lag-bytes", "1")
    assert lagging.returncode == 1
    assert "UNHEALTHY" in lagging.stdout and "lag" in lagging.stdout


def test_check_lists_every_item_and_passes_on_a_good_setup(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    result = lab.cli("check")
    assert result.returncode == 0, result.stdout
    for item in (
        "wal_level",
        "max_replication_slots",
        "max_wal_senders",
        "publication",
        "slot",
        "max_slot_wal_keep_size",
        "synchronous_commit",
        "target tables",
    ):
        assert item in result.stdout
    assert "[warn] max_slot_wal_keep_size" in result.stdout  # unlimited on test clusters


def test_missing_slot_with_a_checkpoint_stops_with_exit_3_and_is_not_recreated(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    lab.sql(lab.source_url, "SELECT pg_drop_replication_slot(%s)", (lab.name,))
    for command in (("run", "--once"), ("run",), ("init",)):
        result = lab.cli(*command, timeout=60)
        assert result.returncode == 3, (command, result.stderr)
        assert "resync" in result.stderr and "Traceback" not in result.stderr
    assert lab.slot() is None
    assert lab.cli("status").returncode == 1


def test_slot_confirmed_ahead_of_checkpoint_stops_with_exit_3(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    lab.insert(SEED_ROWS)
    lab.sql(
        lab.source_url, "SELECT pg_replication_slot_advance(%s, pg_current_wal_lsn())", (lab.name,)
    )
    result = lab.cli("run", "--once")
    assert result.returncode == 3
    assert "ahead of the target checkpoint" in result.stderr
    assert lab.cli("status").returncode == 1


@pytest.mark.slow
def test_idle_slot_keeps_advancing_while_other_tables_write(lab: Lab) -> None:
    """64 MB of WAL into an unpublished table while streamer idles: the slot must not
    retain it (the checkpoint follows the keepalive WAL end when nothing is in flight)."""
    lab.sql(lab.source_url, "CREATE TABLE noise (x text)")
    proc = lab.start("run")
    try:
        assert lab.wait_for(lambda: bool((lab.slot() or {}).get("active")), 30)
        for _ in range(16):  # ~4 MB of WAL per statement
            lab.sql(
                lab.source_url,
                "INSERT INTO noise SELECT repeat('x', 1000) FROM generate_series(1, 3500)",
            )
        current = parse_lsn(lab.scalar(lab.source_url, "SELECT pg_current_wal_lsn()::text"))

        def released() -> bool:
            lab.sql(lab.source_url, "CHECKPOINT")  # restart_lsn moves on checkpoints
            slot = lab.slot() or {}
            restart = slot.get("restart_lsn")
            return restart is not None and current - parse_lsn(str(restart)) < 16 * 2**20

        assert lab.wait_for(released, 30)
    finally:
        assert lab.stop(proc) == 0, lab.output
    assert str((lab.slot() or {}).get("confirmed_flush_lsn")) == lab.checkpoint()


def test_once_writes_a_textfile_for_node_exporter(lab: Lab, tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    path = Path(str(tmp_path)) / "streamer.prom"
    assert lab.cli("init").returncode == 0
    lab.insert(SEED_ROWS)
    result = lab.cli("run", "--once", "--metrics-textfile", str(path))
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert metric(text, "streamer_transactions_total") == 1
    assert metric(text, "streamer_replication_lag_bytes") is not None


def test_drop_needs_yes_and_refuses_an_active_slot(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    assert lab.cli("drop").returncode == 2
    proc = lab.start("run")
    try:
        assert lab.wait_for(lambda: bool((lab.slot() or {}).get("active")), 30)
        busy = lab.cli("drop", "--yes")
        assert busy.returncode == 1 and "in use" in busy.stderr
    finally:
        assert lab.stop(proc) == 0, lab.output
    dropped = lab.cli("drop", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped replication slot" in dropped.stdout
    assert lab.slot() is None
    assert not lab.sql(
        lab.source_url, "SELECT 1 FROM pg_publication WHERE pubname = %s", (lab.name,)
    )


def test_status_lag_seconds_is_time_since_the_checkpoint_moved(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    lab.insert(SEED_ROWS)
    assert lab.cli("run", "--once").returncode == 0
    # nothing new on the source: caught up, however old the last payment is
    lab.sql(
        lab.target_url, "UPDATE transactions SET source_committed_at = now() - '1 day'::interval"
    )
    status = json.loads(lab.cli("status", "--json").stdout)
    assert status["lag_seconds"] < 60, status
    assert lab.cli("status", "--max-lag-seconds", "600").returncode == 0
    # rows arrive, nobody streams them, the checkpoint last moved an hour ago
    lab.insert(SEED_ROWS)
    lab.sql(
        lab.target_url, "UPDATE streamer_checkpoints SET updated_at = now() - '1 hour'::interval"
    )
    result = lab.cli("status", "--json", "--max-lag-seconds", "600")
    assert result.returncode == 1
    assert json.loads(result.stdout)["lag_seconds"] >= 3600
