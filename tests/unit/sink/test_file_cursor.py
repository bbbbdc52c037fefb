"""The per-chunk file progress a files chunk carries to the sink's fence."""

from __future__ import annotations

from streamer.normalize.records import Rejection
from streamer.sink.files import DONE, FAILED, FileCursor, chunk_source_ids
from streamer.sources.batching import TxnChunk


def test_round_trip() -> None:
    cursor = FileCursor(7, 2, 1000, 1003, DONE, kinds="crc")
    assert FileCursor.decode(cursor.encode()) == cursor


def test_failure_message_may_hold_colons() -> None:
    cursor = FileCursor(7, 1, 5, 5, FAILED, message="not JSON: line 3: bad")
    assert FileCursor.decode(cursor.encode()).message == "not JSON: line 3: bad"


def test_source_ids_in_position_order() -> None:
    def rej(sid: str) -> Rejection:
        return Rejection(sid, "", "null", "{}", "malformed_record", "x")

    chunk = TxnChunk(0, end_lsn=0, rejected=[rej("r1"), rej("r2")])
    chunk.canonical = [type("C", (), {"source_id": "c1"})()]  # type: ignore[list-item]
    assert chunk_source_ids(chunk, "rcr") == ["r1", "c1", "r2"]
