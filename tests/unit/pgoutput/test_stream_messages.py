"""Protocol 2 stream messages: decoded from frames a PostgreSQL 18 server sent, and the
test encoder checked byte for byte against them."""

from __future__ import annotations

import pytest

from streamer.errors import ProtocolError
from streamer.pgoutput.frames import XLOG_HEADER_SIZE, parse_xlog_data
from streamer.pgoutput.messages import (
    Insert,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    decode_message,
    stream_xid,
)
from tests.data.stream_frames import CAPTURED_PG18
from tests.support import frames as encode


def captured(name: str) -> bytes:
    return bytes.fromhex("".join(CAPTURED_PG18[name]))


def message(name: str, streamed: bool = False) -> object:
    return decode_message(captured(name), XLOG_HEADER_SIZE, streamed=streamed)


def test_stream_start_stop_commit_abort_from_a_real_server() -> None:
    assert message("S") == StreamStart(755, True)
    assert message("E") == StreamStop()
    assert message("A") == StreamAbort(755, 756)  # the rolled-back savepoint
    commit = message("c")
    assert isinstance(commit, StreamCommit)
    assert commit.xid == 755 and commit.end_lsn > commit.commit_lsn > 0


def test_changes_inside_a_stream_carry_the_xid_of_their_subtransaction() -> None:
    top, sub = captured("I755"), captured("I756")
    assert stream_xid(top, XLOG_HEADER_SIZE) == 755
    assert stream_xid(sub, XLOG_HEADER_SIZE) == 756
    insert = message("I755", streamed=True)
    assert isinstance(insert, Insert) and insert.values[0] == "1"
    relation = message("R755", streamed=True)
    assert isinstance(relation, Relation) and (relation.namespace, relation.name) == (
        "public",
        "t",
    )


@pytest.mark.parametrize("name", ["S", "E", "A", "c", "I755", "I756"])
def test_the_encoder_reproduces_the_server_bytes(name: str) -> None:
    frame = captured(name)
    header = parse_xlog_data(memoryview(frame))
    decoded = message(name, streamed=name[0] in "IR")
    if isinstance(decoded, StreamStart):
        body = encode.stream_start(decoded.xid, decoded.first_segment)
    elif isinstance(decoded, StreamStop):
        body = encode.stream_stop()
    elif isinstance(decoded, StreamAbort):
        body = encode.stream_abort(decoded.xid, decoded.subxid)
    elif isinstance(decoded, StreamCommit):
        body = encode.stream_commit(
            decoded.xid, decoded.commit_lsn, decoded.end_lsn, decoded.commit_time_us
        )
    else:
        assert isinstance(decoded, Insert)
        xid = stream_xid(frame, XLOG_HEADER_SIZE)
        body = encode.streamed(encode.insert(decoded.rel_id, decoded.values), xid)
    rebuilt = encode.xlog_data(body, header.data_start, header.wal_end, header.server_time_us)
    assert rebuilt == frame


def test_a_streamed_relation_encodes_like_the_server_one_less_the_key_flags() -> None:
    relation = message("R755", streamed=True)
    assert isinstance(relation, Relation)
    columns = [(c.name, c.type_oid) for c in relation.columns]
    body = encode.relation(relation.rel_id, relation.namespace, relation.name, columns)
    rebuilt = decode_message(encode.streamed(body, 755), streamed=True)
    assert rebuilt == relation._replace(
        columns=tuple(c._replace(is_key=False) for c in relation.columns)
    )


@pytest.mark.parametrize("tag", [b"S", b"c", b"A"])
def test_truncated_stream_messages_are_protocol_errors(tag: bytes) -> None:
    with pytest.raises(ProtocolError, match=repr(tag.decode())):
        decode_message(tag + b"\x00\x01")


def test_a_streamed_change_without_its_xid_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_message(b"I\x00", streamed=True)
