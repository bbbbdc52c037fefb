"""Object formats: which keys are read, and one object's bytes to records (pure).

`read_records` yields `Record(position, item)` tuples, one per record, in file order:
`item` is a `SourceRow` for the normalizer or a `Rejection` (`malformed_record`,
`invalid_text`) for a bad record in a good file. Positions are 0-based record indexes
(JSON array index, JSONL non-blank line index, CSV data-row index, Parquet row index);
records before `start` are read past but not yielded, so a crashed file resumes at its
stored position without holding earlier records in memory.

`UnreadableFile` means the object as a whole cannot be read; the caller marks it
`failed` with `str(error)` as its message. It can be raised after some records were
yielded (a gzip stream truncated in the middle), so the caller commits nothing of a file
it has not finished unless it stores the resume position with it. Any other exception
is a bug or a run problem (e.g. the bucket went away mid-read), not a data problem.

Identity and exact numbers: see `rows`; memory bounds: see `streams`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from typing import BinaryIO, Final

from streamer.sources.files.errors import UnreadableFile
from streamer.sources.files.jsonfiles import MAX_RECORD_BYTES, read_json, read_jsonl
from streamer.sources.files.rows import ObjectRef, Record, derived_id
from streamer.sources.files.streams import DEFAULT_MAX_DECOMPRESSED_BYTES, open_reader
from streamer.sources.files.tabular import read_csv, read_parquet

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "MAX_RECORD_BYTES",
    "FileFormat",
    "ObjectRef",
    "Record",
    "UnreadableFile",
    "derived_id",
    "detect_format",
    "read_records",
]


class FileFormat(enum.Enum):
    """A readable object format; the value is what `processed_files.file_format` holds."""

    JSON = "json"
    JSON_GZ = "json.gz"
    JSONL = "jsonl"
    JSONL_GZ = "jsonl.gz"
    CSV = "csv"
    CSV_GZ = "csv.gz"
    PARQUET = "parquet"

    @property
    def gzipped(self) -> bool:
        return self.value.endswith(".gz")


_SUFFIXES: Final = (
    (".json", FileFormat.JSON),
    (".jsonl", FileFormat.JSONL),
    (".ndjson", FileFormat.JSONL),
    (".csv", FileFormat.CSV),
    (".parquet", FileFormat.PARQUET),
    (".json.gz", FileFormat.JSON_GZ),
    (".jsonl.gz", FileFormat.JSONL_GZ),
    (".ndjson.gz", FileFormat.JSONL_GZ),
    (".csv.gz", FileFormat.CSV_GZ),
)


def detect_format(key: str) -> FileFormat | None:
    """The format of an object by its key's suffix (any case); None: skip the object.

    A key ending in `/` (a "folder" marker) or without a known suffix is skipped.
    """
    lowered = key.lower()
    for suffix, fmt in _SUFFIXES:
        if (
            lowered.endswith(suffix)
            and len(lowered) > len(suffix)
            and lowered[-len(suffix) - 1] != "/"
        ):
            return fmt
    return None


def read_records(
    fmt: FileFormat,
    stream: BinaryIO | str | os.PathLike[str],
    ref: ObjectRef,
    *,
    max_json_bytes: int,
    start: int = 0,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> Iterator[Record]:
    """The records of one object from position `start` on (module docstring).

    `stream` is the object's bytes: any binary stream for the streamed formats; a path or
    a *seekable* file for Parquet (spool the S3 object first: `s3.spool_object`).
    `max_json_bytes` caps a whole `.json` document (after decompression);
    `max_decompressed_bytes` caps every other object (see `streams`).
    """
    if fmt is FileFormat.PARQUET:
        if not isinstance(stream, str | os.PathLike) and not stream.seekable():
            raise ValueError("Parquet needs a path or a seekable file: spool the object first")
        source = os.fspath(stream) if isinstance(stream, str | os.PathLike) else stream
        return read_parquet(source, ref, start=start)
    if isinstance(stream, str | os.PathLike):
        raise TypeError("streamed formats take a binary stream")
    read = open_reader(stream, gzipped=fmt.gzipped, max_bytes=max_decompressed_bytes)
    if fmt in (FileFormat.JSON, FileFormat.JSON_GZ):
        return read_json(read, ref, max_json_bytes=max_json_bytes, start=start)
    if fmt in (FileFormat.JSONL, FileFormat.JSONL_GZ):
        return read_jsonl(read, ref, start=start)
    return read_csv(read, ref, start=start)
