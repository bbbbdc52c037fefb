"""Cut-over from the poller: backfill at init with a consistent handoff, resumed
backfills, and resync after a lost slot. Proof: every source id exactly once."""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.integration.conftest import Feeder, Lab

GENERATE = """
INSERT INTO raw_transactions (data, merchant, transactional_id, processed)
SELECT jsonb_build_object('amt', round((random() * 1000)::numeric, 2), 'p_id', 'Stripe',
                          'st_code', 1, 'card_country', 'ES'),
       jsonb_build_object('id', 'm' || (g %% 50), 'name', 'Merchant', 'country', 'CO'),
       gen_random_uuid(), g %% 3 = 0
FROM generate_series(1, %s) AS g
"""
BAD_ROW = """INSERT INTO raw_transactions (data, merchant, transactional_id)
             VALUES ('{"hello": "world"}', '{"id": "m"}', gen_random_uuid())"""


def generate(lab: Lab, rows: int) -> None:
    lab.sql(lab.source_url, GENERATE, (rows,))


def feeder(lab: Lab) -> Feeder:
    """Small transactions, one bad row each, until the block ends."""

    def step() -> None:
        generate(lab, 20)
        lab.sql(lab.source_url, BAD_ROW)

    return Feeder(step, pause=0)


@pytest.mark.slow
def test_backfill_hands_off_to_the_stream_without_gap_or_duplicate(lab18: Lab) -> None:
    lab = lab18
    generate(lab, 50_000)
    lab.sql(lab.source_url, BAD_ROW)
    with feeder(lab):
        init = lab.cli("init", timeout=300)
        assert init.returncode == 0, init.stderr
        copied = re.search(r"backfilled (\d+) rows", init.stdout)
        assert copied and int(copied[1]) >= 50_001, init.stdout
        time.sleep(0.5)
        first = lab.cli("run", "--once", timeout=300)
        assert first.returncode == 0, first.stderr
    final = lab.cli("run", "--once", timeout=300)
    assert final.returncode == 0, final.stderr
    lab.assert_exact_set()
    assert lab.scalar(lab.target_url, "SELECT backfill FROM streamer_checkpoints") == "done:all"


def test_backfill_unprocessed_only_and_none(lab: Lab) -> None:
    generate(lab, 300)
    unprocessed = {
        r[0]
        for r in lab.sql(
            lab.source_url, "SELECT id::text FROM raw_transactions WHERE NOT processed"
        )
    }
    result = lab.cli("init", "--backfill", "unprocessed")
    assert result.returncode == 0, result.stderr
    assert set(lab.target_ids()) == unprocessed

    bad = lab.cli("init", "--backfill", "some", env=lab.env(STREAMER_SLOT="other_slot"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_backfill_none_copies_nothing(lab: Lab) -> None:
    generate(lab, 10)
    result = lab.cli("init", "--backfill", "none")
    assert result.returncode == 0, result.stderr
    assert lab.target_ids() == []
    generate(lab, 5)
    assert lab.cli("run", "--once").returncode == 0
    assert len(lab.target_ids()) == 5


@pytest.mark.slow
def test_killed_backfill_is_finished_by_running_init_again(lab18: Lab) -> None:
    lab = lab18
    generate(lab, 120_000)
    proc = lab.start("init")

    def copying() -> bool:
        return bool(
            lab.scalar(lab.target_url, "SELECT to_regclass('streamer_checkpoints')")
        ) and bool(lab.scalar(lab.target_url, "SELECT backfill_cursor FROM streamer_checkpoints"))

    assert lab.wait_for(copying, 60), lab.output
    lab.stop(proc, signal.SIGKILL)
    partial = len(lab.target_ids())
    assert 0 < partial < 120_000
    with feeder(lab):
        again = lab.cli("init", timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stdout
    assert lab.cli("run", "--once", timeout=300).returncode == 0
    lab.assert_exact_set()


def test_resync_after_a_lost_slot_restores_the_exact_set(lab: Lab) -> None:
    generate(lab, 500)
    assert lab.cli("init").returncode == 0
    with feeder(lab):
        assert lab.cli("run", "--once").returncode == 0
        lab.sql(lab.source_url, "SELECT pg_drop_replication_slot(%s)", (lab.name,))
        generate(lab, 200)  # written while no slot exists: only resync can recover these
        lost = lab.cli("run", "--once")
        assert lost.returncode == 3
        resync = lab.cli("resync", timeout=120)
        assert resync.returncode == 0, resync.stderr
        assert "created replication slot" in resync.stdout
        time.sleep(0.3)
    assert lab.cli("run", "--once").returncode == 0
    lab.assert_exact_set()
    status = lab.cli("status")
    assert status.returncode == 0, status.stdout


def test_slot_without_a_recorded_backfill_is_backfilled(lab: Lab) -> None:
    """A setup that died between creating the slot and recording its backfill (or a slot
    made by hand) must not skip the copy of the rows already there."""
    generate(lab, 40)
    lab.sql(
        lab.source_url,
        f"CREATE PUBLICATION {lab.name} FOR TABLE raw_transactions WITH (publish = 'insert')",
    )
    lab.sql(
        lab.source_url, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (lab.name,)
    )
    generate(lab, 5)
    result = lab.cli("init")
    assert result.returncode == 0, result.stderr
    assert "backfilled 45 rows" in result.stdout
    assert lab.cli("run", "--once").returncode == 0
    lab.assert_exact_set()
