"""Faults against real PostgreSQL: crashes at named points, SIGTERM under load, database
restarts, cut and half-open links, a slow or refusing target, a second instance, schema
changes, huge transactions, unreachable databases. After each: every source id exactly
once in transactions or transactions_rejected, and the slot never confirmed beyond the
target checkpoint."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from streamer.lsn import parse_lsn
from streamer.ops.synthetic import PayloadFactory
from streamer.sink.writer import BatchWriter
from tests.integration.conftest import Feeder, Lab
from tests.integration.proxy import FaultyProxy

pytestmark = pytest.mark.slow


def assert_invariants(lab: Lab) -> None:
    slot, checkpoint = lab.slot(), lab.checkpoint()
    assert slot is not None and checkpoint is not None
    assert parse_lsn(str(slot["confirmed_flush_lsn"])) <= parse_lsn(checkpoint)


def catch_up(lab: Lab, **env: str) -> None:
    result = lab.cli("run", "--once", env=lab.env(**env), timeout=300)
    assert result.returncode == 0, result.stderr
    assert_invariants(lab)
    lab.assert_exact_set()


def feeder(lab: Lab, pause: float = 0.01) -> Feeder:
    """Mixed 25-row transactions with some bad rows, until the block ends."""
    factory = PayloadFactory(seed=11, bad_ratio=0.05)
    return Feeder(lambda: lab.insert(factory.many(25), per_txn=25), pause)


@pytest.mark.parametrize(
    "point", ["after_decode", "before_commit", "after_commit", "rejected_write"]
)
def test_sigkill_at_named_points(lab18: Lab, point: str) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    factory = PayloadFactory(seed=3, bad_ratio=0.2)
    for _ in range(4):
        lab.insert(factory.many(50), per_txn=50)
    crashed = lab.cli(
        "run", "--once", env=lab.env(STREAMER_FAILPOINT=f"{point}:2", STREAMER_BATCH_SIZE="50")
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert_invariants(lab)
    catch_up(lab)


def test_sigterm_under_load_drains_confirms_and_exits_zero(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    with feeder(lab, pause=0):
        proc = lab.start("run")
        assert lab.wait_for(lambda: len(lab.target_ids()) > 200, 30), lab.output
        started = time.monotonic()
        assert lab.stop(proc, signal.SIGTERM, timeout=10) == 0, lab.output
        assert time.monotonic() - started < 10
    slot = lab.slot()
    assert slot is not None and str(slot["confirmed_flush_lsn"]) == lab.checkpoint()
    catch_up(lab)


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_source_restart_reconnects_without_loss(lab18: Lab, mode: str) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    with feeder(lab):
        proc = lab.start("run")
        assert lab.wait_for(lambda: len(lab.target_ids()) > 50, 30), lab.output
        started = time.monotonic()
        lab.source.stop(mode)
        stopped = time.monotonic() - started
        lab.source.start()
        before = len(lab.target_ids())
        assert lab.wait_for(lambda: len(lab.target_ids()) > before + 50, 60), lab.output
        assert lab.stop(proc) == 0, lab.output
    assert stopped < 10, "streamer must not hold up a fast shutdown of the source"
    assert "reconnecting" in lab.output
    catch_up(lab)


def test_target_restart_during_commits_reconnects_without_loss(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    with feeder(lab, pause=0):
        proc = lab.start("run", env=lab.env(STREAMER_BATCH_SIZE="100"))
        assert lab.wait_for(lambda: len(lab.target_ids()) > 100, 30), lab.output
        lab.target.stop("immediate")
        time.sleep(1)
        lab.target.start()
        lab.target.wait_ready()
        before = len(lab.target_ids())
        assert lab.wait_for(lambda: len(lab.target_ids()) > before + 50, 60), lab.output
        assert lab.stop(proc) == 0, lab.output
    assert "reconnecting" in lab.output
    catch_up(lab)


@pytest.mark.parametrize("fault", ["reset", "blackhole"])
def test_network_cut_is_detected_and_survived(lab18: Lab, fault: str) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    proxy = FaultyProxy(lab.source.port)
    try:
        url = lab.source_url.replace(f":{lab.source.port}/", f":{proxy.port}/")
        # a short wal_sender_timeout makes the blackhole detectable within seconds
        env = lab.env(SOURCE_DATABASE_URL=url + "?options=-c%20wal_sender_timeout%3D2s")
        with feeder(lab):
            proc = lab.start("run", env=env)
            assert lab.wait_for(lambda: len(lab.target_ids()) > 50, 30), lab.output
            if fault == "reset":
                proxy.reset_all()
            else:
                proxy.mode = "blackhole"
                time.sleep(8)  # longer than wal_sender_timeout: the link looks alive to TCP
                proxy.mode = "forward"
                proxy.reset_all()  # old connections stay dead; new ones forward
            before = len(lab.target_ids())
            assert lab.wait_for(lambda: len(lab.target_ids()) > before + 50, 60), lab.output
            assert lab.stop(proc) == 0, lab.output
        assert "reconnecting" in lab.output
        if fault == "blackhole":  # TCP alone would not notice for minutes
            assert "no data from the source" in lab.output
    finally:
        proxy.close()
    catch_up(lab)


def test_slow_target_does_not_kill_the_replication_connection(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    env = lab.env(SOURCE_DATABASE_URL=lab.source_url + "?options=-c%20wal_sender_timeout%3D2s")
    proc = lab.start("run", env=env)
    assert lab.wait_for(lambda: bool((lab.slot() or {}).get("active")), 30)
    pid = (lab.slot() or {})["active_pid"]
    with psycopg.connect(lab.target_url) as blocker:
        blocker.execute("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        lab.insert(PayloadFactory(seed=4).many(300), per_txn=30)
        time.sleep(10)
        blocker.rollback()
    assert lab.wait_for(
        lambda: len(lab.target_ids()) + len(lab.target_ids("transactions_rejected")) == 300, 30
    ), lab.output
    assert (lab.slot() or {})["active_pid"] == pid, "the walsender was replaced"
    assert lab.stop(proc) == 0, lab.output
    assert "reconnecting" not in lab.output
    catch_up(lab)


def test_row_refused_by_the_target_is_rejected_alone(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    lab.sql(
        lab.target_url,
        "ALTER TABLE transactions ADD CONSTRAINT no_evil"
        " CHECK (merchant_name IS DISTINCT FROM 'Evil Corp')",
    )
    rows = PayloadFactory(seed=9, bad_ratio=0).many(500)
    rows[250] = (rows[250][0], {**rows[250][1], "name": "Evil Corp"})
    ids = lab.insert(rows, per_txn=500)
    result = lab.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    rejected = lab.sql(
        lab.target_url, "SELECT source_id::text, reason, detail FROM transactions_rejected"
    )
    assert [(r[0], r[1]) for r in rejected] == [(ids[250], "target_refused")]
    assert "23514" in rejected[0][2]
    assert len(lab.target_ids()) == 499
    lab.assert_exact_set()


def test_a_fenced_writer_cannot_commit(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    zombie = BatchWriter(lab.target_url, "public", lab.name)
    newer = BatchWriter(lab.target_url, "public", lab.name)
    try:
        zombie.claim(0)
        newer.claim(0)
        from streamer.errors import Fenced  # noqa: PLC0415
        from streamer.sources.batching import Batch  # noqa: PLC0415

        with pytest.raises(Fenced):
            zombie.write(Batch([], 2**40, 0, 0))
        newer.write(Batch([], 2**40, 0, 0))
        assert lab.checkpoint() == "100/0"
    finally:
        zombie.close()
        newer.close()


def test_add_column_continues_and_type_change_stops_with_exit_3(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    with feeder(lab):
        proc = lab.start("run")
        assert lab.wait_for(lambda: len(lab.target_ids()) > 50, 30), lab.output
        lab.sql(lab.source_url, "ALTER TABLE raw_transactions ADD COLUMN note text")
        before = len(lab.target_ids())
        assert lab.wait_for(lambda: len(lab.target_ids()) > before + 50, 30), lab.output
        assert proc.poll() is None
        assert lab.stop(proc) == 0, lab.output
    catch_up(lab)
    rejected_before = len(lab.target_ids("transactions_rejected"))
    lab.sql(lab.source_url, "ALTER TABLE raw_transactions ALTER COLUMN data TYPE text")
    lab.sql(
        lab.source_url,
        "INSERT INTO raw_transactions (data, merchant, transactional_id)"
        ' VALUES (\'{"amt": 1}\', \'{"id": "m"}\', gen_random_uuid())',
    )
    result = lab.cli("run", "--once")
    assert result.returncode == 3, result.stderr
    assert "changed type" in result.stderr and "Traceback" not in result.stderr
    assert len(lab.target_ids("transactions_rejected")) == rejected_before


def peak_rss_mb(proc: subprocess.Popen[str]) -> float:
    """Poll VmHWM (peak resident set) until the process exits."""
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.05)
    return peak / 1024


def test_huge_and_rolled_back_transactions_in_bounded_memory(lab18: Lab) -> None:
    lab = lab18
    assert lab.cli("init").returncode == 0
    lab.sql(
        lab.source_url,
        """
        INSERT INTO raw_transactions (data, merchant, transactional_id)
        SELECT jsonb_build_object('amt', g, 'p_id', 'Stripe', 'st_code', 1,
                                  'server_txt', repeat('x', 200)),
               '{"id": "m", "name": "Merchant", "country": "CO"}', gen_random_uuid()
        FROM generate_series(1, 200000) AS g""",
    )
    with psycopg.connect(lab.source_url) as conn:
        conn.execute("""
            INSERT INTO raw_transactions (data, merchant, transactional_id)
            SELECT '{"amt": 1}', '{"id": "m"}', gen_random_uuid()
            FROM generate_series(1, 100000)""")
        conn.rollback()
    proc = lab.start("run", "--once", env=lab.env(STREAMER_BATCH_SIZE="5000"))
    peak = peak_rss_mb(proc)
    assert lab.stop(proc, timeout=300) == 0, lab.output
    assert len(lab.target_ids()) == 200_000
    lab.assert_exact_set()
    print(f"peak RSS {peak:.0f} MB")
    assert peak < 250, f"peak RSS {peak:.0f} MB"


def test_unreachable_database_once_gives_up_run_keeps_trying(lab18: Lab) -> None:
    lab = lab18
    dead = "postgresql://postgres@127.0.0.1:1/nowhere"
    started = time.monotonic()
    result = lab.cli("run", "--once", env=lab.env(TARGET_DATABASE_URL=dead), timeout=120)
    assert result.returncode == 1
    assert time.monotonic() - started < 60
    errors = [line for line in result.stderr.splitlines() if line.startswith("streamer: error")]
    assert len(errors) == 1 and "target database" in errors[0]
    assert result.stderr.count("reconnecting") >= 3
    proc = lab.start("run", env=lab.env(TARGET_DATABASE_URL=dead))
    time.sleep(8)
    assert proc.poll() is None, "run mode keeps retrying"
    assert lab.stop(proc) == 0, lab.output
    assert "reconnecting" in lab.output


def test_back_to_back_large_transactions_keep_their_own_commit(lab18: Lab) -> None:
    """Two transactions larger than a batch, one right after the other: each one's rows
    must land with its own end LSN, only when it commits (spill tables hold one at a
    time)."""
    lab = lab18
    assert lab.cli("init").returncode == 0
    factory = PayloadFactory(seed=21, bad_ratio=0.1)
    groups = [lab.insert(factory.many(450), per_txn=450) for _ in range(12)]
    result = lab.cli("run", "--once", env=lab.env(STREAMER_BATCH_SIZE="100"))
    assert result.returncode == 0, result.stderr
    lsn_of = dict(
        lab.sql(
            lab.target_url,
            "SELECT source_id::text, source_lsn::text FROM transactions"
            " UNION ALL SELECT source_id::text, source_lsn::text FROM transactions_rejected",
        )
    )
    per_group = [{lsn_of[i] for i in ids} for ids in groups]
    assert all(len(lsns) == 1 for lsns in per_group), per_group
    assert len(set.union(*per_group)) == 12
    lab.assert_exact_set()


def test_renamed_source_table_stops_with_exit_3(lab18: Lab) -> None:
    """Renamed while streaming: pgoutput keeps the relation id under the new name; its
    inserts must stop the stream, not be skipped while the checkpoint moves on."""
    lab = lab18
    proc = lab.start("run")
    assert lab.wait_for(lambda: bool((lab.slot() or {}).get("active")), 30), lab.output
    lab.insert(PayloadFactory(seed=1).many(3), per_txn=3)
    assert lab.wait_for(lambda: len(lab.target_ids()) == 3, 30), lab.output
    lab.sql(lab.source_url, "ALTER TABLE raw_transactions RENAME TO raw_transactions_old")
    lab.sql(
        lab.source_url,
        "INSERT INTO raw_transactions_old (data, merchant, transactional_id)"
        ' VALUES (\'{"amt": 1}\', \'{"id": "m"}\', gen_random_uuid())',
    )
    assert lab.wait_for(lambda: proc.poll() is not None, 30)
    assert lab.stop(proc) == 3, lab.output
    assert "renamed" in lab.output


def test_writer_moves_only_the_committing_transaction_out_of_the_spill(lab18: Lab) -> None:
    """Deterministic version of the above, at the writer: T1's tail and T2's first part in
    one batch must not stamp T2's parked rows with T1's commit."""
    from streamer.normalize import normalize  # noqa: PLC0415
    from streamer.normalize.records import Canonical, SourceRow  # noqa: PLC0415
    from streamer.sources.batching import Batch, TxnChunk  # noqa: PLC0415

    lab = lab18
    assert lab.cli("init", "--backfill", "none").returncode == 0
    rows = [
        normalize(
            SourceRow(
                f"00000000-0000-0000-0000-{i:012d}",
                "11111111-1111-1111-1111-111111111111",
                '{"amt": 1, "p_id": "x"}',
                '{"id": "m"}',
                None,
            )
        )
        for i in range(8)
    ]
    assert all(isinstance(r, Canonical) for r in rows)

    def chunk(part: list[object], end: int | None, cont: bool) -> TxnChunk:
        return TxnChunk(0, end, cont, canonical=list(part))  # type: ignore[arg-type]

    writer = BatchWriter(lab.target_url, "public", lab.name)
    try:
        writer.claim(0)
        writer.write(Batch([chunk(rows[0:2], None, False)], None, 2, 0))
        writer.write(Batch([chunk(rows[2:4], 100, True), chunk(rows[4:6], None, False)], 100, 4, 0))
        visible = set(lab.target_ids())
        assert visible == {r.source_id for r in rows[0:4]}  # type: ignore[union-attr]
        writer.write(Batch([chunk(rows[6:8], 200, True)], 200, 2, 0))
    finally:
        writer.close()
    lsn = dict(
        lab.sql(lab.target_url, "SELECT source_id::text, source_lsn::text FROM transactions")
    )
    assert [lsn[r.source_id] for r in rows] == ["0/64"] * 4 + ["0/C8"] * 4  # type: ignore[union-attr]
