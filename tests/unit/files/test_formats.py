"""Object formats to records: every shape, resume, exact money, identity (no network)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.normalize import Canonical, Rejection, SourceRow, normalize
from streamer.sources.files.formats import FileFormat, ObjectRef, detect_format
from streamer.sources.files.rows import (
    RECORD_NAMESPACE,
    RISKY_NUMBER,
    canonical_uuid,
    derived_id,
    risky_number,
)
from tests.unit.files.helpers import (
    EXPLICIT_ID,
    FAMILIES,
    RECORDS,
    REF,
    comparable,
    csv_file,
    expected,
    gz,
    json_file,
    jsonl_file,
    parquet_file,
    parquet_table,
    read,
)


@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        ("raw-payments/2024-12-13/transactions_001.json", FileFormat.JSON),
        ("a/b.JSONL", FileFormat.JSONL),
        ("a/b.ndjson", FileFormat.JSONL),
        ("a/b.Csv", FileFormat.CSV),
        ("raw-payments/2024-12-14/transactions_004.parquet", FileFormat.PARQUET),
        ("a/b.json.gz", FileFormat.JSON_GZ),
        ("a/b.ndjson.GZ", FileFormat.JSONL_GZ),
        ("a/b.csv.gz", FileFormat.CSV_GZ),
        ("a/b.parquet.gz", None),
        ("a/b.txt", None),
        ("a/b.gz", None),
        ("a/.json", None),
        ("a/2024-12-13/", None),
        ("json", None),
    ],
)
def test_detect_format(key: str, fmt: FileFormat | None) -> None:
    assert detect_format(key) is fmt


SHAPES: dict[str, tuple[FileFormat, Any]] = {
    "json array": (FileFormat.JSON, json_file),
    "json.gz": (FileFormat.JSON_GZ, lambda rs: gz(json_file(rs))),
    "jsonl": (FileFormat.JSONL, jsonl_file),
    "jsonl.gz": (FileFormat.JSONL_GZ, lambda rs: gz(jsonl_file(rs))),
    "csv data": (FileFormat.CSV, lambda rs: csv_file(rs, data_column=True)),
    "csv.gz data": (FileFormat.CSV_GZ, lambda rs: gz(csv_file(rs, data_column=True))),
    "parquet string": (FileFormat.PARQUET, lambda rs: parquet_file(parquet_table(rs, "string"))),
    "parquet struct": (FileFormat.PARQUET, lambda rs: parquet_file(parquet_table(rs, "struct"))),
    "parquet flat": (FileFormat.PARQUET, lambda rs: parquet_file(parquet_table(rs, "flat"))),
}
TEXT_SHAPES: dict[str, tuple[FileFormat, Any]] = {
    "csv dotted": (FileFormat.CSV, lambda rs: csv_file(rs, data_column=False)),
    "csv.gz dotted": (FileFormat.CSV_GZ, lambda rs: gz(csv_file(rs, data_column=False))),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_normalizes_like_the_json_payload(shape: str) -> None:
    fmt, build = SHAPES[shape]
    records = read(fmt, build(RECORDS))
    assert [r.position for r in records] == [0, 1, 2]
    for record, source in zip(records, RECORDS, strict=True):
        assert comparable(record.item) == expected(source)._replace(source_id="x", raw="")
    assert records[0].item.source_id == EXPLICIT_ID.lower()


@pytest.mark.parametrize("shape", sorted(TEXT_SHAPES))
@pytest.mark.parametrize("family", ["stripe", "payu", "xml"])
def test_csv_text_cells_normalize_like_json_numbers(shape: str, family: str) -> None:
    fmt, build = TEXT_SHAPES[shape]
    source = RECORDS[FAMILIES.index(family)]
    (record,) = read(fmt, build([source]))
    assert comparable(record.item) == expected(source)._replace(source_id="x", raw="")


def test_csv_cells_stay_text() -> None:
    (record,) = read(FileFormat.CSV, csv_file(RECORDS[:1], data_column=False))
    assert isinstance(record.item, SourceRow)
    assert json.loads(record.item.data) == {
        "amt": "25.84",
        "p_id": "Stripe",
        "exec_ms": "402",
        "st_code": "1",
        "server_txt": "00_SUCCESS",
        "card_country": "ES",
    }


def test_json_single_object_is_one_record() -> None:
    (record,) = read(FileFormat.JSON, json.dumps(RECORDS[1]).encode())
    assert record.position == 0
    assert comparable(record.item) == expected(RECORDS[1])._replace(source_id="x", raw="")


def test_jsonl_blank_lines_have_no_position() -> None:
    data = b"\n  \n" + jsonl_file(RECORDS).replace(b"\n\n", b"\r\n \t\n")
    assert [r.position for r in read(FileFormat.JSONL, data)] == [0, 1, 2]


ALL_SHAPES = {**SHAPES, **TEXT_SHAPES}


@pytest.mark.parametrize("shape", sorted(ALL_SHAPES))
def test_resume_from_start_skips_earlier_records(shape: str) -> None:
    fmt, build = ALL_SHAPES[shape]
    records = RECORDS * 4
    whole = read(fmt, build(records))
    assert [r.position for r in whole] == list(range(12))
    for start in (0, 5, 11, 12, 50):
        assert read(fmt, build(records), start=start) == whole[start:]


def test_parquet_resume_skips_row_groups() -> None:
    table = parquet_table(RECORDS * 10, "string")
    whole = read(FileFormat.PARQUET, parquet_file(table, row_group_size=4))
    assert read(FileFormat.PARQUET, parquet_file(table, row_group_size=4), start=9) == whole[9:]


# -- exact money ----------------------------------------------------------------------------

EXACT_DATA = '{"amt": 0.1000000000000000055, "p_id": "Stripe"}'


def _exact_line(data: str = EXACT_DATA) -> str:
    record = dict(RECORDS[1], data="@")
    return json.dumps(record).replace('"@"', data)


@pytest.mark.parametrize("fmt", [FileFormat.JSONL, FileFormat.JSON])
def test_amounts_no_double_holds_stay_exact(fmt: FileFormat) -> None:
    line = _exact_line()
    text = line if fmt is FileFormat.JSONL else f"[{line}]"
    (record,) = read(fmt, text.encode())
    assert isinstance(record.item, SourceRow)
    assert "0.1000000000000000055" in record.item.data
    result = normalize(record.item)
    assert isinstance(result, Canonical)
    assert result.amount == Decimal("0.1000000000000000055")


@pytest.mark.parametrize(("literal", "why"), [("-0", "negative"), ("1e-400", "fraction")])
def test_numbers_orjson_would_change_keep_their_value(literal: str, why: str) -> None:
    data = f'{{"amt": {literal}, "p_id": "Stripe", "currency": "USD"}}'
    (record,) = read(FileFormat.JSONL, _exact_line(data).encode())
    result = normalize(record.item)  # type: ignore[arg-type]
    assert isinstance(result, Rejection)
    assert (result.reason, why in result.detail) == ("invalid_amount", True)


def test_parquet_decimal_column_is_exact() -> None:
    data = {"amt": Decimal("0.1000000000000000055"), "p_id": "Stripe"}
    table = pa.Table.from_pylist(
        [{"transactional_id": RECORDS[1]["transactional_id"], "merchant_id": "m", "data": data}],
        schema=pa.schema(
            [
                ("transactional_id", pa.string()),
                ("merchant_id", pa.string()),
                ("data", pa.struct([("amt", pa.decimal128(38, 19)), ("p_id", pa.string())])),
            ]
        ),
    )
    (record,) = read(FileFormat.PARQUET, parquet_file(table))
    result = normalize(record.item)  # type: ignore[arg-type]
    assert isinstance(result, Canonical)
    assert result.amount == Decimal("0.1000000000000000055")


# -- identity -------------------------------------------------------------------------------


def _ids(fmt: FileFormat, data: bytes, ref: ObjectRef = REF) -> list[str]:
    return [r.item.source_id for r in read(fmt, data, ref)]


@pytest.mark.parametrize("shape", ["json array", "jsonl", "csv data"])
def test_same_bytes_same_ids_whatever_the_etag(shape: str) -> None:
    fmt, build = SHAPES[shape]
    data = build(RECORDS)
    ids = _ids(fmt, data)
    assert ids == _ids(fmt, data)
    assert ids == _ids(fmt, data, ObjectRef(REF.bucket, REF.key, "other-etag", 99))
    other_key = _ids(fmt, data, ObjectRef(REF.bucket, REF.key + "2", REF.etag, 0))
    assert other_key[0] == ids[0]  # an explicit id is the same in every file
    assert set(other_key[1:]).isdisjoint(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("shape", ["json array", "jsonl", "csv data", "parquet string"])
def test_a_changed_record_gets_a_new_id(shape: str) -> None:
    fmt, build = SHAPES[shape]
    changed = [*RECORDS[:2], dict(RECORDS[2], created_at="2024-12-13 11:00:00")]
    before, after = _ids(fmt, build(RECORDS)), _ids(fmt, build(changed))
    assert before[:2] == after[:2]
    assert before[2] != after[2]


def test_json_ids_do_not_depend_on_the_parser_path() -> None:
    plain = json.dumps(RECORDS[1:2]).encode()
    risky = json.dumps([RECORDS[1], "@"]).replace('"@"', _exact_line()).encode()
    assert _ids(FileFormat.JSON, plain)[0] == _ids(FileFormat.JSON, risky)[0]


def test_an_id_that_is_not_a_uuid_is_malformed() -> None:
    (record,) = read(FileFormat.JSONL, json.dumps(dict(RECORDS[1], id="42")).encode())
    assert isinstance(record.item, Rejection)
    assert record.item.reason == "malformed_record"
    assert record.item.detail == "id is not a UUID: str"
    assert record.item.transactional_id == RECORDS[1]["transactional_id"]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"transactional_id": None}, "record has no transactional_id"),
        ({"transactional_id": "tx-1"}, "transactional_id is not a UUID: str"),
        ({"merchant": None}, "record has no merchant"),
        ({"data": None}, "record has no data"),
        ({"data": "not json"}, "data is a string that is not JSON"),
        ({"created_at": 5}, "created_at is not a string: int"),
    ],
)
def test_bad_records_are_malformed_with_valid_json_raw(change: dict[str, Any], detail: str) -> None:
    (record,) = read(FileFormat.JSONL, json.dumps(dict(RECORDS[1], **change)).encode())
    assert isinstance(record.item, Rejection)
    assert (record.item.reason, record.item.detail) == ("malformed_record", detail)
    json.loads(record.item.raw)
    json.loads(record.item.merchant)


def test_nul_in_data_is_invalid_text_with_storable_raw() -> None:
    line = json.dumps(dict(RECORDS[1], data={"amt": "1\u0000"}))
    (record,) = read(FileFormat.JSONL, line.encode())
    assert isinstance(record.item, Rejection)
    assert record.item.reason == "invalid_text"
    assert (
        "\x00" not in json.loads(record.item.raw)["malformed_line"]
    )  # an escaped "\u0000" is text


NUMBERISH = st.text(alphabet='0123456789.-eE:,[ \t"ax', max_size=80).map(str.encode)


@given(st.binary(max_size=80) | NUMBERISH)
def test_risky_number_is_the_documented_pattern(text: bytes) -> None:
    assert risky_number(text) is (RISKY_NUMBER.search(text) is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40), st.integers(0, 10**9), st.text(alphabet="0123456789abcdef", max_size=64)
)
def test_derived_ids_are_uuid5_of_the_documented_name(key: str, position: int, digest: str) -> None:
    ref = ObjectRef("bucket", key, "etag", 1)
    name = f"bucket/{key}\n{position}\n{digest}"
    assert derived_id(ref, position, digest) == str(uuid.uuid5(RECORD_NAMESPACE, name))


@settings(max_examples=300, deadline=None)
@given(
    st.uuids(),
    st.sampled_from([str, str.upper, lambda s: "{" + s + "}", lambda s: s.replace("-", "")]),
)
def test_canonical_uuid_agrees_with_the_uuid_module(value: uuid.UUID, spell: Any) -> None:
    assert canonical_uuid(spell(str(value))) == str(value)
