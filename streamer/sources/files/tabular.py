"""`.csv` and `.parquet` objects (pure; pyarrow is imported only to read Parquet).

Columns: `transactional_id` and `merchant_id` are required (else the file fails);
`id`, `merchant_name`, `merchant_country` and `created_at` are optional. The payload is
the `data` column when there is one (JSON text; a struct in Parquet), else every other
column, where a dotted name builds a nested object (`amount_details.value`). An empty
CSV cell or a Parquet null is an absent field, in the payload and in the merchant
(nulls inside structs too: a struct column has every field on every row, and a present
`amt: null` would make a PayU-like payload look Stripe-like).

CSV cells stay text: the normalizer reads `"25.84"`, `"1"` the way it reads JSON numbers
(see the report on fields that do not). Positions are data-row indexes; blank lines are
skipped and get none. A row with the wrong cell count, invalid UTF-8, a line over
`MAX_RECORD_BYTES` or a CSV syntax error is a `malformed_record`. Parquet is read in
batches of `PARQUET_BATCH_ROWS`; resuming skips whole row groups without reading them.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Final

from streamer.errors import ConfigError
from streamer.sources.files.errors import UnreadableFile
from streamer.sources.files.jsonfiles import MAX_RECORD_BYTES
from streamer.sources.files.rows import ObjectRef, Record, build, dumps_exact, reject
from streamer.sources.files.streams import LongLine, Read, iter_lines

REQUIRED: Final = ("transactional_id", "merchant_id")
MERCHANT: Final = {"merchant_id": "id", "merchant_name": "name", "merchant_country": "country"}
RECORD_COLUMNS: Final = frozenset({"id", "transactional_id", "created_at", *MERCHANT})
PARQUET_BATCH_ROWS: Final = 1024
_SENTINEL: Final = "-\n"
"""Stands in (for the csv module) for a line that could not be decoded or was too long;
the row it ends up in is rejected."""


class Layout:
    """Where each record field is in a row, checked once from the header or schema."""

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            raise UnreadableFile("duplicate column names")
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise UnreadableFile(f"missing required columns: {', '.join(missing)}")
        self.names = list(names)
        self.data = "data" in names
        self.payload = [
            (name, tuple(name.split("."))) for name in names if name not in RECORD_COLUMNS
        ]
        if not self.data:
            paths = {path for _, path in self.payload}
            for _, path in self.payload:
                if any(path[:cut] in paths for cut in range(1, len(path))):
                    raise UnreadableFile(f"column {'.'.join(path)!r} conflicts with its parent")

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        """The record (as `rows.build` wants it) of one row given by column name."""
        merchant = {
            field: value
            for column, field in MERCHANT.items()
            if (value := row.get(column)) is not None and value != ""
        }
        if self.data:
            data = row.get("data")
            data = _without_nulls(data) if isinstance(data, dict) else data
        else:
            data = {}
            for name, path in self.payload:
                value = row[name]
                if value is None or value == "":
                    continue
                node = data
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = _without_nulls(value) if isinstance(value, dict) else value
        return {
            "id": row.get("id"),
            "transactional_id": row.get("transactional_id"),
            "created_at": row.get("created_at"),
            "merchant": merchant,
            "data": data,
        }


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _without_nulls(v) if isinstance(v, dict) else v
        for k, v in value.items()
        if v is not None
    }


def read_csv(read: Read, ref: ObjectRef, *, start: int) -> Iterator[Record]:
    """Records of a CSV object (header row first), from position `start` on."""
    problems: list[str] = []
    digest = hashlib.sha256()
    size = 0

    def text_lines() -> Iterator[str]:
        nonlocal size
        for line in iter_lines(read, MAX_RECORD_BYTES):
            if isinstance(line, LongLine):
                problems.append(f"line longer than {MAX_RECORD_BYTES} bytes")
                digest.update(line.digest.encode())
                yield _SENTINEL
                continue
            digest.update(line + b"\n")
            size += len(line)
            try:
                text = line.decode()
            except UnicodeDecodeError:
                problems.append("row is not valid UTF-8")
                yield _SENTINEL
                continue
            yield text + "\n"

    reader = csv.reader(text_lines(), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UnreadableFile(f"unreadable CSV header: {str(exc)[:100]}") from None
    if header is None:
        raise UnreadableFile("empty CSV file: no header row")
    if problems:
        raise UnreadableFile(f"unreadable CSV header: {problems[0]}")
    layout = Layout(header)
    position = -1
    while True:
        digest = hashlib.sha256()
        problems.clear()
        size = 0
        try:
            cells = next(reader, None)
            error = ""
        except csv.Error as exc:
            cells, error = [], f"CSV syntax error: {str(exc)[:80]}"
        if cells is None:
            return
        if not cells and not error and not problems:
            continue  # blank line
        position += 1
        if position < start:
            continue
        text = dumps_exact(cells)
        hexdigest = digest.hexdigest()
        if size > MAX_RECORD_BYTES:
            problems.append(f"row longer than {MAX_RECORD_BYTES} bytes")
        if problems or error:
            yield reject(ref, position, hexdigest, text, problems[0] if problems else error)
        elif len(cells) != len(layout.names):
            detail = f"row has {len(cells)} cells, the header {len(layout.names)}"
            yield reject(ref, position, hexdigest, text, detail)
        else:
            record = layout.record(dict(zip(layout.names, cells, strict=True)))
            yield build(ref, position, record, hexdigest, text)


def read_parquet(source: str | BinaryIO, ref: ObjectRef, *, start: int) -> Iterator[Record]:
    """Records of a Parquet file (a path or a seekable binary file), from `start` on."""
    try:
        import pyarrow  # noqa: PLC0415 - optional dependency, only for Parquet
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise ConfigError(
            "reading Parquet needs the files extra: pip install 'streamer[files]'"
        ) from None
    try:
        parquet = pq.ParquetFile(source)
        layout = Layout(parquet.schema_arrow.names)
        groups, position = [], 0
        for index in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if position + rows > start:
                groups.append(index)
            else:
                position += rows
        if not groups:
            return
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups)
        for batch in batches:
            for row in batch.to_pylist():
                if position >= start:
                    yield _parquet_record(ref, position, layout, row)
                position += 1
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFile(f"unreadable Parquet file: {_message(exc)}") from None


def _parquet_record(ref: ObjectRef, position: int, layout: Layout, row: dict[str, Any]) -> Record:
    try:
        text = dumps_exact(row)
    except (TypeError, ValueError):
        return reject(ref, position, "", "", "row has values that cannot be serialized")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return build(ref, position, layout.record(row), digest, text)


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:160]}"
