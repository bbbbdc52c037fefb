"""Shared pieces of the benchmarks: throwaway clusters with durable settings, backlog
loading, timed child processes (wall time, CPU, peak RSS), statistics, tables, JSON."""

from __future__ import annotations

import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import psycopg

from streamer.ops.demo import SOURCE_DDL
from streamer.ops.embedded import LocalCluster, wheel_bindir
from streamer.ops.synthetic import PayloadFactory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_DIR = Path(__file__).resolve().parent.parent

# Realistic durability on both clusters: every commit waits for its WAL fsync.
DURABLE_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}
SHOWN_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_wal_size",
    "logical_decoding_work_mem",
)
PUBLICATION = "streamer"
SOURCE_DB = "lake"
STAGE_CHUNK_ROWS = 100_000


# -- clusters -------------------------------------------------------------------------------
@contextmanager
def clusters() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """A fresh source and a fresh target cluster (PostgreSQL 18 from the wheel)."""
    # one slot per repetition and tool is created before loading: room for many
    source = LocalCluster(
        wheel_bindir(), "bench-source", max_replication_slots=64, **DURABLE_SETTINGS
    )
    target = LocalCluster(wheel_bindir(), "bench-target", **DURABLE_SETTINGS)
    try:
        source.start()
        target.start()
        yield source, target
    finally:
        source.destroy()
        target.destroy()


def server_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in SHOWN_SETTINGS}  # type: ignore[index]


def sql(url: str, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def scalar(url: str, query: str, params: Sequence[Any] | None = None) -> Any:
    rows = sql(url, query, params)
    return rows[0][0] if rows else None


def checkpoint(*urls: str) -> None:
    for url in urls:
        sql(url, "CHECKPOINT")


def create_source(source: LocalCluster) -> str:
    url = source.createdb(SOURCE_DB)
    sql(url, SOURCE_DDL)
    return url


def create_recv_slot(source_url: str, slot: str) -> str:
    """A pgoutput slot for pg_recvlogical; returns its consistent point."""
    return str(
        scalar(
            source_url,
            "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
            (slot,),
        )
    )


def current_wal_lsn(url: str) -> str:
    return str(scalar(url, "SELECT pg_current_wal_lsn()::text"))


def target_counts(target_url: str) -> tuple[int, int]:
    """(normalized rows, rejected rows) in the target."""
    row = sql(
        target_url,
        "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM transactions_rejected)",
    )[0]
    return int(row[0]), int(row[1])


# -- loading --------------------------------------------------------------------------------
def payload_rows(count: int, seed: int) -> Iterator[tuple[str, str, str]]:
    """(data json, merchant json, transactional_id) in the seed's realistic family mix."""
    factory = PayloadFactory(seed=seed)
    for _ in range(count):
        data, merchant = factory.one()
        yield orjson.dumps(data).decode(), orjson.dumps(merchant).decode(), str(uuid.uuid4())


def load_backlog(source_url: str, rows: int, per_txn: int, seed: int = 7) -> float:
    """Insert `rows` rows into raw_transactions in transactions of `per_txn` rows; returns
    seconds. Payloads go through a TEMP staging table (no WAL) by COPY; a server-side loop
    then INSERTs them with a COMMIT every `per_txn` rows. Only this loading session uses
    synchronous_commit=off: the WAL (and so what the slot decodes) is the same, the loader
    just does not wait for each flush."""
    started = time.monotonic()
    chunk = max(per_txn, STAGE_CHUNK_ROWS)
    chunk -= chunk % per_txn
    generator = payload_rows(rows, seed)
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            "CREATE TEMP TABLE bench_stage (n bigint PRIMARY KEY, data jsonb NOT NULL,"
            " merchant jsonb NOT NULL, tid uuid NOT NULL)"
        )
        done = 0
        while done < rows:
            size = min(chunk, rows - done)
            conn.execute("TRUNCATE bench_stage")
            with conn.cursor() as cur, cur.copy("COPY bench_stage FROM STDIN") as copy:
                for n in range(size):
                    data, merchant, tid = next(generator)
                    copy.write_row((n, data, merchant, tid))
            conn.execute("ANALYZE bench_stage")
            conn.execute(
                f"""DO $$
                DECLARE lo bigint;
                BEGIN
                  FOR lo IN SELECT generate_series(0, {size - 1}, {per_txn}) LOOP
                    INSERT INTO raw_transactions (data, merchant, transactional_id)
                      SELECT data, merchant, tid FROM bench_stage
                      WHERE n >= lo AND n < lo + {per_txn} ORDER BY n;
                    COMMIT;
                  END LOOP;
                END $$"""
            )
            done += size
        conn.execute("DROP TABLE bench_stage")
    return time.monotonic() - started


# -- child processes ------------------------------------------------------------------------
def streamer_cmd(*args: str) -> list[str]:
    """The CLI of the installed project, with the interpreter running this benchmark."""
    compile_bytecode()
    return [sys.executable, "-m", "streamer", *args]


@cache
def compile_bytecode() -> None:
    """Give the checkout's modules their `.pyc`, as any installed package (wheel, Docker
    image) has them. An editable install under `PYTHONDONTWRITEBYTECODE=1` (this
    machine's environment) has none, so every run would compile ~100 modules from
    source, ~40 ms of start-up that no operator's install pays. The children still run
    with the environment as it is: they read the `.pyc`, they do not write it."""
    compileall.compile_dir(REPO_DIR / "streamer", quiet=1)


def streamer_env(source_url: str, target_url: str, slot: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMER_", "SOURCE_", "TARGET_", "DATALAKE_"))
        and k != "DATABASE_URL"
    }
    if "STREAMER_PURE_PYTHON" in os.environ:  # which twin runs is the caller's choice
        env["STREAMER_PURE_PYTHON"] = os.environ["STREAMER_PURE_PYTHON"]
    env.update(
        SOURCE_DATABASE_URL=source_url,
        TARGET_DATABASE_URL=target_url,
        STREAMER_SLOT=slot,
        STREAMER_PUBLICATION=PUBLICATION,
        STREAMER_METRICS_PORT="0",
    )
    env.update(extra)
    return env


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """Working directory for child processes (so no `.env` of the checkout is read)."""
    path = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_checked(cmd: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def _stat_fields(path: str) -> list[str] | None:
    """Fields of a /proc stat file after the command name (field 3 of proc(5) is [0])."""
    try:
        with open(path) as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user+sys) of each live thread of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if fields:
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def _cluster_ticks(postmaster: int) -> tuple[int, bool]:
    """(CPU ticks of the postmaster, its live children and its reaped children, whether
    every child was seen alive and not exiting)."""
    fields = _stat_fields(f"/proc/{postmaster}/stat")
    if not fields:
        return 0, True
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    settled = True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            child = _stat_fields(f"/proc/{entry}/stat")
            if child and int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
                settled = settled and child[0] not in ("Z", "X", "x")
    return total, settled


def cluster_cpu(cluster: LocalCluster, settle: float = 0.3) -> float:
    """CPU seconds used so far by a cluster: the postmaster, its live children, and the
    children it already reaped (cutime/cstime). Take the difference around a run. Waits
    `settle` seconds first, and until no child is a zombie, so that backends that just
    exited have been reaped into cutime (counting an exiting child is racy)."""
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    time.sleep(settle)
    deadline = time.monotonic() + 3
    total, settled = _cluster_ticks(postmaster)
    while not settled and time.monotonic() < deadline:
        time.sleep(0.05)
        total, settled = _cluster_ticks(postmaster)
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine used since boot (for deltas)."""
    return machine_busy_ticks()[0] / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold_pct: float = 25.0) -> float:
    """The machine is shared: wait (at most `max_wait` s) until, over one second, the CPUs
    are busy less than `threshold_pct` % (our idle clusters included). Returns the last
    measured busy %."""
    deadline = time.monotonic() + max_wait
    while True:
        busy0, total0 = machine_busy_ticks()
        time.sleep(1.0)
        busy1, total1 = machine_busy_ticks()
        pct = 100 * (busy1 - busy0) / max(1, total1 - total0)
        if pct < threshold_pct or time.monotonic() >= deadline:
            return round(pct, 1)


def _vm_kib(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Timed:
    """One child process run to completion."""

    cmd: list[str]
    returncode: int
    seconds: float
    user_cpu: float
    sys_cpu: float
    peak_rss_kib: int  # ru_maxrss of the process itself (Linux: KiB) == its VmHWM
    sampled_peak_rss_kib: int  # max VmRSS seen by polling
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    # CPU seconds of the main thread and of all other threads, as last polled (may miss
    # the final sample interval; user_cpu + sys_cpu is exact for the whole process)
    main_thread_cpu: float = 0.0
    other_threads_cpu: float = 0.0
    machine_cpu: float = 0.0  # CPU seconds the whole machine used meanwhile
    output: str = ""

    @property
    def cpu(self) -> float:
        return self.user_cpu + self.sys_cpu


def run_timed(
    cmd: Sequence[str],
    env: dict[str, str] | None,
    cwd: Path,
    timeout: float,
    sample_interval: float = 0.1,
) -> Timed:
    """Run to exit; wall time from spawn to reap, CPU and peak RSS from wait4, VmRSS
    polled meanwhile. Killed (and reported with returncode -9) after `timeout`."""
    with tempfile.TemporaryFile(mode="w+") as out:
        machine_before = machine_busy_seconds()
        started = time.monotonic()
        proc = subprocess.Popen(
            list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        samples: list[tuple[float, int]] = []
        threads: dict[int, float] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = _vm_kib(proc.pid, "VmRSS")
                if rss is not None:
                    samples.append((time.monotonic() - started, rss))
                threads.update(thread_cpu(proc.pid))
                done.wait(sample_interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            done.set()
        seconds = time.monotonic() - started
        machine_cpu = machine_busy_seconds() - machine_before
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.join()
        out.seek(0)
        output = out.read()
    return Timed(
        cmd=list(cmd),
        returncode=proc.returncode,
        seconds=seconds,
        user_cpu=usage.ru_utime,
        sys_cpu=usage.ru_stime,
        peak_rss_kib=usage.ru_maxrss,
        sampled_peak_rss_kib=max((kib for _, kib in samples), default=0),
        rss_samples=samples,
        main_thread_cpu=threads.get(proc.pid, 0.0),
        other_threads_cpu=sum(cpu for tid, cpu in threads.items() if tid != proc.pid),
        machine_cpu=machine_cpu,
        output=output,
    )


def timed_tool(
    cmd: list[str],
    env: dict[str, str] | None,
    cwd: Path,
    timeout: float,
    *,
    pair: tuple[LocalCluster, LocalCluster],
    rows: int,
) -> tuple[Timed, dict[str, Any]]:
    """Run one tool to exit; its numbers plus the CPU both clusters used meanwhile, and
    the CPU used by everything else on the machine (the noise)."""
    source, target = pair
    before = cluster_cpu(source), cluster_cpu(target)
    timed = run_timed(cmd, env, cwd, timeout)
    if timed.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({timed.returncode}):\n{timed.output[-3000:]}")
    source_cpu = cluster_cpu(source) - before[0]
    target_cpu = cluster_cpu(target) - before[1]
    foreign = max(0.0, timed.machine_cpu - timed.cpu - source_cpu - target_cpu)
    cores = os.cpu_count() or 1
    return timed, {
        "seconds": round(timed.seconds, 3),
        "rows_per_s": round(rows / timed.seconds, 1),
        "cpu_user_s": round(timed.user_cpu, 2),
        "cpu_sys_s": round(timed.sys_cpu, 2),
        "main_thread_cpu_s": round(timed.main_thread_cpu, 2),
        "other_threads_cpu_s": round(timed.other_threads_cpu, 2),
        "source_pg_cpu_s": round(source_cpu, 2),
        "target_pg_cpu_s": round(target_cpu, 2),
        "foreign_cpu_pct": round(100 * foreign / (cores * timed.seconds), 1),
        "peak_rss_mib": round(timed.peak_rss_kib / 1024, 1),
    }


def pg_recvlogical_cmd(source: LocalCluster, db: str, slot: str, endpos: str) -> list[str]:
    return [
        str(wheel_bindir() / "pg_recvlogical"),
        "-d",
        f"host=127.0.0.1 port={source.port} user=postgres dbname={db}",
        "-S",
        slot,
        "--start",
        f"--endpos={endpos}",
        "--no-loop",
        "-f",
        "/dev/null",
        "--plugin=pgoutput",
        "-o",
        "proto_version=1",
        "-o",
        f"publication_names={PUBLICATION}",
    ]


# -- statistics and output ------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, digits: int = 0) -> str:
        if self.n == 1:
            return f"{self.median:,.{digits}f}"
        return f"{self.median:,.{digits}f} ({self.min:,.{digits}f}..{self.max:,.{digits}f})"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _steal_jiffies() -> int:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return 0


def machine_info() -> dict[str, Any]:
    mem_kib = _vm_total_kib()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "git": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "streamer")),
    }


def _vm_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class LoadWatch:
    """Load average and CPU steal over a benchmark (the machine is shared and noisy)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.load_start = os.getloadavg()
        self.steal_start = _steal_jiffies()

    def summary(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        ticks = os.sysconf("SC_CLK_TCK")
        steal = (_steal_jiffies() - self.steal_start) / ticks
        return {
            "seconds": round(seconds, 1),
            "loadavg_start": [round(x, 2) for x in self.load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "cpu_steal_pct": round(100 * steal / (seconds * (os.cpu_count() or 1)), 1)
            if seconds
            else 0.0,
        }


def conditions_line(settings: dict[str, str]) -> str:
    info = machine_info()
    return (
        f"PostgreSQL {settings.get('server_version', '?')} from the wheel, source and target "
        f"in separate clusters on 127.0.0.1 (TCP); fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}, "
        f"full_page_writes={settings.get('full_page_writes')}, "
        f"wal_sync_method={settings.get('wal_sync_method')}, "
        f"shared_buffers={settings.get('shared_buffers')}; streamer's modules compiled to "
        f"bytecode, as installed. Machine: {info['cpus']} CPUs "
        f"({info['cpu_model']}), {info['memory_gib']} GiB, load average "
        f"{' '.join(str(x) for x in info['loadavg'])}."
    )


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
