"""Hypothesis strategies for canonical rows and their commit info, for the binary COPY
tests: values the binary encoder takes (`encodable`, every one valid for the target
columns, so the server can compare both COPY formats) and values it must leave to COPY
text (`any_rows`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import strategies as st

from streamer.normalize.records import Canonical
from streamer.sink.copy_binary import MAX_DIGITS, MAX_EXPONENT, MAX_TIMESTAMP_US, MIN_TIMESTAMP_US
from streamer.sources.batching import Batch, TxnChunk

uuids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
codes2 = st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2)
codes3 = st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3)
int4s = st.none() | st.integers(-(2**31), 2**31 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
raws = json_values.map(lambda value: orjson.dumps(value).decode())


@st.composite
def decimals(draw: Any, max_digits: int = MAX_DIGITS, max_exponent: int = MAX_EXPONENT) -> Decimal:
    """Finite decimals with their own spelling of the exponent and trailing zeros."""
    digits = draw(st.text("0123456789", min_size=1, max_size=max_digits))
    exponent = draw(st.integers(-max_exponent, max_exponent) | st.integers(-8, 8))
    sign = draw(st.sampled_from(("", "-")))
    return Decimal(f"{sign}{digits}E{exponent}")


@st.composite
def timestamps(draw: Any) -> str:
    """A timestamp as PostgreSQL prints one (years 1..9999), with 0 to 6 fraction digits."""
    moment = draw(st.datetimes())
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    places = draw(st.integers(0, 6))
    if places:
        text += "." + f"{moment.microsecond:06d}"[:places]
    return text


def canonical_rows() -> st.SearchStrategy[Canonical]:
    return st.builds(
        Canonical,
        source_id=uuids,
        transactional_id=uuids,
        merchant_id=texts,
        merchant_name=st.none() | texts,
        merchant_country=codes2,
        provider=texts,
        source_format=texts,
        amount=decimals(),
        currency=codes3,
        status=texts,
        provider_status=st.none() | texts,
        country=codes2,
        processing_ms=int4s,
        raw=raws,
        source_created_at=st.none() | timestamps(),
    )


commit_times = st.integers(MIN_TIMESTAMP_US, MAX_TIMESTAMP_US)
lsns = st.integers(0, 2**64 - 1)

# Values outside what the encoder takes, field by field: each must send the batch to text.
OUTSIDE: dict[str, list[Any]] = {
    "source_id": ["{" + "0" * 32 + "}", "0" * 32, "g" * 8 + "-0000-0000-0000-" + "0" * 12, 7],
    "merchant_id": ["a\x00b", "\ud800", b"bytes", 5],
    "merchant_country": ["\x00", "\udfff"],
    "amount": [
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal(f"1E{MAX_EXPONENT + 1}"),
        Decimal(f"1E-{MAX_EXPONENT + 1}"),
        Decimal("1" * (MAX_DIGITS + 1)),
        1.5,
        3,
    ],
    "processing_ms": [2**31, -(2**31) - 1, True, 1.0, "1"],
    "raw": ['{"a": "\x00"}', "\ud800"],
    "source_created_at": [
        "0000-01-01 00:00:00",
        "2023-02-29 00:00:00",
        "2024-01-01 24:00:00",
        "2024-01-01 23:59:60",
        "2024-01-01 00:00:00.1234567",
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00+00",
        "2024-01-01 00:00:00.",
        "12024-01-01 00:00:00",
        "2024-1-01 00:00:00",
        "\uff12\uff10\uff12\uff14-01-01 00:00:00",  # fullwidth digits
        "2024-01-01 00:00:00 BC",
        5,
    ],
}


def batch_of(rows: list[Canonical], commit_us: int = 0, end_lsn: int = 1) -> Batch:
    """One whole transaction of `rows`."""
    chunk = TxnChunk(commit_us, end_lsn=end_lsn, canonical=list(rows))
    return Batch([chunk], end_lsn, len(rows), 0)
