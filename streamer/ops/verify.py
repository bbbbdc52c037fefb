"""`streamer verify`: proof that the target holds exactly the source rows it should.

What is compared. Every source id is matched against `transactions` plus
`transactions_rejected` (an id in both target tables is itself an error). Target ids with
no source row are *extra*. Source ids absent from the target are *missing* only when they
are **due**; newer ones are counted as *not yet due* and are not an error:

* slot mode: a row is due when its `created_at` is at most the commit time of the last
  applied source transaction (kept in the checkpoint row as `applied_commit_at`, so
  deleting the newest rows cannot hide them; for a checkpoint older than that column, the
  newest `source_committed_at` at or below the checkpoint LSN) minus `--settle` seconds.
  The source records no commit LSN per row, and `created_at` is the start of the
  inserting transaction, so a transaction still open when the checkpoint was written
  could otherwise be reported; the settle window absorbs
  transactions shorter than it. Rows newer than the last applied commit are in flight.
  When the source has `track_commit_timestamp = on`, a row is due as soon as its
  inserting transaction (`pg_xact_commit_timestamp(xmin)`) committed before the last
  applied commit (less a one-second margin for commit-time order between concurrent
  commits), so a row lost seconds ago is reported at once; the `created_at` rule remains
  for rows whose commit time is no longer known (frozen).
* poll mode: due when `created_at` is at most the poll marker minus the poll overlap: the
  poller may still pick up anything later, and nothing earlier will ever be read again.
* rows with a NULL `created_at` are always due once anything was applied.

Consistency without long snapshots: ids are walked in order in keyset chunks on both sides
(memory is bounded by `--batch-size`), each chunk reading the target first and the source
second. Rows are only ever inserted, and the streamer only writes what the source already
committed, so a target id read before the source is never falsely extra.

`--since` keeps source rows with `created_at >= since` and target rows with
`source_created_at >= since` (a rejected row has no creation time; it follows its source
row). `--skip-processed` does not report due rows that the legacy poller had marked
processed: after `init --backfill unprocessed` those are legitimately absent.
(`init --backfill none`: use `--since` with the cut-over time.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import PreflightFailed
from streamer.runtime.dbconn import connect, translated
from streamer.sink.tables import CHECKPOINTS, REJECTED, TRANSACTIONS
from streamer.sources.poll import decode_marker, marker_name

COMMIT_CLOCK_MARGIN_S: Final = 1.0

LIST_LIMIT: Final = 20
_END: Final = "g"  # sorts after every uuid text: "no more rows on this side"


@dataclass
class IdList:
    """A count of all ids, with the first `LIST_LIMIT` of them (in id order)."""

    count: int = 0
    ids: list[str] = field(default_factory=list)

    def add(self, source_id: str) -> None:
        self.count += 1
        if len(self.ids) < LIST_LIMIT:
            self.ids.append(source_id)


@dataclass
class Report:
    mode: str
    checkpoint: str | None = None  # slot: checkpoint LSN; poll: marker (newest created_at)
    last_applied: str | None = None  # slot: last applied source commit time
    applied_at: datetime | None = field(default=None, repr=False)
    cutoff: str | None = None  # due: created_at <= cutoff
    since: str | None = None
    backfill: str | None = None  # slot: backfill state (`pending:*` means unfinished)
    source_rows: int = 0
    target_transactions: int = 0
    target_rejected: int = 0
    matched: int = 0
    pending: int = 0
    skipped_processed: int = 0
    missing: IdList = field(default_factory=IdList)
    extra: IdList = field(default_factory=IdList)
    duplicated: IdList = field(default_factory=IdList)
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def ok(self) -> bool:
        return not (self.missing.count or self.extra.count or self.duplicated.count)

    def as_json(self) -> dict[str, Any]:
        out = {"ok": self.ok, **asdict(self)}
        out.pop("applied_at")
        out["target_rows"] = self.target_transactions + self.target_rejected
        out["seconds"] = round(time.monotonic() - out.pop("started"), 3)
        return out

    def lines(self) -> list[str]:
        """Human report; differing ids one per line (at most `LIST_LIMIT` per kind)."""
        progress = "checkpoint" if self.mode == "slot" else "poll marker"
        skipped = f", {self.skipped_processed} processed skipped" if self.skipped_processed else ""
        since = f", since {self.since}" if self.since else ""
        out = [
            f"mode                  {self.mode} ({progress} {self.checkpoint})",
            f"due                   created_at <= {self.cutoff or '(nothing applied yet)'}{since}",
            f"source rows           {self.source_rows} "
            f"({self.pending} absent but not yet due{skipped})",
            f"target rows           {self.target_transactions} normalized, "
            f"{self.target_rejected} rejected",
            f"matched               {self.matched}",
        ]
        if self.backfill and self.backfill.startswith("pending"):
            unfinished = f"{self.backfill} (unfinished: run `streamer init`)"
            out.insert(1, f"backfill              {unfinished}")
        for label, found in (
            ("missing in target    ", self.missing),
            ("extra in target      ", self.extra),
            ("in both target tables", self.duplicated),
        ):
            shown = f" (first {len(found.ids)} listed)" if found.count > len(found.ids) else ""
            out.append(f"{label} {found.count}{shown}")
            out += [f"  {source_id}" for source_id in found.ids]
        out.append(f"verdict               {'match' if self.ok else 'MISMATCH'}")
        return out


def verify(settings: Settings, since: str | None, settle_s: int, skip_processed: bool) -> Report:
    source_url, target_url = settings.require_urls()
    report = Report(settings.mode, since=since)
    with (
        connect("target", target_url, autocommit=True) as target,
        connect("source", source_url, autocommit=True) as source,
    ):
        with translated("target", target_url, "reading the checkpoint"):
            cutoff = _cutoff(settings, target, report, settle_s)
        report.cutoff = str(cutoff) if cutoff is not None else None
        applied = report.applied_at
        commit_cutoff = None
        if settings.mode == "slot" and applied is not None:
            with translated("source", source_url, "reading track_commit_timestamp"):
                row = source.execute("SHOW track_commit_timestamp").fetchone()
            if row is not None and row[0] == "on":
                commit_cutoff = applied - timedelta(seconds=COMMIT_CLOCK_MARGIN_S)
        # After `init --backfill unprocessed` rows the poller had processed were never
        # meant to be copied; the checkpoint remembers the mode.
        skip_processed = skip_processed or report.backfill == "done:unprocessed"
        walker = _Walker(settings, since, cutoff, skip_processed, commit_cutoff)
        cursor: str | None = None
        while True:
            bound, targets, sources = walker.chunk(target, source, cursor)
            merge_chunk(report, targets, sources)
            if bound == _END:
                break
            cursor = bound
    return report


def _cutoff(
    settings: Settings, conn: psycopg.Connection[Any], report: Report, settle_s: int
) -> datetime | None:
    """Read the progress marker; return the newest `created_at` that is due (or None)."""
    schema = sql.Identifier(settings.target_schema)
    name = settings.slot if settings.mode == "slot" else marker_name(settings)
    try:
        # applied_commit_at through to_jsonb: a target an older version created lacks the
        # column until the next `run` or `init` adds it, and verify only reads.
        row = conn.execute(
            sql.SQL(
                "SELECT lsn::text, backfill, backfill_cursor,"
                " (to_jsonb(c) ->> 'applied_commit_at')::timestamptz"
                " FROM {}.{} c WHERE slot_name = %s"
            ).format(schema, sql.Identifier(CHECKPOINTS)),
            (name,),
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    if row is None:
        what = "replication slot" if settings.mode == "slot" else "poll mode"
        raise PreflightFailed(
            f"the target has no progress for {what} {name!r}: nothing to verify against",
            hint="run `streamer init` / `streamer run` first, or check --mode and --slot",
        )
    if settings.mode == "poll":
        marker = decode_marker(row[2])
        report.checkpoint = str(marker) if marker is not None else None
        return marker - timedelta(seconds=settings.poll_overlap_seconds) if marker else None
    report.checkpoint, report.backfill = row[0], row[1]
    # The checkpoint's own record of the newest applied commit, which deleted rows cannot
    # take back; the rows' newest commit covers checkpoints written before it was kept.
    last = conn.execute(
        sql.SQL(
            "SELECT greatest(%(applied)s::timestamptz,"
            "(SELECT max(source_committed_at) FROM {s}.{tx} WHERE source_lsn <= %(c)s::pg_lsn),"
            " (SELECT max(source_committed_at) FROM {s}.{rej} WHERE source_lsn <= %(c)s::pg_lsn))"
        ).format(s=schema, tx=sql.Identifier(TRANSACTIONS), rej=sql.Identifier(REJECTED)),
        {"c": row[0], "applied": row[3]},
    ).fetchone()
    applied: datetime | None = last[0] if last else None
    report.last_applied = str(applied) if applied is not None else None
    report.applied_at = applied
    return applied - timedelta(seconds=settle_s) if applied is not None else None


class _Walker:
    """Reads both sides in id order, `--batch-size` rows at a time, up to a common bound."""

    def __init__(
        self,
        settings: Settings,
        since: str | None,
        cutoff: datetime | None,
        skip_processed: bool,
        commit_cutoff: datetime | None = None,
    ) -> None:
        self.source_url, self.target_url = settings.require_urls()
        ident = sql.Identifier
        schema = ident(settings.target_schema)
        table = sql.SQL("{}.{}").format(ident(settings.source_schema), ident(settings.source_table))
        self.chunk_rows = settings.batch_size
        self.params = {
            "since": since,
            "cutoff": cutoff,
            "commit_cutoff": commit_cutoff,
            "n": self.chunk_rows,
        }
        in_scope = sql.SQL("created_at >= %(since)s" if since else "true")
        due: sql.Composable = sql.SQL(
            "created_at IS NULL OR created_at <= %(cutoff)s" if cutoff else "false"
        )
        if commit_cutoff is not None:
            # The inserting transaction's commit time (track_commit_timestamp = on): due
            # at once if it committed before the last applied commit. Frozen or very old
            # rows have none and fall back to the created_at rule.
            due = sql.SQL(
                "CASE WHEN pg_xact_commit_timestamp(t.xmin) IS NOT NULL"
                " THEN pg_xact_commit_timestamp(t.xmin) <= %(commit_cutoff)s ELSE ({}) END"
            ).format(due)
        processed = sql.SQL("coalesce(processed, false)" if skip_processed else "false")
        # ORDER BY the qualified column: a bare name would mean the `::text` output column,
        # sorting every remaining row instead of walking the primary key.
        self.source_query = (
            "SELECT id::text, coalesce({scope}, false), coalesce({due}, false), {processed}"
            " FROM {table} t WHERE {after} ORDER BY t.id LIMIT %(n)s",
            {"scope": in_scope, "due": due, "processed": processed, "table": table},
        )
        tx_scope = sql.SQL("source_created_at >= %(since)s" if since else "true")
        self.target_query = (
            "(SELECT source_id::text, true, coalesce({scope}, false) FROM {s}.{tx} t"
            " WHERE {after} ORDER BY t.source_id LIMIT %(n)s) UNION ALL"
            " (SELECT source_id::text, false, NULL FROM {s}.{rej} t"
            " WHERE {after} ORDER BY t.source_id LIMIT %(n)s)",
            {"scope": tx_scope, "s": schema, "tx": ident(TRANSACTIONS), "rej": ident(REJECTED)},
        )

    def chunk(
        self, target: psycopg.Connection[Any], source: psycopg.Connection[Any], cursor: str | None
    ) -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Rows of both sides with ids in (cursor, bound]; bound `_END` when all is read.
        The target is read first (see the module docstring)."""
        params = {**self.params, "cursor": cursor}
        with translated("target", self.target_url, "reading the target tables"):
            targets = _read(target, self.target_query, "source_id", params)
        with translated("source", self.source_url, "reading the source table"):
            sources = _read(source, self.source_query, "id", params)
        bounds = [_END]
        for rows in ([r for r in targets if r[1]], [r for r in targets if not r[1]], sources):
            if len(rows) == self.chunk_rows:  # this side may have more beyond its last id
                bounds.append(rows[-1][0])
        bound = min(bounds)
        return bound, [r for r in targets if r[0] <= bound], [r for r in sources if r[0] <= bound]


def _read(
    conn: psycopg.Connection[Any],
    query: tuple[str, dict[str, sql.Composable]],
    column: str,
    params: dict[str, Any],
) -> list[tuple[Any, ...]]:
    after = sql.SQL("{} > %(cursor)s::uuid" if params["cursor"] else "true").format(
        sql.Identifier(column)
    )
    text, parts = query
    try:
        return conn.execute(sql.SQL(text).format(after=after, **parts), params).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise PreflightFailed(
            f"cannot compare: {(exc.diag.message_primary or str(exc)).strip()}",
            hint="check --source-table / --target-schema (and that the source table has "
            "`processed` when using --skip-processed)",
        ) from None


def merge_chunk(
    report: Report, targets: Iterable[tuple[Any, ...]], sources: Iterable[tuple[Any, ...]]
) -> None:
    """Account one chunk: both inputs sorted by id and covering the same id range."""
    by_id: dict[str, list[tuple[Any, ...]]] = {}
    for row in targets:
        by_id.setdefault(row[0], []).append(row)
    for source_id, in_scope, due, processed in sources:
        found = by_id.pop(source_id, None)
        if not in_scope:
            continue
        report.source_rows += 1
        if found:
            report.matched += 1
            _count_target(report, source_id, found)
        elif not due:
            report.pending += 1
        elif processed:
            report.skipped_processed += 1
        else:
            report.missing.add(source_id)
    for source_id, found in sorted(by_id.items()):
        if any(is_tx and not scoped for _, is_tx, scoped in found):
            continue  # a normalized row created before --since
        _count_target(report, source_id, found)
        report.extra.add(source_id)


def _count_target(report: Report, source_id: str, found: list[tuple[Any, ...]]) -> None:
    for _, is_tx, _scoped in found:
        if is_tx:
            report.target_transactions += 1
        else:
            report.target_rejected += 1
    if len(found) > 1:
        report.duplicated.add(source_id)
