"""`status --mode files` and `verify --mode files`: `processed_files` and the bucket, read
only (no source database). Exit 0 when healthy / consistent, 1 otherwise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from streamer.config import Settings
from streamer.runtime.dbconn import connect, translated
from streamer.sink.tables import FILE_RECORDS, PROCESSED_FILES, REJECTED, TRANSACTIONS
from streamer.sources.files.formats import detect_format
from streamer.sources.files.s3 import Bucket, parse_files_url

SHOWN_KEYS = 20


@dataclass
class FilesStatus:
    url: str
    by_status: dict[str, int] = field(default_factory=dict)
    oldest_unprocessed: str | None = None
    oldest_unprocessed_age_s: float | None = None
    last_completed: str | None = None
    last_completed_at: str | None = None
    healthy: bool = True
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in self.by_status.items()) or "none"
        verdict = "healthy" if self.healthy else "UNHEALTHY: " + "; ".join(self.problems)
        age = f" ({self.oldest_unprocessed_age_s:.0f} s old)" if self.oldest_unprocessed else ""
        return [
            f"files url            {self.url}",
            f"files                {counts}",
            f"oldest unprocessed   {self.oldest_unprocessed or 'none'}{age}",
            f"last completed       {self.last_completed or 'none'}"
            + (f" at {self.last_completed_at}" if self.last_completed else ""),
            f"verdict              {verdict}",
        ]


def _scope(settings: Settings) -> tuple[str, str, sql.Composed, dict[str, Any]]:
    assert settings.files_url is not None
    bucket, prefix = parse_files_url(settings.files_url)
    table = sql.SQL("{}.{}").format(
        sql.Identifier(settings.target_schema), sql.Identifier(PROCESSED_FILES)
    )
    params = {"bucket": bucket, "prefix": prefix, "n": len(prefix)}
    return bucket, prefix, table, params


MINE = sql.SQL("bucket = %(bucket)s AND left(object_key, %(n)s) = %(prefix)s")


def files_status(settings: Settings, max_lag_seconds: float | None) -> FilesStatus:
    files_url, target_url = settings.require_files()
    _, _, table, params = _scope(settings)
    status = FilesStatus(files_url)
    with (
        translated("target", target_url, "reading processed_files"),
        connect("target", target_url, autocommit=True) as conn,
    ):
        rows = conn.execute(
            sql.SQL(
                "SELECT processing_status, count(*) FROM {} WHERE {} GROUP BY 1 ORDER BY 1"
            ).format(table, MINE),
            params,
        ).fetchall()
        status.by_status = {row[0]: int(row[1]) for row in rows}
        oldest = conn.execute(
            sql.SQL(
                "SELECT file_path, extract(epoch FROM now() - coalesce(last_modified,"
                " discovered_at))::float8 FROM {} WHERE {}"
                " AND processing_status IN ('pending', 'processing')"
                " ORDER BY coalesce(last_modified, discovered_at), object_key LIMIT 1"
            ).format(table, MINE),
            params,
        ).fetchone()
        if oldest:
            status.oldest_unprocessed, status.oldest_unprocessed_age_s = oldest
        last = conn.execute(
            sql.SQL(
                "SELECT file_path, completed_at::text FROM {} WHERE {}"
                " AND processing_status = 'completed' ORDER BY completed_at DESC, id DESC LIMIT 1"
            ).format(table, MINE),
            params,
        ).fetchone()
        if last:
            status.last_completed, status.last_completed_at = last
    failed = status.by_status.get("failed", 0)
    if failed:
        status.problems.append(f"{failed} failed file(s)")
    age = status.oldest_unprocessed_age_s
    if max_lag_seconds is not None and age is not None and age > max_lag_seconds:
        status.problems.append(f"oldest unprocessed file is {age:.0f} s old")
    status.healthy = not status.problems
    return status


@dataclass
class FilesReport:
    url: str
    objects: int = 0
    not_completed: list[str] = field(default_factory=list)
    count_mismatch: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.not_completed and not self.count_mismatch

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def lines(self) -> list[str]:
        lines = [f"objects listed       {self.objects} under {self.url}"]
        for what, keys in (
            ("not completed", self.not_completed),
            ("records_count differs from the target rows", self.count_mismatch),
        ):
            if keys:
                shown = ", ".join(keys[:SHOWN_KEYS]) + (" …" if len(keys) > SHOWN_KEYS else "")
                lines.append(f"{what}: {len(keys)}: {shown}")
        lines.append("verdict              " + ("consistent" if self.ok else "DIFFERENCES"))
        return lines


def files_verify(settings: Settings) -> FilesReport:
    """Every listed object (of a known format) has a `completed` row for its current
    ETag, and its `records_count` equals its rows found in `transactions` or
    `transactions_rejected` through the provenance table."""
    files_url, target_url = settings.require_files()
    bucket, prefix, table, params = _scope(settings)
    ident, schema = sql.Identifier, settings.target_schema
    report = FilesReport(files_url)
    listed = {
        o.ref.key: o.ref.etag
        for o in Bucket(bucket).list_objects(prefix)
        if detect_format(o.ref.key) is not None
    }
    report.objects = len(listed)
    query = sql.SQL(
        "SELECT f.object_key, f.etag, f.processing_status, f.records_count,"
        " (SELECT count(*) FROM {r} p WHERE p.file_id = f.id AND (EXISTS (SELECT 1 FROM {t} t"
        "  WHERE t.source_id = p.source_id) OR EXISTS (SELECT 1 FROM {j} j"
        "  WHERE j.source_id = p.source_id))) FROM {f} f WHERE {m}"
    ).format(
        r=sql.SQL("{}.{}").format(ident(schema), ident(FILE_RECORDS)),
        t=sql.SQL("{}.{}").format(ident(schema), ident(TRANSACTIONS)),
        j=sql.SQL("{}.{}").format(ident(schema), ident(REJECTED)),
        f=table,
        m=MINE,
    )
    with (
        translated("target", target_url, "verifying processed_files"),
        connect("target", target_url, autocommit=True) as conn,
    ):
        rows = conn.execute(query, params).fetchall()
    found = {(key, etag): (status, count, present) for key, etag, status, count, present in rows}
    for key, etag in sorted(listed.items()):
        status, count, present = found.get((key, etag), (None, None, None))
        if status != "completed":
            report.not_completed.append(key)
        elif count != present:
            report.count_mismatch.append(key)
    return report
