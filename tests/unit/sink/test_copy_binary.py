"""Binary COPY data of canonical rows: the pure encoder's bytes for known values, its
refusals (the batch then goes as COPY text), and the compiled twin giving the same bytes
or the same refusal. What the bytes mean to a real server is checked against COPY text in
tests/integration/test_copy_binary.py. A long fuzz run of the compiled twin:
`STREAMER_FUZZ_EXAMPLES=10000 pytest tests/unit/sink/test_copy_binary.py -k fuzz`."""

from __future__ import annotations

import os
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer import _speedups
from streamer.normalize.records import Canonical, Rejection
from streamer.sink.copy_binary import (
    BINARY_TYPES,
    FIELD_COUNT,
    HEADER,
    MAX_TIMESTAMP_US,
    MIN_TIMESTAMP_US,
    NULL,
    TRAILER,
    binary_fits,
    commit_fields,
    encode_for_copy,
    encode_transactions,
    numeric_field,
    timestamp_field,
    uuid_field,
)
from streamer.sink.copy_text import encode_batch
from streamer.sink.tables import TRANSACTION_COLUMNS
from streamer.sources.batching import PARK, Batch, TxnChunk
from tests.support.binary_rows import OUTSIDE, batch_of, canonical_rows, commit_times, lsns

hot = _speedups.hot
FUZZ_EXAMPLES = int(os.environ.get("STREAMER_FUZZ_EXAMPLES", "300"))  # a long run: 10000
needs_hot = pytest.mark.skipif(hot is None, reason="compiled speedups not built")
IMPLEMENTATIONS = [
    pytest.param(None, id="pure"),
    pytest.param(hot, id="accelerated", marks=needs_hot),
]
SID = "6f1a2b3c-9d8e-4f70-8a1b-2c3d4e5f6a7b"
ROW = Canonical(
    SID, SID, "m-1", None, "US", "stripe", "json", Decimal("12.50"), "USD", "approved",
    None, "US", 120, '{"a": 1}', "2024-02-29 23:59:59.5",
)  # fmt: skip


def numeric(ndigits: int, weight: int, sign: int, dscale: int, *digits: int) -> bytes:
    body = struct.pack(f"!hhHh{len(digits)}H", ndigits, weight, sign, dscale, *digits)
    return struct.pack("!i", len(body)) + body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", numeric(2, 0, 0, 2, 12, 5000)),
        ("-0.0001", numeric(1, -1, 0x4000, 4, 1)),
        ("0.00001", numeric(1, -2, 0, 5, 1000)),
        ("123456789", numeric(3, 2, 0, 0, 1, 2345, 6789)),
        ("1.2E+3", numeric(1, 0, 0, 0, 1200)),
        ("1E+8", numeric(1, 2, 0, 0, 1)),  # trailing zero groups are not sent
        ("-0", numeric(0, 0, 0, 0)),  # no negative zero in numeric
        ("0E-5", numeric(0, 0, 0, 5)),
        ("10000.0000", numeric(1, 1, 0, 4, 1)),
    ],
)
def test_numeric_is_base_10000_digits_with_the_text_display_scale(
    text: str, expected: bytes
) -> None:
    assert numeric_field(Decimal(text)) == expected


def test_timestamps_are_microseconds_since_2000() -> None:
    assert timestamp_field("2000-01-01 00:00:00") == struct.pack("!iq", 8, 0)
    assert timestamp_field("2000-01-01 00:00:00.5") == struct.pack("!iq", 8, 500_000)
    assert timestamp_field("1999-12-31 23:59:59.999999") == struct.pack("!iq", 8, -1)
    assert timestamp_field("0001-01-01 00:00:00") == struct.pack("!iq", 8, MIN_TIMESTAMP_US)
    assert timestamp_field("9999-12-31 23:59:59.999999") == struct.pack("!iq", 8, MAX_TIMESTAMP_US)
    assert timestamp_field(None) == NULL


def test_uuid_is_its_16_bytes_whatever_the_case() -> None:
    assert (
        uuid_field(SID)
        == uuid_field(SID.upper())
        == b"\0\0\0\x10" + bytes.fromhex(SID.replace("-", ""))
    )


def test_binary_fits_only_streamers_own_column_types() -> None:
    own = dict(zip(TRANSACTION_COLUMNS, BINARY_TYPES, strict=True))
    assert binary_fits(own)
    assert binary_fits({**own, "ingested_at": "timestamp with time zone"})  # not sent
    assert not binary_fits({**own, "amount": "double precision"})
    assert not binary_fits({**own, "processing_ms": "bigint"})
    assert not binary_fits({c: t for c, t in own.items() if c != "raw"})
    assert not binary_fits({})  # no table


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_copy_text_of_the_rejected_rows_alone(speedups: Any) -> None:
    """With the canonical rows sent as binary, COPY text carries the rejected ones only,
    and the commit info of transactions without any is not even formatted."""
    rejection = Rejection(SID, SID, "{}", "{}", "invalid_amount", "x")
    chunks = [
        TxnChunk(10**15, end_lsn=1, canonical=[ROW]),
        TxnChunk(2 * 10**15, end_lsn=2, canonical=[ROW], rejected=[rejection]),
    ]
    batch = Batch(chunks, 2, 3, 0)
    text = encode_batch(batch, speedups, canonical=False)
    assert text == encode_batch(batch, None, canonical=False)
    assert text is not None and text[0] == b""
    assert text[1] == encode_batch(batch, None)[1]  # type: ignore[index]


def test_commit_info_bounds() -> None:
    assert commit_fields(0, 0) == struct.pack("!iqiQ", 8, 0, 8, 0)
    assert commit_fields(MAX_TIMESTAMP_US, 2**64 - 1) is not None
    assert commit_fields(MAX_TIMESTAMP_US + 1, 0) is None
    assert commit_fields(MIN_TIMESTAMP_US - 1, 0) is None
    assert commit_fields(0, 2**64) is None
    assert commit_fields(0, -1) is None


def test_a_batch_is_header_rows_and_trailer_and_nothing_without_rows() -> None:
    data = encode_transactions(batch_of([ROW]), None)
    assert data is not None
    assert data.startswith(HEADER + FIELD_COUNT) and data.endswith(TRAILER)
    assert encode_transactions(Batch([], None, 0, 0), None) == b""
    parked = TxnChunk(0, end_lsn=None, canonical=[ROW])  # rows of an unfinished txn
    assert encode_transactions(Batch([parked], None, 1, 0), None) == b""
    streamed = TxnChunk(0, end_lsn=5, canonical=[ROW], kind=PARK)
    assert encode_transactions(Batch([streamed], None, 1, 0), None) == b""


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in OUTSIDE.items() for v in values]
)
def test_a_value_outside_the_encoded_shapes_sends_the_batch_as_text(
    speedups: Any, field: str, value: Any
) -> None:
    batch = batch_of([ROW, ROW._replace(**{field: value})])
    assert encode_transactions(batch, speedups) is None


def test_the_whole_batch_goes_as_text_when_one_value_cannot_be_binary() -> None:
    batch = batch_of([ROW, ROW._replace(source_created_at="2024-01-01 24:00:00")])
    encoded = encode_for_copy(batch)
    assert encoded is not None and not encoded.binary
    assert encoded.transactions.count(b"\n") == 2  # both rows, as COPY text
    assert b"\t2024-01-01 24:00:00\t" in encoded.transactions


def test_binary_copy_leaves_the_rejected_rows_as_text() -> None:
    rejection = Rejection(SID, SID, "{}", "{}", "invalid_amount", "x")
    chunk = TxnChunk(0, end_lsn=1, canonical=[ROW], rejected=[rejection])
    encoded = encode_for_copy(Batch([chunk], 1, 2, 0))
    assert encoded is not None and encoded.binary
    assert encoded.transactions == encode_transactions(batch_of([ROW]), None)
    assert encoded.rejected.startswith(SID.encode() + b"\t")


@needs_hot
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(canonical_rows(), min_size=1, max_size=4),
    commit_us=commit_times | st.integers(),
    end_lsn=lsns | st.integers(),
    spoil=st.none() | st.sampled_from([(f, v) for f, vs in OUTSIDE.items() for v in vs]),
)
def test_fuzz_compiled_twin_writes_the_same_bytes(
    rows: list[Canonical], commit_us: int, end_lsn: int, spoil: tuple[str, Any] | None
) -> None:
    if spoil is not None:
        rows[-1] = rows[-1]._replace(**{spoil[0]: spoil[1]})
    batch = batch_of(rows, commit_us, end_lsn)
    assert encode_transactions(batch, hot) == encode_transactions(batch, None)


@needs_hot
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    amount=st.decimals(allow_nan=True, allow_infinity=True)
    | st.integers(0, 30).flatmap(lambda places: st.decimals(places=places, allow_nan=False))
)
def test_fuzz_compiled_numeric_agrees_on_any_decimal(amount: Decimal) -> None:
    batch = batch_of([ROW._replace(amount=amount)])
    assert encode_transactions(batch, hot) == encode_transactions(batch, None)
