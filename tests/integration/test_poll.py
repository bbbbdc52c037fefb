"""`streamer run --mode poll`: SELECT-only reads by (created_at, id), overlap re-scan for
late commits, idempotent cycles, clean SIGTERM; `verify --mode poll` finds what the overlap
window missed."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.conftest import Lab
from tests.integration.test_errors import assert_one_clear_line

GENERATE = """
INSERT INTO raw_transactions (data, merchant, transactional_id)
SELECT jsonb_build_object('amt', g, 'p_id', 'Stripe', 'st_code', 1, 'card_country', 'ES'),
       jsonb_build_object('id', 'm' || g, 'name', 'Merchant', 'country', 'CO'),
       gen_random_uuid()
FROM generate_series(1, %s) AS g
"""
BAD_ROW = """INSERT INTO raw_transactions (data, merchant, transactional_id)
             VALUES ('{"hello": "world"}', '{"id": "m"}', gen_random_uuid())"""


@pytest.fixture
def reader(lab: Lab) -> Iterator[dict[str, str]]:
    """Environment with a source role that may only SELECT the table (no REPLICATION)."""
    role = f"{lab.name}_ro"
    lab.sql(lab.source_url, f"CREATE ROLE {role} LOGIN")
    lab.sql(lab.source_url, f"GRANT SELECT ON raw_transactions TO {role}")
    yield lab.env(
        SOURCE_DATABASE_URL=lab.source.url(lab.name, user=role),
        STREAMER_MODE="poll",
        STREAMER_BATCH_SIZE="7",
    )
    with psycopg.connect(lab.source_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def counts(line: str) -> tuple[int, int, int]:
    found = re.search(r"normalized (\d+), rows rejected (\d+), rows already present (\d+)", line)
    assert found, line
    return int(found[1]), int(found[2]), int(found[3])


def test_poll_once_needs_only_select_and_is_idempotent(lab: Lab, reader: dict[str, str]) -> None:
    lab.sql(lab.source_url, GENERATE, (30,))
    lab.sql(lab.source_url, BAD_ROW)
    first = lab.cli("run", "--once", env=reader)
    assert first.returncode == 0, first.stderr
    assert counts(first.stdout) == (30, 1, 0)
    assert lab.slot() is None
    assert lab.scalar(lab.source_url, "SELECT count(*) FROM pg_publication") == 0
    lab.sql(lab.source_url, GENERATE, (4,))
    second = lab.cli("run", "--once", env=reader)
    assert second.returncode == 0, second.stderr
    assert counts(second.stdout) == (4, 0, 31)  # the whole table is within the overlap
    source = {r[0] for r in lab.sql(lab.source_url, "SELECT id::text FROM raw_transactions")}
    target = lab.target_ids() + lab.target_ids("transactions_rejected")
    assert len(target) == len(source) == 35 and set(target) == source
    lsns = lab.sql(lab.target_url, "SELECT DISTINCT source_lsn::text FROM transactions")
    assert lsns == [("0/0",)]
    marker = lab.scalar(
        lab.target_url,
        "SELECT backfill_cursor FROM streamer_checkpoints WHERE slot_name = %s",
        ("poll:public.raw_transactions",),
    )
    assert marker is not None
    code = lab.cli("verify", "--poll-overlap-seconds", "0", env=reader)
    assert code.returncode == 0, code.stdout


def test_overlap_catches_a_late_commit_and_verify_finds_a_missed_one(
    lab: Lab, reader: dict[str, str]
) -> None:
    for overlap, expect_caught in (("300", True), ("0", False)):
        env = {**reader, "STREAMER_POLL_OVERLAP_SECONDS": overlap}
        with psycopg.connect(lab.source_url) as slow:
            late = slow.execute(
                "INSERT INTO raw_transactions (data, merchant, transactional_id) VALUES"
                ' (\'{"amt": 1, "p_id": "Stripe", "st_code": 1, "card_country": "ES"}\','
                ' \'{"id": "m"}\', gen_random_uuid()) RETURNING id::text'
            ).fetchone()
            assert late is not None
            time.sleep(0.05)
            lab.sql(lab.source_url, GENERATE, (5,))  # later created_at, committed first
            assert lab.cli("run", "--once", env=env).returncode == 0
            slow.commit()
        assert lab.cli("run", "--once", env=env).returncode == 0
        caught = late[0] in lab.target_ids() + lab.target_ids("transactions_rejected")
        assert caught == expect_caught, overlap
        result = lab.cli("verify", env=env)
        if expect_caught:
            assert result.returncode == 0, result.stdout
        else:
            assert result.returncode == 1 and late[0] in result.stdout, result.stdout


def test_polls_on_an_interval_and_stops_cleanly_on_sigterm(
    lab: Lab, reader: dict[str, str]
) -> None:
    proc = lab.start("run", "--poll-interval", "1", env=reader)
    assert lab.wait_for(lambda: _marker(lab), 20), lab.output
    lab.sql(lab.source_url, GENERATE, (12,))
    assert lab.wait_for(lambda: len(lab.target_ids()) == 12, 20), lab.output
    started = time.monotonic()
    assert lab.stop(proc, signal.SIGTERM) == 0, lab.output
    assert time.monotonic() - started < 5
    assert "Traceback" not in lab.output


def _marker(lab: Lab) -> bool:
    if not lab.scalar(lab.target_url, "SELECT to_regclass('streamer_checkpoints')"):
        return False
    return bool(
        lab.scalar(lab.target_url, "SELECT count(*) FROM streamer_checkpoints"),
    )


def test_poll_errors_are_one_line(lab: Lab, reader: dict[str, str]) -> None:
    assert_one_clear_line(lab.cli("run", "--mode", "sideways", "--once"), 2, "mode")
    bad_table = {**reader, "STREAMER_SOURCE_TABLE": "public.nope"}
    assert_one_clear_line(lab.cli("run", "--once", env=bad_table), 1, "nope")
    lab.sql(lab.source_url, "CREATE TABLE secret (LIKE raw_transactions)")
    no_grant = {**reader, "STREAMER_SOURCE_TABLE": "secret"}
    assert_one_clear_line(lab.cli("run", "--once", env=no_grant), 1, "privilege")
