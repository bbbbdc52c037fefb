"""`streamer run --mode files --once` end to end: moto's S3 server, a real target
cluster, the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from streamer.ops.embedded import LocalCluster
from tests.integration.conftest import clean_environment
from tests.unit.files.helpers import (
    EXPLICIT_ID,
    RECORDS,
    csv_file,
    gz,
    json_file,
    jsonl_file,
    parquet_file,
    parquet_table,
)

pytestmark = pytest.mark.integration

WORKTREE = Path(__file__).resolve().parents[3]
PREFIX = "raw-payments/"
LINE = re.compile(
    r"^files completed (\d+), files failed (\d+), rows normalized (\d+), "
    r"rows rejected (\d+), seconds [0-9.]+$"
)
RUN_ONCE = ("run", "--mode", "files", "--once")
_dbs = iter(range(10**6))


@dataclass
class FilesLab:
    target_url: str
    bucket: str
    admin: Any

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_environment()
        env.update(
            TARGET_DATABASE_URL=self.target_url,
            STREAMER_FILES_URL=f"s3://{self.bucket}/{PREFIX}",
            STREAMER_METRICS_PORT="0",
            PYTHONPATH=str(WORKTREE),
        )
        env.update(extra)
        return env

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamer", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=WORKTREE,
            check=False,
        )

    def run_once(self, **extra: str) -> tuple[int, ...]:
        """One `run --mode files --once`; its counts (completed, failed, normalized,
        rejected)."""
        done = self.cli("run", "--mode", "files", "--once", **extra)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1, done.stdout
        match = LINE.match(lines[0])
        assert match, lines[0]
        return tuple(int(g) for g in match.groups())

    def put(self, key: str, body: bytes) -> None:
        self.admin.put_object(Bucket=self.bucket, Key=PREFIX + key, Body=body)

    def sql(self, query: str, params: Any = None) -> list[Any]:
        with psycopg.connect(self.target_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, query: str, params: Any = None) -> Any:
        return self.sql(query, params)[0][0]

    def status(self) -> dict[str, str]:
        rows = self.sql("SELECT object_key, processing_status FROM processed_files")
        return {key.removeprefix(PREFIX): status for key, status in rows}


@pytest.fixture
def lab(
    pg18_clusters: tuple[LocalCluster, LocalCluster], admin: Any, bucket_name: str
) -> Iterator[FilesLab]:
    _, target = pg18_clusters
    yield FilesLab(target.createdb(f"files{next(_dbs)}"), bucket_name, admin)


def test_the_seeds_sample_file(lab: FilesLab) -> None:
    lab.put("2024-12-13/sample_transactions.json", json.dumps(RECORDS).encode())
    assert lab.run_once() == (1, 0, 3, 0)
    rows = lab.sql("SELECT provider, amount::text FROM transactions ORDER BY provider")
    assert len(rows) == 3
    assert lab.scalar(
        "SELECT source_id::text FROM transactions WHERE source_id = %s", (EXPLICIT_ID.lower(),)
    )
    files = lab.sql(
        "SELECT file_path, records_count, rows_normalized, rows_rejected, attempts,"
        " resume_position, file_format FROM processed_files"
    )
    assert files == [
        (f"s3://{lab.bucket}/{PREFIX}2024-12-13/sample_transactions.json", 3, 3, 0, 1, 3, "json")
    ]
    # provenance: every target row maps to its object and record position
    assert (
        lab.scalar(
            "SELECT count(*) FROM processed_file_records r JOIN transactions t USING (source_id)"
        )
        == 3
    )
    # a re-run changes nothing
    assert lab.run_once() == (0, 0, 0, 0)
    assert lab.scalar("SELECT attempts FROM processed_files") == 1


def test_every_format_and_the_monitoring_sql(lab: FilesLab) -> None:
    table = parquet_table(RECORDS, "string")
    bodies = {
        "2024-12-13/transactions_001.json": json_file(RECORDS),
        "2024-12-13/transactions_002.jsonl": jsonl_file(RECORDS),
        "2024-12-13/transactions_003.csv": csv_file(RECORDS, data_column=True),
        "2024-12-13/transactions_005.json.gz": gz(json_file(RECORDS)),
        "2024-12-13/transactions_006.ndjson.gz": gz(jsonl_file(RECORDS)),
        "2024-12-13/transactions_007.csv.gz": gz(csv_file(RECORDS, data_column=True)),
        "2024-12-14/transactions_004.parquet": parquet_file(table).getvalue(),
        "2024-12-14/README.txt": b"not a data file",
    }
    for key, body in bodies.items():
        lab.put(key, body)
    # 7 files of 3 records; the one with an explicit id is stored once
    assert lab.run_once() == (7, 0, 15, 0)
    assert lab.scalar("SELECT count(*) FROM transactions") == 15
    assert lab.scalar("SELECT count(*) FROM processed_file_records") == 21
    assert set(lab.status().values()) == {"completed"}
    for query in seed_queries():
        lab.sql(query)  # verbatim: must run
    today = dict((s, n) for n, s in lab.sql(seed_queries()[0]))
    assert today == {"completed": 7}
    hourly = lab.sql(seed_queries()[2])
    assert sum(row[1] for row in hourly) == 7 and sum(row[2] for row in hourly) == 21


def test_hostile_file_fails_alone_and_retry_reprocesses(lab: FilesLab) -> None:
    lab.put("2024-12-13/a_good.jsonl", jsonl_file(RECORDS))
    lab.put("2024-12-13/b_broken.json.gz", b"\x1f\x8b\x08\x00garbage")
    lab.put("2024-12-13/c_bad_record.jsonl", jsonl_file(RECORDS[1:]) + b"{not json\n")
    completed, failed, normalized, rejected = lab.run_once()
    assert (completed, failed, normalized, rejected) == (2, 1, 5, 1)
    assert lab.status() == {
        "2024-12-13/a_good.jsonl": "completed",
        "2024-12-13/b_broken.json.gz": "failed",
        "2024-12-13/c_bad_record.jsonl": "completed",
    }
    message = lab.scalar(
        "SELECT error_message FROM processed_files WHERE processing_status = 'failed'"
    )
    assert message and "\n" not in message
    assert (
        lab.scalar("SELECT reason FROM transactions_rejected WHERE transactional_id IS NULL")
        == "malformed_record"
    )
    seed = seed_queries()[1]
    assert [row[0] for row in lab.sql(seed)] == [
        f"s3://{lab.bucket}/{PREFIX}2024-12-13/b_broken.json.gz"
    ]
    # the gzip is replaced: the old version cannot be read any more, the new one can
    key = f"{PREFIX}2024-12-13/b_broken.json.gz"
    lab.admin.put_object(Bucket=lab.bucket, Key=key, Body=gz(json_file(RECORDS)))
    retry(lab, key)
    assert lab.run_once()[:2] == (1, 1)
    rows = lab.sql(
        "SELECT processing_status, attempts FROM processed_files WHERE object_key = %s ORDER BY id",
        (key,),
    )
    assert rows == [("failed", 2), ("completed", 1)]


def test_retry_update_reprocesses_the_same_version(lab: FilesLab) -> None:
    key = f"{PREFIX}2024-12-13/big.json"
    lab.put("2024-12-13/big.json", json_file(RECORDS))
    assert lab.run_once(STREAMER_FILES_MAX_BYTES="100") == (0, 1, 0, 0)
    assert "100" in lab.scalar("SELECT error_message FROM processed_files")
    assert lab.run_once() == (0, 0, 0, 0)  # failed stays failed until retried
    retry(lab, key)
    assert lab.run_once() == (1, 0, 3, 0)
    assert lab.sql(
        "SELECT processing_status, attempts, error_message, records_count FROM processed_files"
    ) == [("completed", 2, None, 3)]


def retry(lab: FilesLab, key: str) -> None:
    """The seed's retry, verbatim but for the key."""
    lab.sql(
        "UPDATE processed_files SET processing_status = 'pending', error_message = NULL"
        f" WHERE object_key = '{key}'"
    )


def test_new_etag_under_the_same_key(lab: FilesLab) -> None:
    lab.put("2024-12-13/t.jsonl", jsonl_file(RECORDS[1:2]))
    assert lab.run_once() == (1, 0, 1, 0)
    lab.put("2024-12-13/t.jsonl", jsonl_file(RECORDS[1:3]))
    # position 0 is the same record (same derived id): only position 1 is new
    assert lab.run_once() == (1, 0, 1, 0)
    assert lab.sql("SELECT count(*), count(DISTINCT etag) FROM processed_files") == [(2, 2)]


def test_large_file_commits_in_chunks(lab: FilesLab) -> None:
    records = [
        {**RECORDS[1], "transactional_id": f"8d3b7d5e-1c2f-4a6b-9e0d-{i:012d}"} for i in range(2500)
    ]
    lab.put("2024-12-13/big.jsonl", jsonl_file(records))
    assert lab.run_once(STREAMER_BATCH_SIZE="1000") == (1, 0, 2500, 0)
    assert lab.sql("SELECT records_count, resume_position FROM processed_files") == [(2500, 2500)]
    assert lab.scalar("SELECT count(DISTINCT position) FROM processed_file_records") == 2500


def test_bad_url_is_a_usage_error(lab: FilesLab) -> None:
    done = lab.cli("run", "--mode", "files", "--once", STREAMER_FILES_URL="http://x/")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1


def seed_queries() -> list[str]:
    """The seed's monitoring SQL, verbatim (today, failed, hourly, large)."""
    text = "\n".join(p.read_text() for p in sorted(Path("/work/shared/seed").glob("*.txt")))
    section = text[text.index("### Queries SQL") :]
    block = section[section.index("```sql") + 6 : section.index("```", section.index("```sql") + 6)]
    return [q.strip() for q in block.split(";") if q.strip()]


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_large_file_then_rerun(lab: FilesLab, tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(200_000)]
    base = RECORDS[1]
    lines = (orjson.dumps({**base, "id": sid, "transactional_id": sid}) for sid in ids)
    lab.put("2024-12-13/huge.jsonl", b"\n".join(lines) + b"\n")
    init = lab.cli("init", "--mode", "files")
    assert init.returncode == 0, init.stderr
    assert "created target table public.processed_files" in init.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--mode", "files", "--once"],
        env=lab.env(STREAMER_BATCH_SIZE="1000", TMPDIR=str(tmp_path)),  # a killed run's spool
        cwd=WORKTREE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        position = 0
        while time.monotonic() < deadline and proc.poll() is None:
            rows = lab.sql("SELECT resume_position FROM processed_files")
            position = rows[0][0] if rows else 0
            if position >= 20_000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert 20_000 <= position < 200_000
    killed_at = lab.scalar("SELECT resume_position FROM processed_files")
    assert lab.scalar("SELECT count(*) FROM transactions") == killed_at
    assert lab.scalar("SELECT processing_status FROM processed_files") == "processing"
    completed, failed, normalized, rejected = lab.run_once(STREAMER_BATCH_SIZE="1000")
    assert (completed, failed, rejected) == (1, 0, 0)
    assert normalized == 200_000 - killed_at
    target = {row[0] for row in lab.sql("SELECT source_id::text FROM transactions")}
    assert target == set(ids)
    assert lab.sql(
        "SELECT processing_status, attempts, records_count, rows_normalized FROM processed_files"
    ) == [("completed", 2, 200_000, 200_000)]
    assert lab.scalar("SELECT count(*) FROM processed_file_records") == 200_000


def test_missing_bucket_exits_1_with_one_line(lab: FilesLab) -> None:
    done = lab.cli("run", "--mode", "files", "--once", STREAMER_FILES_URL="s3://no-such-lake/x/")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("streamer: error")]
    assert len(errors) == 1 and "no-such-lake" in errors[0], done.stderr


@pytest.mark.slow
def test_unreachable_bucket_exits_1_after_the_retries(lab: FilesLab) -> None:
    done = lab.cli("run", "--mode", "files", "--once", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert done.returncode == 1, done.stderr
    assert "cannot reach S3" in done.stderr.splitlines()[-1], done.stderr


def test_status_and_verify(lab: FilesLab) -> None:
    lab.put("2024-12-13/a.jsonl", jsonl_file(RECORDS))
    lab.put("2024-12-13/b.json", b"[not json")
    lab.run_once()
    status = lab.cli("status", "--mode", "files")
    assert status.returncode == 1, status.stdout + status.stderr
    assert "completed 1, failed 1" in status.stdout and "failed file" in status.stdout
    verify = lab.cli("verify", "--mode", "files")
    assert verify.returncode == 1, verify.stderr
    assert "not completed: 1: raw-payments/2024-12-13/b.json" in verify.stdout
    lab.put("2024-12-13/b.json", json_file(RECORDS[1:]))
    lab.run_once()
    lab.sql("DELETE FROM processed_files WHERE processing_status = 'failed'")
    assert lab.cli("status", "--mode", "files").returncode == 0
    verify = lab.cli("verify", "--mode", "files", "--json")
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["objects"] == 2
    # a row gone from the target shows as a count mismatch
    lab.sql("DELETE FROM transactions WHERE source_id = %s", (EXPLICIT_ID.lower(),))
    verify = lab.cli("verify", "--mode", "files")
    assert verify.returncode == 1
    assert (
        "records_count differs from the target rows: 1: raw-payments/2024-12-13/a.jsonl"
        in verify.stdout
    )


@pytest.mark.slow
def test_hostile_files_end_failed_or_rejected_and_the_rest_completes(lab: FilesLab) -> None:
    header, good_row = csv_file(RECORDS[1:2], data_column=True).split(b"\n", 1)
    wrong = parquet_table(RECORDS, "string").drop_columns(["merchant_id"])
    bodies = {
        "a_good.jsonl": jsonl_file(RECORDS),
        "b_bomb.jsonl.gz": zeros_gzip(100 * 1024 * 1024),
        "c_long_line.csv": header + b"\n" + b"x" * (50 * 1024 * 1024) + b"\n" + good_row,
        "d_utf8.jsonl": b'{"a": "\xff"}\n' + jsonl_file(RECORDS[1:2]),
        "e_schema.parquet": parquet_file(wrong).getvalue(),
        "f_nesting.json": b"[" * 100_000 + b"]" * 100_000,
    }
    for key, body in bodies.items():
        lab.put(f"2024-12-13/{key}", body)
    assert lab.run_once() == (4, 2, 5, 3)
    rows = lab.sql(
        "SELECT object_key, processing_status, error_message, rows_normalized, rows_rejected"
        " FROM processed_files ORDER BY object_key"
    )
    summary = {key.rsplit("/", 1)[1]: row for key, *row in rows}
    assert summary["a_good.jsonl"] == ["completed", None, 3, 0]
    assert summary["b_bomb.jsonl.gz"] == ["completed", None, 0, 1]
    assert summary["c_long_line.csv"] == ["completed", None, 1, 1]
    assert summary["d_utf8.jsonl"] == ["completed", None, 1, 1]
    for key in ("e_schema.parquet", "f_nesting.json"):
        status, message, *_ = summary[key]
        assert status == "failed" and message and "\n" not in message and len(message) < 400
    # every rejected row is traceable to its object and position
    assert (
        lab.scalar(
            "SELECT count(*) FROM transactions_rejected j"
            " JOIN processed_file_records r USING (source_id)"
        )
        == 3
    )


def zeros_gzip(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed without ever holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


@pytest.mark.parametrize("workers", ["1", "4"])
def test_workers_commit_in_key_order(lab: FilesLab, workers: str, tmp_path: Path) -> None:
    for i in range(12):
        lab.put(f"2024-12-13/f{i:02d}.jsonl", jsonl_file(RECORDS[1:3]))
    counts = lab.run_once(STREAMER_FILES_WORKERS=workers, TMPDIR=str(tmp_path))
    assert counts == (12, 0, 24, 0)
    keys = [
        row[0] for row in lab.sql("SELECT object_key FROM processed_files ORDER BY completed_at")
    ]
    assert keys == sorted(keys)
    assert not list(tmp_path.iterdir())  # spool files and their directory removed


def test_metrics(lab: FilesLab, tmp_path: Path) -> None:
    good = jsonl_file(RECORDS)
    lab.put("2024-12-13/a.jsonl", good)
    lab.put("2024-12-13/b.json", b"[not json")
    lab.put("2024-12-13/notes.txt", b"skipped")
    textfile = tmp_path / "streamer.prom"
    lab.run_once(STREAMER_METRICS_TEXTFILE=str(textfile))
    text = textfile.read_text()
    for line in (
        'streamer_files_total{status="completed"} 1.0',
        'streamer_files_total{status="failed"} 1.0',
        'streamer_files_total{status="skipped"} 1.0',
        f"streamer_file_bytes_total {float(len(good))}",
        "streamer_oldest_pending_file_age_seconds 0.0",
    ):
        assert line in text.splitlines(), line
    rows = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('streamer_rows_total{outcome="normalized"')
    )
    assert rows == 3


def test_continuous_mode_picks_up_new_objects(lab: FilesLab) -> None:
    lab.put("2024-12-13/a.jsonl", jsonl_file(RECORDS))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--mode", "files", "--poll-interval", "1"],
        env=lab.env(),
        cwd=WORKTREE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: lab.status().get("2024-12-13/a.jsonl") == "completed")
        lab.put("2024-12-14/b.csv", csv_file(RECORDS[1:], data_column=True))
        assert wait_for(lambda: lab.status().get("2024-12-14/b.csv") == "completed")
        assert lab.scalar("SELECT count(*) FROM transactions") == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_peak_rss_on_a_million_record_jsonl_file(lab: FilesLab) -> None:
    base = orjson.dumps({**RECORDS[1], "transactional_id": "00000000-0000-4000-8000-%012d"})
    head, tail = base.decode().split("%012d")
    body = "\n".join(f"{head}{i:012d}{tail}" for i in range(1_000_000)).encode() + b"\n"
    lab.put("2024-12-13/million.jsonl", body)
    del body
    measure = (
        "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
        " sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, *(sys.executable, "-m", "streamer"), *RUN_ONCE],
        env=lab.env(),
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert LINE.match(done.stdout.strip()).groups()[:4] == ("1", "0", "1000000", "0")  # type: ignore[union-attr]
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb <= 200, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.slow
def test_a_second_run_fences_the_first(lab: FilesLab) -> None:
    ids = [str(uuid.uuid4()) for _ in range(100_000)]
    lines = (orjson.dumps({**RECORDS[1], "id": sid}) for sid in ids)
    lab.put("2024-12-13/big.jsonl", b"\n".join(lines) + b"\n")
    assert lab.cli("init", "--mode", "files").returncode == 0
    first = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--mode", "files"],
        env=lab.env(STREAMER_BATCH_SIZE="500"),
        cwd=WORKTREE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(
            lambda: lab.sql("SELECT 1 FROM processed_files WHERE resume_position > 0") != []
        )
        lab.run_once()
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 1, stderr
    assert "claimed by another" in stderr
    assert {row[0] for row in lab.sql("SELECT source_id::text FROM transactions")} == set(ids)
    assert lab.sql("SELECT processing_status, records_count FROM processed_files") == [
        ("completed", 100_000)
    ]
