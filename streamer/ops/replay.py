"""`streamer replay-rejected`: after a normalizer fix, give rejected rows another chance.

Each chunk of `transactions_rejected` (in source id order, optionally one reason) is
replayed in its own target transaction: rows the current normalizer accepts are inserted
into `transactions` and deleted from `transactions_rejected` in that same transaction,
keeping the rejected row's `source_committed_at` and `source_lsn`; rows it still rejects
stay, with the new reason and detail. `rejected_at` is left alone (it records the first
rejection). A `target_refused` row is inserted again; if the target still refuses it, it
stays `target_refused` with the new SQLSTATE in `detail`. Inserts and refusals go through
the sink's one refusal path (`sink/refusals.py`), so a replayed row is refused exactly as
a streamed one would be.

Running beside `streamer run`: the stream only INSERTs, so the only possible conflict is
on `source_id`. Chunks are read `FOR UPDATE SKIP LOCKED`, so two replays never work on the
same row (a row locked by the other run is skipped), and a row that is somehow already in
`transactions` is only removed from the rejected table (counted "already normalized").

The rejected table has no `created_at`; the normalizer copies it into
`source_created_at`, so it is looked up in the source by id, one query per chunk (None
when the source row is gone). Memory is bounded by the chunk size.

`--dry-run` does all of it, inserts included (so target refusals are predicted exactly),
and rolls each chunk back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import PreflightFailed
from streamer.normalize import normalize
from streamer.normalize.records import Canonical, SourceRow
from streamer.runtime.dbconn import connect, translated
from streamer.sink.refusals import RowInserter
from streamer.sink.tables import REJECTED, TRANSACTIONS

MAX_CHUNK_ROWS: Final = 500  # rejected rows are often the large payloads


@dataclass
class ReplayResult:
    reason: str | None
    dry_run: bool
    examined: int = 0
    moved: int = 0
    already_normalized: int = 0
    unchanged: int = 0
    reason_changed: int = 0
    refused: int = 0

    def lines(self) -> list[str]:
        verb = "would be" if self.dry_run else "were"
        scope = f" with reason {self.reason}" if self.reason else ""
        out = [
            f"examined {self.examined} rejected rows{scope}",
            f"moved to transactions        {self.moved}",
            f"still rejected, same reason  {self.unchanged}",
            f"rejected with another reason {self.reason_changed}",
            f"refused again by the target  {self.refused}",
        ]
        if self.already_normalized:
            out.append(f"already normalized (removed) {self.already_normalized}")
        if self.dry_run:
            out.append(f"dry run: nothing was changed; the counts say what {verb} done")
        return out


def replay(settings: Settings, reason: str | None, dry_run: bool) -> ReplayResult:
    source_url, target_url = settings.require_urls()
    result = ReplayResult(reason, dry_run)
    chunk = _Chunk(settings)
    with (
        connect("target", target_url) as target,
        connect("source", source_url, autocommit=True) as source,
    ):
        cursor: str | None = None
        while True:
            with (
                translated("target", target_url, "replaying rejected rows"),
                target.transaction(),
            ):
                rows = chunk.lock(target, cursor, reason)
                if not rows:
                    break
                with translated("source", source_url, "looking up created_at"):
                    created = chunk.created_at(source, [r[0] for r in rows])
                chunk.apply(target, rows, created, result)
                if dry_run:
                    raise psycopg.Rollback()
            cursor = rows[-1][0]
    return result


class _Chunk:
    """The SQL of one replayed chunk."""

    def __init__(self, settings: Settings) -> None:
        self.chunk_rows = min(settings.batch_size, MAX_CHUNK_ROWS)
        ident = sql.Identifier
        schema = ident(settings.target_schema)
        self.rej = sql.SQL("{}.{}").format(schema, ident(REJECTED))
        self.tx = sql.SQL("{}.{}").format(schema, ident(TRANSACTIONS))
        self.source = sql.SQL("{}.{}").format(
            ident(settings.source_schema), ident(settings.source_table)
        )
        self.rows = RowInserter(settings.target_schema)
        self.present = sql.SQL(
            "SELECT source_id::text FROM {} WHERE source_id = ANY(%s::uuid[])"
        ).format(self.tx)
        self.delete = sql.SQL("DELETE FROM {} WHERE source_id = ANY(%s::uuid[])").format(self.rej)
        self.update = sql.SQL(
            "UPDATE {} SET reason = %s, detail = %s WHERE source_id = %s::uuid"
        ).format(self.rej)

    def lock(
        self, conn: psycopg.Connection[Any], cursor: str | None, reason: str | None
    ) -> list[tuple[Any, ...]]:
        where = [sql.SQL("true")]
        if cursor is not None:
            where.append(sql.SQL("source_id > %(cursor)s::uuid"))
        if reason is not None:
            where.append(sql.SQL("reason = %(reason)s"))
        query = sql.SQL(
            "SELECT source_id::text, transactional_id::text, merchant::text, raw::text,"
            " reason, detail, source_committed_at, source_lsn::text FROM {} r WHERE {}"
            " ORDER BY r.source_id LIMIT %(n)s FOR UPDATE SKIP LOCKED"  # r.: the uuid, not ::text
        ).format(self.rej, sql.SQL(" AND ").join(where))
        try:
            params = {"cursor": cursor, "reason": reason, "n": self.chunk_rows}
            return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            raise PreflightFailed(
                "the target has no transactions_rejected table", hint="run `streamer init`"
            ) from None

    def created_at(self, conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, str | None]:
        query = sql.SQL(
            "SELECT id::text, created_at::text FROM {} WHERE id = ANY(%s::uuid[])"
        ).format(self.source)
        return dict(conn.execute(query, (ids,)).fetchall())

    def apply(
        self,
        conn: psycopg.Connection[Any],
        rows: Sequence[tuple[Any, ...]],
        created: dict[str, str | None],
        result: ReplayResult,
    ) -> None:
        """Normalize, move what passes, update the rest (inside the chunk's transaction)."""
        accepted: list[tuple[Any, ...]] = []  # insert parameters
        updates: list[tuple[str, str, str]] = []  # (reason, detail, source_id)
        for source_id, tid, merchant, raw, old_reason, old_detail, committed, lsn in rows:
            row = SourceRow(
                source_id, tid or "", raw or "null", merchant or "null", created.get(source_id)
            )
            record = normalize(row)
            if isinstance(record, Canonical):
                accepted.append((*record, committed, lsn))
                continue
            if record.reason == old_reason:
                result.unchanged += 1
            else:
                result.reason_changed += 1
            if (record.reason, record.detail) != (old_reason, old_detail):
                updates.append((record.reason, record.detail, source_id))
        result.examined += len(rows)
        ids = [p[0] for p in accepted]
        present = {r[0] for r in conn.execute(self.present, (ids,))} if ids else set()
        with conn.cursor() as cur:
            refused = self.rows.insert_replayed(cur, [p for p in accepted if p[0] not in present])
        updates += [("target_refused", detail, source_id) for source_id, detail in refused.items()]
        conn.execute(self.delete, ([i for i in ids if i not in refused],))
        with conn.cursor() as cur:
            cur.executemany(self.update, updates)
        result.already_normalized += len(present)
        result.moved += len(ids) - len(present) - len(refused)
        result.refused += len(refused)
