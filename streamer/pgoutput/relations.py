"""Relation cache: maps pgoutput relation ids to the source-table columns we read.

Columns are found by name, so `ALTER TABLE ... ADD COLUMN` keeps working; a missing
required column or a changed type of a JSON column stops the stream instead of turning
every following row into a rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Final

from streamer._speedups import hot
from streamer.errors import ProtocolError, SchemaChanged
from streamer.normalize.records import SourceRow
from streamer.pgoutput.messages import Relation, decode_insert_columns

JSON_TYPES: Final = frozenset({114, 3802})  # json, jsonb
ID_TYPES: Final = frozenset({2950, 25, 1043})  # uuid, text, varchar
REQUIRED: Final = {
    "id": ID_TYPES,
    "data": JSON_TYPES,
    "merchant": JSON_TYPES,
    "transactional_id": ID_TYPES,
}

RowBuilder = Callable[[bytes, int], SourceRow]
new_tuple = tuple.__new__
# SourceRow fields in order, and the source column each comes from.
WANTED: Final = ("id", "transactional_id", "data", "merchant", "created_at")


def _check_columns(relation: Relation, index: dict[str, int]) -> None:
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


def _row_builder(relation: Relation, speedups: ModuleType | None = hot) -> RowBuilder:
    """A decoder from Insert message bytes straight to SourceRow for this relation's
    column layout (columns found by name, so added columns are simply skipped).

    `build` below is the specification; `speedups.RowBuilder` its compiled twin."""
    index = {column.name: i for i, column in enumerate(relation.columns)}
    _check_columns(relation, index)
    positions = {index[name]: slot for slot, name in enumerate(WANTED) if name in index}
    last = max(positions)
    slots = tuple(positions.get(i, -1) for i in range(last + 1))
    width = len(WANTED)
    if speedups is not None:
        compiled: RowBuilder = speedups.RowBuilder(slots, width)
        return compiled

    def build(message: bytes, base: int = 0) -> SourceRow:
        source_id, transactional_id, data, merchant, created_at = decode_insert_columns(
            message, slots, width, base
        )
        # tuple.__new__ skips the namedtuple's Python-level constructor (hot path)
        return new_tuple(
            SourceRow,
            (
                source_id or "",
                transactional_id or "",
                data if data is not None else "null",
                merchant if merchant is not None else "null",
                created_at,
            ),
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
        streamed = self._builders.pop(relation.rel_id, None) is not None
        self._ignored.discard(relation.rel_id)
        if streamed and (relation.namespace, relation.name) != self._target:
            raise SchemaChanged(
                f"source table {self._target[0]}.{self._target[1]} was renamed to "
                f"{relation.namespace}.{relation.name}",
                hint="rename it back or set STREAMER_SOURCE_TABLE, then run `streamer resync`",
            )
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
