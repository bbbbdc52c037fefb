"""Decoding of pgoutput messages captured from a real PostgreSQL 18 server."""

from pathlib import Path

import pytest

from streamer.errors import ProtocolError, SchemaChanged
from streamer.lsn import parse_lsn
from streamer.pgoutput.messages import (
    Begin,
    Column,
    Commit,
    Insert,
    Other,
    Relation,
    begin_fields,
    commit_end_lsn,
    decode_insert_columns,
    decode_message,
    insert_rel_id,
)
from streamer.pgoutput.relations import RelationCache

CAPTURED = Path(__file__).with_name("captured_messages.txt")


def captured() -> list[tuple[int, bytes]]:
    lines = [line.split() for line in CAPTURED.read_text().splitlines() if line[:1] != "#"]
    return [(parse_lsn(lsn), bytes.fromhex(data)) for lsn, data in lines]


def test_captured_stream_decodes_in_order() -> None:
    messages = [decode_message(data) for _, data in captured()]
    kinds = [type(m).__name__ for m in messages]
    assert kinds == [
        "Begin",
        "Relation",
        "Insert",
        "Commit",
        "Begin",
        "Insert",
        "Relation",
        "Insert",
        "Commit",
        "Begin",
        "Relation",
        "Insert",
        "Commit",
    ]


def test_begin_and_commit_lsns() -> None:
    items = captured()
    begin = decode_message(items[0][1])
    commit = decode_message(items[3][1])
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    # The commit's end LSN is the position the server reports for it, and the one to
    # confirm; the Begin announces the commit record's start.
    assert commit.end_lsn == items[3][0]
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
    assert begin.commit_time_us == commit.commit_time_us


def test_relation_and_insert_values() -> None:
    items = captured()
    relation = decode_message(items[1][1])
    assert isinstance(relation, Relation)
    assert (relation.namespace, relation.name) == ("public", "raw_transactions")
    assert [c.name for c in relation.columns] == [
        "id",
        "data",
        "merchant",
        "transactional_id",
        "created_at",
        "processed",
        "processed_at",
    ]
    assert relation.columns[0] == Column("id", 2950, True)
    assert relation.columns[1].type_oid == 3802
    insert = decode_message(items[2][1])
    assert isinstance(insert, Insert) and insert.rel_id == relation.rel_id
    assert insert.values[0] == "11111111-1111-1111-1111-111111111111"
    assert insert.values[1] == '{"amt": 25.84, "p_id": "Stripe"}'
    assert "Ñandú \u202e" in (insert.values[2] or "")
    assert insert.values[4] == "2024-12-13 10:00:00.123456"
    assert insert.values[5] == "f"
    assert insert.values[6] is None


def test_row_builder_maps_columns_by_name_after_add_column() -> None:
    cache = RelationCache("public", "raw_transactions")
    rows = []
    for _, data in captured():
        message = decode_message(data)
        if isinstance(message, Relation):
            cache.add(message)
        elif isinstance(message, Insert):
            assert insert_rel_id(data) == message.rel_id
            build = cache.builder(message.rel_id)
            if build is not None:
                rows.append(build(data))
    assert [r.source_id[:8] for r in rows] == ["11111111", "33333333", "55555555"]
    assert rows[2].data == "[]" and rows[2].merchant == "{}"
    assert rows[0].created_at == "2024-12-13 10:00:00.123456"
    # the fast path picks the same values as the full decoder (columns 0, 3, 1, 2, 4)
    full = [m for m in map(decode_message, (d for _, d in captured())) if isinstance(m, Insert)]
    picked = [(v[0], v[3], v[1], v[2], v[4]) for v in (m.values for m in full) if len(v) >= 7]
    assert [tuple(r) for r in rows] == picked


def test_insert_into_other_table_is_ignored_not_fatal() -> None:
    cache = RelationCache("public", "raw_transactions")
    other = [decode_message(d) for _, d in captured()][6]
    assert isinstance(other, Relation) and other.name == "other"
    cache.add(other)
    assert cache.builder(other.rel_id) is None


def test_insert_before_relation_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        RelationCache("public", "raw_transactions").builder(99)


def _relation_with(columns: list[Column]) -> Relation:
    return Relation(1, "public", "raw_transactions", tuple(columns))


BASE = [
    Column("id", 2950, True),
    Column("data", 3802, False),
    Column("merchant", 3802, False),
    Column("transactional_id", 2950, False),
]


def test_dropped_data_column_stops_the_stream() -> None:
    with pytest.raises(SchemaChanged) as info:
        RelationCache("public", "raw_transactions").add(
            _relation_with([c for c in BASE if c.name != "data"])
        )
    assert info.value.exit_code == 3


def test_changed_type_of_data_stops_the_stream() -> None:
    changed = [Column("data", 25, False) if c.name == "data" else c for c in BASE]
    with pytest.raises(SchemaChanged):
        RelationCache("public", "raw_transactions").add(_relation_with(changed))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"B\x00",
        b"I\x00\x00\x40\x01N\x00\x02t\x00\x00\x00\x09ab",
        b"I\x00\x00\x40\x01X",
        b"I\x00\x00\x40\x01N\x00\x01z",
    ],
)
def test_malformed_messages_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(payload)


def test_unhandled_kinds_are_reported_as_other() -> None:
    assert decode_message(b"Y\x00\x00\x00\x01pg_catalog\x00int4\x00") == Other("Y", None)
    assert decode_message(b"D\x00\x00\x00\x07K") == Other("D", 7)


def test_truncated_last_value_is_detected() -> None:
    with pytest.raises(ProtocolError):
        decode_message(b"I\x00\x00\x40\x01N\x00\x01t\x00\x00\x00\x09ab")
    for bad in (
        b"I\x00\x00\x40\x01N\x00\x01t\x00\x00\x00\x09ab",
        b"I\x00\x00\x40\x01X\x00",
        b"I\x00\x00\x40\x01N\x00\x02t\x00",
        b"I\x00\x00\x40\x01N\x00\x01z",
    ):
        with pytest.raises(ProtocolError):
            decode_insert_columns(bad, (0, 1), 2)


def test_fast_insert_decoder_skips_unwanted_and_trailing_columns() -> None:
    message = (
        b"I\x00\x00\x00\x07N\x00\x04"
        + b"t\x00\x00\x00\x01a"
        + b"n"
        + b"t\x00\x00\x00\x02bc"
        + b"t\x00\x00\x00\x01d"
    )
    assert decode_insert_columns(message, (1, -1, 0), 2) == ["bc", "a"]


def test_renamed_table_stops_the_stream_instead_of_ignoring_it() -> None:
    cache = RelationCache("public", "raw_transactions")
    cache.add(_relation_with(BASE))
    with pytest.raises(SchemaChanged, match="renamed"):
        cache.add(Relation(1, "public", "raw_transactions_old", tuple(BASE)))


def test_hot_path_begin_and_commit_fields_match_the_full_decoder() -> None:
    seen = set()
    for _, data in captured():
        message = decode_message(data)
        if isinstance(message, Begin):
            assert begin_fields(data) == (message.final_lsn, message.commit_time_us)
            framed = b"w" + bytes(24) + data  # the same message inside an XLogData frame
            assert begin_fields(framed, 25) == (message.final_lsn, message.commit_time_us)
            seen.add("B")
        elif isinstance(message, Commit):
            assert commit_end_lsn(data) == message.end_lsn
            assert commit_end_lsn(b"w" + bytes(24) + data, 25) == message.end_lsn
            seen.add("C")
    assert seen == {"B", "C"}
    with pytest.raises(ProtocolError):
        begin_fields(b"B\x00\x01")
    with pytest.raises(ProtocolError):
        commit_end_lsn(b"C\x00" + bytes(10))


def test_the_test_encoder_round_trips_through_the_decoder() -> None:
    from tests.support import frames as encode  # noqa: PLC0415

    columns = [("id", 2950), ("data", 3802), ("note", 25)]
    assert decode_message(encode.relation(7, "public", "t", columns)) == Relation(
        7, "public", "t", tuple(Column(n, oid, False) for n, oid in columns)
    )
    assert decode_message(encode.insert(7, ["a", None, "é"])) == Insert(7, ("a", None, "é"))
    assert decode_message(encode.begin(100, 5, 9)) == Begin(100, 5, 9)
    assert decode_message(encode.commit(100, 116, 5)) == Commit(0, 100, 116, 5)
    frame = encode.xlog_data(encode.begin(100, 5, 9), wal_start=90)
    assert decode_message(frame, 25) == Begin(100, 5, 9)
    inserts = [(m, d) for m, d in ((decode_message(d), d) for _, d in captured())]
    full = [(m, d) for m, d in inserts if isinstance(m, Insert)]
    assert full  # real server messages re-encode byte for byte
    for message, data in full:
        assert encode.insert(message.rel_id, message.values) == data
