"""The streaming core against real clusters, driven through the CLI like an operator."""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal

from streamer.lsn import parse_lsn
from streamer.ops.synthetic import SEED_ROWS, PayloadFactory
from tests.integration.conftest import Lab

UNSAFE_XML = (
    {
        "type": "XML_BLOB",
        "content": '<?xml version="1.0"?><!DOCTYPE Tx '
        '[<!ENTITY a "x">]><Tx><MerchID>m</MerchID><Val>&a;</Val></Tx>',
    },
    {"id": "m", "name": "M", "country": "PE"},
)


def test_init_is_idempotent_and_creates_everything(lab: Lab) -> None:
    first = lab.cli("init")
    assert first.returncode == 0, first.stderr
    assert "publication" in first.stdout and "replication slot" in first.stdout
    assert "transactions" in first.stdout
    second = lab.cli("init")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    pub = lab.sql(
        lab.source_url,
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate"
        " FROM pg_publication WHERE pubname = %s",
        (lab.name,),
    )
    assert pub == [(True, False, False, False)]
    slot = lab.slot()
    assert slot is not None and slot["plugin"] == "pgoutput"
    assert lab.checkpoint() == str(slot["confirmed_flush_lsn"])
    tables = {
        r[0]
        for r in lab.sql(
            lab.target_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"transactions", "transactions_rejected", "streamer_checkpoints"} <= tables


def test_once_normalizes_rejects_and_never_duplicates(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    ids = lab.insert([*SEED_ROWS, UNSAFE_XML], per_txn=1)
    result = lab.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    match = re.search(
        r"rows normalized (\d+), rows rejected (\d+), LSN reached ([0-9A-F/]+), "
        r"seconds ([\d.]+)",
        result.stdout,
    )
    assert match, result.stdout
    assert (match[1], match[2]) == ("3", "1")
    assert sorted(lab.target_ids()) == sorted(ids[:3])
    assert lab.target_ids("transactions_rejected") == [ids[3]]
    row = lab.sql(
        lab.target_url,
        "SELECT provider, amount, status, source_lsn::text,"
        " source_committed_at IS NOT NULL FROM transactions WHERE source_id = %s",
        (ids[0],),
    )[0]
    assert row[:3] == ("stripe", Decimal("25.84"), "approved")
    assert row[4]
    assert parse_lsn(row[3]) <= parse_lsn(match[3])
    reason = lab.scalar(lab.target_url, "SELECT reason FROM transactions_rejected")
    assert reason == "unsafe_xml"

    again = lab.cli("run", "--once")
    assert again.returncode == 0, again.stderr
    assert "rows normalized 0, rows rejected 0" in again.stdout
    assert len(lab.target_ids()) == 3
    # the slot was confirmed exactly up to the durable checkpoint
    assert str(lab.slot()["confirmed_flush_lsn"]) == lab.checkpoint()  # type: ignore[index]


def test_once_with_nothing_to_do_finishes_promptly(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    started = time.monotonic()
    result = lab.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert "rows normalized 0" in result.stdout


def test_once_stops_at_the_lsn_noted_at_start_while_inserts_continue(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    before = lab.insert(PayloadFactory(seed=1).many(2000), per_txn=100)
    stop = threading.Event()
    later: list[str] = []

    def keep_inserting() -> None:
        factory = PayloadFactory(seed=2)
        while not stop.is_set():
            later.extend(lab.insert(factory.many(20), per_txn=20))

    feeder = threading.Thread(target=keep_inserting)
    feeder.start()
    try:
        time.sleep(0.3)
        result = lab.cli("run", "--once", timeout=60)
    finally:
        stop.set()
        feeder.join()
    assert result.returncode == 0, result.stderr
    reached_text = re.search(r"LSN reached ([0-9A-F]+/[0-9A-F]+)", result.stdout)[1]  # type: ignore[index]
    applied = set(lab.target_ids()) | set(lab.target_ids("transactions_rejected"))
    assert set(before) <= applied
    assert len(later) > 0
    # Rows committed after the start were not waited for: the run stopped although the
    # feeder kept inserting, and no applied row lies beyond the LSN it reports.
    assert not applied - set(before) - set(later)
    beyond = lab.scalar(
        lab.target_url,
        "SELECT count(*) FROM transactions WHERE source_lsn > %s::pg_lsn",
        (reached_text,),
    )
    assert beyond == 0
    assert lab.checkpoint() == reached_text


def test_streaming_latency_under_a_second_and_clean_sigterm(lab: Lab) -> None:
    proc = lab.start("run")
    assert lab.wait_for(lambda: lab.checkpoint() is not None, 30), proc.stdout
    time.sleep(0.5)
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        [source_id] = lab.insert(SEED_ROWS[:1])
        assert lab.wait_for(lambda sid=source_id: sid in lab.target_ids(), 10)
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 1.0, latencies
    assert lab.stop(proc) == 0, lab.output
    slot = lab.slot()
    assert slot is not None and not slot["active"]
    assert str(slot["confirmed_flush_lsn"]) == lab.checkpoint()
