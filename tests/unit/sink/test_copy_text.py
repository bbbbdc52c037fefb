"""COPY text of rejected rows: an unknown transactional id is stored as NULL."""

from __future__ import annotations

from streamer.normalize.records import Rejection
from streamer.sink.copy_text import encode_batch, rejected_fields
from streamer.sources.batching import Batch, TxnChunk

SID = "6f1a2b3c-9d8e-4f70-8a1b-2c3d4e5f6a7b"
TID = "8d3b7d5e-1c2f-4a6b-9e0d-1f2a3b4c5d01"


def test_empty_transactional_id_becomes_null() -> None:
    row = Rejection(SID, "", "null", "{}", "malformed_record", "x")
    assert rejected_fields(row)[1] is None
    kept = Rejection(SID, TID, "null", "{}", "malformed_record", "x")
    assert rejected_fields(kept) == kept


def test_encoded_rejection_has_copy_null() -> None:
    chunk = TxnChunk(0, end_lsn=0, rejected=[Rejection(SID, "", "null", "{}", "r", "d")])
    encoded = encode_batch(Batch([chunk], None, 1, 0))
    assert encoded is not None
    assert encoded[1].split(b"\t")[1] == b"\\N"
