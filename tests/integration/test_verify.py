"""`streamer verify`: exit 0 only when source and target hold the same ids (up to the
checkpoint), exit 1 with the differing ids otherwise; chunked walks via --batch-size."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamer.ops.embedded import LocalCluster, wheel_bindir
from tests.integration.conftest import FAST_SETTINGS, SOURCE_SETTINGS, Lab, _lab
from tests.integration.test_errors import assert_one_clear_line

GENERATE = """
INSERT INTO raw_transactions (data, merchant, transactional_id, processed, created_at)
SELECT jsonb_build_object('amt', g, 'p_id', 'Stripe', 'st_code', 1, 'card_country', 'ES'),
       jsonb_build_object('id', 'm' || g, 'name', 'Merchant', 'country', 'CO'),
       gen_random_uuid(), g %% 2 = 0, coalesce(%s::timestamp, now())
FROM generate_series(1, %s) AS g
"""
BAD_ROW = """INSERT INTO raw_transactions (data, merchant, transactional_id)
             VALUES ('{"hello": "world"}', '{"id": "m"}', gen_random_uuid())"""
COPY_TO_REJECTED = """INSERT INTO transactions_rejected (source_id, transactional_id, merchant,
                      raw, reason, detail, source_committed_at, source_lsn)
                      SELECT source_id, transactional_id, '{}', raw, 'invalid_amount', 'x',
                             source_committed_at, source_lsn
                      FROM transactions WHERE source_id = %s"""


def generate(lab: Lab, rows: int, created_at: str | None = None) -> None:
    lab.sql(lab.source_url, GENERATE, (created_at, rows))


def verify(lab: Lab, *args: str) -> tuple[int, dict[str, Any]]:
    result = lab.cli("verify", "--json", "--settle", "0", "--batch-size", "7", *args)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def synced(lab: Lab, rows: int = 40) -> None:
    generate(lab, rows)
    lab.sql(lab.source_url, BAD_ROW)
    assert lab.cli("init").returncode == 0
    generate(lab, 5)
    assert lab.cli("run", "--once").returncode == 0


def test_clean_target_matches(lab: Lab) -> None:
    synced(lab)
    code, report = verify(lab)
    assert code == 0, report
    assert report["ok"] and report["matched"] == report["source_rows"] == 46
    assert report["target_transactions"] == 45 and report["target_rejected"] == 1
    assert report["missing"] == report["extra"] == report["duplicated"] == {"count": 0, "ids": []}
    assert report["mode"] == "slot" and report["checkpoint"] == lab.checkpoint()
    text = lab.cli("verify", "--settle", "0")
    assert text.returncode == 0 and "verdict               match" in text.stdout


def test_deleted_extra_and_duplicated_rows_are_reported(lab: Lab) -> None:
    synced(lab)
    gone, twice = lab.sql(lab.target_url, "SELECT source_id::text FROM transactions LIMIT 2")
    lab.sql(lab.target_url, "DELETE FROM transactions WHERE source_id = %s", (gone[0],))
    extra = str(uuid.uuid4())
    lab.sql(
        lab.target_url,
        "INSERT INTO transactions_rejected (source_id, reason) VALUES (%s, 'invalid_amount')",
        (extra,),
    )
    lab.sql(lab.target_url, COPY_TO_REJECTED, (twice[0],))
    code, report = verify(lab)
    assert code == 1
    assert not report["ok"]
    assert report["missing"] == {"count": 1, "ids": [gone[0]]}
    assert report["extra"] == {"count": 1, "ids": [extra]}
    assert report["duplicated"] == {"count": 1, "ids": [twice[0]]}
    text = lab.cli("verify", "--settle", "0")
    assert text.returncode == 1 and "MISMATCH" in text.stdout
    assert gone[0] in text.stdout and extra in text.stdout


def test_listing_is_capped_but_counting_is_not(lab: Lab) -> None:
    synced(lab)
    # 25 of the 40 backfilled rows
    lab.sql(
        lab.target_url,
        "DELETE FROM transactions WHERE source_id IN (SELECT source_id FROM transactions"
        " ORDER BY source_committed_at, source_id LIMIT 25)",
    )
    code, report = verify(lab)
    assert code == 1 and report["missing"]["count"] == 25
    assert len(report["missing"]["ids"]) == 20
    assert report["missing"]["ids"] == sorted(report["missing"]["ids"])


def test_deleting_the_newest_transaction_is_reported(lab: Lab) -> None:
    # The checkpoint row keeps the newest applied commit time: taken from the rows left
    # in the target, it would make these 5 rows "not yet due" (exit 0).
    synced(lab)
    lab.sql(
        lab.target_url,
        "DELETE FROM transactions WHERE source_id IN (SELECT source_id FROM transactions"
        " ORDER BY source_committed_at DESC LIMIT 5)",
    )
    code, report = verify(lab)
    assert code == 1 and report["missing"]["count"] == 5


def test_a_checkpoint_table_of_an_older_version_is_upgraded(lab: Lab) -> None:
    synced(lab)
    # A target an older version created: no applied_commit_at (a dropped column is as
    # absent to the catalog check as one never added)
    lab.sql(lab.target_url, "ALTER TABLE streamer_checkpoints DROP COLUMN applied_commit_at")
    code, report = verify(lab)  # read-only: falls back to the rows' newest commit
    assert code == 0 and report["matched"] == 46, report
    check = lab.cli("check")
    assert "column streamer_checkpoints.applied_commit_at" in check.stdout + check.stderr
    generate(lab, 3)
    result = lab.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "added column public.streamer_checkpoints.applied_commit_at" in said
    assert "created target table" not in said
    applied = lab.sql(
        lab.target_url,
        "SELECT applied_commit_at = (SELECT max(source_committed_at) FROM transactions)"
        " FROM streamer_checkpoints WHERE slot_name = %s",
        (lab.name,),
    )
    assert applied == [(True,)]
    code, report = verify(lab)
    assert code == 0 and report["matched"] == 49, report


def test_rows_after_the_checkpoint_are_pending(lab: Lab) -> None:
    synced(lab)
    generate(lab, 9)  # committed after the checkpoint: not streamed yet
    code, report = verify(lab)
    assert code == 0, report
    assert report["pending"] == 9 and report["source_rows"] == 55
    assert lab.cli("run", "--once").returncode == 0
    code, report = verify(lab)
    assert code == 0 and report["pending"] == 0 and report["matched"] == 55


def test_since_limits_both_sides(lab: Lab) -> None:
    generate(lab, 6, "2020-01-01 00:00:00")
    synced(lab)
    old = lab.scalar(
        lab.target_url,
        "SELECT source_id::text FROM transactions WHERE source_created_at < '2021-01-01' LIMIT 1",
    )
    lab.sql(lab.target_url, "DELETE FROM transactions WHERE source_id = %s", (old,))
    assert verify(lab)[0] == 1
    code, report = verify(lab, "--since", "2021-01-01")
    assert code == 0, report
    assert report["source_rows"] == 46 and report["since"] == "2021-01-01"


def test_skip_processed_after_an_unprocessed_backfill(lab: Lab) -> None:
    generate(lab, 10)  # 5 processed by the legacy poller
    assert lab.cli("init", "--backfill", "unprocessed").returncode == 0
    generate(lab, 4)
    assert lab.cli("run", "--once").returncode == 0
    # the checkpoint remembers the backfill mode, so verify skips processed rows itself
    code, report = verify(lab)
    assert code == 0, report
    assert report["skipped_processed"] == 5 and report["matched"] == 9
    lab.sql(lab.target_url, "UPDATE streamer_checkpoints SET backfill = 'done:all'")
    code, report = verify(lab)
    assert code == 1 and report["missing"]["count"] == 5
    code, report = verify(lab, "--skip-processed")
    assert code == 0, report


def test_usage_and_runtime_errors(lab: Lab) -> None:
    assert_one_clear_line(lab.cli("verify", "--since", "yesterday"), 2, "--since")
    assert_one_clear_line(lab.cli("verify", "--mode", "carrier-pigeon"), 2, "mode")
    assert_one_clear_line(lab.cli("verify"), 1, "no progress")


@pytest.fixture(scope="module")
def tracked(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A source with track_commit_timestamp = on (it needs a restart to change)."""
    source = LocalCluster(
        wheel_bindir(), "pg18ts-source", **SOURCE_SETTINGS, track_commit_timestamp="on"
    ).start()
    target = LocalCluster(wheel_bindir(), "pg18ts-target", **FAST_SETTINGS).start()
    try:
        yield from _lab((source, target), request)
    finally:
        source.destroy()
        target.destroy()


def test_with_commit_timestamps_a_row_lost_seconds_ago_is_reported_at_once(
    tracked: Lab,
) -> None:
    """Without commit timestamps a row created less than --settle (60 s) before the last
    applied commit is only "not yet due"; with them, a row whose transaction committed
    before the last applied commit is due at once."""
    lab = tracked
    assert lab.cli("init").returncode == 0
    generate(lab, 10)
    time.sleep(1.5)  # beyond verify's one-second margin for commit-time order
    generate(lab, 1)
    assert lab.cli("run", "--once").returncode == 0
    lost = lab.target_ids()[0]
    lab.sql(lab.target_url, "DELETE FROM transactions WHERE source_id = %s", (lost,))
    result = lab.cli("verify", "--json")  # the default --settle 60
    report = json.loads(result.stdout)
    assert result.returncode == 1, report
    assert report["missing"] == {"count": 1, "ids": [lost]}
    check = lab.cli("check")
    assert "track_commit_timestamp: on" in check.stdout, check.stdout
