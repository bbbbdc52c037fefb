"""`streamer replay-rejected`: rows the current normalizer accepts move to `transactions`
(same transaction, commit info kept); the rest stay with their current reason; --dry-run
changes nothing; target refusals are retried; safe beside a streaming `run`."""

from __future__ import annotations

import signal
import threading
from typing import Any

import psycopg

from tests.integration.conftest import Lab
from tests.integration.test_errors import assert_one_clear_line

GENERATE = """
INSERT INTO raw_transactions (data, merchant, transactional_id)
SELECT jsonb_build_object('amt', %s + g, 'p_id', 'Stripe', 'st_code', 1, 'card_country', 'ES'),
       jsonb_build_object('id', 'm' || g, 'name', 'Merchant', 'country', 'CO'),
       gen_random_uuid()
FROM generate_series(1, %s) AS g
"""
BAD_ROW = """INSERT INTO raw_transactions (data, merchant, transactional_id)
             VALUES ('{"hello": "world"}', '{"id": "m"}', gen_random_uuid())"""
ROW = "SELECT * FROM transactions WHERE source_id = %s"
REJECT = """INSERT INTO transactions_rejected (source_id, transactional_id, merchant, raw,
            reason, detail, source_committed_at, source_lsn)
            SELECT source_id, transactional_id, %s::jsonb, raw, %s, 'old normalizer',
                   source_committed_at, source_lsn FROM transactions WHERE source_id = %s"""


def generate(lab: Lab, rows: int, amount_base: int = 0) -> None:
    lab.sql(lab.source_url, GENERATE, (amount_base, rows))


def unnormalize(lab: Lab, source_id: str, reason: str) -> None:
    """What an older normalizer would have written: the row in the rejected table."""
    merchant = lab.scalar(
        lab.source_url, "SELECT merchant::text FROM raw_transactions WHERE id = %s", (source_id,)
    )
    with psycopg.connect(lab.target_url) as conn, conn.transaction():
        conn.execute(REJECT, (merchant, reason, source_id))
        conn.execute("DELETE FROM transactions WHERE source_id = %s", (source_id,))


def table(lab: Lab, name: str) -> list[Any]:
    columns = "*" if name == "transactions_rejected" else "source_id, source_lsn, raw"
    return lab.sql(lab.target_url, f"SELECT {columns} FROM {name} ORDER BY source_id")


def replay(lab: Lab, *args: str) -> str:
    result = lab.cli("replay-rejected", "--batch-size", "2", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fixed_rows_move_and_keep_their_commit_info(lab: Lab) -> None:
    generate(lab, 20)
    lab.sql(lab.source_url, BAD_ROW)
    assert lab.cli("init").returncode == 0
    ids = [r[0] for r in lab.sql(lab.target_url, "SELECT source_id FROM transactions LIMIT 3")]
    before = {i: lab.sql(lab.target_url, ROW, (i,))[0] for i in ids}
    for source_id in ids:
        unnormalize(lab, source_id, "invalid_currency")
    lab.sql(
        lab.target_url,
        "UPDATE transactions_rejected SET reason = 'invalid_amount'"
        " WHERE reason = 'unrecognized_payload'",
    )
    rejected, accepted = table(lab, "transactions_rejected"), table(lab, "transactions")

    dry = replay(lab, "--dry-run")
    assert "examined 4 rejected rows" in dry
    assert "moved to transactions        3" in dry
    assert "rejected with another reason 1" in dry and "dry run" in dry
    assert table(lab, "transactions_rejected") == rejected
    assert table(lab, "transactions") == accepted

    out = replay(lab)
    assert "moved to transactions        3" in out, out
    assert "rejected with another reason 1" in out
    for source_id, row in before.items():
        after = lab.sql(lab.target_url, ROW, (source_id,))[0]
        assert after[:-1] == row[:-1]  # all but ingested_at, incl. commit time and LSN
    left = lab.sql(lab.target_url, "SELECT reason, detail FROM transactions_rejected")
    assert [r[0] for r in left] == ["unrecognized_payload"] and left[0][1] != "old normalizer"
    assert "still rejected, same reason  1" in replay(lab)
    assert lab.cli("verify", "--settle", "0").returncode == 0


def test_reason_filter(lab: Lab) -> None:
    generate(lab, 6)
    assert lab.cli("init").returncode == 0
    ids = [r[0] for r in lab.sql(lab.target_url, "SELECT source_id FROM transactions LIMIT 3")]
    unnormalize(lab, ids[0], "invalid_country")
    unnormalize(lab, ids[1], "invalid_currency")
    unnormalize(lab, ids[2], "invalid_currency")
    out = replay(lab, "--reason", "invalid_currency")
    assert "examined 2 rejected rows with reason invalid_currency" in out
    assert "moved to transactions        2" in out
    assert lab.target_ids("transactions_rejected") == [str(ids[0])]


def test_target_refused_rows_are_retried(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    lab.sql(lab.target_url, "ALTER TABLE transactions ADD CONSTRAINT cap CHECK (amount < 1000)")
    generate(lab, 3)
    generate(lab, 1, amount_base=5000)
    assert lab.cli("run", "--once").returncode == 0
    assert lab.scalar(lab.target_url, "SELECT reason FROM transactions_rejected") == (
        "target_refused"
    )
    out = replay(lab)
    assert "refused again by the target  1" in out and "moved to transactions        0" in out
    detail = lab.scalar(lab.target_url, "SELECT detail FROM transactions_rejected")
    assert detail.startswith("SQLSTATE 23514")
    lab.sql(lab.target_url, "ALTER TABLE transactions DROP CONSTRAINT cap")
    assert "moved to transactions        1" in replay(lab, "--reason", "target_refused")
    assert lab.target_ids("transactions_rejected") == []
    assert len(lab.target_ids()) == 4


def test_safe_while_run_is_streaming(lab: Lab) -> None:
    generate(lab, 50)
    assert lab.cli("init").returncode == 0
    proc = lab.start("run")
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            generate(lab, 10)
            lab.sql(lab.source_url, BAD_ROW)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        ids = [r[0] for r in lab.sql(lab.target_url, "SELECT source_id FROM transactions LIMIT 20")]
        for source_id in ids:
            unnormalize(lab, source_id, "invalid_amount")
        out = replay(lab)
        assert "moved to transactions        20" in out, out
    finally:
        stop.set()
        feeder.join()
    assert lab.stop(proc, signal.SIGTERM) == 0, lab.output
    assert lab.cli("run", "--once").returncode == 0
    assert set(map(str, ids)) <= set(lab.target_ids())
    assert lab.cli("verify", "--settle", "0").returncode == 0
    reasons = lab.sql(lab.target_url, "SELECT DISTINCT reason FROM transactions_rejected")
    assert reasons == [("unrecognized_payload",)]


def test_unknown_reason_is_a_usage_error(lab: Lab) -> None:
    assert_one_clear_line(lab.cli("replay-rejected", "--reason", "bad_vibes"), 2, "--reason")
