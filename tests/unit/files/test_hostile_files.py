"""Hostile objects: each ends in `UnreadableFile` or bad-record rejections, in bounded
memory, and arbitrary bytes never raise anything else."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.normalize import Rejection, SourceRow
from streamer.normalize.text import document_is_storable
from streamer.sources.files.formats import (
    MAX_RECORD_BYTES,
    FileFormat,
    Record,
    UnreadableFile,
    read_records,
)
from tests.unit.files.helpers import (
    RECORDS,
    REF,
    csv_file,
    jsonl_file,
    parquet_file,
    parquet_table,
    read,
)

PEAK_LIMIT = 16 * 1024 * 1024


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _zeros_gzip(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed without ever holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


def test_gzip_bomb_is_one_malformed_record_in_bounded_memory() -> None:
    bomb = io.BytesIO(_zeros_gzip(100 * 1024 * 1024))
    records: list[Record] = []
    peak = _peak(
        lambda: records.extend(read_records(FileFormat.JSONL_GZ, bomb, REF, max_json_bytes=1))
    )
    assert [r.item.reason for r in records] == ["malformed_record"]  # type: ignore[union-attr]
    assert peak < PEAK_LIMIT


def test_gzip_bomb_over_the_decompressed_cap_fails_the_file() -> None:
    with pytest.raises(UnreadableFile, match="after decompression"):
        read(FileFormat.CSV_GZ, _zeros_gzip(8 * 1024 * 1024), max_decompressed_bytes=1024 * 1024)


def test_50_mb_csv_line_is_one_malformed_record_in_bounded_memory() -> None:
    header, good = csv_file(RECORDS[1:2], data_column=True).split(b"\n", 1)
    stream = io.BytesIO(header + b"\n" + b"x" * (50 * 1024 * 1024) + b"\n" + good)
    records: list[Record] = []
    peak = _peak(
        lambda: records.extend(read_records(FileFormat.CSV, stream, REF, max_json_bytes=1))
    )
    assert [r.position for r in records] == [0, 1]
    assert isinstance(records[0].item, Rejection)
    assert records[0].item.detail == f"line longer than {MAX_RECORD_BYTES} bytes"
    assert isinstance(records[1].item, SourceRow)
    assert peak < PEAK_LIMIT


def test_long_jsonl_line_is_malformed_and_the_next_line_is_read() -> None:
    data = b'{"x": "' + b"y" * (2 * MAX_RECORD_BYTES) + b'"}\n' + jsonl_file(RECORDS[1:2])
    first, second = read(FileFormat.JSONL, data)
    assert isinstance(first.item, Rejection) and isinstance(second.item, SourceRow)
    assert len(json.loads(first.item.raw)["malformed_line"]) == 1000


def test_invalid_utf8_is_a_bad_record_in_jsonl_and_csv() -> None:
    (jsonl,) = read(FileFormat.JSONL, b'{"a": "\xff"}\n')
    assert (jsonl.item.reason, jsonl.item.detail) == ("malformed_record", "line is not valid UTF-8")  # type: ignore[union-attr]
    header, good = csv_file(RECORDS[1:2], data_column=True).split(b"\n", 1)
    bad, ok = read(FileFormat.CSV, header + b"\n\xff\xfe,x\n" + good)
    assert bad.item.detail == "row is not valid UTF-8"  # type: ignore[union-attr]
    assert isinstance(ok.item, SourceRow)


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        (FileFormat.JSON, b"not json", "not a valid JSON document"),
        (FileFormat.JSON, b'{"a": "\xff"}', "not a valid JSON document"),
        (FileFormat.JSON, b"[" * 2000 + b"]" * 2000, "not a valid JSON document"),
        (FileFormat.JSON, b"42", "top level is a int"),
        (FileFormat.JSON, b"[" + b"1," * 6000 + b"1]", "larger than 10000 bytes"),
        (FileFormat.JSON_GZ, b"not gzip", "broken gzip data"),
        (FileFormat.JSONL_GZ, gzip.compress(jsonl_file(RECORDS))[:-12], "broken gzip data"),
        (FileFormat.CSV, b"", "empty CSV file"),
        (FileFormat.CSV, b"a,b\n1,2\n", "missing required columns: transactional_id, merchant_id"),
        (FileFormat.CSV, b"\xff\n", "unreadable CSV header"),
        (FileFormat.CSV, b"transactional_id,merchant_id,a,a.b\n", "conflicts with its parent"),
        (FileFormat.PARQUET, b"PAR1 not really PAR1", "unreadable Parquet file"),
    ],
)
def test_unreadable_files(fmt: FileFormat, data: bytes, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message):
        read(fmt, data, max_json_bytes=10_000)


def test_parquet_with_the_wrong_schema_fails() -> None:
    table = parquet_table(RECORDS, "string").drop_columns(["merchant_id"])
    with pytest.raises(UnreadableFile, match="missing required columns: merchant_id"):
        read(FileFormat.PARQUET, parquet_file(table))


def test_corrupt_parquet_fails() -> None:
    data = bytearray(parquet_file(parquet_table(RECORDS * 50, "string")).getvalue())
    data[200:4000] = bytes(3800)
    with pytest.raises(UnreadableFile, match="unreadable Parquet file"):
        read(FileFormat.PARQUET, bytes(data))


def test_json_is_never_read_past_its_limit() -> None:
    class Counting(io.BytesIO):
        total = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.total += len(data)
            return data

    stream = Counting(b"[" + b"1," * 10_000_000 + b"1]")
    with pytest.raises(UnreadableFile):
        read(FileFormat.JSON, stream, max_json_bytes=1000)
    assert stream.total == 1001


def test_jsonl_nesting_bomb_line_is_a_bad_record() -> None:
    (record,) = read(FileFormat.JSONL, b"[" * 5000 + b"]" * 5000 + b"\n")
    assert record.item.reason == "malformed_record"  # type: ignore[union-attr]


def _storable_json(text: str) -> None:
    assert document_is_storable(orjson.loads(text))


def _check(records: Iterator[Record]) -> None:
    last = -1
    for record in records:
        assert record.position > last
        last = record.position
        if isinstance(record.item, Rejection):
            _storable_json(record.item.raw)
            _storable_json(record.item.merchant)
        else:
            orjson.loads(record.item.data)
            _storable_json(record.item.merchant)


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(list(FileFormat)), data=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_nothing_but_unreadable_file(fmt: FileFormat, data: bytes) -> None:
    if fmt.gzipped and data[:1] != b"\x1f":
        data = gzip.compress(data)
    with contextlib.suppress(UnreadableFile):
        _check(read_records(fmt, io.BytesIO(data), REF, max_json_bytes=1500))


HEADER = b"transactional_id,merchant_id,data\n"
LINE = st.binary(max_size=200).filter(lambda b: b"\n" not in b)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINE, max_size=8), fmt=st.sampled_from([FileFormat.JSONL, FileFormat.CSV]))
def test_arbitrary_lines_after_a_good_header(lines: list[bytes], fmt: FileFormat) -> None:
    data = (HEADER if fmt is FileFormat.CSV else b"") + b"\n".join(lines)
    try:
        _check(read_records(fmt, io.BytesIO(data), REF, max_json_bytes=1500))
    except UnreadableFile as exc:
        assert fmt is FileFormat.CSV and "CSV" in str(exc)
