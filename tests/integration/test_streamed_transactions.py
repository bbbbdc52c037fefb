"""Large transactions streamed while they run (pgoutput protocol 2): parked on the target
per xid, applied at their Stream Commit, discarded at their abort. The sources run with
logical_decoding_work_mem = 64kB (conftest), so streaming starts early."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import psycopg
import pytest

from streamer.lsn import parse_lsn
from tests.integration.conftest import Lab
from tests.integration.test_faults import peak_rss_mb

pytestmark = pytest.mark.slow

INSERT = """
    INSERT INTO raw_transactions (data, merchant, transactional_id)
    SELECT jsonb_build_object('amt', g, 'p_id', 'Stripe', 'st_code', 1, 'tag', %s::text),
           '{"id": "m", "name": "Merchant", "country": "CO"}', gen_random_uuid()
    FROM generate_series(1, %s) AS g"""


def slot_stats(lab: Lab) -> tuple[int, int]:
    """(stream_bytes, spill_bytes) of the lab's slot."""
    row = lab.sql(
        lab.source_url,
        "SELECT stream_bytes, spill_bytes FROM pg_stat_replication_slots WHERE slot_name = %s",
        (lab.name,),
    )
    return (int(row[0][0]), int(row[0][1])) if row else (0, 0)


def count(lab: Lab, query: str) -> int:
    return int(lab.scalar(lab.target_url, query) or 0)


def parked(lab: Lab) -> int:
    return count(lab, "SELECT count(*) FROM streamer_parked_transactions")


def applied(lab: Lab, tag: str | None = None) -> int:
    where = f" WHERE raw->>'tag' = '{tag}'" if tag else ""
    return count(lab, f"SELECT count(*) FROM transactions{where}")


class Watch(threading.Thread):
    """Peak RSS of a process, sampled in the background until it exits."""

    def __init__(self, proc: Any) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak = proc, 0.0
        self.start()

    def run(self) -> None:
        self.peak = peak_rss_mb(self.proc)


def assert_confirmed_within_checkpoint(lab: Lab) -> None:
    slot, checkpoint = lab.slot(), lab.checkpoint()
    assert slot is not None and checkpoint is not None
    assert parse_lsn(slot["confirmed_flush_lsn"]) <= parse_lsn(checkpoint)


def test_a_huge_transaction_streams_while_it_runs_and_appears_at_its_commit(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    proc = lab.start("run")
    watch = Watch(proc)
    with psycopg.connect(lab.source_url) as conn:
        conn.execute(INSERT, ("big", 300_000))
        # the server streams it before the commit: rows get parked, none is visible
        assert lab.wait_for(lambda: parked(lab) > 0, timeout=120), "nothing was parked"
        assert applied(lab) == 0
        conn.commit()
    assert lab.wait_for(lambda: applied(lab) == 300_000, timeout=300)
    assert lab.wait_for(lambda: parked(lab) == 0, timeout=30)
    assert lab.stop(proc) == 0, lab.output
    watch.join(10)
    lab.assert_exact_set()
    assert_confirmed_within_checkpoint(lab)
    streamed, spilled = slot_stats(lab)
    assert streamed > 0 and spilled == 0, (streamed, spilled)
    print(f"peak RSS {watch.peak:.0f} MB")
    assert watch.peak < 200, f"peak RSS {watch.peak:.0f} MB"
    status = lab.cli("status", "--json")
    assert '"open_streamed_transactions": 0' in status.stdout


def test_with_streaming_off_the_server_spills_instead(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    lab.sql(lab.source_url, INSERT, ("big", 30_000))
    result = lab.cli("run", "--once", env=lab.env(STREAMER_STREAMING="off"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert applied(lab) == 30_000
    streamed, spilled = slot_stats(lab)
    assert spilled > 0 and streamed == 0, (streamed, spilled)


def test_a_rolled_back_huge_transaction_leaves_nothing_and_small_ones_keep_order(
    lab18: Lab,
) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    proc = lab.start("run")
    small: list[str] = []
    with psycopg.connect(lab.source_url) as big:
        big.execute(INSERT, ("doomed", 100_000))
        small += lab.insert([({"amt": 1, "p_id": "Stripe"}, {"id": "m"})] * 5, per_txn=1)
        big.execute(INSERT, ("doomed", 100_000))
        assert lab.wait_for(lambda: parked(lab) > 0, timeout=120)
        small += lab.insert([({"amt": 2, "p_id": "Stripe"}, {"id": "m"})] * 5, per_txn=1)
        big.rollback()
    small += lab.insert([({"amt": 3, "p_id": "Stripe"}, {"id": "m"})] * 5, per_txn=1)
    assert lab.wait_for(lambda: applied(lab) == 15, timeout=120)
    assert lab.wait_for(lambda: parked(lab) == 0, timeout=60)
    assert lab.stop(proc) == 0, lab.output
    assert applied(lab, "doomed") == 0
    assert set(lab.target_ids()) == set(small)
    # in commit order: the checkpoint stamps (end LSNs) grow with the insert order
    lsns = dict(lab.sql(lab.target_url, "SELECT source_id::text, source_lsn FROM transactions"))
    assert [parse_lsn(lsns[i]) for i in small] == sorted(parse_lsn(lsns[i]) for i in small)


def test_a_rolled_back_savepoint_keeps_exactly_the_other_rows(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    with psycopg.connect(lab.source_url) as conn:
        conn.execute(INSERT, ("kept", 20_000))
        conn.execute("SAVEPOINT a")
        conn.execute(INSERT, ("gone", 20_000))
        conn.execute("SAVEPOINT nested")  # rolled back with its parent
        conn.execute(INSERT, ("gone", 10_000))
        conn.execute("ROLLBACK TO SAVEPOINT a")
        conn.execute("SAVEPOINT b")
        conn.execute(INSERT, ("kept", 20_000))
        conn.execute("RELEASE SAVEPOINT b")
        conn.commit()
    result = lab.cli("run", "--once", timeout=300)
    assert result.returncode == 0, result.stderr
    assert (applied(lab, "kept"), applied(lab, "gone")) == (40_000, 0)
    lab.assert_exact_set()
    assert slot_stats(lab)[0] > 0  # it really was streamed


def test_two_streams_committed_in_the_opposite_order_of_their_start(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    proc = lab.start("run")
    with psycopg.connect(lab.source_url) as first, psycopg.connect(lab.source_url) as second:
        first.execute(INSERT, ("first", 30_000))
        second.execute(INSERT, ("second", 30_000))
        first.execute(INSERT, ("first", 30_000))
        assert lab.wait_for(lambda: parked(lab) > 0, timeout=120)
        second.commit()
        assert lab.wait_for(lambda: applied(lab, "second") == 30_000, timeout=120)
        assert applied(lab, "first") == 0
        first.commit()
    assert lab.wait_for(lambda: applied(lab, "first") == 60_000, timeout=120)
    assert lab.stop(proc) == 0, lab.output
    lab.assert_exact_set()
    lsn = dict(
        lab.sql(
            lab.target_url, "SELECT raw->>'tag', max(source_lsn)::text FROM transactions GROUP BY 1"
        )
    )
    assert parse_lsn(lsn["second"]) < parse_lsn(lsn["first"])


@pytest.mark.parametrize(
    ("point", "hit"), [("after_decode", 3), ("before_commit", 3), ("after_commit", 1)]
)
def test_sigkill_at_a_failpoint_inside_a_stream_then_rerun_gives_the_exact_set(
    lab18: Lab, point: str, hit: int
) -> None:
    """The streamed transaction is decoded (and streamed: it outgrows the source's
    logical_decoding_work_mem) by a `run --once` that dies at the failpoint: mid-stream
    with parked rows, or right after its commit reached the target but before the slot
    was told. The next run forgets the parked rows, the server streams the transaction
    again, and it arrives exactly once."""
    lab = lab18
    assert lab.cli("init").returncode == 0
    lab.sql(lab.source_url, INSERT, ("big", 60_000))
    lab.insert([({"amt": 1, "p_id": "Stripe"}, {"id": "m"})] * 20, per_txn=2)
    env = lab.env(STREAMER_BATCH_SIZE="2000", STREAMER_FAILPOINT=f"{point}:{hit}")
    killed = lab.cli("run", "--once", env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_confirmed_within_checkpoint(lab)
    result = lab.cli("run", "--once", timeout=300)
    assert result.returncode == 0, result.stderr
    lab.assert_exact_set()
    assert applied(lab, "big") == 60_000
    assert_confirmed_within_checkpoint(lab)


def test_sigkill_between_stream_stop_and_stream_commit_then_restart(lab18: Lab) -> None:
    """Killed while a streamed transaction is open on the source and parked on the
    target: the restarted run forgets the parked rows and gets the whole transaction."""
    lab = lab18
    assert lab.cli("init").returncode == 0
    proc = lab.start("run", env=lab.env(STREAMER_BATCH_SIZE="2000"))
    with psycopg.connect(lab.source_url) as conn:
        conn.execute(INSERT, ("big", 60_000))
        assert lab.wait_for(lambda: parked(lab) > 0, timeout=120)
        lab.stop(proc, sig=signal.SIGKILL)
        conn.commit()
    lab.insert([({"amt": 1, "p_id": "Stripe"}, {"id": "m"})] * 20, per_txn=2)
    assert_confirmed_within_checkpoint(lab)
    time.sleep(0.5)
    result = lab.cli("run", "--once", timeout=300)
    assert result.returncode == 0, result.stderr
    lab.assert_exact_set()
    assert applied(lab, "big") == 60_000
    assert parked(lab) == 0
    assert_confirmed_within_checkpoint(lab)
