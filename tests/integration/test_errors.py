"""Errors an operator can hit: one clear line, the documented exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from streamer.ops.embedded import LocalCluster, wheel_bindir
from tests.integration.conftest import Lab


def assert_one_clear_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("streamer: error")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


def test_missing_target_url_is_a_usage_error(lab: Lab) -> None:
    env = lab.env()
    del env["TARGET_DATABASE_URL"]
    assert_one_clear_line(lab.cli("run", "--once", env=env), 2, "TARGET_DATABASE_URL")


def test_invalid_slot_name_is_refused_before_any_sql(lab: Lab) -> None:
    result = lab.cli("init", "--slot", "x'; DROP TABLE raw_transactions;--")
    assert_one_clear_line(result, 2, "slot name")
    assert lab.scalar(lab.source_url, "SELECT to_regclass('raw_transactions') IS NOT NULL")


def test_unreachable_source(lab: Lab) -> None:
    env = lab.env(SOURCE_DATABASE_URL="postgresql://postgres:canary-pw@127.0.0.1:1/nowhere")
    result = lab.cli("init", env=env)
    assert_one_clear_line(result, 1, "source database", "127.0.0.1:1")
    assert "canary-pw" not in result.stdout + result.stderr


def test_unknown_database(lab: Lab) -> None:
    env = lab.env(TARGET_DATABASE_URL=lab.target.url("no_such_db"))
    assert_one_clear_line(lab.cli("init", env=env), 1, "target database", "no_such_db")


def test_role_without_replication_attribute(lab: Lab) -> None:
    lab.sql(lab.source_url, f"CREATE ROLE {lab.name}_ro LOGIN")
    try:
        env = lab.env(SOURCE_DATABASE_URL=lab.source.url(lab.name, user=f"{lab.name}_ro"))
        assert_one_clear_line(lab.cli("init", env=env), 1, "REPLICATION")
    finally:
        lab.sql(lab.source_url, f"DROP ROLE {lab.name}_ro")


def test_slot_in_use_by_another_process(lab: Lab) -> None:
    proc = lab.start("run")
    try:
        assert lab.wait_for(lambda: bool((lab.slot() or {}).get("active")), 30)
        assert_one_clear_line(lab.cli("run", "--once", timeout=60), 1, "in use")
    finally:
        assert lab.stop(proc) == 0, lab.output


def test_wal_level_not_logical() -> None:
    with LocalCluster(wheel_bindir(), "replica", wal_level="replica", fsync="off") as cluster:
        url = cluster.url()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE raw_transactions (id uuid primary key, data jsonb,"
                " merchant jsonb, transactional_id uuid)"
            )
        lab_env = {
            "SOURCE_DATABASE_URL": url,
            "TARGET_DATABASE_URL": url,
            "PATH": "/usr/bin:/bin",
            "STREAMER_METRICS_PORT": "0",
        }
        result = subprocess.run(
            [sys.executable, "-m", "streamer", "init"],
            env=lab_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert_one_clear_line(result, 1, "wal_level", "logical")
