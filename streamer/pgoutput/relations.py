"""Relation cache: maps pgoutput relation ids to the source-table columns we read.

Columns are found by name, so `ALTER TABLE ... ADD COLUMN` keeps working; a missing
required column or a changed type of a JSON column stops the stream instead of turning
every following row into a rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Final

from streamer.errors import ProtocolError, SchemaChanged
from streamer.normalize.records import SourceRow
from streamer.pgoutput.messages import ColumnValue, Relation

JSON_TYPES: Final = frozenset({114, 3802})  # json, jsonb
ID_TYPES: Final = frozenset({2950, 25, 1043})  # uuid, text, varchar
REQUIRED: Final = {
    "id": ID_TYPES,
    "data": JSON_TYPES,
    "merchant": JSON_TYPES,
    "transactional_id": ID_TYPES,
}

RowBuilder = Callable[[tuple[ColumnValue, ...]], SourceRow]


def _row_builder(relation: Relation) -> RowBuilder:
    index = {column.name: i for i, column in enumerate(relation.columns)}
    for name, allowed in REQUIRED.items():
        if name not in index:
            raise SchemaChanged(
                f"source table {relation.namespace}.{relation.name} has no column {name!r}",
                hint="restore the column; streamer stops rather than reject every row",
            )
        type_oid = relation.columns[index[name]].type_oid
        if type_oid not in allowed:
            raise SchemaChanged(
                f"column {relation.namespace}.{relation.name}.{name} changed type "
                f"(type oid {type_oid})",
                hint="restore its type; streamer stops rather than reject every row",
            )
    created = index.get("created_at")
    pick: Callable[[tuple[ColumnValue, ...]], tuple[ColumnValue, ...]] = itemgetter(
        index["id"], index["transactional_id"], index["data"], index["merchant"]
    )

    def build(values: tuple[ColumnValue, ...]) -> SourceRow:
        source_id, transactional_id, data, merchant = pick(values)
        return SourceRow(
            source_id or "",
            transactional_id or "",
            data if data is not None else "null",
            merchant if merchant is not None else "null",
            values[created] if created is not None else None,
        )

    return build


class RelationCache:
    """Relation id → row builder for the one source table we stream."""

    def __init__(self, schema: str, table: str) -> None:
        self._target = (schema, table)
        self._builders: dict[int, RowBuilder] = {}
        self._ignored: set[int] = set()

    def add(self, relation: Relation) -> None:
        """Record a Relation message (sent before first use and after every schema change)."""
        self._builders.pop(relation.rel_id, None)
        self._ignored.discard(relation.rel_id)
        if (relation.namespace, relation.name) == self._target:
            self._builders[relation.rel_id] = _row_builder(relation)
        else:
            self._ignored.add(relation.rel_id)

    def builder(self, rel_id: int) -> RowBuilder | None:
        """The row builder, or None for a relation we do not stream (another table)."""
        builder = self._builders.get(rel_id)
        if builder is None and rel_id not in self._ignored:
            raise ProtocolError(f"insert for relation {rel_id} arrived before its Relation message")
        return builder
