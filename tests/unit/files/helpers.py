"""Seed-like records and builders of every object format, shared by the files tests."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamer.normalize import Canonical, SourceRow, normalize
from streamer.sources.files.formats import FileFormat, ObjectRef, Record, read_records
from tests.unit.normalize.helpers import MERCHANT, PAYU, STRIPE, XML_CONTENT, XML_MERCHANT

REF = ObjectRef("yuno-payments-lake", "raw-payments/2024-12-13/transactions_001.x", "e1", 0)
EXPLICIT_ID = "6F1A2B3C-9D8E-4F70-8A1B-2C3D4E5F6A7B"
XML = {"type": "XML_BLOB", "content": XML_CONTENT}

RECORDS: list[dict[str, Any]] = [
    {
        "id": EXPLICIT_ID,
        "transactional_id": "8d3b7d5e-1c2f-4a6b-9e0d-1f2a3b4c5d01",
        "merchant": MERCHANT,
        "data": STRIPE,
        "created_at": "2024-12-13 10:00:00",
    },
    {
        "transactional_id": "8d3b7d5e-1c2f-4a6b-9e0d-1f2a3b4c5d02",
        "merchant": MERCHANT,
        "data": PAYU,
    },
    {
        "transactional_id": "8d3b7d5e-1c2f-4a6b-9e0d-1f2a3b4c5d03",
        "merchant": XML_MERCHANT,
        "data": XML,
        "created_at": "2024-12-13 10:02:00",
    },
]
FAMILIES = ("stripe", "payu", "xml")


def read(fmt: FileFormat, source: Any, ref: ObjectRef = REF, **options: Any) -> list[Record]:
    options.setdefault("max_json_bytes", 64 * 1024 * 1024)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    return list(read_records(fmt, source, ref, **options))


def expected(record: dict[str, Any]) -> Canonical:
    """What the normalizer makes of the record's payload given as JSON text."""
    row = SourceRow(
        "x",
        record["transactional_id"],
        json.dumps(record["data"]),
        json.dumps(record["merchant"]),
        record.get("created_at"),
    )
    result = normalize(row)
    assert isinstance(result, Canonical), result
    return result


def comparable(item: object) -> Canonical:
    """A normalized item without the fields that differ by format (id, raw text)."""
    assert isinstance(item, SourceRow), item
    result = normalize(item)
    assert isinstance(result, Canonical), result
    return result._replace(source_id="x", raw="")


def json_file(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(records, indent=1).encode()


def jsonl_file(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n\n" for r in records).encode()


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def _columns(record: dict[str, Any], *, data_column: bool) -> dict[str, Any]:
    merchant = record["merchant"]
    row: dict[str, Any] = {
        "id": record.get("id"),
        "transactional_id": record["transactional_id"],
        "merchant_id": merchant["id"],
        "merchant_name": merchant.get("name"),
        "merchant_country": merchant.get("country"),
        "created_at": record.get("created_at"),
    }
    if data_column:
        row["data"] = json.dumps(record["data"])
    else:
        row.update(_flat(record["data"]))
    return row


def csv_file(records: list[dict[str, Any]], *, data_column: bool) -> bytes:
    rows = [_columns(r, data_column=data_column) for r in records]
    names = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if row.get(n) is None else row[n] for n in names])
    return out.getvalue().encode()


def parquet_file(table: pa.Table, row_group_size: int | None = None) -> io.BytesIO:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group_size)
    out.seek(0)
    return out


def parquet_table(records: list[dict[str, Any]], data: str) -> pa.Table:
    """`data`: "string" (JSON text column), "struct", or "flat" (dotted columns)."""
    if data == "flat":
        rows = [_columns(r, data_column=False) for r in records]
        names = list(dict.fromkeys(name for row in rows for name in row))
        return pa.table({n: [row.get(n) for row in rows] for n in names})
    rows = [_columns(r, data_column=True) for r in records]
    if data == "struct":
        for row, record in zip(rows, records, strict=True):
            row["data"] = record["data"]
    return pa.Table.from_pylist(rows)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)
