"""Real throwaway clusters (wal_level=logical): one source and one target cluster per
PostgreSQL version, started once per session; each test gets fresh databases."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from streamer.ops.demo import SOURCE_DDL
from streamer.ops.embedded import PG15_BINDIR, LocalCluster, wheel_bindir

VERSIONS = {"pg18": wheel_bindir}
if (PG15_BINDIR / "postgres").exists():
    VERSIONS["pg15"] = lambda: PG15_BINDIR

FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "max_wal_size": "1GB"}
# Sources stream (pgoutput protocol 2) any transaction over 64 kB while it runs, so every
# test exercises the streamed path on large transactions, not only the streaming tests.
SOURCE_SETTINGS = {**FAST_SETTINGS, "logical_decoding_work_mem": "64kB"}
_counter = itertools.count()


@pytest.fixture(scope="session", params=sorted(VERSIONS))
def clusters(request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, LocalCluster]]:
    bindir = VERSIONS[request.param]()
    source = LocalCluster(bindir, f"{request.param}-source", **SOURCE_SETTINGS).start()
    target = LocalCluster(bindir, f"{request.param}-target", **FAST_SETTINGS).start()
    yield source, target
    source.destroy()
    target.destroy()


@pytest.fixture(scope="session")
def pg18_clusters() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """PostgreSQL 18 only, for the slow tests that need not run on every version."""
    source = LocalCluster(wheel_bindir(), "pg18k-source", **SOURCE_SETTINGS).start()
    target = LocalCluster(wheel_bindir(), "pg18k-target", **FAST_SETTINGS).start()
    yield source, target
    source.destroy()
    target.destroy()


def _json(value: Any) -> Any:
    return value if isinstance(value, str) else Jsonb(value)


def clean_environment() -> dict[str, str]:
    """This process's environment without any streamer setting or database URL, so a
    test's command sees only what the test gives it."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMER_", "SOURCE_", "TARGET_", "DATALAKE_"))
        and k != "DATABASE_URL"
    }


@dataclass
class Lab:
    """A source database with raw_transactions, a target database, and the CLI."""

    source: LocalCluster
    target: LocalCluster
    name: str
    source_url: str = field(init=False)
    target_url: str = field(init=False)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    output: str = ""

    def __post_init__(self) -> None:
        self.source_url = self.source.createdb(self.name)
        self.target_url = self.target.createdb(self.name)
        self.sql(self.source_url, SOURCE_DDL)

    # -- the command -----------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = clean_environment()
        env.update(
            SOURCE_DATABASE_URL=self.source_url,
            TARGET_DATABASE_URL=self.target_url,
            STREAMER_SLOT=self.name,
            STREAMER_PUBLICATION=self.name,
            STREAMER_METRICS_PORT="0",
        )
        env.update(extra)
        return env

    def cli(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamer", *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.source.root,
            check=False,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", *args],
            env=env or self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.source.root,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(
        self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 20
    ) -> int:
        """Signal the process group, collect its output into `self.output`, return the
        exit code (raises on timeout, after a SIGKILL)."""
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        try:
            self.output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            self.output, _ = proc.communicate(timeout=5)
            raise
        return proc.returncode

    # -- data --------------------------------------------------------------------------
    def sql(self, url: str, query: str, params: Sequence[Any] | None = None) -> list[Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, url: str, query: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.sql(url, query, params)
        return rows[0][0] if rows else None

    def insert(self, rows: Sequence[tuple[Any, Any]], per_txn: int = 1000) -> list[str]:
        ids: list[str] = []
        with psycopg.connect(self.source_url) as conn:
            for start in range(0, len(rows), per_txn):
                with conn.transaction(), conn.cursor() as cur:
                    for data, merchant in rows[start : start + per_txn]:
                        cur.execute(
                            "INSERT INTO raw_transactions (data, merchant, transactional_id)"
                            " VALUES (%s, %s, gen_random_uuid()) RETURNING id::text",
                            (_json(data), _json(merchant)),
                        )
                        ids.append(cur.fetchone()[0])  # type: ignore[index]
        return ids

    def target_ids(self, table: str = "transactions") -> list[str]:
        return [r[0] for r in self.sql(self.target_url, f"SELECT source_id::text FROM {table}")]

    def checkpoint(self) -> str | None:
        """The target checkpoint LSN text; None while the table or row is missing."""
        if not self.scalar(self.target_url, "SELECT to_regclass('streamer_checkpoints')"):
            return None
        lsn: str | None = self.scalar(
            self.target_url,
            "SELECT lsn::text FROM streamer_checkpoints WHERE slot_name = %s",
            (self.name,),
        )
        return lsn

    def slot(self) -> dict[str, Any] | None:
        with psycopg.connect(self.source_url) as conn:
            cur = conn.execute(
                "SELECT * FROM pg_replication_slots WHERE slot_name = %s", (self.name,)
            )
            row = cur.fetchone()
            return (
                dict(zip([d.name for d in cur.description or []], row, strict=True))
                if row
                else None
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def assert_exact_set(self) -> None:
        """Every source id exactly once in transactions or transactions_rejected."""
        source = {r[0] for r in self.sql(self.source_url, "SELECT id::text FROM raw_transactions")}
        accepted, rejected = self.target_ids(), self.target_ids("transactions_rejected")
        assert not set(accepted) & set(rejected)
        assert len(accepted) + len(rejected) == len(source)
        assert set(accepted) | set(rejected) == source

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=5)
        with psycopg.connect(self.source.url(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE database = %s AND active_pid IS NOT NULL",
                (self.name,),
            )
            for _ in range(50):
                try:
                    conn.execute(
                        "SELECT pg_drop_replication_slot(slot_name)"
                        " FROM pg_replication_slots WHERE database = %s",
                        (self.name,),
                    )
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.1)
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        with psycopg.connect(self.target.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Feeder:
    """Calls `step` (an insert) in a thread until the block ends; tolerates a source that
    is restarting."""

    def __init__(self, step: Callable[[], object], pause: float = 0.01) -> None:
        self.step, self.pause = step, pause
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except psycopg.OperationalError:
                time.sleep(0.2)
            time.sleep(self.pause)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _lab(
    clusters: tuple[LocalCluster, LocalCluster], request: pytest.FixtureRequest
) -> Iterator[Lab]:
    lab = Lab(clusters[0], clusters[1], f"t{os.getpid()}_{next(_counter)}")
    yield lab
    lab.cleanup()


@pytest.fixture
def lab(
    clusters: tuple[LocalCluster, LocalCluster], request: pytest.FixtureRequest
) -> Iterator[Lab]:
    yield from _lab(clusters, request)


@pytest.fixture
def lab18(
    pg18_clusters: tuple[LocalCluster, LocalCluster], request: pytest.FixtureRequest
) -> Iterator[Lab]:
    yield from _lab(pg18_clusters, request)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
