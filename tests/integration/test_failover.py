"""A failover of the source (issue 13): a primary and a `pg_basebackup -R` standby that
synchronizes failover slots (PostgreSQL 17+). streamer, given both hosts, follows the
promotion without a resync and applies every surviving source row exactly once; a slot
made without failover ends in exit 3 with the synchronization advice."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from streamer.ops.embedded import LocalCluster, free_port, wheel_bindir
from streamer.ops.synthetic import SEED_ROWS

from .conftest import FAST_SETTINGS, Lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = str(Path(__file__).resolve().parents[2])  # `python -m streamer` imports this tree
SYNC_SETTINGS = {"hot_standby_feedback": "on", "sync_replication_slots": "on"}
INSERT = (
    "INSERT INTO raw_transactions (data, merchant, transactional_id)"
    " VALUES (%s, %s, gen_random_uuid()) RETURNING id::text"
)
ROW = tuple(Jsonb(value) for value in SEED_ROWS[0])  # a row that normalizes


@dataclass
class Pair:
    """A primary, its standby, and a Lab whose source database lives on the primary."""

    primary: LocalCluster
    standby: LocalCluster
    lab: Lab
    committed: list[str] = field(default_factory=list)  # ids whose commit returned

    @property
    def url(self) -> str:
        """Both hosts; libpq picks the one that accepts writes."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:"
            f"{self.standby.port}/{self.lab.name}?target_session_attrs=read-write"
        )

    def env(self, **extra: str) -> dict[str, str]:
        return self.lab.env(**{"SOURCE_DATABASE_URL": self.url, "PYTHONPATH": REPO, **extra})

    def standby_url(self, db: str | None = None) -> str:
        return self.standby.url(db or self.lab.name)

    def synced(self) -> bool:
        """The standby holds a persistent, valid synchronized copy of the slot."""
        query = (
            "SELECT synced AND NOT temporary AND invalidation_reason IS NULL"
            " FROM pg_replication_slots WHERE slot_name = %s"
        )
        return bool(self.lab.scalar(self.standby_url(), query, (self.lab.name,)))

    def wait_synced(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.synced():
            assert time.monotonic() < deadline, (
                "the slot was not synchronized: " + self.standby.log.read_text()[-1500:]
            )
            # a running-xacts record for the consumer to confirm past moves the slot's
            # catalog xmin beyond the standby's, which the copy must wait for
            self.lab.sql(self.primary.url(), "SELECT pg_log_standby_snapshot()")
            time.sleep(0.5)

    def wait_replayed(self, timeout: float = 60) -> None:
        end = self.lab.scalar(self.primary.url(), "SELECT pg_current_wal_lsn()::text")
        query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
        assert self.lab.wait_for(
            lambda: bool(self.lab.scalar(self.standby.url(), query, (end,))), timeout
        )

    def fail_over(self) -> None:
        """The primary dies (no shutdown checkpoint, clients cut), the standby takes over."""
        self.primary.stop("immediate")
        self.standby.promote()
        assert self.lab.wait_for(
            lambda: not self.lab.scalar(self.standby.url(), "SELECT pg_is_in_recovery()"), 30
        )

    def insert(self, n: int) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for _ in range(n):
                self.committed.append(conn.execute(INSERT, ROW).fetchone()[0])  # type: ignore[index]

    def surviving_ids(self) -> list[str]:
        """raw_transactions on whichever server is the primary now."""
        rows = self.lab.sql(self.url, "SELECT id::text FROM raw_transactions")
        return [r[0] for r in rows]

    def assert_exactly_once(self) -> None:
        """The target holds every id of the surviving primary once, and nothing else."""
        source = self.surviving_ids()
        target = self.lab.target_ids() + self.lab.target_ids("transactions_rejected")
        assert len(target) == len(set(target)), "an id arrived twice"
        assert set(target) == set(source)


class Producer:
    """Inserts one row per transaction through the two-host URL until stopped; a dead
    or not yet promoted server is retried, so inserts follow the failover."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.pair.insert(5)
            except psycopg.OperationalError:
                time.sleep(0.2)
            time.sleep(0.02)

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def pg18_target(
    pg18_clusters: tuple[LocalCluster, LocalCluster],
) -> LocalCluster:
    return pg18_clusters[1]


def _make_pair(target: LocalCluster, name: str, sync: bool = True) -> Iterator[Pair]:
    """With `sync`, the standby synchronizes slots; without, it has none of the settings."""
    primary = LocalCluster(wheel_bindir(), f"{name}-primary", **FAST_SETTINGS).start()
    clusters = [primary]
    lab: Lab | None = None
    try:
        if _server_version(primary) < 170000:
            pytest.skip("failover slots need PostgreSQL 17+")
        lab = Lab(primary, target, f"fo{os.getpid()}_{name}")
        replica = primary.clone_standby(
            f"{name}-standby",
            "standby1" if sync else None,
            dbname=sync,
            **({**SYNC_SETTINGS, **FAST_SETTINGS} if sync else FAST_SETTINGS),
        )
        clusters.append(replica)
        replica.start()
        if sync:
            lab.sql(primary.url(), "ALTER SYSTEM SET synchronized_standby_slots = 'standby1'")
            lab.sql(primary.url(), "SELECT pg_reload_conf()")
        yield Pair(primary, replica, lab)
    finally:
        if lab is not None:
            for proc in lab.procs:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate(timeout=5)
            with psycopg.connect(target.url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{lab.name}" WITH (FORCE)')
        for cluster in clusters:
            cluster.destroy()


def _server_version(cluster: LocalCluster) -> int:
    with psycopg.connect(cluster.url()) as conn:
        return conn.info.server_version


@pytest.fixture
def pair(pg18_target: LocalCluster) -> Iterator[Pair]:
    yield from _make_pair(pg18_target, "ha")


@pytest.fixture
def bare_pair(pg18_target: LocalCluster) -> Iterator[Pair]:
    """A standby with none of the slot synchronization settings."""
    yield from _make_pair(pg18_target, "bare", sync=False)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _metric(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {prefix} in the metrics")


def test_run_follows_a_failover_without_resync_exactly_once(pair: Pair) -> None:
    lab = pair.lab
    init = lab.cli("init", env=pair.env())
    assert init.returncode == 0, init.stderr
    assert "with failover" in init.stdout
    port = free_port()
    proc = lab.start("run", env=pair.env(STREAMER_METRICS_PORT=str(port)))
    old, new = f"127.0.0.1:{pair.primary.port}", f"127.0.0.1:{pair.standby.port}"
    with Producer(pair):
        assert lab.wait_for(lambda: len(lab.target_ids()) > 50, 60), lab.output
        text = _metrics(port)
        assert _metric(text, f'streamer_source_host_info{{host="{old}"}}') == 1
        # the synchronized copy is persisted once the slot moved past the standby's start
        pair.wait_synced()
        check = lab.cli("check", "--standby", pair.standby_url("postgres"), env=pair.env())
        assert check.returncode == 0, check.stdout + check.stderr
        assert "[ ok ] standby sync_replication_slots" in check.stdout
        assert "[ ok ] standby synchronized slot" in check.stdout
        assert "[ ok ] synchronized_standby_slots: standby1" in check.stdout
        pair.fail_over()
        before = len(pair.committed)
        assert lab.wait_for(lambda: len(pair.committed) > before + 50, 60)
    assert lab.wait_for(lambda: len(lab.target_ids()) == len(pair.surviving_ids()), 90), (
        "streamer did not catch up on the new primary"
    )
    text = _metrics(port)
    assert _metric(text, f'streamer_source_host_info{{host="{new}"}}') == 1
    assert _metric(text, f'streamer_source_host_info{{host="{old}"}}') == 0
    assert _metric(text, 'streamer_reconnects_total{database="source"}') >= 1
    status = lab.cli("status", "--json", env=pair.env())
    assert f'"source_host": "{new}"' in status.stdout
    assert '"slot_failover": true' in status.stdout
    assert lab.stop(proc) == 0, lab.output
    assert "resync" not in lab.output
    pair.assert_exactly_once()
    assert set(pair.committed[before:]) <= set(lab.target_ids())
    slot = lab.sql(
        pair.standby_url(),
        "SELECT failover, synced FROM pg_replication_slots WHERE slot_name = %s",
        (lab.name,),
    )
    assert slot == [(True, True)], "the new primary's slot is not the synchronized one"


def test_a_slot_without_failover_is_lost_at_a_failover_exit_3(pair: Pair) -> None:
    lab = pair.lab
    env = pair.env(STREAMER_SLOT_FAILOVER="off")
    assert lab.cli("init", env=env).returncode == 0
    check = lab.cli("check", env=env)
    assert "[warn] slot failover: --slot-failover off" in check.stdout
    proc = lab.start("run", env=env)
    pair.insert(100)
    assert lab.wait_for(lambda: len(lab.target_ids()) == 100, 60), lab.output
    pair.wait_replayed()
    pair.fail_over()
    pair.insert(10)
    assert lab.wait_for(lambda: proc.poll() is not None, 120), "run did not stop"
    assert lab.stop(proc) == 3, lab.output
    assert "was not synchronized to it" in lab.output
    assert "sync_replication_slots = on" in lab.output
    assert "Traceback" not in lab.output


def test_a_promotion_while_streamer_is_down_run_once_catches_up(pair: Pair) -> None:
    lab = pair.lab
    env = pair.env()
    assert lab.cli("init", env=env).returncode == 0
    pair.insert(200)
    # The standby persists its copy only once the slot's catalog xmin passed the
    # standby's: confirm past a fresh running-xacts record (a cron `run --once` would).
    for _ in range(20):
        lab.sql(pair.primary.url(), "SELECT pg_log_standby_snapshot()")
        once = lab.cli("run", "--once", env=env)
        assert once.returncode == 0, once.stderr
        if pair.synced():
            break
        time.sleep(1)
    pair.wait_synced()
    pair.insert(100)  # committed on the old primary, not yet streamed
    pair.wait_replayed()
    pair.fail_over()
    pair.insert(100)
    second = lab.cli("run", "--once", env=env)
    assert second.returncode == 0, second.stderr
    pair.assert_exactly_once()
    assert set(pair.committed) == set(lab.target_ids())
    again = lab.cli("run", "--once", env=env)
    assert again.returncode == 0, again.stderr
    assert len(lab.target_ids()) == len(pair.committed) == 400


def test_check_standby_names_each_missing_setting_with_its_fix(bare_pair: Pair) -> None:
    lab = bare_pair.lab
    env = bare_pair.env(STREAMER_SLOT_FAILOVER="off")
    assert lab.cli("init", env=env).returncode == 0
    check = lab.cli("check", "--standby", bare_pair.standby_url("postgres"), env=bare_pair.env())
    assert check.returncode == 1
    out = check.stdout
    for name in (
        "standby sync_replication_slots",
        "standby hot_standby_feedback",
        "standby primary_slot_name",
        "standby primary_conninfo dbname",
        "slot failover",
    ):
        line = next((x for x in out.splitlines() if f"] {name}:" in x), "")
        assert line.startswith("[FAIL]") and " → " in line, f"{name}: {out}"
    assert "ALTER_REPLICATION_SLOT" in out
    # synchronized_standby_slots naming a slot that does not exist
    lab.sql(bare_pair.primary.url(), "ALTER SYSTEM SET synchronized_standby_slots = 'nosuch'")
    lab.sql(bare_pair.primary.url(), "SELECT pg_reload_conf()")
    check = lab.cli("check", env=bare_pair.env())
    assert "[FAIL] synchronized_standby_slots: names nosuch" in check.stdout
    lab.sql(bare_pair.primary.url(), "ALTER SYSTEM RESET synchronized_standby_slots")
    lab.sql(bare_pair.primary.url(), "SELECT pg_reload_conf()")
    # a standby is never set up or streamed from: one clear line
    standby_only = bare_pair.env(SOURCE_DATABASE_URL=bare_pair.standby_url())
    for command in (("init",), ("status",)):
        refused = lab.cli(*command, env=standby_only)
        assert refused.returncode == 1, refused.stderr
        assert "is a standby (in recovery)" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    # two hosts, standby first, no target_session_attrs: libpq is asked for the primary
    swapped = (
        f"postgresql://postgres@127.0.0.1:{bare_pair.standby.port},"
        f"127.0.0.1:{bare_pair.primary.port}/{lab.name}"
    )
    status = lab.cli("status", "--json", env=bare_pair.env(SOURCE_DATABASE_URL=swapped))
    assert f'"source_host": "127.0.0.1:{bare_pair.primary.port}"' in status.stdout, status
    # `run --slot-failover on` turns failover on for the existing slot
    once = lab.cli("run", "--once", "--slot-failover", "on", env=bare_pair.env())
    assert once.returncode == 0, once.stderr
    failover = lab.scalar(
        bare_pair.primary.url(lab.name),
        "SELECT failover FROM pg_replication_slots WHERE slot_name = %s",
        (lab.name,),
    )
    assert failover is True
