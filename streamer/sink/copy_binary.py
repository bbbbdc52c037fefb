"""Binary COPY data for the `transactions` rows of a batch (pure; the specification of
`_speedups/_copybin.pyx`).

Why: in a catch-up the target server is the bottleneck, and it parses binary COPY for
about 30 % less CPU than COPY text (`python -m bench.target`: 6.0 → 4.3 µs of backend
CPU a row): no uuid, numeric or timestamp text to parse.

Only the common shapes are encoded: canonical uuid text, a finite decimal of modest size,
an ISO timestamp as PostgreSQL prints it, text without NUL or lone surrogates, an int4.
For any other value `encode_transactions` returns None and the batch goes as COPY text
(copy_text.py), whose reading by the server is the reference: each binary field here
means exactly what its text would (tests/integration/test_copy_binary.py compares both
through a real server). Rejected rows stay COPY text: they are few.
"""

from __future__ import annotations

import re
import struct
from datetime import date, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any, Final

from streamer._speedups import hot
from streamer.normalize.records import Canonical
from streamer.sink.copy_text import encode_batch
from streamer.sink.tables import TRANSACTION_COLUMNS
from streamer.sources.batching import TXN, Batch, Encoded

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
TRAILER: Final = b"\xff\xff"
FIELD_COUNT: Final = struct.pack("!h", len(TRANSACTION_COLUMNS))
NULL: Final = b"\xff\xff\xff\xff"  # field length -1

MAX_DIGITS: Final = 100  # a decimal's coefficient digits
MAX_FIELD_BYTES: Final = 0x3FFFFFFF  # beyond PostgreSQL's 1 GB field limit anyway
MAX_EXPONENT: Final = 100  # |exponent| of a decimal
NUMERIC_NEG: Final = 0x4000
JSONB_VERSION: Final = b"\x01"

_DAY_US: Final = 86_400_000_000
_PG_EPOCH_ORDINAL: Final = date(2000, 1, 1).toordinal()
MIN_TIMESTAMP_US: Final = (date(1, 1, 1).toordinal() - _PG_EPOCH_ORDINAL) * _DAY_US
MAX_TIMESTAMP_US: Final = (date(9999, 12, 31).toordinal() - _PG_EPOCH_ORDINAL + 1) * _DAY_US - 1

# The wire format sent for each TRANSACTION_COLUMNS column: binary COPY is only right for
# columns of exactly these types (the server converts COPY text, not binary data).
BINARY_TYPES: Final = (
    "uuid",
    "uuid",
    "text",
    "text",
    "character",
    "text",
    "text",
    "numeric",
    "character",
    "text",
    "text",
    "character",
    "integer",
    "jsonb",
    "timestamp without time zone",
    "timestamp with time zone",
    "pg_lsn",
)

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\Z")
_TIMESTAMP: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?\Z"
)
_INT4: Final = struct.Struct("!ii")
_INT8: Final = struct.Struct("!iq")
_UINT8: Final = struct.Struct("!iQ")


def text_field(value: Any) -> bytes | None:
    """text, char(n) (the server pads and checks the length as for COPY text)."""
    if value is None:
        return NULL
    if type(value) is not str:
        return None
    try:
        data = value.encode()
    except UnicodeEncodeError:  # a lone surrogate: psycopg says what is wrong
        return None
    if b"\x00" in data or len(data) > MAX_FIELD_BYTES:
        return None
    return struct.pack("!i", len(data)) + data


def jsonb_field(value: Any) -> bytes | None:
    """jsonb: a version byte, then the JSON text the server parses as for COPY text."""
    text = text_field(value)
    if text is None or text == NULL:
        return text
    return struct.pack("!i", len(text) - 3) + JSONB_VERSION + text[4:]


def uuid_field(value: Any) -> bytes | None:
    if value is None:
        return NULL
    if type(value) is not str or not _UUID.match(value):
        return None
    return b"\x00\x00\x00\x10" + bytes.fromhex(value.replace("-", ""))


def int4_field(value: Any) -> bytes | None:
    if value is None:
        return NULL
    if type(value) is not int or not -(2**31) <= value < 2**31:
        return None
    return _INT4.pack(4, value)


def numeric_field(value: Any) -> bytes | None:
    """numeric: base-10000 digits from the first non-zero group, the weight of the first,
    the sign and the display scale (digits after the point, as the text would give)."""
    if value is None:
        return NULL
    if type(value) is not Decimal or not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > MAX_DIGITS or not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
        return None
    dscale = max(0, -exponent)
    fraction_groups = (dscale + 3) // 4
    coefficient = int("".join(map(str, digits)))
    whole = coefficient * 10 ** (exponent + 4 * fraction_groups)  # an integer
    groups: list[int] = []
    while whole:
        whole, group = divmod(whole, 10000)
        groups.append(group)
    groups.reverse()
    weight = len(groups) - 1 - fraction_groups if groups else 0
    while groups and groups[-1] == 0:
        groups.pop()
    flag = NUMERIC_NEG if sign and groups else 0
    body = struct.pack(f"!hhHh{len(groups)}H", len(groups), weight, flag, dscale, *groups)
    return struct.pack("!i", len(body)) + body


def timestamp_field(value: Any) -> bytes | None:
    """timestamp (without time zone) from PostgreSQL's own ISO text of one: microseconds
    since 2000-01-01."""
    if value is None:
        return NULL
    if type(value) is not str:
        return None
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7) or ""
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:  # year 0, 24:00, a leap second, ...: the server's own reading
        return None
    days = moment.toordinal() - _PG_EPOCH_ORDINAL
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second
    return _INT8.pack(8, seconds * 1_000_000 + int(fraction.ljust(6, "0")))


def commit_fields(commit_time_us: Any, end_lsn: Any) -> bytes | None:
    """source_committed_at (timestamptz, microseconds since 2000-01-01 UTC) and
    source_lsn (pg_lsn, an unsigned 64-bit integer)."""
    if type(commit_time_us) is not int or type(end_lsn) is not int:
        return None
    if not MIN_TIMESTAMP_US <= commit_time_us <= MAX_TIMESTAMP_US or not 0 <= end_lsn < 2**64:
        return None
    return _INT8.pack(8, commit_time_us) + _UINT8.pack(8, end_lsn)


def row_fields(row: Canonical) -> bytes | None:
    """The 15 canonical fields of a row, in TRANSACTION_COLUMNS order."""
    fields = (
        uuid_field(row.source_id),
        uuid_field(row.transactional_id),
        text_field(row.merchant_id),
        text_field(row.merchant_name),
        text_field(row.merchant_country),
        text_field(row.provider),
        text_field(row.source_format),
        numeric_field(row.amount),
        text_field(row.currency),
        text_field(row.status),
        text_field(row.provider_status),
        text_field(row.country),
        int4_field(row.processing_ms),
        jsonb_field(row.raw),
        timestamp_field(row.source_created_at),
    )
    if any(field is None for field in fields):
        return None
    return b"".join(fields)  # type: ignore[arg-type]


def encode_transactions(batch: Batch, speedups: ModuleType | None = hot) -> bytes | None:
    """Binary COPY data of the canonical rows of the batch's whole transactions (b"" when
    there are none), or None when a value is outside the shapes encoded here. The loop
    below is the specification; `speedups.encode_binary` writes the same bytes in C."""
    if speedups is not None:
        buf = bytearray()
        return bytes(buf) if speedups.encode_binary(batch.chunks, TXN, buf) else None
    out = bytearray(HEADER)
    rows = 0
    for chunk in batch.chunks:
        if chunk.end_lsn is None or chunk.kind != TXN or not chunk.canonical:
            continue
        tail = commit_fields(chunk.commit_time_us, chunk.end_lsn)
        if tail is None:
            return None
        for row in chunk.canonical:
            fields = row_fields(row)
            if fields is None:
                return None
            out += FIELD_COUNT
            out += fields
            out += tail
            rows += 1
    if not rows:
        return b""
    out += TRAILER
    return bytes(out)


def binary_fits(types: dict[str, str]) -> bool:
    """The table's column types (`tables.column_types`) are the ones the binary data is
    written for: an operator who altered one (amount to float8, processing_ms to bigint)
    gets COPY text, which the server converts."""
    return all(types.get(c) == t for c, t in zip(TRANSACTION_COLUMNS, BINARY_TYPES, strict=True))


def encode_for_copy(batch: Batch, binary_ok: bool = True) -> Encoded | None:
    """Both COPYs' data, prepared outside the writer thread: the canonical rows as binary
    COPY when the table's types fit (`binary_ok`) and every value allows it, else as text like
    the rejected rows; None when psycopg's text formatter is unavailable (the writer then
    formats the rows itself)."""
    binary = encode_transactions(batch) if binary_ok else None
    text = encode_batch(batch, canonical=binary is None)
    if text is None:
        return None
    if binary is None:
        return Encoded(text[0], text[1], binary=False)
    return Encoded(binary, text[1], binary=True)
